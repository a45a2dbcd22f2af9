/**
 * RAID parity over byte pages, bit-compatible with the Linux md driver.
 *
 *  P = XOR of the data pages.
 *  Q = Σ g^slot · D_slot over GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1 (0x11d) and g = 2 — the
 *      kernel's gen_syndrome (lib/raid6). The slot of a data page comes from Geometry (set_syndrome_sources):
 *      slots need not be 0..k-1 (DDF layouts leave holes where P and Q sit).
 *
 * Implementations (ParityKernels: the engine uses the one in the array's Compute, compute.ts): the 'wasm' one runs a small WebAssembly
 * SIMD kernel when the page length is a multiple of 64 (pages are copied into its memory and the results
 * out). Otherwise, or without WebAssembly SIMD, the JS paths run: XOR on BigUint64Array views (V8 compiles
 * 64-bit `^` on typed-array elements to plain machine ops), Q on Int32Array views with the SWAR "multiply
 * four bytes by 2 at once" trick. Those need byteOffsets aligned to 8 / 4 and fall back to narrower words
 * or bytes otherwise. Every path produces the same bytes; mulInto and reconstruct's GF multiplies stay JS.
 */

import {instantiateParity, wasmSyndrome, wasmXor, wasmFits, type ParityWasm} from './parity-wasm.js'
import {gfInv, gfMul, gfPow2, mulTable} from './gf256.js'

// ---------------------------------------------------------------------------------------------------
// helpers

const u64 = (a: Uint8Array) => new BigUint64Array(a.buffer, a.byteOffset, a.byteLength >>> 3)
const i32 = (a: Uint8Array) => new Int32Array(a.buffer, a.byteOffset, a.byteLength >>> 2)

/** Widest word (8, 4 or 1 bytes) every page's byteOffset allows. */
function wordSize(pages: readonly Uint8Array[], extra1: Uint8Array, extra2?: Uint8Array): 8 | 4 | 1 {
  let acc = extra1.byteOffset | (extra2 ? extra2.byteOffset : 0)
  for (let i = 0; i < pages.length; i++) acc |= pages[i].byteOffset
  return (acc & 7) === 0 ? 8 : (acc & 3) === 0 ? 4 : 1
}

function checkLengths(len: number, pages: readonly Uint8Array[], what: string): void {
  for (let i = 0; i < pages.length; i++)
    if (pages[i].length !== len) throw new RangeError(`${what}: page ${i} has ${pages[i].length} bytes, expected ${len}`)
}

const wasmKernels = instantiateParity()

/** Which parity implementation: 'wasm' the SIMD kernels where WebAssembly SIMD is available (else JS), 'js' the JS paths. */
export type ParityChoice = 'wasm' | 'js'

/** One parity implementation. Both compute the same bytes; reconstruct and the arena use the one they are given. */
export interface ParityKernels {
  readonly backend: 'wasm-simd' | 'js'
  /** p = XOR of data (p = 0 when data is empty). p must not alias any data page. */
  readonly computeP: (data: readonly Uint8Array[], p: Uint8Array) => void
  /** q = Σ g^slots[i] · data[i]. */
  readonly computeQ: (data: readonly Uint8Array[], slots: readonly number[], q: Uint8Array) => void
  /** p = XOR of data and q = Σ g^slots[i] · data[i], in one pass over the data. */
  readonly computePQ: (data: readonly Uint8Array[], slots: readonly number[], p: Uint8Array, q: Uint8Array) => void
}

function kernels(w: ParityWasm | null): ParityKernels {
  return {
    backend: w ? 'wasm-simd' : 'js',
    computeP: (data, p) => xorP(w, data, p),
    computeQ: (data, slots, q) => syndrome(w, data, slots, undefined, q),
    computePQ: (data, slots, p, q) => syndrome(w, data, slots, p, q),
  }
}

const JS_PARITY = kernels(null)
const WASM_PARITY = wasmKernels ? kernels(wasmKernels) : JS_PARITY

/** The implementation for a choice ('wasm' is the JS one where WebAssembly SIMD is unavailable). */
export function parityKernels(choice: ParityChoice): ParityKernels {
  return choice === 'wasm' ? WASM_PARITY : JS_PARITY
}

