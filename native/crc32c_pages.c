/*
 * crc32c_pages: CRC32C (Castagnoli) of every 4 KiB page of a buffer in one N-API call.
 *
 * Convention: the kernel's crc32c_le(seed, buf) -- the bare reflected register update with
 * polynomial 0x82F63B78, no inversion on the way in or out. The SSE4.2 crc32 instruction is
 * exactly that update, so raw(seed, page) is a plain loop of _mm_crc32_u64 starting from seed.
 * (The "standard" CRC32C is ~raw(~0, buf).)
 *
 * Why batched: one native call per 4 KiB page from JS adds a JS->C transition and a subarray
 * view per page; one call per batch pays that once.
 * Why 3 pages interleaved: crc32q has a latency of 3 cycles but a throughput of 1 per cycle, and a
 * single CRC stream is a serial dependency chain (each step needs the previous register). Three
 * independent pages per loop iteration keep the unit busy: about 3x the single-stream speed.
 *
 * Exports:
 *   sse42: boolean                        -- true when the CPU has SSE4.2 (else the functions throw)
 *   pages(seed, buf: Uint8Array, out: Uint32Array, outOff): void
 *                                         -- out[outOff + i] = raw(seed, page i); buf.length % 4096 == 0
 *   raw(seed, buf: Uint8Array): number    -- raw(seed, buf) for any length (one stream)
 *   pagesStart(seed, buf: Uint8Array, out: Uint32Array, outOff): void
 *                                         -- the same as pages(), but computed on a helper thread while
 *                                            JS goes on; same argument checks (nothing happens when they
 *                                            fail). At most one job is outstanding: an unfinished
 *                                            previous job is waited for (and released) first.
 *   readStart(fd, position, buf: Uint8Array, seed, out: Uint32Array, outOff): void
 *                                         -- on the helper thread, pread buf.length bytes (a multiple of
 *                                            4096) from fd at byte offset position (a safe integer >= 0)
 *                                            into buf, READ_CHUNK at a time, and checksum the pages as they
 *                                            arrive: out[outOff + i] = raw(seed, page i). Same checks as
 *                                            pagesStart plus fd / position; the same job slot.
 *   pagesWait(upTo: number): number       -- block until at least min(upTo, pages) pages of the current
 *                                            job are final in out (and, for a read, in buf); returns the
 *                                            pages done (0 with no job). When a read job failed before
 *                                            upTo pages, throws an Error: message "read failed at offset
 *                                            N: <strerror text | short read (end of file)>", code the
 *                                            errno name (EIO, EBADF, ...) or ESHORT, plus offset (the
 *                                            absolute byte offset of the failure), pages (pages that are
 *                                            final: every page read completely before it) and reason.
 *                                            Waits for no more than those pages return normally.
 *   writeStart(buf: Uint8Array, pages: Int32Array, runs: Float64Array, nRuns): void
 *                                         -- on the helper thread, in order, run i = runs[4i..4i+3] (fd,
 *                                            byte offset, from, count): one pwritev of the pages
 *                                            buf[pages[from + j]] (j < count) at that offset of fd. The
 *                                            same job slot; pagesWait counts runs, and reports a failed
 *                                            one as a failed read ("write failed at offset N: ...",
 *                                            pages = runs written before it).
 *   writePages(fd, position, buf, pages: Int32Array, from, count): number
 *                                         -- the same pwritev for one run, on this thread.
 *   walkMeta(fd, p: Float64Array, outPos: Float64Array, outPages: Float64Array): number
 *                                         -- the replay's pre-walk over the journal's meta blocks (see
 *                                            js_walk_meta for p's fields), on this thread.
 * Buffers may sit at any byteOffset: all loads go through memcpy (compiled to unaligned movs).
 * Built for anything but x86-64 with GCC/Clang, the module still loads, exports sse42 = false, and the
 * JS side falls back to another backend.
 *
 * The helper thread (pagesStart/readStart/pagesWait)
 * --------------------------------------------------
 * One persistent pthread per Node environment (main thread or worker_thread that loaded the addon),
 * created on the first pagesStart or readStart and reused by every later job. A job holds strong
 * references (napi_create_reference, refcount 1) on buf and out so the GC cannot free them while the
 * helper uses them; napi_get_typedarray_info has already moved any on-heap typed array to a fixed
 * backing store, so the pointers stay valid. The references are dropped on the JS thread (N-API is not
 * thread-safe): by the pagesWait that sees the job complete (or failed), or by the next start.
 * A read job (readStart) preads READ_CHUNK bytes at a time (looping on EINTR and partial reads) and
 * checksums what has arrived while it is still in cache, in whole groups (the remainder of a chunk goes
 * with the next one), so a published page count covers both the bytes and the checksums. On a read
 * error or end of file it checksums and publishes the pages read completely, records errno (or "short
 * read") and the byte offset, sets `failed` and wakes the waiter, and stops. The fd must stay open
 * until the job is waited for: the helper does not own it.
 * Progress: the helper checksums GROUP pages at a time and publishes its count of finished pages with
 * a release-store; pagesWait reads it with an acquire-load (no lock when enough is done); otherwise it
 * registers the count it needs and sleeps on a mutex + condition variable -- when the target is far,
 * until EARLY pages before it, then it polls (with pause; only with more than one CPU, only while the
 * count keeps moving, at most SPIN_NS) so the futex wake-up latency overlaps the last pages instead of
 * adding to them. The "keeps moving" rule matters: the kernel likes to put a freshly woken helper on
 * the waker's own core, and polling there would hold the helper up until the poll gives in.
 * The helper only takes the lock to signal when a registered waiter's count is reached (one wake-up
 * per wait, not one per group); a seq_cst fence on both sides (store count / fence / load target
 * against store target / fence / load count) guarantees that one of them sees the other, so no
 * wake-up is lost.
 * A failed read also ends a wait: `failed` is published like the count (release-store, fence, load of
 * the waiter's target, signal), and the sleeping and polling loops test it next to the count.
 * Work stealing: a pagesWait that finds the job still posted (the helper has not taken it: asleep, or
 * off the CPU) runs the pages it needs itself, on the JS thread, through the same run_* functions and
 * publishing the same counts, then posts the rest again from there (`first`); see helper_steal.
 * Shutdown: an env cleanup hook stops the helper (it checks between groups and read chunks) and joins
 * it, so the process or worker exits cleanly even with a job still running.
 */
#ifdef __linux__
#define _GNU_SOURCE /* sched_getaffinity / CPU_COUNT; implies the POSIX 2008 interfaces */
#else
#define _POSIX_C_SOURCE 200809L
#endif
#define _FILE_OFFSET_BITS 64 /* pread at offsets past 2 GiB on 32-bit builds too */
#include <node_api.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

#define PAGE 4096

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_CRC_INSN 1

