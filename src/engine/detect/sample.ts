/**
 * The bounded sample detect judges every hypothesis on: windows of pages at the same device offsets
 * on every member, spread over the members, reduced while they are read to what the hypotheses need
 * per stripe (one page per member at one device offset): which members hold a nonzero page, whether
 * the XOR of all of them is zero (RAID4/5 parity holds, whatever the order) or equals one member's
 * page (RAID6: the others XOR to zero, so that one is Q), and a few bytes of each page for the Q
 * checks. Memory: one window of every member at a time, at most WINDOW_BUDGET bytes in all.
 */
import type {BlockDevice} from '../device.js'
import {alignedBuffer} from '../device.js'
import {xorInto} from '../parity.js'

const PAGE = 4096
/** bytes of all members' buffers for one window */
const WINDOW_BUDGET = 24 << 20
/** most pages per member per window */
const WINDOW_PAGES = 2048
/** windows spread over the members, and at most this many more where the journal points */
const WINDOWS = 16
const NEAR_WINDOWS = 4
/** bytes of each page kept for the Q checks, 67 bytes apart (wrapping once): a stride that is no
 *  divisor of a record size, so text made of fixed-size records still gives varied bytes */
export const SAMPLE_BYTES = 64
const sampleAt = (j: number) => (j * 67) % PAGE

/** Per stripe: the XOR of every member's page was zero. */
export const XOR_ZERO = -1
/** Per stripe: every page was zero (no evidence). */
export const ALL_ZERO = -2
/** Per stripe: the XOR of all pages is neither zero nor any one member's page. */
export const NO_PARITY = -3
/** Per stripe: the XOR of all pages equals the page of the members in `qMask` (RAID6: one is Q). */
export const XOR_IS_PAGE = 0

export interface Sample {
  members: number
  /** device page index (absolute, from the device's start) of each sampled stripe, ascending */
  page: Float64Array
  /** bit m set: member m's page is nonzero */
  nonzero: Uint32Array
  /** XOR_ZERO, ALL_ZERO, NO_PARITY or XOR_IS_PAGE */
  xor: Int8Array
  /** XOR_IS_PAGE: bit m set when member m's page equals the XOR of all (more than one when, say, the
   *  stripe's only data page has syndrome slot 0, so that P = Q = D) */
  qMask: Uint32Array
  /** SAMPLE_BYTES of each member's page: stripe s, member m at (s · members + m) · SAMPLE_BYTES */
  bytes: Uint8Array
  /** the window (index) each stripe came from: stripes of one window are consecutive pages */
  window: Uint16Array
  stripes: number
  bytesRead: number
}

/**
 * The windows [first page, pages) over `pages` pages of every member: all of them when they fit,
 * else WINDOWS spread evenly plus one around each of the `near` pages (where the journal says stripes
 * were written), in order and without overlap.
 */
export function sampleWindows(pages: number, members: number, near: number[] = []): [number, number][] {
  const per = Math.max(1, Math.min(WINDOW_PAGES, Math.floor(WINDOW_BUDGET / (members * PAGE))))
  if (pages <= per * WINDOWS) {
    const out: [number, number][] = []
    for (let p = 0; p < pages; p += per) out.push([p, Math.min(per, pages - p)])
    return out
  }
  const step = Math.floor((pages - per) / (WINDOWS - 1))
  const wins: [number, number][] = Array.from({length: WINDOWS}, (_, k) => [k * step, per] as [number, number])
  for (const p of near.slice(0, NEAR_WINDOWS)) {
    const first = Math.max(0, Math.min(pages - per, Math.floor(p - per / 2)))
    wins.push([first, per])
  }
  wins.sort((a, b) => a[0] - b[0])
  const out: [number, number][] = []
  for (const [first, k] of wins) {
    const prevEnd = out.length > 0 ? out[out.length - 1][0] + out[out.length - 1][1] : 0
    const start = Math.max(first, prevEnd)
    if (first + k > start) out.push([start, first + k - start])
  }
  return out
}

/** Read the windows from every member and reduce them. Members must be at most 32. */
export function readSample(devs: BlockDevice[], pages: number, near: number[] = []): Sample {
  const n = devs.length
  const wins = sampleWindows(pages, n, near)
  const total = wins.reduce((a, [, k]) => a + k, 0)
  const s: Sample = {
    members: n,
    page: new Float64Array(total),
    nonzero: new Uint32Array(total),
    xor: new Int8Array(total),
    qMask: new Uint32Array(total),
    bytes: new Uint8Array(total * n * SAMPLE_BYTES),
    window: new Uint16Array(total),
    stripes: 0,
    bytesRead: 0,
  }
  const per = Math.max(1, ...wins.map(w => w[1]))
  const bufs = devs.map(() => alignedBuffer(per * PAGE))
  const acc = alignedBuffer(PAGE)
  wins.forEach(([first, count], w) => {
    devs.forEach((d, m) => d.read(bufs[m].subarray(0, count * PAGE), first * PAGE))
    s.bytesRead += count * PAGE * n
    for (let k = 0; k < count; k++) reduceStripe(s, bufs, k, first + k, w, acc)
  })
  return s
}

function isZero(p: Uint8Array): boolean {
  const w = new BigUint64Array(p.buffer, p.byteOffset, p.length / 8)
  for (let i = 0; i < w.length; i++) if (w[i] !== 0n) return false
  return true
}

/** One stripe: page k of every member's buffer, at device page `page`. */
function reduceStripe(s: Sample, bufs: Uint8Array[], k: number, page: number, window: number, acc: Uint8Array): void {
  const n = s.members
  const i = s.stripes++
  s.page[i] = page
  s.window[i] = window
  const pages = bufs.map(b => b.subarray(k * PAGE, (k + 1) * PAGE))
  let nz = 0
  pages.forEach((p, m) => {
    if (!isZero(p)) nz |= 1 << m
    const base = (i * n + m) * SAMPLE_BYTES
    for (let j = 0; j < SAMPLE_BYTES; j++) s.bytes[base + j] = p[sampleAt(j)]
  })
  s.nonzero[i] = nz >>> 0
  if (nz === 0) {
    s.xor[i] = ALL_ZERO
    return
  }
  acc.fill(0)
  for (const p of pages) xorInto(acc, p)
  if (isZero(acc)) {
    s.xor[i] = XOR_ZERO
    return
  }
  let q = 0
  pages.forEach((p, m) => {
    if (Buffer.compare(p, acc) === 0) q |= 1 << m
  })
  s.qMask[i] = q >>> 0
  s.xor[i] = q !== 0 ? XOR_IS_PAGE : NO_PARITY
}
