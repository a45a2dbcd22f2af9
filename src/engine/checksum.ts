/**
 * Checksums used on disk by md and raid5-cache.
 *
 * CRC32C conventions
 * ------------------
 * The kernel's `crc32c_le(seed, buf, len)` (renamed `crc32c()` in later kernels, same semantics)
 * is the bare reflected-register update with polynomial 0x82F63B78: no inversion on the way in and
 * none on the way out. Everything in raid5-cache uses it that way:
 *   uuid_checksum = crc32c_le(~0, set_uuid, 16)
 *   meta block    = crc32c_le(uuid_checksum, 4 KiB meta page with checksum field = 0)
 *   data page     = crc32c_le(uuid_checksum, 4 KiB page)
 * The "standard" CRC32C (iSCSI, check value 0xe3069283) is ~crc32c_le(~0, buf).
 * Libraries compute the standard form and accept a previous *standard* result to continue from,
 * i.e. they start the register at ~prev and return ~register. Feeding them ~seed therefore starts
 * the register at seed, and inverting their answer gives the raw register: raw = ~lib(buf, ~seed).
 *
 * Backends, first that loads wins:
 *   1. our N-API addon (native/crc32c_pages.c, built by `npm install` into build/Release): SSE4.2
 *      crc32q, raw convention directly, and crc32cPages checksums a whole batch of pages in one call
 *      with three pages interleaved (≈ 3–5× @node-rs on 4 KiB pages; docs/performance.md);
 *   2. `@node-rs/crc32` (prebuilt native, hardware CRC, one call per page);
 *   3. the pure-JS `crc-32/crc32c` module.
 * R5CTL_CRC=js forces 3, R5CTL_CRC=node-rs skips 1. Every native backend must reproduce the
 * pure-JS reference at load time or it is not used; the tests compare them on random input.
 *
 * crc32cPagesAsync runs crc32cPages on the addon's helper thread (pagesStart/pagesWait: one
 * persistent pthread, results published a few pages at a time) so the checksums of a large buffer
 * are computed on a second core while this thread does other work. Without the addon, or with an
 * old build that lacks the pair, the same pages are computed lazily inside wait() on this thread.
 *
 * readPagesAsync goes one step further: the helper also does the read (readStart: pread in 256 KiB
 * chunks, each chunk's pages checksummed while still in cache), so this thread can write the
 * previous window meanwhile. Only with the addon (null otherwise: the caller reads synchronously);
 * a read error or end of file is thrown by wait() for the pages it prevented, not for those before.
 */
import {createRequire} from 'node:module'
import CRC32C from 'crc-32/crc32c.js'

type StdCrc = (buf: Uint8Array, prevStd: number) => number

/** Pure-JS standard-form CRC32C continuing from a previous standard result (signed or unsigned). */
const jsStd: StdCrc = (buf, prevStd) => CRC32C.buf(buf, prevStd | 0) >>> 0

/** The addon's exports (native/crc32c_pages.c). All functions take and return raw registers. */
interface CrcAddon {
  sse42: boolean
  pages(seed: number, buf: Uint8Array, out: Uint32Array, outOff: number): void
  raw(seed: number, buf: Uint8Array): number
  /** Same as pages() on the helper thread; an unfinished previous job is completed first. Absent in old builds. */
  pagesStart?(seed: number, buf: Uint8Array, out: Uint32Array, outOff: number): void
  /**
   * Block until min(upTo, pages) pages of the current job are final; pages done, 0 when there is no job.
   * Throws a ReadFailure when the current job is a read that failed before upTo pages.
   */
  pagesWait?(upTo: number): number
  /** pread(fd, buf, buf.length, position) and pages() of it, on the helper thread, in the same job slot. Absent in old builds. */
  readStart?(fd: number, position: number, buf: Uint8Array, seed: number, out: Uint32Array, outOff: number): void
  /** pwritev of the pages buf[pages[from + j]] at position, on this thread; bytes written. Absent in old builds. */
  writePages?(fd: number, position: number, buf: Uint8Array, pages: Int32Array, from: number, count: number): number
  /** The extent pre-walk's accepted prefix, on this thread (see nativeWalkMeta). Absent in old builds and without SSE4.2. */
  walkMeta?(fd: number, p: Float64Array, outPos: Float64Array, outPages: Float64Array): number
  /** pwritev runs of pages (fd, offset, from, count in runs) on the helper thread, in the same job slot. Absent in old builds. */
  writeStart?(buf: Uint8Array, pages: Int32Array, runs: Float64Array, nRuns: number): void
}