static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* raw crc32c_le(seed, p[0..len)), one stream. */
__attribute__((target("sse4.2"))) static uint32_t crc_raw(uint32_t seed, const uint8_t *p, size_t len) {
  uint64_t c = seed;
  for (; len >= 8; p += 8, len -= 8) c = _mm_crc32_u64(c, load64(p));
  uint32_t c32 = (uint32_t)c;
  for (; len > 0; p++, len--) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}

/* out[i] = raw(seed, page i) for n pages; three pages per iteration, the rest one by one. */
__attribute__((target("sse4.2"))) static void crc_pages(uint32_t seed, const uint8_t *b, size_t n, uint32_t *out) {
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint8_t *p = b + i * PAGE, *q = p + PAGE, *r = q + PAGE;
    uint64_t x = seed, y = seed, z = seed;
    for (size_t k = 0; k < PAGE; k += 8) {
      x = _mm_crc32_u64(x, load64(p + k));
      y = _mm_crc32_u64(y, load64(q + k));
      z = _mm_crc32_u64(z, load64(r + k));
    }
    out[i] = (uint32_t)x;
    out[i + 1] = (uint32_t)y;
    out[i + 2] = (uint32_t)z;
  }
  for (; i < n; i++) out[i] = crc_raw(seed, b + i * PAGE, PAGE);
}

static inline void cpu_relax(void) { _mm_pause(); }
#else
static inline void cpu_relax(void) {}
#endif

static int have_sse42 = 0;

/* Throws and returns NULL on failure, so callers can just `return NULL`. */
/* v is a whole number in [0, max] (checked before the cast, so the cast is defined) */
static int exact_u64(double v, double max) { return v >= 0 && v <= max && v == (double)(uint64_t)v; }

static void *typed_array(napi_env env, napi_value v, napi_typedarray_type want, size_t *len, const char *what) {
  bool is;
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok || type != want) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  /* data already points at the first element (byteOffset applied); NULL only when empty. */
  static uint8_t empty;
  return data ? data : &empty;
}

static int get_seed(napi_env env, napi_value v, uint32_t *seed) {
  /* ToUint32 semantics: any number, taken modulo 2^32 (negative values from ~x work). */
  if (napi_get_value_uint32(env, v, seed) != napi_ok) {
    napi_throw_type_error(env, NULL, "seed must be a number");
    return 0;
  }
  return 1;
}

/* Arguments of pages(), pagesStart() and readStart(), checked; throws and returns 0 on failure (nothing written). */
typedef struct {
  uint32_t seed;
  uint8_t *buf;
  uint32_t *out; /* already advanced by outOff */
  size_t n;      /* pages */
  napi_value vbuf, vout;
} pages_args;

/* argv = {seed, buf, out, outOff}. */
static int check_pages_args(napi_env env, const napi_value *argv, pages_args *a) {
  size_t blen, olen;
  double off;
  if (!get_seed(env, argv[0], &a->seed)) return 0;
  a->buf = typed_array(env, argv[1], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!a->buf) return 0;
  uint32_t *out = typed_array(env, argv[2], napi_uint32_array, &olen, "out must be a Uint32Array");
  if (!out) return 0;
  if (napi_get_value_double(env, argv[3], &off) != napi_ok) {
    napi_throw_type_error(env, NULL, "outOff must be a number");
    return 0;
  }
  if (blen % PAGE != 0) {
    napi_throw_range_error(env, NULL, "buf length is not a multiple of 4096");
    return 0;
  }
  a->n = blen / PAGE;
  /* off in [0, olen] first (also rejects NaN), so the cast is defined; then integral and room for n. */
  if (!(off >= 0 && off <= (double)olen) || off != (double)(size_t)off || a->n > olen - (size_t)off) {
    napi_throw_range_error(env, NULL, "out has no room for the checksums at outOff");
    return 0;
  }
  a->out = out + (size_t)off;
  a->vbuf = argv[1];
  a->vout = argv[2];
  return 1;
}

static int get_pages_args(napi_env env, napi_callback_info info, const char *usage, pages_args *a) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < 4) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return check_pages_args(env, argv, a);
}

static napi_value js_pages(napi_env env, napi_callback_info info) {
  pages_args a;
  if (!get_pages_args(env, info, "pages(seed, buf, out, outOff): 4 arguments expected", &a)) return NULL;
#ifdef HAVE_CRC_INSN
  if (have_sse42) {
    crc_pages(a.seed, a.buf, a.n, a.out);
    return NULL;
  }
#endif
  napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
  return NULL;
}

static napi_value js_raw(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  uint32_t seed;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "raw(seed, buf): 2 arguments expected");
    return NULL;
  }
  if (!get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &len, "buf must be a Uint8Array");
  if (!buf) return NULL;
#ifdef HAVE_CRC_INSN
  if (have_sse42) {
    if (napi_create_uint32(env, crc_raw(seed, buf, len), &result) != napi_ok) return NULL;
    return result;
  }
#endif
  (void)result;
  napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
  return NULL;
}

/* ---- the helper thread: pagesStart / readStart / pagesWait ---- */

/* Pages per published step: a multiple of 3 (the interleave), 48 KiB, a few microseconds of work. */
#define GROUP 12
/* readStart preads this much at a time (64 pages) and checksums it while it is still in L2; groups run
 * on across chunk boundaries, so a chunk's last few pages are summed with the next chunk. */
#ifndef READ_CHUNK
#define READ_CHUNK (256 * 1024)
#endif
/* pagesWait far from its target sleeps until EARLY pages before it (about 10 us of work, the order of
 * a futex wake-up), then polls for the rest: while the count advances at least every STALL_NS (a group
 * takes ~2 us), for SPIN_NS at most, before it sleeps again. */
#define EARLY 64
#define SPIN_NS 100000
#define STALL_NS 20000
/* An idle helper polls this long for the next job before it sleeps: the replay posts one about every
 * millisecond, and waking a sleeping thread costs a futex call and, in a VM, an inter-processor
 * interrupt on both sides (tens of microseconds, measured as 70 us per posted job on the 2-CPU VM).
 * It polls with sched_yield, not pause: the kernel often wakes the JS thread onto the helper's core
 * (the waker's), and a pause loop kept it off the CPU until the poll gave in -- 2 ms gaps, a dozen of
 * them in the first 30 ms of a replay while V8's compiler threads held the other core. */
#define IDLE_SPIN_NS 2000000
static int can_spin = 0; /* more than one usable CPU: on one, polling would only delay the helper */

