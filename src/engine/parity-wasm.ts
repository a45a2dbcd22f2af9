/**
 * The WebAssembly SIMD parity kernels: the module assembled from opcodes, its instances, and the calls
 * that copy pages into an instance's memory, run a kernel and copy the result out. parity.ts chooses
 * between these and its JS paths; both give the same bytes.
 */

// Plain JS works on at most 64-bit words and has no carry-less GF(2^8) multiply; a 128-bit SIMD loop
// does the XOR and the Q doubling on 16 bytes at a time. The module is tiny, so it is assembled here
// from opcodes instead of shipping a binary. If WebAssembly SIMD is unavailable (or the JS implementation
// is chosen: parityKernels('js')), everything runs on parity.ts's JS paths, which compute the same bytes.
//
//   xor_p(ptab, n, p, len):      p = XOR of the n pages whose addresses are the i32s at ptab
//   gen_pq(ptab, n, p, q, len):  p = XOR, q = Horner over the pages, ptab[0] being the highest slot
// len must be a non-zero multiple of 64 (four v128 lanes per step).

// eslint-disable-next-line max-lines-per-function -- the module's bytes, instruction by instruction: one listing read top to bottom, as an assembler file would be
function assembleParityModule(): Uint8Array<ArrayBuffer> {
  const uleb = (v: number): number[] => {
    const out: number[] = []
    do {
      let b = v & 0x7f
      v >>>= 7
      if (v) b |= 0x80
      out.push(b)
    } while (v)
    return out
  }
  const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()]
  const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body]
  const name = (s: string): number[] => [...uleb(s.length), ...Array.from(s, c => c.charCodeAt(0))]
  const I32 = 0x7f,
    V128 = 0x7b
  const sleb = (v: number): number[] => {
    const out: number[] = []
    for (;;) {
      const b = v & 0x7f
      v >>= 7
      if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...out, b]
      out.push(b | 0x80)
    }
  }
  // opcodes (local indices stay below 128, so their LEB128 is the byte itself)
  const get = (i: number) => [0x20, i],
    set = (i: number) => [0x21, i],
    tee = (i: number) => [0x22, i]
  const i32c = (v: number) => [0x41, ...sleb(v)]
  const i32load = [0x28, 2, 0],
    add = [0x6a],
    shl = [0x74],
    geU = [0x4f],
    ltU = [0x49]
  const loop = [0x03, 0x40],
    block = [0x02, 0x40],
    end = [0x0b],
    br = (d: number) => [0x0c, d],
    brIf = (d: number) => [0x0d, d]
  const vload = (off: number) => [0xfd, 0x00, 4, ...uleb(off)],
    vstore = (off: number) => [0xfd, 0x0b, 4, ...uleb(off)]
  const splat8 = [0xfd, 0x0f],
    vand = [0xfd, 0x4e],
    vxor = [0xfd, 0x51],
    ltS8 = [0xfd, 0x25],
    add8 = [0xfd, 0x6e]
  const lanes = [0, 1, 2, 3]
  const body = (locals: number[][], code: number[][]): number[] => {
    const b = [...vec(locals), ...code.flat(), ...end]
    return [...uleb(b.length), ...b]
  }
  // ptr = i32.load(ptab + 4·z) + off
  const pagePtr = (ptab: number, z: number | null, off: number, ptr: number): number[][] =>
    z === null ? [get(ptab), i32load, get(off), add, set(ptr)] : [get(ptab), get(z), i32c(2), shl, add, i32load, get(off), add, set(ptr)]

  // xor_p: params 0 ptab, 1 n, 2 p, 3 len; locals 4 off, 5 z, 6 ptr, 7..10 acc lanes
  const xorP = body(
    [
      [3, I32],
      [4, V128],
    ],
    [
      loop,
      ...pagePtr(0, null, 4, 6),
      ...lanes.flatMap(j => [get(6), vload(16 * j), set(7 + j)]),
      i32c(1),
      set(5),
      block,
      loop,
      get(5),
      get(1),
      geU,
      brIf(1),
      ...pagePtr(0, 5, 4, 6),
      ...lanes.flatMap(j => [get(7 + j), get(6), vload(16 * j), vxor, set(7 + j)]),
      get(5),
      i32c(1),
      add,
      set(5),
      br(0),
      end,
      end,
      get(2),
      get(4),
      add,
      set(6),
      ...lanes.flatMap(j => [get(6), get(7 + j), vstore(16 * j)]),
      get(4),
      i32c(64),
      add,
      tee(4),
      get(3),
      ltU,
      brIf(0),
      end,
    ],
  )

  // gen_pq: params 0 ptab, 1 n, 2 p, 3 q, 4 len; locals 5 off, 6 z, 7 ptr, 8..11 p lanes, 12..15 q lanes,
  // 16 d, 17 splat(0x1d), 18 zero (never written). q·g per byte lane: (q + q) ^ ((q <s 0) & 0x1d) — a
  // signed compare is one SSE instruction, where an 8-bit arithmetic shift has to be emulated.
  const genPQ = body(
    [
      [3, I32],
      [11, V128],
    ],
    [
      i32c(0x1d),
      splat8,
      set(17),
      loop,
      ...pagePtr(0, null, 5, 7),
      ...lanes.flatMap(j => [get(7), vload(16 * j), tee(8 + j), set(12 + j)]),
      i32c(1),
      set(6),
      block,
      loop,
      get(6),
      get(1),
      geU,
      brIf(1),
      ...pagePtr(0, 6, 5, 7),
      ...lanes.flatMap(j => [
        get(7),
        vload(16 * j),
        set(16),
        get(8 + j),
        get(16),
        vxor,
        set(8 + j),
        get(12 + j),
        get(12 + j),
        add8,
        get(12 + j),
        get(18),
        ltS8,
        get(17),
        vand,
        vxor,
        get(16),
        vxor,
        set(12 + j),
      ]),
      get(6),
      i32c(1),
      add,
      set(6),
      br(0),
      end,
      end,
      get(2),
      get(5),
      add,
      set(7),
      ...lanes.flatMap(j => [get(7), get(8 + j), vstore(16 * j)]),
      get(3),
      get(5),
      add,
      set(7),
      ...lanes.flatMap(j => [get(7), get(12 + j), vstore(16 * j)]),
      get(5),
      i32c(64),
      add,
      tee(5),
      get(4),
      ltU,
      brIf(0),
      end,
    ],
  )

  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(
      1,
      vec([
        [0x60, ...vec([[I32], [I32], [I32], [I32]]), 0],
        [0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), 0],
      ]),
    ),
    ...section(3, vec([[0], [1]])),
    ...section(5, vec([[0x00, 1]])), // one memory, 1 page to start, grown on demand
    ...section(
      7,
      vec([
        [...name('mem'), 0x02, 0],
        [...name('xor_p'), 0x00, 0],
        [...name('gen_pq'), 0x00, 1],
      ]),
    ),
    ...section(10, vec([xorP, genPQ])),
  ])
}