/** The default implementation, which computeP/computeQ/computePQ use: the fastest this machine runs. */
export const DEFAULT_PARITY = WASM_PARITY

// ---------------------------------------------------------------------------------------------------
// XOR / P

/** dst ^= src. */
export function xorInto(dst: Uint8Array, src: Uint8Array): void {
  const len = dst.length
  if (src.length !== len) throw new RangeError(`xorInto: lengths differ (${dst.length} vs ${src.length})`)
  let done = 0
  const ws = wordSize([src], dst)
  if (ws === 8) {
    const d = u64(dst)
    const s = u64(src)
    for (let i = 0; i < d.length; i++) d[i] ^= s[i]
    done = d.length << 3
  } else if (ws === 4) {
    const d = i32(dst)
    const s = i32(src)
    for (let i = 0; i < d.length; i++) d[i] ^= s[i]
    done = d.length << 2
  }
  for (let i = done; i < len; i++) dst[i] ^= src[i]
}

/** p = XOR of data (p = 0 when data is empty). p must not alias any data page. */
export function computeP(data: readonly Uint8Array[], p: Uint8Array): void {
  DEFAULT_PARITY.computeP(data, p)
}

function xorP(w: ParityWasm | null, data: readonly Uint8Array[], p: Uint8Array): void {
  const len = p.length
  checkLengths(len, data, 'computeP')
  const n = data.length
  if (n === 0) {
    p.fill(0)
    return
  }
  if (w && wasmFits(len, n) && wasmXor(w, data, p)) return
  let done = 0
  const ws = wordSize(data, p)
  if (ws === 8) {
    done = xorSources64(data, p)
  } else if (ws === 4) {
    done = xorSources32(data, p)
  }
  if (done < len) {
    for (let i = done; i < len; i++) {
      let x = 0
      for (let z = 0; z < n; z++) x ^= data[z][i]
      p[i] = x
    }
  }
}

/**
 * p = XOR of all sources over the 64-bit words. Sources are taken four at a time so p is written once
 * per group instead of once per page (memory traffic, not ALU, is what limits this loop).
 * Returns the number of bytes done.
 */
function xorSources64(data: readonly Uint8Array[], p: Uint8Array): number {
  const n = data.length
  const P = u64(p)
  const W = P.length
  const v: BigUint64Array[] = new Array<BigUint64Array>(n)
  for (let z = 0; z < n; z++) v[z] = u64(data[z])
  let z = 0
  // first group assigns, later groups accumulate
  for (let first = true; z < n; first = false) {
    const k = Math.min(n - z, first ? 4 : 3)
    const a = v[z]
    if (k === 1) {
      if (first) for (let i = 0; i < W; i++) P[i] = a[i]
      else for (let i = 0; i < W; i++) P[i] ^= a[i]
    } else if (k === 2) {
      const b = v[z + 1]
      if (first) for (let i = 0; i < W; i++) P[i] = a[i] ^ b[i]
      else for (let i = 0; i < W; i++) P[i] ^= a[i] ^ b[i]
    } else if (k === 3) {
      const b = v[z + 1],
        c = v[z + 2]
      if (first) for (let i = 0; i < W; i++) P[i] = a[i] ^ b[i] ^ c[i]
      else for (let i = 0; i < W; i++) P[i] ^= a[i] ^ b[i] ^ c[i]
    } else {
      const b = v[z + 1],
        c = v[z + 2],
        d = v[z + 3]
      for (let i = 0; i < W; i++) P[i] = a[i] ^ b[i] ^ c[i] ^ d[i]
    }
    z += k
  }
  return W << 3
}

function xorSources32(data: readonly Uint8Array[], p: Uint8Array): number {
  const n = data.length
  const P = i32(p)
  const W = P.length
  const v: Int32Array[] = new Array<Int32Array>(n)
  for (let z = 0; z < n; z++) v[z] = i32(data[z])
  P.set(v[0])
  for (let z = 1; z < n; z++) {
    const a = v[z]
    for (let i = 0; i < W; i++) P[i] ^= a[i]
  }
  return W << 2
}

