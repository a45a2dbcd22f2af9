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
 *      with three pages interleaved (one call a batch: at 4 KiB the per-call cost is what limits the others);
 *   2. `@node-rs/crc32` (prebuilt native, hardware CRC, one call per page);
 *   3. the pure-JS `crc-32/crc32c` module.
 * Each is a Crc value (crcFor: 'js' is 3, 'node-rs' skips 1); the engine's bulk checksums use the one in
 * the array's Compute (compute.ts), the CLI choosing it from R5CTL_CRC. Every native backend must
 * reproduce the pure-JS reference when it is loaded or it is not used; the tests compare them on random input.
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
}

const PAGE = 4096
const CHECK = new TextEncoder().encode('123456789')

function loadAddon(): CrcAddon | null {
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

/**
 * Which CRC32C implementation checksums: 'auto' the fastest that passes its check (the addon, else
 * @node-rs/crc32, else pure JS), 'node-rs' never the addon, 'js' only the pure-JS reference.
 */
export type CrcChoice = 'auto' | 'node-rs' | 'js'

/** One CRC32C implementation; every one computes the same values. */
export interface Crc {
  readonly choice: CrcChoice
  /** 'native addon (sse4.2, batched)', '@node-rs/crc32' or 'crc-32 (js)' */
  readonly name: string
  /** kernel crc32c_le(seed, buf): raw register update, no inversion in or out; u32 */
  raw(seed: number, buf: Uint8Array): number
  /** the raw checksum of each 4 KiB page of buf with the same seed, into out[outOff..] */
  pages(seed: number, buf: Uint8Array, out: Uint32Array, outOff?: number): void
}

const addon = loadAddon()

function makeCrc(choice: CrcChoice): Crc {
  const batched = choice === 'auto' ? addon : null
  // The addon is faster than @node-rs at every length (16 B to 1 MiB), so with it @node-rs is not loaded.
  const std = (batched || choice === 'js' ? null : loadNodeRs()) ?? jsStd
  const name = batched ? 'native addon (sse4.2, batched)' : std !== jsStd ? '@node-rs/crc32' : 'crc-32 (js)'
  return {
    choice,
    name,
    raw: batched ? (seed, buf) => batched.raw(seed >>> 0, buf) : (seed, buf) => ~std(buf, ~seed >>> 0) >>> 0,
    pages(seed, buf, out, outOff = 0) {
      if (buf.length % PAGE !== 0) throw new RangeError(`crc32cPages: length ${buf.length} is not a multiple of ${PAGE}`)
      const n = buf.length / PAGE
      if (outOff < 0 || outOff + n > out.length) throw new RangeError(`crc32cPages: out has no room for ${n} checksums at ${outOff}`)
      if (batched) {
        batched.pages(seed >>> 0, buf, out, outOff) // the whole batch in one call
        return
      }
      const s = ~seed >>> 0
      for (let i = 0; i < n; i++) out[outOff + i] = ~std(buf.subarray(i * PAGE, (i + 1) * PAGE), s) >>> 0
    },
  }
}

const implementations = new Map<CrcChoice, Crc>()

/** The implementation for a choice (made once per choice: loading @node-rs/crc32 is not free). */
export function crcFor(choice: CrcChoice): Crc {
  let c = implementations.get(choice)
  if (!c) implementations.set(choice, (c = makeCrc(choice)))
  return c
}

/** The default implementation: the fastest that passes its check. */
export const DEFAULT_CRC = crcFor('auto')

/** Kernel crc32c_le(seed, buf) with the default implementation. Returns u32. */
export function crc32cRaw(seed: number, buf: Uint8Array): number {
  return DEFAULT_CRC.raw(seed, buf)
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
 * page independently), written into out[outOff..], with the default implementation.
 */
export function crc32cPages(seed: number, buf: Uint8Array, out: Uint32Array, outOff = 0): void {
  DEFAULT_CRC.pages(seed, buf, out, outOff)
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