/** What the addon's pagesWait throws for a failed read (native/crc32c_pages.c, throw_read_error). */
export interface ReadFailure extends Error {
  /** errno name (EIO, EBADF, ...) or ESHORT for end of file */
  code: string
  /** absolute byte offset in the file where the read stopped */
  offset: number
  /** strerror text, or "short read (end of file)" */
  reason: string
  /** pages of the job that are final (read completely and checksummed) */
  pages: number
}

const PAGE = 4096
const CHECK = new TextEncoder().encode('123456789')

function loadAddon(): CrcAddon | null {
  const mode = process.env.R5CTL_CRC
  if (mode === 'js' || mode === 'node-rs') return null
  try {
    // Built by scripts/build-native.mjs at install time; a failed build simply leaves no file. The
    // path is relative to dist/src/engine/checksum.js, i.e. <package root>/build/Release.
    const req = createRequire(import.meta.url)
    const mod = req('../../../build/Release/crc32c_pages.node') as CrcAddon
    if (!mod.sse42 || typeof mod.pages !== 'function' || typeof mod.raw !== 'function') return null
    // Guard against a loaded-but-wrong binary: the check value, and 5 pages (one interleaved group
    // of three plus two single ones) at an odd byte offset against the pure-JS reference.
    if (~mod.raw(0xffffffff, CHECK) >>> 0 !== 0xe3069283) return null
    const pages = new Uint8Array(5 * PAGE + 1).subarray(1)
    for (let i = 0; i < pages.length; i++) pages[i] = (i * 131 + (i >>> 12)) & 0xff
    const out = new Uint32Array(5)
    mod.pages(0x9e3779b9, pages, out, 0)
    for (let i = 0; i < 5; i++) {
      if (out[i] !== ~jsStd(pages.subarray(i * PAGE, (i + 1) * PAGE), ~0x9e3779b9) >>> 0) return null
    }
    return mod
  } catch {
    return null
  }
}

function loadNodeRs(): StdCrc | null {
  if (process.env.R5CTL_CRC === 'js') return null
  try {
    // createRequire: the native package is CommonJS with a platform-specific optional dependency;
    // a missing or broken binary must not break module loading, so it is loaded lazily here.
    const req = createRequire(import.meta.url)
    const mod = req('@node-rs/crc32') as {crc32c: (input: Uint8Array, initialState?: number) => number}
    const f = mod.crc32c
    // Guard against a loaded-but-wrong binary: the standard check value must come out.
    if (typeof f !== 'function' || f(CHECK, 0) >>> 0 !== 0xe3069283) return null
    return (buf, prevStd) => f(buf, prevStd >>> 0) >>> 0
  } catch {
    return null
  }
}

const addon = loadAddon()
// The helper-thread pair is checked for existence only: it runs the same crc_pages code that the
// pages() check above covered. The helper thread itself starts on the first crc32cPagesAsync.
const asyncAddon = addon && typeof addon.pagesStart === 'function' && typeof addon.pagesWait === 'function' ? (addon as Required<CrcAddon>) : null
// Reads on the helper: the same thread and job slot, so it needs the pair as well.
const readAddon = asyncAddon && typeof asyncAddon.readStart === 'function' ? asyncAddon : null
// The addon is faster than @node-rs at every length (16 B to 1 MiB), so with it @node-rs is not loaded.
const nodeRs = addon ? null : loadNodeRs()
const std: StdCrc = nodeRs ?? jsStd

/**
 * The addon's synchronous scattered-page write (native/crc32c_pages.c writePages), or null: pwritev of
 * the 4 KiB pages buf[pages[from + j]] (j < count) at byte `position` of fd. Node's writevSync takes
 * the same pages as an array of views, at a cost per view; this takes page numbers. Throws an Error
 * whose code is the errno name. Used by FileDevice.writePages.
 */
export const nativeWritePages: ((fd: number, position: number, buf: Uint8Array, pages: Int32Array, from: number, count: number) => number) | null =
  addon && typeof addon.writePages === 'function' ? addon.writePages.bind(addon) : null

