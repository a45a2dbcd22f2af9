/*
 * crc32c_pages owns what r5ctl does in C: CRC32C of every 4 KiB page of a buffer in one call, and
 * one helper thread that writes scattered pages to files while JavaScript goes on. Functions of
 * buffers and file descriptors: no on-disk format, no policy. Each has a JavaScript fallback
 * (src/engine/checksum.ts; io.ts writes synchronously).
 *
 * CRC convention: the kernel's crc32c_le(seed, buf), the bare reflected register update with
 * polynomial 0x82F63B78 and no inversion in or out -- exactly the SSE4.2 crc32 instruction. (The
 * "standard" CRC32C is ~raw(~0, buf).) Batched because a JS->C call and a subarray view per 4 KiB
 * page cost more than the page's CRC; three pages interleaved because crc32q has a latency of 3
 * cycles and a throughput of 1, and one stream is a serial chain.
 *
 * Exports (buffers may sit at any byteOffset; arguments are checked before anything is done):
 *   sse42: boolean -- the CPU has SSE4.2; without it (or off x86-64) pages and raw throw
 *   pages(seed, buf: Uint8Array, out: Uint32Array, outOff) -- out[outOff + i] = raw(seed, page i)
 *   raw(seed, buf: Uint8Array): number -- raw(seed, buf), any length
 *   writeStart(buf: Uint8Array, pages: Int32Array, runs: Float64Array, nRuns)
 *     -- on the helper thread, in order, run i = runs[4i..4i+3] (fd, byte offset, from, count): one
 *        pwritev of the pages buf[pages[from + j]] (j < count) at that offset of fd. An unawaited
 *        previous job is waited for first and its outcome dropped. Fds must stay open until waited for.
 *   writeWait(upTo): number -- block until min(upTo, nRuns) runs are written; returns runs written (0:
 *        no job). A run that failed before upTo is thrown: "write failed at offset N: <strerror>",
 *        with errno (negative, as Node's), offset (in that run's file), pages (runs written before it).
 *
 * The helper thread exists because node has no synchronous call that runs on another core, and the
 * write path is synchronous. One per Node environment (a worker_thread gets its own), created by the
 * first writeStart; one job at a time; what the threads share is under one mutex, never held during a
 * pwritev; each side sleeps on its own condition variable (the helper until a job is posted, the
 * waiter until enough runs are done). A job holds strong references on buf, pages and runs so the GC
 * keeps them; N-API is only called on the JS thread, so they are dropped there, by the wait that sees
 * the job over or by the next writeStart. Without a thread (or a reference), writeStart runs the job
 * itself. An env cleanup hook stops the helper between runs and joins it, so a process or worker
 * exits cleanly with a job still running.
 */
#define _GNU_SOURCE            /* pwritev; glibc's strerror_r returning the text */
#define _FILE_OFFSET_BITS 64   /* offsets past 2 GiB on 32-bit builds too */
#include <node_api.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
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
#endif

static int have_sse42 = 0;

/* Throw a kind (error, type_error, range_error) of JS error and return NULL from the calling function. */
#define REFUSE(kind, msg)                 \
  do {                                    \
    napi_throw_##kind(env, NULL, (msg));  \
    return NULL;                          \
  } while (0)

/* v is a whole number in [0, max] (checked before the cast, so the cast is defined) */
static int exact_u64(double v, double max) { return v >= 0 && v <= max && v == (double)(uint64_t)v; }

/* The typed array's data, or NULL after throwing a TypeError (`what`) when v is not one of type `want`. */
static void *typed_array(napi_env env, napi_value v, napi_typedarray_type want, size_t *len, const char *what) {
  bool is;
  napi_typedarray_type type;
  void *data = NULL;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok || type != want) REFUSE(type_error, what);
  /* data already points at the first element (byteOffset applied); NULL only when empty. */
  static uint8_t empty;
  return data ? data : &empty;
}

static int get_seed(napi_env env, napi_value v, uint32_t *seed) {
  /* ToUint32 semantics: any number, taken modulo 2^32 (negative values from ~x work). */
  if (napi_get_value_uint32(env, v, seed) == napi_ok) return 1;
  napi_throw_type_error(env, NULL, "seed must be a number");
  return 0;
}