enum { JOB_PAGES = 0, JOB_READ = 1, JOB_WRITE = 2 };
#define ERR_SHORT (-1) /* err_no of a read that hit the end of the file */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t job_cv;  /* helper sleeps here until a job is posted or stop is set */
  pthread_cond_t done_cv; /* pagesWait sleeps here; the helper signals it when `waiter` is reached or the job fails */
  pthread_t thread;
  int started;            /* thread created (JS thread only) */
  int posted;             /* a job is posted and not yet taken by the helper (under mu) */
  atomic_int posted_flag; /* the same, readable without the lock (the helper's idle polling) */
  int sleeping;           /* the helper waits on job_cv (under mu): a post must signal it */
  atomic_int stop;        /* set by the cleanup hook; the helper checks it between groups / chunks */
  atomic_size_t waiter;   /* pages a sleeping pagesWait needs (0: nobody waits); signal once done >= it */
  atomic_size_t done;     /* pages of the current job final in out (release-stored by the helper) */
  atomic_int failed;      /* the current read job stopped on an error (release-stored after err_*, done) */
  /* The job, written by the JS thread under mu before it is posted, read by the helper after it is. */
  int kind;
  uint32_t seed;
  uint8_t *buf;
  uint32_t *out;
  size_t n;
  size_t first;           /* pages [first, n) are left to do: 0 when posted, more once the JS thread ran a prefix (helper_steal) */
  int fd;                 /* JOB_READ: pread(fd, buf, n * PAGE, pos) */
  const int32_t *wpages;  /* JOB_WRITE: page numbers of buf, run i taking wpages[from_i .. from_i + count_i) */
  const double *wruns;    /* JOB_WRITE: run i is wruns[4i .. 4i+3] = fd, byte offset, from, count; n = runs */
  int64_t pos;
  /* Written by the helper before its release-store of failed, read by the JS thread after an acquire-load. */
  int err_no;             /* errno, or ERR_SHORT */
  int64_t err_off;        /* absolute byte offset in the file where the read failed */
  /* JS thread only. */
  int active;             /* a job is outstanding: references held, not yet seen complete or failed */
  napi_ref rbuf, rout, rruns;
} helper_state;

/* Publish `i` pages final and wake a registered waiter whose count is reached. */
static void publish(helper_state *h, size_t i) {
  atomic_store_explicit(&h->done, i, memory_order_release);
  /* Pairs with the fence in helper_sleep: either it sees the new count or we see its target. */
  atomic_thread_fence(memory_order_seq_cst);
  size_t w = atomic_load_explicit(&h->waiter, memory_order_relaxed);
  if (w != 0 && i >= w) {
    pthread_mutex_lock(&h->mu);
    pthread_cond_signal(&h->done_cv);
    pthread_mutex_unlock(&h->mu);
  }
}

/* The read failed (err_no / err_off already set, every completed page already published): wake any waiter. */
static void publish_failure(helper_state *h) {
  atomic_store_explicit(&h->failed, 1, memory_order_release);
  atomic_thread_fence(memory_order_seq_cst); /* same pairing as in publish() */
  if (atomic_load_explicit(&h->waiter, memory_order_relaxed) != 0) {
    pthread_mutex_lock(&h->mu);
    pthread_cond_signal(&h->done_cv);
    pthread_mutex_unlock(&h->mu);
  }
}

/* Checksum pages [from, to) GROUP at a time, publishing after each group. */
static void sum_groups(helper_state *h, uint32_t seed, const uint8_t *buf, uint32_t *out, size_t from, size_t to) {
  for (size_t i = from; i < to;) {
    size_t g = to - i < GROUP ? to - i : GROUP;
#ifdef HAVE_CRC_INSN
    crc_pages(seed, buf + i * PAGE, g, out + i);
#else
    (void)seed, (void)buf, (void)out; /* unreachable: the start functions throw without SSE4.2 */
#endif
    i += g;
    publish(h, i);
  }
}

/* JOB_PAGES: checksum pages [first, n) (stops early, unpublished, when the env shuts down). */
static void run_pages(helper_state *h, uint32_t seed, const uint8_t *buf, uint32_t *out, size_t first, size_t n) {
  for (size_t i = first; i < n; i += GROUP) {
    if (atomic_load_explicit(&h->stop, memory_order_relaxed)) return;
    sum_groups(h, seed, buf, out, i, n - i < GROUP ? n : i + GROUP);
  }
}

/* JOB_READ: pread pages [first, n) (page i at pos + i * PAGE) READ_CHUNK at a time, checksumming what
 * has arrived in whole groups (the rest with the next chunk, all of it at the end). On an error or end
 * of file: checksum and publish every page that was read completely, record the error, wake the
 * waiter, stop. */
static void run_read(helper_state *h, int fd, int64_t pos, uint32_t seed, uint8_t *buf, uint32_t *out, size_t first, size_t n) {
  size_t total = n * PAGE, got = first * PAGE, summed = first;
  while (got < total) {
    if (atomic_load_explicit(&h->stop, memory_order_relaxed)) return;
    size_t end = total - got > READ_CHUNK ? got + READ_CHUNK : total;
    int err = 0;
    while (got < end) {
      ssize_t r = pread(fd, buf + got, end - got, (off_t)(pos + (int64_t)got));
      if (r > 0) got += (size_t)r;
      else if (r == 0) {
        err = ERR_SHORT;
        break;
      } else if (errno != EINTR) {
        err = errno;
        break;
      }
    }
    size_t full = got / PAGE;
    size_t upto = err || got == total ? full : full - full % GROUP;
    sum_groups(h, seed, buf, out, summed, upto);
    summed = upto;
    if (err) {
      h->err_no = err;
      h->err_off = pos + (int64_t)got;
      publish_failure(h);
      return;
    }
  }
}

/* pwritev of the pages buf[pages[j]] (j < n) at byte `off` of fd, at most 1024 iovecs a call, looping on
 * EINTR and partial writes. 0, or the errno (EIO for a write of nothing) with *fail_off where it stopped. */
static int pwrite_pages(int fd, int64_t off, const uint8_t *buf, const int32_t *pages, size_t n, int64_t *fail_off) {
  struct iovec iov[1024];
  for (size_t j = 0; j < n;) {
    size_t k = n - j < 1024 ? n - j : 1024;
    for (size_t q = 0; q < k; q++) {
      iov[q].iov_base = (void *)(buf + (size_t)pages[j + q] * PAGE);
      iov[q].iov_len = PAGE;
    }
    struct iovec *v = iov;
    size_t left = k;
    while (left > 0) {
      ssize_t w = pwritev(fd, v, (int)left, (off_t)off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        *fail_off = off;
        return w < 0 ? errno : EIO;
      }
      off += w;
      while (left > 0 && (size_t)w >= v->iov_len) {
        w -= (ssize_t)v->iov_len;
        v++;
        left--;
      }
      if (left > 0 && w > 0) {
        v->iov_base = (uint8_t *)v->iov_base + w;
        v->iov_len -= (size_t)w;
      }
    }
    j += k;
  }
  return 0;
}