/**
 * The addon's meta-block walk (native/crc32c_pages.c walkMeta), or null: from a ring position, the io
 * units whose meta blocks the JavaScript meta-only walk would accept, read with one pread each, until
 * the first it would not (or a read error, or the output is full). Used by scan.ts walkMetaNative.
 */
export const nativeWalkMeta: ((fd: number, p: Float64Array, outPos: Float64Array, outPages: Float64Array) => number) | null =
  addon && typeof addon.walkMeta === 'function' ? addon.walkMeta.bind(addon) : null

/** Which implementation is in use: 'native addon (sse4.2, batched)', '@node-rs/crc32' or 'crc-32 (js)'. */
export const crcBackend: string = addon ? 'native addon (sse4.2, batched)' : nodeRs ? '@node-rs/crc32' : 'crc-32 (js)'

/** Where crc32cPagesAsync computes: on the addon's helper thread, or inline inside wait() on this thread. */
export const crcAsyncBackend: 'helper thread' | 'inline' = asyncAddon ? 'helper thread' : 'inline'

/** Kernel crc32c_le(seed, buf): raw register update, no inversion in or out. Returns u32. */
export function crc32cRaw(seed: number, buf: Uint8Array): number {
  if (addon) return addon.raw(seed >>> 0, buf)
  return ~std(buf, ~seed >>> 0) >>> 0
}

/** Same as crc32cRaw, always through the pure-JS `crc-32` package (the reference for tests). */
export function crc32cRawReference(seed: number, buf: Uint8Array): number {
  return ~CRC32C.buf(buf, ~seed) >>> 0
}

/** Standard CRC32C (Castagnoli): ~crc32cRaw(~0, buf). Check value of "123456789" is 0xe3069283. */
export function crc32c(buf: Uint8Array): number {
  return ~crc32cRaw(0xffffffff, buf) >>> 0
}

/** r5l seed: crc32c_le(~0, set_uuid[16]) — the kernel's log->uuid_checksum. */
export function uuidSeed(uuid: Uint8Array): number {
  return crc32cRaw(0xffffffff, uuid)
}

/**
 * Checksum of each 4 KiB page of buf with the same seed (as the kernel checksums every journal
 * page independently), written into out[outOff..]. buf.length must be a multiple of 4096.
 */
export function crc32cPages(seed: number, buf: Uint8Array, out: Uint32Array, outOff = 0): void {
  if (buf.length % PAGE !== 0) throw new RangeError(`crc32cPages: length ${buf.length} is not a multiple of ${PAGE}`)
  const n = buf.length / PAGE
  if (outOff < 0 || outOff + n > out.length) throw new RangeError(`crc32cPages: out has no room for ${n} checksums at ${outOff}`)
  if (addon) {
    addon.pages(seed >>> 0, buf, out, outOff) // the whole batch in one call
    return
  }
  const s = ~seed >>> 0
  for (let i = 0; i < n; i++) {
    out[outOff + i] = ~std(buf.subarray(i * PAGE, (i + 1) * PAGE), s) >>> 0
  }
}

/** Page checksums being computed, possibly on another core. */
export interface PageSumsJob {
  /** pages in the job */
  readonly pages: number
  /** block until out[outOff .. outOff + min(upTo, pages)) are final */
  wait(upTo: number): void
  /**
   * Without blocking: how many pages are final, or can be made final on this thread (an inline job
   * says all of them: its wait computes them here). A read that failed says how far it got.
   */
  poll(): number
}

/** A job on the addon's helper thread. Only the newest job is the addon's current one. */
class HelperJob implements PageSumsJob {
  /** pages known to be final in out (all of them once the job is complete or superseded) */
  done = 0
  constructor(readonly pages: number) {}
  wait(upTo: number): void {
    // Also returns for NaN, and for superseded jobs (their done was set to pages).
    if (!(upTo > this.done) || this.done >= this.pages) return
    // This is the current job, so the addon's job is this one, or none if it is already complete
    // (then pagesWait says 0: e.g. pagesStart computed it in place because no thread could start).
    const d = (asyncAddon as Required<CrcAddon>).pagesWait(upTo)
    this.done = d > 0 ? d : this.pages
  }
  poll(): number {
    // a superseded job was completed by its successor (done = pages); only the current one asks
    if (this.done < this.pages && lastJob === this) {
      const d = (asyncAddon as Required<CrcAddon>).pagesWait(0)
      if (d > this.done) this.done = d
    }
    return this.done
  }
}