/* The call's first n arguments and its function's data; 0 after a TypeError (`usage`) when fewer came. */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage, void **data) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, data) != napi_ok) return 0;
  if (argc >= n) return 1;
  napi_throw_type_error(env, NULL, usage);
  return 0;
}

/* pages(seed, buf, out, outOff): every argument is checked before anything is written. */
static napi_value js_pages(napi_env env, napi_callback_info info) {
  size_t blen, olen;
  napi_value argv[4];
  uint32_t seed;
  double off;
  if (!get_args(env, info, 4, argv, "pages(seed, buf, out, outOff): 4 arguments expected", NULL) || !get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!buf) return NULL;
  uint32_t *out = typed_array(env, argv[2], napi_uint32_array, &olen, "out must be a Uint32Array");
  if (!out) return NULL;
  if (napi_get_value_double(env, argv[3], &off) != napi_ok) REFUSE(type_error, "outOff must be a number");
  if (blen % PAGE != 0) REFUSE(range_error, "buf length is not a multiple of 4096");
  size_t n = blen / PAGE;
  /* off in [0, olen] first (also rejects NaN), so the cast is defined; then integral and room for n. */
  if (!(off >= 0 && off <= (double)olen) || off != (double)(size_t)off || n > olen - (size_t)off)
    REFUSE(range_error, "out has no room for the checksums at outOff");
#ifdef HAVE_CRC_INSN
  if (have_sse42) {
    crc_pages(seed, buf, n, out + (size_t)off);
    return NULL;
  }
#endif
  REFUSE(error, "crc32c_pages: no SSE4.2 on this CPU");
}

static napi_value js_raw(napi_env env, napi_callback_info info) {
  size_t len;
  napi_value argv[2], result;
  uint32_t seed;
  if (!get_args(env, info, 2, argv, "raw(seed, buf): 2 arguments expected", NULL) || !get_seed(env, argv[0], &seed)) return NULL;
  const uint8_t *buf = typed_array(env, argv[1], napi_uint8_array, &len, "buf must be a Uint8Array");
  if (!buf) return NULL;
#ifdef HAVE_CRC_INSN
  if (have_sse42) return napi_create_uint32(env, crc_raw(seed, buf, len), &result) == napi_ok ? result : NULL;
#endif
  (void)result;
  REFUSE(error, "crc32c_pages: no SSE4.2 on this CPU");
}

/* ---- the helper thread: writeStart / writeWait ---- */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t job_cv;  /* the helper sleeps here until a job is posted or stop is set */
  pthread_cond_t done_cv; /* writeWait sleeps here; the helper signals it after every run */
  pthread_t thread;
  /* Under mu. */
  int stop;               /* set by the cleanup hook; the helper checks it between runs */
  int posted;             /* a job waits for the helper */
  const uint8_t *buf;     /* the job: run i is runs[4i .. 4i+3] = fd, byte offset, from, count */
  const int32_t *pages;
  const double *runs;
  size_t n;
  size_t done;            /* runs written */
  int err;                /* errno of the run that failed (the job is then over), else 0 */
  int64_t err_off;        /* where in that run's file it stopped */
  /* JS thread only. */
  int started;            /* thread created */
  int active;             /* a job is outstanding: references held, not yet seen over */
  napi_ref refs[3];       /* buf, pages, runs */
} helper_state;

/* pwritev of the pages buf[pages[j]] (j < n) at byte `off` of fd, at most 1024 iovecs (IOV_MAX) a call,
 * looping on EINTR and partial writes. 0, or the errno (EIO for a write of nothing) with *fail_off
 * where it stopped. */
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
      for (; left > 0 && (size_t)w >= v->iov_len; v++, left--) w -= (ssize_t)v->iov_len;
      if (left > 0 && w > 0) {
        v->iov_base = (uint8_t *)v->iov_base + w;
        v->iov_len -= (size_t)w;
      }
    }
    j += k;
  }
  return 0;
}

/* Run the current job's runs, in order, until all are written, one fails or stop is set. Called with mu
 * held; releases it around each pwritev (the job's fields do not change while it runs). */
