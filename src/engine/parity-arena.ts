/**
 * P/Q parity computed in place inside a caller-owned buffer (the "arena").
 *
 * parity.ts's computeP/computeQ take arbitrary Uint8Arrays, so its WASM kernels copy every input
 * page into their memory and the result out again. The write path already lays its pages out in
 * one buffer (the journal batch), so here that buffer *is* WASM memory: each arena gets its own
 * instance of the same module (compiled once), whose memory is grown once to
 *
 *   [0, 1024)            pointer table (256 i32 page addresses, read by the kernels)
 *   [4096, 65536)        zero region: stands in for the P/Q holes of DDF slot numbering
 *   [65536, 65536+size)  the arena, exposed as `bytes` (WASM memory starts page-aligned, so the
 *                        arena is 64 KiB-aligned: good for pread/pwrite, see alignedBuffer)
 *
 * and never again: growing would detach `bytes` and every view the caller made of it. Offsets
 * passed to p/pq are byte offsets inside `bytes`; nothing is copied.
 *
 * Without WebAssembly SIMD, when the memory cannot be grown, or when the arena is given parity.ts's JS
 * implementation (DEFAULT_PARITY unless given one), p/pq call computeP/computePQ on subarrays
 * of `bytes` instead (and `bytes` is an ordinary buffer). Both paths produce the same bytes.
 *
 * An arena is for synchronous use by one operation at a time: acquireArena/releaseArena keep one
 * spare so that consecutive writes do not each reserve a new WASM memory.
 */
import {alignedBuffer} from './device.js'
import {DEFAULT_PARITY, type ParityKernels} from './parity.js'
import {instantiateParity, type ParityWasm} from './parity-wasm.js'

type Kernels = ParityWasm

const PTAB = 0
/** most pointer-table entries (the kernels' table holds 256 i32s at PTAB) */
const MAX_ENTRIES = 256
const ZERO = 4096
const RESERVED = 65536
/** longest run one kernel call covers: pq needs the zero region to be as long as the run */
const MAX_RUN = RESERVED - ZERO

/** An instance whose memory is RESERVED + size bytes, or null (then the JS fallback is used). */
function instantiate(size: number): Kernels | null {
  const k = instantiateParity()
  if (!k) return null
  try {
    const need = RESERVED + size
    const have = k.mem.buffer.byteLength
    if (have < need) k.mem.grow(Math.ceil((need - have) / 65536))
    return k
  } catch {
    return null
  }
}

export class ParityArena {
  /**
   * the arena: `size` bytes, valid for the arena's whole life; 64 KiB-aligned in WASM memory (an
   * alignedBuffer on the JS fallback)
   */
  readonly bytes: Uint8Array
  private readonly k: Kernels | null
  /** pointer table of the instance (null on the JS fallback) */
  private readonly ptab: Int32Array | null
  /** reusable views for the JS fallback */
  private readonly srcViews: Uint8Array[] = []
  private readonly slotList: number[] = []