/** Without the helper: the pages are computed here, on demand, with crc32cPages. */
class InlineJob implements PageSumsJob {
  done = 0
  constructor(
    readonly pages: number,
    private readonly seed: number,
    private readonly buf: Uint8Array,
    private readonly out: Uint32Array,
    private readonly outOff: number,
  ) {}
  wait(upTo: number): void {
    const to = upTo >= this.pages ? this.pages : Math.ceil(upTo)
    if (!(to > this.done)) return
    crc32cPages(this.seed, this.buf.subarray(this.done * PAGE, to * PAGE), this.out, this.outOff + this.done)
    this.done = to
  }
  poll(): number {
    return this.pages
  }
}

/**
 * A read job on the addon's helper thread (readStart). Like HelperJob, except that it can fail: the
 * failure is kept and thrown again by every later wait for pages past it; pages before it stay valid.
 */
class ReadJob implements PageSumsJob {
  done = 0
  error: ReadFailure | null = null
  constructor(readonly pages: number) {}
  wait(upTo: number): void {
    if (!(upTo > this.done)) return
    if (this.error) throw this.error
    if (this.done >= this.pages) return
    let d: number
    try {
      d = (readAddon as Required<CrcAddon>).pagesWait(upTo)
    } catch (e) {
      const f = e as ReadFailure
      if (typeof f.pages === 'number') {
        this.error = f
        this.done = f.pages
      }
      throw e
    }
    this.done = d > 0 ? d : this.pages
  }
  poll(): number {
    if (!this.error && this.done < this.pages && lastJob === this) {
      const d = (readAddon as Required<CrcAddon>).pagesWait(0) // never throws for 0: a failure stops short of it
      if (d > this.done) this.done = d
    }
    return this.done
  }
  /** Before another job takes the slot: complete this one, keeping a failure for a later wait. */
  settle(): void {
    if (this.error || this.done >= this.pages) return
    try {
      this.wait(this.pages)
    } catch {
      // kept in this.error
    }
  }
}

/** The most recently started job; starting another one completes it first. */
let lastJob: HelperJob | ReadJob | InlineJob | null = null

/**
 * The addon's one job slot: `post` starts a job there, which first completes (waits for and releases)
 * the addon's previous job. A read or write may fail: its outcome is collected before the addon drops
 * it with the slot; any other previous job is complete once `post` returns. `job` becomes the current one.
 */
function takeSlot<T extends HelperJob | ReadJob>(post: () => void, job: T): T {
  const prev = lastJob
  if (prev instanceof ReadJob) prev.settle()
  post()
  if (prev && !(prev instanceof ReadJob)) prev.done = prev.pages
  lastJob = job
  return job
}

/**
 * Start crc32cPages(seed, buf, out, outOff) on the addon's helper thread; without the addon, the
 * work is done lazily inside wait() on this thread. buf and out must not be changed until
 * wait(pages) returns. Starting a new job first finishes the previous one.
 *
 * Same arguments, RangeErrors and results as crc32cPages. wait() allocates nothing on the helper
 * path (the inline path makes one subarray per call that computes something).
 */
export function crc32cPagesAsync(seed: number, buf: Uint8Array, out: Uint32Array, outOff = 0): PageSumsJob {
  if (buf.length % PAGE !== 0) throw new RangeError(`crc32cPagesAsync: length ${buf.length} is not a multiple of ${PAGE}`)
  const n = buf.length / PAGE
  if (!Number.isInteger(outOff) || outOff < 0 || outOff + n > out.length)
    throw new RangeError(`crc32cPagesAsync: out has no room for ${n} checksums at ${outOff}`)
  if (asyncAddon) return takeSlot(() => asyncAddon.pagesStart(seed >>> 0, buf, out, outOff), new HelperJob(n))
  const prev = lastJob
  if (prev) prev.wait(prev.pages)
  const job = new InlineJob(n, seed >>> 0, buf, out, outOff)
  lastJob = job
  return job
}

/** Whether readPagesAsync can read on the helper thread (else it returns null). */
export const readAsyncAvailable: boolean = readAddon !== null

// Writes on the helper: the same thread and job slot.
const writeAddon = readAddon && typeof readAddon.writeStart === 'function' ? readAddon : null

/** Whether writeRunsAsync can write on the helper thread (else it returns null). */
export const writeAsyncAvailable: boolean = writeAddon !== null