/* JOB_WRITE: runs [first, n), publishing the count of runs written after each; on an error, record
 * it (errno, offset), publish the failure and stop. */
static void run_write(helper_state *h, const uint8_t *buf, const int32_t *pages, const double *runs, size_t first, size_t n) {
  for (size_t r = first; r < n; r++) {
    if (atomic_load_explicit(&h->stop, memory_order_relaxed)) return;
    const double *q = runs + 4 * r;
    int64_t fail_off = 0;
    int e = pwrite_pages((int)q[0], (int64_t)q[1], buf, pages + (size_t)q[2], (size_t)q[3], &fail_off);
    if (e) {
      h->err_no = e;
      h->err_off = fail_off;
      publish_failure(h);
      return;
    }
    publish(h, r + 1);
  }
}

/* A posted job as the thread that runs it sees it (the helper, or a JS thread that steals it). */
typedef struct {
  int kind, fd;
  int64_t pos;
  uint32_t seed;
  uint8_t *buf;
  uint32_t *out;
  const int32_t *wpages;
  const double *wruns;
  size_t first, n;
} job_t;

/* Take the posted job: the caller holds mu and has seen `posted`. */
static job_t take_job(helper_state *h) {
  h->posted = 0;
  atomic_store_explicit(&h->posted_flag, 0, memory_order_relaxed);
  job_t j = {h->kind, h->fd, h->pos, h->seed, h->buf, h->out, h->wpages, h->wruns, h->first, h->n};
  return j;
}

/* Run pages [first, upto) of a taken job. */
static void run_job(helper_state *h, const job_t *j, size_t upto) {
  if (j->kind == JOB_READ) run_read(h, j->fd, j->pos, j->seed, j->buf, j->out, j->first, upto);
  else if (j->kind == JOB_WRITE) run_write(h, j->buf, j->wpages, j->wruns, j->first, upto);
  else run_pages(h, j->seed, j->buf, j->out, j->first, upto);
}

static uint64_t now_ns(void);