// ---------------------------------------------------------------------------------------------------
// Q / P+Q

/**
 * Orders the sources for Horner's rule, highest slot first (Q = (…(D_hi·g ⊕ …)·g ⊕ D_lo)·g^lo).
 * gaps[z] = how many times to multiply by g before adding source z (z ≥ 1); tail = multiplications
 * after the last one (its slot). Contiguous slots ending at 0 — the md case — have all gaps 1, tail 0.
 */
interface HornerPlan {
  order: number[]
  gaps: number[]
  tail: number
  contiguous: boolean
}

function hornerPlan(slots: readonly number[], n: number): HornerPlan {
  if (slots.length !== n) throw new RangeError(`expected ${n} syndrome slots, got ${slots.length}`)
  const order: number[] = []
  for (let i = 0; i < n; i++) {
    const s = slots[i]
    if (!Number.isInteger(s) || s < 0 || s > 254) throw new RangeError(`syndrome slot ${s} is not in 0..254`)
    order.push(i)
  }
  order.sort((a, b) => slots[b] - slots[a])
  const gaps: number[] = [0]
  let contiguous = true
  for (let z = 1; z < n; z++) {
    const g = slots[order[z - 1]] - slots[order[z]]
    if (g === 0) throw new RangeError(`syndrome slot ${slots[order[z]]} is used twice`)
    if (g !== 1) contiguous = false
    gaps.push(g)
  }
  const tail = n ? slots[order[n - 1]] : 0
  if (tail !== 0) contiguous = false
  return {order, gaps, tail, contiguous}
}

/** q = Σ g^slots[i] · data[i]. */
export function computeQ(data: readonly Uint8Array[], slots: readonly number[], q: Uint8Array): void {
  DEFAULT_PARITY.computeQ(data, slots, q)
}

/** p = XOR of data and q = Σ g^slots[i] · data[i], in one pass over the data. */
export function computePQ(data: readonly Uint8Array[], slots: readonly number[], p: Uint8Array, q: Uint8Array): void {
  DEFAULT_PARITY.computePQ(data, slots, p, q)
}

function syndrome(w: ParityWasm | null, data: readonly Uint8Array[], slots: readonly number[], p: Uint8Array | undefined, q: Uint8Array): void {
  const len = q.length
  checkLengths(len, data, 'syndrome')
  if (p && p.length !== len) throw new RangeError('syndrome: P and Q lengths differ')
  const n = data.length
  const plan = hornerPlan(slots, n)
  if (n === 0) {
    q.fill(0)
    p?.fill(0)
    return
  }
  if (w && wasmFits(len, n) && wasmSyndrome(w, data, slots, p, q)) return
  let done = 0
  if (wordSize(data, q, p) !== 1) {
    const src: Int32Array[] = new Array<Int32Array>(n)
    for (let z = 0; z < n; z++) src[z] = i32(data[plan.order[z]])
    const Q = i32(q)
    const P = p ? i32(p) : undefined
    if (plan.contiguous) swarContiguous(src, P, Q)
    else swarGaps(src, plan.gaps, plan.tail, P, Q)
    done = Q.length << 2
  }
  if (done < len) syndromeBytes(data, plan, p, q, done)
}

// One SWAR step multiplies the four bytes of a 32-bit word by g at once: shift each byte left, and where a
// byte's top bit fell off, reduce by 0x1d. ((m << 1) - (m >>> 7)) turns each set top bit in m into 0xff
// in that byte lane (the lanes cannot borrow from each other).

function swarContiguous(src: Int32Array[], P: Int32Array | undefined, Q: Int32Array): void {
  const n = src.length
  const W = Q.length
  const top = src[0]
  if (P) {
    for (let i = 0; i < W; i++) {
      let wq = top[i]
      let wp = wq
      for (let z = 1; z < n; z++) {
        const wd = src[z][i]
        wp ^= wd
        const m = wq & 0x80808080
        wq = ((wq << 1) & 0xfefefefe) ^ (((m << 1) - (m >>> 7)) & 0x1d1d1d1d) ^ wd
      }
      P[i] = wp
      Q[i] = wq
    }
  } else {
    for (let i = 0; i < W; i++) {
      let wq = top[i]
      for (let z = 1; z < n; z++) {
        const m = wq & 0x80808080
        wq = ((wq << 1) & 0xfefefefe) ^ (((m << 1) - (m >>> 7)) & 0x1d1d1d1d) ^ src[z][i]
      }
      Q[i] = wq
    }
  }
}