static void run_job(helper_state *h) {
  while (h->done < h->n && !h->err && !h->stop) {
    const double *q = h->runs + 4 * h->done;
    const uint8_t *buf = h->buf;
    const int32_t *pages = h->pages + (size_t)q[2];
    int64_t fail_off = 0;
    pthread_mutex_unlock(&h->mu);
    int e = pwrite_pages((int)q[0], (int64_t)q[1], buf, pages, (size_t)q[3], &fail_off);
    pthread_mutex_lock(&h->mu);
    if (e) {
      h->err = e;
      h->err_off = fail_off;
    } else h->done++;
    pthread_cond_signal(&h->done_cv);
  }
}

static void *helper_main(void *arg) {
  helper_state *h = arg;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    while (!h->posted && !h->stop) pthread_cond_wait(&h->job_cv, &h->mu);
    if (h->stop) break;
    h->posted = 0;
    run_job(h);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* Start the helper if it is not running; 0 when it cannot be created (writeStart then runs jobs itself). */
static int helper_ensure(helper_state *h) {
  if (h->started) return 1;
  sigset_t all, old;
  /* No signals on the helper: they stay with the threads Node and libuv expect them on. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  h->started = pthread_create(&h->thread, NULL, helper_main, h) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return h->started;
}

/* Block until `want` runs are written or the job failed; returns the runs written. JS thread only. */
static size_t helper_wait(helper_state *h, size_t want) {
  pthread_mutex_lock(&h->mu);
  while (h->done < want && !h->err) pthread_cond_wait(&h->done_cv, &h->mu);
  size_t d = h->done;
  pthread_mutex_unlock(&h->mu);
  return d;
}

/* Drop the job's references once it is over (the helper no longer touches its buffers). */
static void helper_release(napi_env env, helper_state *h) {
  for (int i = 0; i < 3; i++) {
    if (h->refs[i]) napi_delete_reference(env, h->refs[i]);
    h->refs[i] = NULL;
  }
  h->active = 0;
}

/* Throw the failed run's error: message, errno, offset, pages (runs written before it). */
static void throw_write_error(napi_env env, helper_state *h) {
  char tmp[128], msg[256];
#if defined(__GLIBC__)
  const char *reason = strerror_r(h->err, tmp, sizeof tmp); /* GNU variant: returns the text */
#else
  const char *reason = strerror_r(h->err, tmp, sizeof tmp) == 0 ? tmp : "unknown error";
#endif
  snprintf(msg, sizeof msg, "write failed at offset %lld: %s", (long long)h->err_off, reason);
  napi_value vmsg, verr, voff, vpages, err;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &vmsg) != napi_ok || napi_create_error(env, NULL, vmsg, &err) != napi_ok ||
      napi_create_int32(env, -h->err, &verr) != napi_ok || napi_create_double(env, (double)h->err_off, &voff) != napi_ok ||
      napi_create_double(env, (double)h->done, &vpages) != napi_ok) {
    napi_throw_error(env, NULL, msg);
    return;
  }
  napi_set_named_property(env, err, "errno", verr); /* negative, as in Node's own system errors */
  napi_set_named_property(env, err, "offset", voff);
  napi_set_named_property(env, err, "pages", vpages);
  napi_throw(env, err);
}