static void *helper_main(void *arg) {
  helper_state *h = arg;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    if (!h->posted && can_spin) {
      /* idle: poll for the next job a while before sleeping (see IDLE_SPIN_NS) */
      pthread_mutex_unlock(&h->mu);
      uint64_t t0 = now_ns();
      while (!atomic_load_explicit(&h->posted_flag, memory_order_acquire) && !atomic_load_explicit(&h->stop, memory_order_relaxed) &&
             now_ns() - t0 < IDLE_SPIN_NS)
        sched_yield(); /* not pause: a thread woken onto this core (often the JS thread) runs at once */
      pthread_mutex_lock(&h->mu);
    }
    while (!h->posted && !atomic_load_explicit(&h->stop, memory_order_relaxed)) {
      h->sleeping = 1;
      pthread_cond_wait(&h->job_cv, &h->mu);
      h->sleeping = 0;
    }
    if (atomic_load_explicit(&h->stop, memory_order_relaxed)) break;
    job_t j = take_job(h);
    pthread_mutex_unlock(&h->mu);
    run_job(h, &j, j.n);
    pthread_mutex_lock(&h->mu);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* Start the helper if it is not running; 0 when it cannot be created (the caller works inline). */
static int helper_ensure(helper_state *h) {
  if (h->started) return 1;
  pthread_attr_t attr;
  sigset_t all, old;
  int ok = 0;
  if (pthread_attr_init(&attr) != 0) return 0;
  pthread_attr_setstacksize(&attr, 256 * 1024);
  /* No signals on the helper: they stay with the threads Node and libuv expect them on. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  ok = pthread_create(&h->thread, &attr, helper_main, h) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  h->started = ok;
  return ok;
}

/* CPUs this thread may run on (its affinity mask where there is one), else the CPUs online. */
static long usable_cpus(void) {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
  return sysconf(_SC_NPROCESSORS_ONLN);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline int has_failed(helper_state *h) { return atomic_load_explicit(&h->failed, memory_order_acquire); }

/* Sleep until the current job has at least `want` (>= 1) pages done or has failed; returns the count. */
static size_t helper_sleep(helper_state *h, size_t want) {
  size_t d;
  pthread_mutex_lock(&h->mu);
  atomic_store_explicit(&h->waiter, want, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  while ((d = atomic_load_explicit(&h->done, memory_order_acquire)) < want && !has_failed(h))
    pthread_cond_wait(&h->done_cv, &h->mu);
  atomic_store_explicit(&h->waiter, 0, memory_order_relaxed);
  pthread_mutex_unlock(&h->mu);
  /* done is stored before failed: after seeing failed, read it again for the final count. */
  return atomic_load_explicit(&h->done, memory_order_acquire);
}

/* The JS thread needs pages of a job the helper has not taken yet: run them here, up to `want` (rounded
 * up to a read chunk), and post the rest again for the helper; 1 when it did, 0 when the helper has
 * the job. Waiting for a job nobody has started is the worst case: at the start of a replay V8's
 * compiler threads hold the CPUs, and the helper took up to 4 ms to pick up a window the JS thread
 * was waiting for. Taking only what is needed keeps the rest of the job on the other core. */
static int helper_steal(helper_state *h, size_t want) {
  pthread_mutex_lock(&h->mu);
  if (!h->posted) {
    pthread_mutex_unlock(&h->mu);
    return 0;
  }
  job_t j = take_job(h);
  pthread_mutex_unlock(&h->mu);
  size_t chunk = j.kind == JOB_WRITE ? 1 : READ_CHUNK / PAGE, upto = ((want + chunk - 1) / chunk) * chunk;
  if (upto > j.n) upto = j.n;
  run_job(h, &j, upto);
  if (upto < j.n && !has_failed(h) && atomic_load_explicit(&h->done, memory_order_acquire) >= upto) {
    pthread_mutex_lock(&h->mu);
    h->first = upto;
    h->posted = 1;
    atomic_store_explicit(&h->posted_flag, 1, memory_order_release);
    if (h->sleeping) pthread_cond_signal(&h->job_cv);
    pthread_mutex_unlock(&h->mu);
  }
  return 1;
}

/* Block until the current job has at least `want` pages done, or has failed (the count is then below
 * want and h->failed is set); returns the count. JS thread only. */
static size_t helper_wait(helper_state *h, size_t want) {
  size_t d = atomic_load_explicit(&h->done, memory_order_acquire);
  if (d >= want) return d; /* fast path: no lock, no syscall */
  if (has_failed(h)) return atomic_load_explicit(&h->done, memory_order_acquire);
  if (helper_steal(h, want)) return atomic_load_explicit(&h->done, memory_order_acquire);
  if (!can_spin) return helper_sleep(h, want);
  /* Far away: sleep through most of it, waking EARLY pages before the target. */
  if (want - d > EARLY) {
    d = helper_sleep(h, want - EARLY);
    if (has_failed(h)) return d;
  }
  /* Near: poll while the helper is visibly progressing (it runs on another core), so the wake-up
   * latency overlaps the last pages. No progress for STALL_NS (not started yet, or scheduled on this
   * very core, where polling would only hold it up) or SPIN_NS in all: sleep. */
  uint64_t t0 = now_ns(), seen = t0;
  size_t last = d;
  while (d < want) {
    for (int k = 0; k < 16; k++) cpu_relax();
    d = atomic_load_explicit(&h->done, memory_order_acquire);
    if (d >= want) break;
    if (has_failed(h)) return atomic_load_explicit(&h->done, memory_order_acquire);
    uint64_t t = now_ns();
    if (d != last) {
      last = d;
      seen = t;
    } else if (t - seen > STALL_NS || t - t0 > SPIN_NS) {
      return helper_sleep(h, want);
    }
  }
  return d;
}

/* Drop the job's references once it is complete or failed (the helper no longer touches buf or out). */
static void helper_release(napi_env env, helper_state *h) {
  if (h->rbuf) napi_delete_reference(env, h->rbuf);
  if (h->rout) napi_delete_reference(env, h->rout);
  if (h->rruns) napi_delete_reference(env, h->rruns);
  h->rbuf = h->rout = h->rruns = NULL;
  h->active = 0;
}

/* Finish (wait for, release) the outstanding job, if any. A failed read's error is dropped here: the
 * JS side waits for a read job itself before it starts another one. */
static void helper_finish(napi_env env, helper_state *h) {
  if (h->active) {
    helper_wait(h, h->n);
    helper_release(env, h);
  }
}

/* The job's fields, as the helper and a stealing thread read them (the caller holds mu, or no job is posted). */
static void set_job(helper_state *h, const job_t *j) {
  h->kind = j->kind;
  h->fd = j->fd;
  h->pos = j->pos;
  h->seed = j->seed;
  h->buf = j->buf;
  h->out = j->out;
  h->wpages = j->wpages;
  h->wruns = j->wruns;
  h->first = j->first;
  h->n = j->n;
  /* the previous job is over: the helper is idle */
  atomic_store_explicit(&h->done, 0, memory_order_relaxed);
  atomic_store_explicit(&h->failed, 0, memory_order_relaxed);
}

/* Post job j for the helper, holding a strong reference on each of the nrefs JS values it reads or
 * writes (buf, then out or pages, then runs) until it is released. 0 when a reference cannot be taken
 * (nothing is posted: the caller runs the job itself). */
static int helper_post(napi_env env, helper_state *h, const job_t *j, const napi_value *refs, int nrefs) {
  napi_ref *slot[3] = {&h->rbuf, &h->rout, &h->rruns};
  for (int i = 0; i < nrefs; i++) {
    if (napi_create_reference(env, refs[i], 1, slot[i]) != napi_ok) {
      *slot[i] = NULL;
      helper_release(env, h);
      return 0;
    }
  }
  h->active = 1;
  pthread_mutex_lock(&h->mu);
  set_job(h, j);
  h->posted = 1;
  atomic_store_explicit(&h->posted_flag, 1, memory_order_release);
  if (h->sleeping) pthread_cond_signal(&h->job_cv); /* a polling helper sees posted_flag */
  pthread_mutex_unlock(&h->mu);
  return 1;
}

/* Start job j: on the helper thread when there is one, else here, leaving the outcome (pages, error)
 * as a job for pagesWait to report, exactly as if the helper had run it (no references are needed:
 * nothing runs after we return). */
static void helper_start(napi_env env, helper_state *h, const job_t *j, const napi_value *refs, int nrefs) {
  helper_finish(env, h); /* one job at a time */
  if (j->n == 0) return;  /* nothing to do: no job */
  if (helper_ensure(h) && helper_post(env, h, j, refs, nrefs)) return;
  set_job(h, j);
  h->active = 1;
  run_job(h, j, j->n);
}

static helper_state *get_state(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) return NULL;
  return data;
}

static napi_value js_pages_start(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  helper_state *h = get_state(env, info, &argc, NULL);
  pages_args a;
  if (!h) return NULL;
  if (!get_pages_args(env, info, "pagesStart(seed, buf, out, outOff): 4 arguments expected", &a)) return NULL;
  if (!have_sse42) {
    napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
    return NULL;
  }
  job_t j = {JOB_PAGES, -1, 0, a.seed, a.buf, a.out, NULL, NULL, 0, a.n};
  napi_value refs[2] = {a.vbuf, a.vout};
  helper_start(env, h, &j, refs, 2);
  return NULL;
}

/* readStart(fd, position, buf, seed, out, outOff) */
static napi_value js_read_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  helper_state *h = get_state(env, info, &argc, argv);
  pages_args a;
  double fd, pos;
  if (!h) return NULL;
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "readStart(fd, position, buf, seed, out, outOff): 6 arguments expected");
    return NULL;
  }
  if (napi_get_value_double(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &pos) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd and position must be numbers");
    return NULL;
  }
  if (!(fd >= 0 && fd <= 2147483647.0) || fd != (double)(int)fd) {
    napi_throw_range_error(env, NULL, "fd must be an integer in [0, 2^31)");
    return NULL;
  }
  if (!(pos >= 0 && pos <= 9007199254740991.0) || pos != (double)(int64_t)pos) {
    napi_throw_range_error(env, NULL, "position must be a safe integer >= 0");
    return NULL;
  }
  napi_value pargv[4] = {argv[3], argv[2], argv[4], argv[5]}; /* seed, buf, out, outOff */
  if (!check_pages_args(env, pargv, &a)) return NULL;
  if (!have_sse42) {
    napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
    return NULL;
  }
  job_t j = {JOB_READ, (int)fd, (int64_t)pos, a.seed, a.buf, a.out, NULL, NULL, 0, a.n};
  napi_value refs[2] = {a.vbuf, a.vout};
  helper_start(env, h, &j, refs, 2);
  return NULL;
}

/* writeStart(buf, pages, runs, nRuns): on the helper thread, for each run i in order, runs[4i..4i+3] =
 * (fd, byte offset, from, count): pwritev of the pages buf[pages[from + j]] (j < count) at that offset
 * of fd. pagesWait counts runs; a failed write is thrown by it as a failed read is ("write failed at
 * offset N: reason", code, offset, and `pages` = runs written). Every argument is checked here first
 * (RangeError / TypeError, nothing posted). The fds must stay open until the job is waited for. */