function swarGaps(src: Int32Array[], gaps: readonly number[], tail: number, P: Int32Array | undefined, Q: Int32Array): void {
  const n = src.length
  const W = Q.length
  const top = src[0]
  for (let i = 0; i < W; i++) {
    let wq = top[i]
    let wp = wq
    for (let z = 1; z < n; z++) {
      const wd = src[z][i]
      wp ^= wd
      for (let g = gaps[z]; g > 0; g--) {
        const m = wq & 0x80808080
        wq = ((wq << 1) & 0xfefefefe) ^ (((m << 1) - (m >>> 7)) & 0x1d1d1d1d)
      }
      wq ^= wd
    }
    for (let g = tail; g > 0; g--) {
      const m = wq & 0x80808080
      wq = ((wq << 1) & 0xfefefefe) ^ (((m << 1) - (m >>> 7)) & 0x1d1d1d1d)
    }
    if (P) P[i] = wp
    Q[i] = wq
  }
}

/** Byte-wise fallback (unaligned pages, or the tail past the last whole word). */
function syndromeBytes(data: readonly Uint8Array[], plan: HornerPlan, p: Uint8Array | undefined, q: Uint8Array, from: number): void {
  const n = data.length
  const {order, gaps, tail} = plan
  const src = order.map(z => data[z])
  const mul2 = mulTable(2)
  const mulTail = mulTable(gfPow2(tail))
  const gapTables = gaps.map(g => mulTable(gfPow2(g)))
  for (let i = from; i < q.length; i++) {
    let wq = src[0][i]
    let wp = wq
    for (let z = 1; z < n; z++) {
      const wd = src[z][i]
      wp ^= wd
      wq = (gaps[z] === 1 ? mul2 : gapTables[z])[wq] ^ wd
    }
    if (p) p[i] = wp
    q[i] = mulTail[wq]
  }
}

// ---------------------------------------------------------------------------------------------------
// multiply-accumulate and recovery

/** dst ^= coef · src, coef in GF(2^8). */
export function mulInto(dst: Uint8Array, src: Uint8Array, coef: number): void {
  const len = dst.length
  if (src.length !== len) throw new RangeError(`mulInto: lengths differ (${dst.length} vs ${src.length})`)
  coef &= 255
  if (coef === 0) return
  if (coef === 1) {
    xorInto(dst, src)
    return
  }
  const t = mulTable(coef)
  let done = 0
  if (wordSize([src], dst) !== 1) {
    // Four table look-ups per 32-bit load/store: fewer memory operations than a byte loop.
    const d = i32(dst)
    const s = i32(src)
    for (let i = 0; i < d.length; i++) {
      const w = s[i]
      d[i] ^= t[w & 255] | (t[(w >>> 8) & 255] << 8) | (t[(w >>> 16) & 255] << 16) | (t[w >>> 24] << 24)
    }
    done = d.length << 2
  }
  for (let i = done; i < len; i++) dst[i] ^= t[src[i]]
}

/** Two pages of `len` bytes for reconstruct: in the caller's `scratch` when it holds them, else new. */
function scratchPages(len: number, scratch?: Uint8Array): [Uint8Array, Uint8Array] {
  if (scratch && scratch.length >= 2 * len) return [scratch.subarray(0, len), scratch.subarray(len, 2 * len)]
  return [new Uint8Array(len), new Uint8Array(len)]
}