/**
 * Start writing `nRuns` runs on the addon's helper thread, in order: run i is runs[4i..4i+3] = (fd, byte
 * offset, from, count), the pages buf[pages[from + j]] (j < count) written at that offset of fd as one
 * pwritev. The job counts runs: wait(k) returns once the first k runs are written, and throws a
 * ReadFailure-shaped error (code, offset, `pages` = runs written; message "write failed at ...") for a
 * run that failed. Arguments are checked first (RangeError, nothing started). buf, pages and runs must
 * not change, nor the fds close, until wait(nRuns) returns. Null without the helper.
 */
export function writeRunsAsync(buf: Uint8Array, pages: Int32Array, runs: Float64Array, nRuns: number): PageSumsJob | null {
  if (!writeAddon) return null
  // a ReadJob's bookkeeping serves: a count of units done (runs), and a failure kept
  return takeSlot(() => writeAddon.writeStart(buf, pages, runs, nRuns), new ReadJob(nRuns))
}

/**
 * Read buf.length bytes from fd at byte offset `position` into buf and checksum each 4 KiB page as
 * crc32cPages(seed, buf, out, outOff) does, both on the addon's helper thread; buf and out must not be
 * touched until wait(pages) returns, and fd must stay open until then. Starting a new job (this or
 * crc32cPagesAsync) first finishes the previous one.
 *
 * wait(k) returns once the first k pages' bytes and checksums are final. A read error or end of file
 * before the end makes wait throw a ReadFailure (message "read failed at offset N: reason", code EIO /
 * EBADF / ... or ESHORT) for any k past the failed page; waits for pages before it return normally.
 * wait() allocates nothing on the happy path.
 *
 * Same RangeErrors as crc32cPages, plus for fd (an integer in [0, 2^31)) and position (a safe integer
 * ≥ 0). Returns null when the addon (or its readStart) is missing: the caller then reads synchronously.
 */
export function readPagesAsync(fd: number, position: number, buf: Uint8Array, seed: number, out: Uint32Array, outOff = 0): PageSumsJob | null {
  if (buf.length % PAGE !== 0) throw new RangeError(`readPagesAsync: length ${buf.length} is not a multiple of ${PAGE}`)
  const n = buf.length / PAGE
  if (!Number.isInteger(outOff) || outOff < 0 || outOff + n > out.length)
    throw new RangeError(`readPagesAsync: out has no room for ${n} checksums at ${outOff}`)
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new RangeError(`readPagesAsync: bad fd ${fd}`)
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`readPagesAsync: bad position ${position}`)
  if (!readAddon) return null
  return takeSlot(() => readAddon.readStart(fd, position, buf, seed >>> 0, out, outOff), new ReadJob(n))
}

/** Offset of sb_csum inside struct mdp_superblock_1; it counts as zero while summing. */
const SB_CSUM_OFFSET = 216

/**
 * md v1.x superblock checksum (md.c calc_sb_1_csum, mdadm super1.c calc_sb_1_csum).
 *
 * Sums the first 256 + 2*maxDev bytes as little-endian u32 words into a 64-bit accumulator, with
 * the sb_csum field taken as zero; when maxDev is odd the last 2 bytes are added as a u16. The
 * result is (sum & 0xffffffff) + (sum >> 32) stored into a u32, so a carry out of that final add is
 * dropped, exactly as the C assignment does.
 *
 * At most (4096-256)/2 = 1920 roles exist, i.e. 1024 words: the sum stays below 2^42, so plain
 * doubles hold it exactly.
 */
export function sbCsum(sbBytes: Uint8Array, maxDev: number): number {
  if (!Number.isInteger(maxDev) || maxDev < 0) throw new RangeError(`sbCsum: bad maxDev ${maxDev}`)
  const size = 256 + 2 * maxDev
  if (sbBytes.length < size) throw new RangeError(`sbCsum: need ${size} bytes, have ${sbBytes.length}`)
  const dv = new DataView(sbBytes.buffer, sbBytes.byteOffset, size)
  let sum = 0
  let off = 0
  for (; off + 4 <= size; off += 4) {
    if (off !== SB_CSUM_OFFSET) sum += dv.getUint32(off, true)
  }
  if (size - off === 2) sum += dv.getUint16(off, true)
  const lo = sum % 0x100000000
  const hi = Math.floor(sum / 0x100000000)
  return (lo + hi) >>> 0
}