static napi_value js_write_start(napi_env env, napi_callback_info info) {
  size_t argc = 4, blen, plen, rlen;
  napi_value argv[4];
  double nd;
  helper_state *h = get_state(env, info, &argc, argv);
  if (!h) return NULL;
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "writeStart(buf, pages, runs, nRuns): 4 arguments expected");
    return NULL;
  }
  uint8_t *buf = typed_array(env, argv[0], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!buf) return NULL;
  const int32_t *pages = typed_array(env, argv[1], napi_int32_array, &plen, "pages must be an Int32Array");
  if (!pages) return NULL;
  const double *runs = typed_array(env, argv[2], napi_float64_array, &rlen, "runs must be a Float64Array");
  if (!runs) return NULL;
  if (napi_get_value_double(env, argv[3], &nd) != napi_ok || !(nd >= 0 && nd <= (double)(rlen / 4)) || nd != (double)(size_t)nd || blen % PAGE != 0) {
    napi_throw_range_error(env, NULL, "writeStart: nRuns out of range, or buf not whole pages");
    return NULL;
  }
  size_t n = (size_t)nd, bpages = blen / PAGE;
  for (size_t r = 0; r < n; r++) {
    const double *q = runs + 4 * r;
    if (!exact_u64(q[0], 2147483647.0) || !exact_u64(q[1], 9007199254740991.0) || !exact_u64(q[2], (double)plen) || !exact_u64(q[3], (double)plen) ||
        q[2] + q[3] > (double)plen) {
      char msg[96];
      snprintf(msg, sizeof msg, "writeStart: run %zu has a bad fd, offset or page range", r);
      napi_throw_range_error(env, NULL, msg);
      return NULL;
    }
    for (size_t j = (size_t)q[2]; j < (size_t)q[2] + (size_t)q[3]; j++) {
      if (pages[j] < 0 || (size_t)pages[j] >= bpages) {
        char msg[96];
        snprintf(msg, sizeof msg, "writeStart: pages[%zu] = %d is not a page of buf (%zu pages)", j, pages[j], bpages);
        napi_throw_range_error(env, NULL, msg);
        return NULL;
      }
    }
  }
  job_t j = {JOB_WRITE, -1, 0, 0, buf, NULL, pages, runs, 0, n};
  napi_value refs[3] = {argv[0], argv[1], argv[2]};
  helper_start(env, h, &j, refs, 3);
  return NULL;
}

/* errno's symbolic name (EIO, EBADF, ...), as Node's fs errors spell it in `code`. */
static const char *errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *s = strerrorname_np(e);
  if (s) return s;
#else
  switch (e) {
#define N(x) case x: return #x;
    N(EIO) N(EBADF) N(EINVAL) N(EFAULT) N(EISDIR) N(ENXIO) N(EOVERFLOW) N(ESPIPE) N(EAGAIN) N(EINTR)
    N(ENOMEM) N(ENODEV) N(EACCES) N(EPERM) N(ENOENT) N(ENOSPC) N(ETIMEDOUT) N(ESTALE) N(ENOBUFS)
#undef N
    default: break;
  }
#endif
  return "UNKNOWN";
}

/* strerror text, thread-safe. */
static const char *errno_text(int e, char *tmp, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, tmp, len); /* GNU variant: returns the text (maybe static, maybe tmp) */
#else
  if (strerror_r(e, tmp, len) != 0) snprintf(tmp, len, "errno %d", e);
  return tmp;
#endif
}

/* Throw the current (failed) read job's error: message, code, offset, pages. */
static void throw_read_error(napi_env env, helper_state *h, size_t d) {
  char tmp[128], msg[320];
  const char *code, *reason;
  if (h->err_no == ERR_SHORT) {
    code = "ESHORT";
    reason = "short read (end of file)";
  } else {
    code = errno_name(h->err_no);
    reason = errno_text(h->err_no, tmp, sizeof tmp);
  }
  snprintf(msg, sizeof msg, "%s failed at offset %lld: %s", h->kind == JOB_WRITE ? "write" : "read", (long long)h->err_off, reason);
  napi_value vcode, vmsg, vreason, voff, vpages, err;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &vcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &vmsg) != napi_ok ||
      napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &vreason) != napi_ok ||
      napi_create_double(env, (double)h->err_off, &voff) != napi_ok ||
      napi_create_double(env, (double)d, &vpages) != napi_ok ||
      napi_create_error(env, vcode, vmsg, &err) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  napi_set_named_property(env, err, "reason", vreason);
  napi_set_named_property(env, err, "offset", voff);
  napi_set_named_property(env, err, "pages", vpages);
  napi_throw(env, err);
}

static napi_value js_pages_wait(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double upTo;
  helper_state *h = get_state(env, info, &argc, argv);
  if (!h) return NULL;
  if (argc < 1 || napi_get_value_double(env, argv[0], &upTo) != napi_ok) {
    napi_throw_type_error(env, NULL, "pagesWait(upTo): upTo must be a number");
    return NULL;
  }
  if (!have_sse42) {
    napi_throw_error(env, NULL, "crc32c_pages: no SSE4.2 on this CPU");
    return NULL;
  }
  size_t d = 0;
  if (h->active) {
    /* min(upTo, n) pages, a fractional upTo rounded up; NaN and upTo <= 0 only report progress. */
    size_t want = 0;
    if (upTo >= (double)h->n) want = h->n;
    else if (upTo > 0) {
      want = (size_t)upTo;
      if ((double)want < upTo) want++;
    }
    d = helper_wait(h, want);
    if (d >= h->n) helper_release(env, h);
    else if (d < want) {
      /* only a failed read stops short of its target: report it; the job is over */
      helper_release(env, h);
      throw_read_error(env, h, d);
      return NULL;
    }
  }
  if (napi_create_double(env, (double)d, &result) != napi_ok) return NULL;
  return result;
}

/* Env teardown (process exit, worker exit): stop the helper between two groups or chunks and join it.
 * The job's references, if any, are left to the environment's own teardown. */