/* writeStart(buf, pages, runs, nRuns) */
static napi_value js_write_start(napi_env env, napi_callback_info info) {
  size_t blen, plen, rlen;
  napi_value argv[4];
  double nd;
  void *data;
  if (!get_args(env, info, 4, argv, "writeStart(buf, pages, runs, nRuns): 4 arguments expected", &data)) return NULL;
  helper_state *h = data;
  const uint8_t *buf = typed_array(env, argv[0], napi_uint8_array, &blen, "buf must be a Uint8Array");
  if (!buf) return NULL;
  const int32_t *pages = typed_array(env, argv[1], napi_int32_array, &plen, "pages must be an Int32Array");
  if (!pages) return NULL;
  const double *runs = typed_array(env, argv[2], napi_float64_array, &rlen, "runs must be a Float64Array");
  if (!runs) return NULL;
  if (napi_get_value_double(env, argv[3], &nd) != napi_ok || !exact_u64(nd, (double)(rlen / 4)) || blen % PAGE != 0)
    REFUSE(range_error, "writeStart: nRuns out of range, or buf not whole pages");
  /* The helper trusts every run: a page number outside buf would write other memory to the file. */
  size_t n = (size_t)nd, bpages = blen / PAGE;
  for (size_t r = 0; r < n; r++) {
    const double *q = runs + 4 * r;
    char msg[96];
    if (!exact_u64(q[0], 2147483647.0) || !exact_u64(q[1], 9007199254740991.0) || !exact_u64(q[2], (double)plen) || !exact_u64(q[3], (double)plen) ||
        q[2] + q[3] > (double)plen) {
      snprintf(msg, sizeof msg, "writeStart: run %zu has a bad fd, offset or page range", r);
      REFUSE(range_error, msg);
    }
    for (size_t j = (size_t)q[2]; j < (size_t)q[2] + (size_t)q[3]; j++) {
      if (pages[j] < 0 || (size_t)pages[j] >= bpages) {
        snprintf(msg, sizeof msg, "writeStart: pages[%zu] = %d is not a page of buf (%zu pages)", j, pages[j], bpages);
        REFUSE(range_error, msg);
      }
    }
  }
  if (h->active) { /* one job at a time */
    helper_wait(h, h->n);
    helper_release(env, h);
  }
  if (n == 0) return NULL; /* nothing to do: no job */
  int threaded = helper_ensure(h);
  for (int i = 0; threaded && i < 3; i++) threaded = napi_create_reference(env, argv[i], 1, &h->refs[i]) == napi_ok;
  if (!threaded) helper_release(env, h); /* the job runs below, before we return: no references needed */
  pthread_mutex_lock(&h->mu);
  h->buf = buf;
  h->pages = pages;
  h->runs = runs;
  h->n = n;
  h->done = 0;
  h->err = 0;
  h->active = 1;
  if (threaded) {
    h->posted = 1;
    pthread_cond_signal(&h->job_cv);
  } else run_job(h);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* writeWait(upTo) */
static napi_value js_write_wait(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  double upTo;
  void *data;
  if (!get_args(env, info, 1, argv, "writeWait(upTo): 1 argument expected", &data)) return NULL;
  helper_state *h = data;
  if (napi_get_value_double(env, argv[0], &upTo) != napi_ok) REFUSE(type_error, "writeWait(upTo): upTo must be a number");
  size_t d = 0;
  if (h->active) {
    /* min(upTo, n) runs, a fractional upTo rounded up; NaN and upTo <= 0 only report progress. */
    size_t want = 0;
    if (upTo >= (double)h->n) want = h->n;
    else if (upTo > 0) {
      want = (size_t)upTo;
      if ((double)want < upTo) want++;
    }
    d = helper_wait(h, want);
    if (d >= h->n) helper_release(env, h);
    else if (d < want) { /* only a failed run stops short of its target; the job is over */
      helper_release(env, h);
      throw_write_error(env, h);
      return NULL;
    }
  }
  return napi_create_double(env, (double)d, &result) == napi_ok ? result : NULL;
}

/* Env teardown (process exit, worker exit): stop the helper between two runs and join it. The job's
 * references, if any, are left to the environment's own teardown. */
static void helper_cleanup(void *arg) {
  helper_state *h = arg;
  if (h->started) {
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
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
  if (pthread_mutex_init(&h->mu, NULL) == 0) {
    if (pthread_cond_init(&h->job_cv, NULL) == 0) {
      if (pthread_cond_init(&h->done_cv, NULL) == 0) return h;
      pthread_cond_destroy(&h->job_cv);
    }
    pthread_mutex_destroy(&h->mu);
  }
  free(h);
  return NULL;
}

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb, void *data) {
  napi_value f;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, data, &f) == napi_ok && napi_set_named_property(env, exports, name, f) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
#ifdef HAVE_CRC_INSN
  __builtin_cpu_init();
  have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
  napi_value flag;
  if (!export_fn(env, exports, "pages", js_pages, NULL) || !export_fn(env, exports, "raw", js_raw, NULL) ||
      napi_get_boolean(env, have_sse42, &flag) != napi_ok || napi_set_named_property(env, exports, "sse42", flag) != napi_ok)
    return NULL;
  /* One helper state per environment. If it cannot be set up, the write functions are simply missing
   * and the JS side writes synchronously. */
  helper_state *h = helper_new();
  if (!h) return exports;
  if (napi_add_env_cleanup_hook(env, helper_cleanup, h) != napi_ok) {
    helper_cleanup(h);
    return exports;
  }
  if (!export_fn(env, exports, "writeStart", js_write_start, h) || !export_fn(env, exports, "writeWait", js_write_wait, h)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