  constructor(
    readonly size: number,
    /** the implementation; the in-place kernels run only when it is the WASM one */
    readonly kernels: ParityKernels = DEFAULT_PARITY,
  ) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad arena size ${size}`)
    this.k = instantiate(size)
    if (this.k) {
      // created after the one grow, never invalidated
      this.bytes = new Uint8Array(this.k.mem.buffer, RESERVED, size)
      this.ptab = new Int32Array(this.k.mem.buffer, PTAB, MAX_ENTRIES)
    } else {
      this.bytes = alignedBuffer(size)
      this.ptab = null
    }
  }

  /** 'wasm-simd' when p/pq run the in-place kernels, else 'js'. */
  get backend(): 'wasm-simd' | 'js' {
    return this.k && this.kernels.backend === 'wasm-simd' ? 'wasm-simd' : 'js'
  }

  private check(off: number, len: number): void {
    if (!Number.isInteger(off) || off < 0 || off + len > this.size) throw new RangeError(`arena range ${off}+${len} is outside 0..${this.size}`)
  }

  /** Kernels usable for this length: SIMD steps of 64 bytes, and the parity backend is WASM. */
  private kernelsFor(len: number): Kernels | null {
    return this.k && len > 0 && len % 64 === 0 && this.kernels.backend === 'wasm-simd' ? this.k : null
  }

  /**
   * bytes[pOffset, +len) = XOR of the n runs bytes[src[z], +len) (zeros when n = 0). The output
   * must not overlap an input.
   */
  p(src: ArrayLike<number>, pOffset: number, len: number, n = src.length): void {
    this.check(pOffset, len)
    for (let z = 0; z < n; z++) this.check(src[z], len)
    const k = this.kernelsFor(len)
    if (!k || n > MAX_ENTRIES || n === 0) {
      const data = this.views(src, n, len)
      this.kernels.computeP(data, this.bytes.subarray(pOffset, pOffset + len))
      return
    }
    const t = this.ptab!
    for (let z = 0; z < n; z++) t[z] = RESERVED + src[z]
    k.xorP(PTAB, n, RESERVED + pOffset, len)
  }

  /**
   * RAID6: bytes[pOffset, +len) = XOR of the runs and bytes[qOffset, +len) = Σ g^slots[z] · run z
   * (computePQ). Slots are distinct integers 0..254 and may leave holes (DDF layouts). Outputs
   * must not overlap inputs or each other.
   */
  pq(src: ArrayLike<number>, slots: ArrayLike<number>, pOffset: number, qOffset: number, len: number, n = src.length): void {
    this.check(pOffset, len)
    this.check(qOffset, len)
    for (let z = 0; z < n; z++) this.check(src[z], len)
    let top = -1
    for (let z = 0; z < n; z++) {
      const s = slots[z]
      if (!Number.isInteger(s) || s < 0 || s > 254) throw new RangeError(`syndrome slot ${s} is not in 0..254`)
      if (s > top) top = s
    }
    const k = this.kernelsFor(len)
    if (!k || n === 0) {
      const data = this.views(src, n, len)
      this.slotList.length = n
      for (let z = 0; z < n; z++) this.slotList[z] = slots[z]
      this.kernels.computePQ(data, this.slotList, this.bytes.subarray(pOffset, pOffset + len), this.bytes.subarray(qOffset, qOffset + len))
      return
    }
    // Horner over every slot from `top` down to 0, highest first; holes read the zero region.
    // A run longer than the zero region is done in pieces.
    const entries = top + 1
    const t = this.ptab!
    for (let at = 0; at < len; at += MAX_RUN) {
      const piece = Math.min(MAX_RUN, len - at)
      t.fill(ZERO, 0, entries)
      for (let z = 0; z < n; z++) {
        const e = top - slots[z]
        if (t[e] !== ZERO) throw new RangeError(`syndrome slot ${slots[z]} is used twice`)
        t[e] = RESERVED + src[z] + at
      }
      k.genPQ(PTAB, entries, RESERVED + pOffset + at, RESERVED + qOffset + at, piece)
    }
  }

  private views(src: ArrayLike<number>, n: number, len: number): Uint8Array[] {
    const v = this.srcViews
    v.length = n
    for (let z = 0; z < n; z++) v[z] = this.bytes.subarray(src[z], src[z] + len)
    return v
  }
}

// One arena kept between operations: the write path needs one per call, and a fresh WASM memory
// per call would reserve address space (and cost a GC) for every small write the tests make.
let spare: ParityArena | null = null
/** arenas larger than this are not kept (memory stays bounded by the operation in progress) */
const KEEP_LIMIT = 64 << 20

/** An arena of at least `size` bytes computing with `parity`, for one synchronous operation; hand it back with releaseArena. */
export function acquireArena(size: number, parity: ParityKernels): ParityArena {
  if (spare && spare.size >= size && spare.kernels === parity) {
    const a = spare
    spare = null
    return a
  }
  return new ParityArena(size, parity)
}

/** Return an arena from acquireArena; its contents are garbage to the next user. */
export function releaseArena(a: ParityArena): void {
  if (a.size <= KEEP_LIMIT && (!spare || spare.size <= a.size || spare.kernels !== a.kernels)) spare = a
}