static void helper_cleanup(void *arg) {
  helper_state *h = arg;
  if (h->started) {
    pthread_mutex_lock(&h->mu);
    atomic_store_explicit(&h->stop, 1, memory_order_relaxed);
    pthread_cond_signal(&h->job_cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
  }
  pthread_cond_destroy(&h->done_cv);
  pthread_cond_destroy(&h->job_cv);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

static helper_state *helper_new(void) {
  helper_state *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  if (pthread_mutex_init(&h->mu, NULL) != 0) goto fail0;
  if (pthread_cond_init(&h->job_cv, NULL) != 0) goto fail1;
  if (pthread_cond_init(&h->done_cv, NULL) != 0) goto fail2;
  atomic_init(&h->stop, 0);
  atomic_init(&h->waiter, 0);
  atomic_init(&h->done, 0);
  atomic_init(&h->posted_flag, 0);
  atomic_init(&h->failed, 0);
  return h;
fail2:
  pthread_cond_destroy(&h->job_cv);
fail1:
  pthread_mutex_destroy(&h->mu);
fail0:
  free(h);
  return NULL;
}

/* writePages(fd, position, buf, pages, from, count): pwritev of the 4 KiB pages buf[pages[from + j]]
 * (j < count), in that order, at byte `position` of fd, on this thread; at most 1024 iovecs a call,
 * looping on EINTR and partial writes. fs.writevSync would take the same pages as an array of views, at
 * about 50 ns a view in node before the kernel sees them. Returns the bytes written (count * 4096);
 * throws an Error whose code is the errno name ("write failed at offset N: reason"). */
static napi_value js_write_pages(napi_env env, napi_callback_info info) {
  size_t argc = 6, blen, plen;
  napi_value argv[6], result;
  double fd, pos, from, count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "writePages(fd, position, buf, pages, from, count): 6 arguments expected");
    return NULL;
  }
  if (napi_get_value_double(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &pos) != napi_ok ||
      napi_get_value_double(env, argv[4], &from) != napi_ok || napi_get_value_double(env, argv[5], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "fd, position, from and count must be numbers");
    return NULL;
  }
  const uint8_t *buf = typed_array(env, argv[2], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!buf) return NULL; /* typed_array threw (and left the length unset) */
  const int32_t *pages = typed_array(env, argv[3], napi_int32_array, &plen, "pages must be an Int32Array");
  if (!pages) return NULL; /* typed_array threw (and left the length unset) */
  if (!(fd >= 0 && fd <= 2147483647.0) || fd != (double)(int)fd || !(pos >= 0 && pos <= 9007199254740991.0) || pos != (double)(int64_t)pos ||
      !(from >= 0) || from != (double)(size_t)from || !(count >= 0) || count != (double)(size_t)count || from + count > (double)plen ||
      blen % PAGE != 0) {
    napi_throw_range_error(env, NULL, "writePages: fd, position, from or count out of range, or buf not whole pages");
    return NULL;
  }
  size_t first = (size_t)from, n = (size_t)count, bpages = blen / PAGE;
  for (size_t q = first; q < first + n; q++) {
    if (pages[q] < 0 || (size_t)pages[q] >= bpages) {
      char msg[128];
      snprintf(msg, sizeof msg, "writePages: pages[%zu] = %d is not a page of buf (%zu pages)", q, pages[q], bpages);
      napi_throw_range_error(env, NULL, msg);
      return NULL;
    }
  }
  int64_t fail_off = 0;
  int e = pwrite_pages((int)fd, (int64_t)pos, buf, pages + first, n, &fail_off);
  if (e) {
    char tmp[128], msg[256];
    snprintf(msg, sizeof msg, "write failed at offset %lld: %s", (long long)fail_off, errno_text(e, tmp, sizeof tmp));
    napi_throw_error(env, errno_name(e), msg);
    return NULL;
  }
  if (napi_create_double(env, (double)(n * PAGE), &result) != napi_ok) return NULL;
  return result;
}

/* walkMeta(fd, p, outPos, outPages): recover's extent pre-walk (journal/recover.ts logExtent) over a
 * file, on this thread: from ring position p[P_POS], pread each meta block and accept it only when the
 * JavaScript walk would (format/meta.ts decodeMetaColumns: magic, version, meta_size, position, seq,
 * checksum, well-formed payloads; scan.ts: the io unit fits in the ring, payload locations inside the
 * array), then go on past its pages. It stops, without a word, at the first block it does not accept
 * -- the end of the log, a refusal, a read error or end of file, a block that straddles the ring's end
 * -- or when outPos/outPages are full; the caller's JavaScript walk then takes over at p[P_POS] and
 * says why (or goes on). So this is only ever a faster road to the same yes; test/unit/meta-walk.test.ts
 * holds the two to the same answers. Worth it because the JavaScript walk of ~1400 blocks a GiB runs
 * before V8 has optimized it: ~25 ms at the start of every replay, against ~4 ms here (mostly preads).
 * p: Float64Array(P_COUNT), in and out (see the P_ indices); returns the units accepted (n): outPos[i]
 * and outPages[i] are unit i's ring position and page count. */
enum {
  P_BASE = 0,     /* in: byte offset of ring sector 0 in the file */
  P_RING,         /* in: ring size in sectors */
  P_POS,          /* in/out: position of the next meta block */
  P_WALKED,       /* in/out: sectors walked from the tail (scanLog's wrap and size rules) */
  P_SEED,         /* in: checksum seed */
  P_SEQ_LO,       /* in/out: seq the next block must have (low, high 32 bits) ... */
  P_SEQ_HI,
  P_HAS_SEQ,      /* in/out: ... when nonzero (the tail block sets it) */
  P_ARRAY,        /* in: array sectors (DATA locations + size must fit) */
  P_MEMBER,       /* in: used member sectors (PARITY locations) */
  P_LIMITS,       /* in: nonzero: check payload locations */
  P_FIRST_LO,     /* out: seq of the first unit accepted by this call */
  P_FIRST_HI,
  P_EMPTY,        /* out: units without payloads accepted by this call */
  P_COUNT = 16
};

static inline uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

typedef struct {
  uint32_t seed;
  int has_seq, limits;
  uint64_t seq, array, member;
} walk_rules;

/* One meta block (a private copy: its checksum field is zeroed here): 1 and its payload pages and count
 * when the JavaScript walk would accept it, 0 otherwise. */
static int walk_block(uint8_t *b, uint64_t pos, const walk_rules *r, uint64_t *pages_out, uint32_t *count_out) {
  if (le32(b) != 0x6433c509u || b[8] != 1) return 0;
  uint32_t meta_size = le32(b + 12);
  if (meta_size > PAGE || le64(b + 24) != pos) return 0;
  if (r->has_seq && le64(b + 16) != r->seq) return 0;
  uint32_t stored = le32(b + 4);
  memset(b + 4, 0, 4);
#ifdef HAVE_CRC_INSN
  if (crc_raw(r->seed, b, PAGE) != stored) return 0;
#else
  (void)stored;
  return 0; /* unreachable: walkMeta is exported only with SSE4.2 */
#endif
  uint64_t pages = 0;
  uint32_t count = 0;
  for (uint32_t off = 32; off < meta_size; count++) {
    if (off + 8 > meta_size) return 0;
    uint32_t type = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8, size = le32(b + off + 4), end;
    if (type == 2) { /* FLUSH */
      if (size % 8 != 0 || (uint64_t)off + 8 + size > meta_size) return 0;
      end = off + 8 + size;
    } else if (type == 0 || type == 1) { /* DATA, PARITY */
      if (size % 8 != 0) return 0;
      uint64_t e = (uint64_t)off + 16 + 4 * (uint64_t)(size / 8);
      if (e > meta_size) return 0;
      end = (uint32_t)e;
      uint64_t loc = le64(b + off + 8);
      if (r->limits) {
        /* scan.ts locationOutside; a location of 2^53 or more is outside any array (JavaScript refuses it) */
        if (loc >= (1ull << 53) || loc % 8 != 0) return 0;
        if (type == 0 && loc + (size > 8 ? size : 8) > r->array) return 0;
        if (type == 1 && loc + 8 > r->member) return 0;
      }
      pages += size / 8;
    } else return 0;
    off = end;
  }
  *pages_out = pages;
  *count_out = count;
  return 1;
}