/**
 * Rebuilds the missing pages of one stripe in place.
 * pages: the data pages by data index, then P, then (RAID6) Q. slots: syndrome slot of each data page
 * (RAID6 only; ignored for RAID4/5). missing: indices into pages — at most one for RAID4/5, two for RAID6.
 * The contents of missing pages on entry are ignored. `parity`: the implementation (default: DEFAULT_PARITY).
 * `scratch`: at least twice a page's length, for RAID6 with a data page and P or two data pages
 * missing (a caller rebuilding stripe after stripe passes its own; without it, two pages are allocated).
 */
export function reconstruct(
  level: 4 | 5 | 6,
  pages: Uint8Array[],
  slots: readonly number[],
  missing: readonly number[],
  parity: ParityKernels = DEFAULT_PARITY,
  scratch?: Uint8Array,
): void {
  const {computeP, computeQ, computePQ} = parity
  const k = pages.length - (level === 6 ? 2 : 1)
  if (k < 1) throw new RangeError(`RAID${level} stripe needs at least one data page, got ${pages.length} pages`)
  const len = pages[0].length
  checkLengths(len, pages, 'reconstruct')
  const lost = [...new Set(missing)].sort((a, b) => a - b)
  for (const m of lost)
    if (!Number.isInteger(m) || m < 0 || m >= pages.length) throw new RangeError(`missing page ${m} is not in 0..${pages.length - 1}`)
  if (lost.length > (level === 6 ? 2 : 1)) throw new RangeError(`RAID${level} cannot rebuild ${lost.length} missing pages`)
  if (lost.length === 0) return

  const pIdx = k
  const qIdx = k + 1
  const data = pages.slice(0, k)
  const others = (except: number[]) => {
    const d: Uint8Array[] = []
    const s: number[] = []
    for (let i = 0; i < k; i++)
      if (!except.includes(i)) {
        d.push(pages[i])
        s.push(slots[i])
      }
    return {d, s}
  }
  /** Missing data page x (or P) = XOR of every other page except Q. */
  const fromP = (x: number) => {
    const srcs: Uint8Array[] = []
    for (let i = 0; i <= k; i++) if (i !== x) srcs.push(pages[i])
    computeP(srcs, pages[x])
  }

  if (level !== 6) {
    fromP(lost[0])
    return
  }
  if (slots.length !== k) throw new RangeError(`expected ${k} syndrome slots, got ${slots.length}`)

  const [a, b] = lost
  if (lost.length === 1) {
    if (a === qIdx) computeQ(data, slots, pages[qIdx])
    else fromP(a) // a data page or P
    return
  }
  if (a === pIdx) {
    // P and Q (a < b, so b is Q)
    computePQ(data, slots, pages[pIdx], pages[qIdx])
  } else if (b === qIdx) {
    // data + Q: data from P, then Q from everything
    fromP(a)
    computeQ(data, slots, pages[qIdx])
  } else if (b === pIdx) {
    // data + P: Q ⊕ Q(without x) = g^slot_x · D_x
    const [qx] = scratchPages(len, scratch)
    const o = others([a])
    computeQ(o.d, o.s, qx)
    xorInto(qx, pages[qIdx])
    pages[a].fill(0)
    mulInto(pages[a], qx, gfPow2(-slots[a]))
    computeP(data, pages[pIdx])
  } else {
    // two data pages x = a, y = b with slots sa, sb:
    //   Dx ⊕ Dy = Pxy,  g^sa·Dx ⊕ g^sb·Dy = Qxy   (Pxy, Qxy: P, Q minus the surviving data)
    //   ⇒ Dx = (Qxy ⊕ g^sb·Pxy) / (g^sa ⊕ g^sb),  Dy = Pxy ⊕ Dx
    const [pxy, qxy] = scratchPages(len, scratch)
    const o = others([a, b])
    computePQ(o.d, o.s, pxy, qxy)
    xorInto(pxy, pages[pIdx])
    xorInto(qxy, pages[qIdx])
    const ga = gfPow2(slots[a])
    const gb = gfPow2(slots[b])
    const denomInv = gfInv(ga ^ gb)
    const dx = pages[a]
    const dy = pages[b]
    dx.fill(0)
    mulInto(dx, qxy, denomInv)
    mulInto(dx, pxy, gfMul(gb, denomInv))
    dy.set(pxy)
    xorInto(dy, dx)
  }
}