export interface ParityWasm {
  mem: WebAssembly.Memory
  xorP: (ptab: number, n: number, p: number, len: number) => void
  genPQ: (ptab: number, n: number, p: number, q: number, len: number) => void
  /** views of `mem`, made again when it grows (growing detaches the old buffer) */
  u8: Uint8Array
  i32: Int32Array
}

/** The compiled module: undefined until first use, null when WebAssembly SIMD is unavailable. */
let compiled: WebAssembly.Module | null | undefined

/** The parity module, compiled once per process (instances: this file's own, and each ParityArena's). */
export function parityModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null
    try {
      if (typeof WebAssembly !== 'undefined') {
        const bytes = assembleParityModule()
        if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes)
      }
    } catch {
      compiled = null
    }
  }
  return compiled
}

/** A new instance of the parity module with its own memory, or null without WebAssembly SIMD. */
export function instantiateParity(): ParityWasm | null {
  const mod = parityModule()
  if (!mod) return null
  try {
    const ex = new WebAssembly.Instance(mod).exports as Record<string, unknown>
    const mem = ex.mem as WebAssembly.Memory
    return {
      mem,
      xorP: ex.xor_p as ParityWasm['xorP'],
      genPQ: ex.gen_pq as ParityWasm['genPQ'],
      u8: new Uint8Array(mem.buffer),
      i32: new Int32Array(mem.buffer),
    }
  } catch {
    return null
  }
}

// WASM memory map: [0, 1024) page pointer table (≤ 256 i32), then a zero page (stands in for the P/Q
// holes in DDF slot numbering), the P and Q outputs, and the input pages.
const PTAB = 0
const ZERO = 1024

/** Makes the WASM memory at least `bytes` long; false if it cannot grow (the caller then uses JS). */
function wasmArena(w: ParityWasm, bytes: number): boolean {
  const have = w.mem.buffer.byteLength
  if (have < bytes) {
    try {
      w.mem.grow(Math.ceil((bytes - have) / 65536))
    } catch {
      return false
    }
  }
  if (w.u8.buffer !== w.mem.buffer || w.u8.byteLength !== w.mem.buffer.byteLength) {
    w.u8 = new Uint8Array(w.mem.buffer)
    w.i32 = new Int32Array(w.mem.buffer)
  }
  return true
}

/** The kernels step 64 bytes at a time and the pointer table has room for 256 pages. */
export const wasmFits = (len: number, pages: number) => len > 0 && len % 64 === 0 && pages <= 256

export function wasmXor(w: ParityWasm, data: readonly Uint8Array[], p: Uint8Array): boolean {
  const len = p.length
  const out = ZERO + len
  const first = out + len
  if (!wasmArena(w, first + data.length * len)) return false
  for (let z = 0; z < data.length; z++) {
    const at = first + z * len
    w.u8.set(data[z], at)
    w.i32[(PTAB >> 2) + z] = at
  }
  w.xorP(PTAB, data.length, out, len)
  p.set(w.u8.subarray(out, out + len))
  return true
}

export function wasmSyndrome(
  w: ParityWasm,
  data: readonly Uint8Array[],
  slots: readonly number[],
  p: Uint8Array | undefined,
  q: Uint8Array,
): boolean {
  const len = q.length
  const pOut = ZERO + len
  const qOut = pOut + len
  const first = qOut + len
  let top = 0
  for (let i = 0; i < slots.length; i++) if (slots[i] > top) top = slots[i]
  const entries = top + 1 // Horner runs over every slot from `top` down to 0
  if (!wasmArena(w, first + data.length * len)) return false
  if (entries > data.length) {
    w.u8.fill(0, ZERO, ZERO + len)
    w.i32.fill(ZERO, PTAB >> 2, (PTAB >> 2) + entries)
  }
  for (let i = 0; i < data.length; i++) {
    const at = first + i * len
    w.u8.set(data[i], at)
    w.i32[(PTAB >> 2) + top - slots[i]] = at
  }
  w.genPQ(PTAB, entries, pOut, qOut, len)
  q.set(w.u8.subarray(qOut, qOut + len))
  if (p) p.set(w.u8.subarray(pOut, pOut + len))
  return true
}