static napi_value js_walk_meta(napi_env env, napi_callback_info info) {
  size_t argc = 4, plen, olen, glen;
  napi_value argv[4], result;
  double fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4 || napi_get_value_double(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "walkMeta(fd, p, outPos, outPages): fd must be a number");
    return NULL;
  }
  double *p = typed_array(env, argv[1], napi_float64_array, &plen, "p must be a Float64Array");
  if (!p) return NULL;
  double *opos = typed_array(env, argv[2], napi_float64_array, &olen, "outPos must be a Float64Array");
  if (!opos) return NULL; /* typed_array threw (and left the length unset) */
  double *opages = typed_array(env, argv[3], napi_float64_array, &glen, "outPages must be a Float64Array");
  if (!opages) return NULL; /* typed_array threw (and left the length unset) */
  const double SAFE = 9007199254740991.0;
  if (!(fd >= 0 && fd <= 2147483647.0) || fd != (double)(int)fd || plen < P_COUNT || !exact_u64(p[P_BASE], SAFE) || !exact_u64(p[P_RING], SAFE) ||
      !exact_u64(p[P_POS], SAFE) || !exact_u64(p[P_WALKED], SAFE) || !exact_u64(p[P_SEED], 4294967295.0) || !exact_u64(p[P_SEQ_LO], 4294967295.0) ||
      !exact_u64(p[P_SEQ_HI], 4294967295.0) || !exact_u64(p[P_ARRAY], SAFE) || !exact_u64(p[P_MEMBER], SAFE) || p[P_POS] >= p[P_RING]) {
    napi_throw_range_error(env, NULL, "walkMeta: fd or a parameter in p out of range");
    return NULL;
  }
  walk_rules r = {(uint32_t)p[P_SEED], p[P_HAS_SEQ] != 0, p[P_LIMITS] != 0,
                  (uint64_t)p[P_SEQ_HI] << 32 | (uint64_t)p[P_SEQ_LO], (uint64_t)p[P_ARRAY], (uint64_t)p[P_MEMBER]};
  uint64_t base = (uint64_t)p[P_BASE], ring = (uint64_t)p[P_RING], pos = (uint64_t)p[P_POS], walked = (uint64_t)p[P_WALKED], first = 0;
  size_t cap = olen < glen ? olen : glen, n = 0, empty = 0;
  uint8_t b[PAGE] __attribute__((aligned(64)));
  while (n < cap && walked < ring && pos + 8 <= ring) {
    size_t got = 0;
    while (got < PAGE) {
      ssize_t k = pread((int)fd, b + got, PAGE - got, (off_t)(base + pos * 512 + got));
      if (k > 0) got += (size_t)k;
      else if (k < 0 && errno == EINTR) continue;
      else break;
    }
    uint64_t pages;
    uint32_t count;
    if (got < PAGE || !walk_block(b, pos, &r, &pages, &count)) break;
    uint64_t sectors = 8 * (1 + pages);
    if (sectors + walked > ring) break; /* scanLog's "too-large" */
    if (n == 0) first = le64(b + 16);
    opos[n] = (double)pos;
    opages[n] = (double)pages;
    n++;
    if (count == 0) empty++;
    walked += sectors;
    pos = (pos + sectors) % ring;
    r.seq = le64(b + 16) + 1;
    r.has_seq = 1;
  }
  p[P_POS] = (double)pos;
  p[P_WALKED] = (double)walked;
  p[P_SEQ_LO] = (double)(uint32_t)r.seq;
  p[P_SEQ_HI] = (double)(uint32_t)(r.seq >> 32);
  p[P_HAS_SEQ] = r.has_seq;
  p[P_FIRST_LO] = (double)(uint32_t)first;
  p[P_FIRST_HI] = (double)(uint32_t)(first >> 32);
  p[P_EMPTY] = (double)empty;
  if (napi_create_double(env, (double)n, &result) != napi_ok) return NULL;
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
#ifdef HAVE_CRC_INSN
  __builtin_cpu_init();
  have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
  can_spin = usable_cpus() > 1;
  napi_value fpages, fraw, fstart, fread, fwait, flag, fwrite, fwalk, fwstart;
  if (napi_create_function(env, "writePages", NAPI_AUTO_LENGTH, js_write_pages, NULL, &fwrite) != napi_ok ||
      napi_set_named_property(env, exports, "writePages", fwrite) != napi_ok)
    return NULL;
  if (have_sse42 && (napi_create_function(env, "walkMeta", NAPI_AUTO_LENGTH, js_walk_meta, NULL, &fwalk) != napi_ok ||
                     napi_set_named_property(env, exports, "walkMeta", fwalk) != napi_ok))
    return NULL;
  if (napi_create_function(env, "pages", NAPI_AUTO_LENGTH, js_pages, NULL, &fpages) != napi_ok ||
      napi_create_function(env, "raw", NAPI_AUTO_LENGTH, js_raw, NULL, &fraw) != napi_ok ||
      napi_get_boolean(env, have_sse42, &flag) != napi_ok ||
      napi_set_named_property(env, exports, "pages", fpages) != napi_ok ||
      napi_set_named_property(env, exports, "raw", fraw) != napi_ok ||
      napi_set_named_property(env, exports, "sse42", flag) != napi_ok)
    return NULL;
  /* The async functions, one helper state per environment (each worker_thread gets its own helper). If
   * the state cannot be set up, they are simply missing and the JS side works inline. */
  helper_state *h = helper_new();
  if (!h) return exports;
  if (napi_add_env_cleanup_hook(env, helper_cleanup, h) != napi_ok) {
    helper_cleanup(h);
    return exports;
  }
  if (napi_create_function(env, "pagesStart", NAPI_AUTO_LENGTH, js_pages_start, h, &fstart) != napi_ok ||
      napi_create_function(env, "readStart", NAPI_AUTO_LENGTH, js_read_start, h, &fread) != napi_ok ||
      napi_create_function(env, "writeStart", NAPI_AUTO_LENGTH, js_write_start, h, &fwstart) != napi_ok ||
      napi_set_named_property(env, exports, "writeStart", fwstart) != napi_ok ||
      napi_create_function(env, "pagesWait", NAPI_AUTO_LENGTH, js_pages_wait, h, &fwait) != napi_ok ||
      napi_set_named_property(env, exports, "pagesStart", fstart) != napi_ok ||
      napi_set_named_property(env, exports, "readStart", fread) != napi_ok ||
      napi_set_named_property(env, exports, "pagesWait", fwait) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
