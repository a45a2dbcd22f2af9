/**
 * ParityArena: in-place P/Q inside one buffer (WASM memory, or a plain buffer on the JS fallback)
 * must give exactly what computeP / computePQ give for the same pages, on both parity backends,
 * for RAID5 and RAID6 slot layouts including DDF numbering with holes.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {ParityArena, acquireArena, releaseArena} from '../../src/engine/parity-arena.js'
import {parityKernels} from '../../src/engine/parity.js'
import {Geometry} from '../../src/engine/geometry.js'

/** xorshift32 filler: reproducible random bytes */
function filler(seed: number) {
  let x = seed >>> 0 || 1
  return (buf: Uint8Array) => {
    for (let i = 0; i < buf.length; i++) {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      buf[i] = x & 255
    }
    return buf
  }
}

/** Put n random runs of len bytes in the arena at shuffled, non-overlapping places; returns their offsets. */
function place(a: ParityArena, n: number, len: number, fill: (b: Uint8Array) => Uint8Array, stride = len): number[] {
  const offs = Array.from({length: n}, (_, i) => i * stride)
  for (let i = offs.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1)
    ;[offs[i], offs[j]] = [offs[j], offs[i]]
  }
  for (const o of offs) fill(a.bytes.subarray(o, o + len))
  return offs
}

const copyOf = (a: ParityArena, off: number, len: number) => Uint8Array.from(a.bytes.subarray(off, off + len))

/** slot layouts: md (contiguous), rotated, DDF-like holes, and what Geometry hands out for RAID6 layouts */
function slotSets(): number[][] {
  const sets: number[][] = [[0], [0, 1], [0, 1, 2], [2, 0, 1], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [0, 1, 4, 5], [7, 2, 9], [3], [1, 2, 3]]
  for (const layout of [2, 8, 9, 10, 16, 18, 20]) {
    const g = new Geometry(6, 7, 8, layout, 8n * 7n)
    for (let row = 0; row < g.period; row++) sets.push([...g.rowInfo(row).qSlot])
  }
  return sets
}

describe('parity arena (in-place P/Q)', () => {
  for (const backend of ['wasm', 'js'] as const) {
    describe(`${backend} parity backend`, () => {
      const kernels = parityKernels(backend)
      const {computeP, computeQ, computePQ} = kernels
      const newArena = (size: number) => new ParityArena(size, kernels)

      it(backend === 'wasm' ? 'runs the in-place kernels on a 4 KiB-aligned WASM arena' : 'falls back to computeP/computePQ', () => {
        const a = newArena(1 << 20)
        // parity.ts reports 'js' for 'wasm' only where WebAssembly SIMD is missing (never on Node >= 16.4)
        assert.equal(a.backend, kernels.backend)
        assert.equal(a.backend, backend === 'wasm' && typeof WebAssembly !== 'undefined' ? 'wasm-simd' : 'js')
        assert.equal(a.bytes.length, 1 << 20)
        if (a.backend === 'wasm-simd') assert.equal(a.bytes.byteOffset % 4096, 0)
      })

      it('P (RAID4/5) matches computeP for 0..20 pages of several lengths', () => {
        const fill = filler(5)
        const a = newArena(64 * 4096 + 65536)
        for (const len of [4096, 64, 128, 8192, 65536, 100, 4095]) {
          for (let n = 0; n <= 20; n++) {
            if ((n + 1) * len > a.size) continue
            const src = place(a, n, len, fill)
            const pOff = n * len
            fill(a.bytes.subarray(pOff, pOff + len)) // stale output must be overwritten
            const want = new Uint8Array(len)
            computeP(
              src.map(o => copyOf(a, o, len)),
              want,
            )
            a.p(src, pOff, len)
            assert.deepEqual(copyOf(a, pOff, len), want, `len ${len} n ${n}`)
          }
        }
      })

      it('P of more sources than the kernel pointer table holds (300)', () => {
        const fill = filler(6)
        const len = 256
        const a = newArena(301 * len)
        const src = place(a, 300, len, fill)
        const want = new Uint8Array(len)
        computeP(
          src.map(o => copyOf(a, o, len)),
          want,
        )
        a.p(src, 300 * len, len)
        assert.deepEqual(copyOf(a, 300 * len, len), want)
      })

      it('P+Q (RAID6) matches computePQ for md, rotated, DDF-hole and Geometry slot layouts', () => {
        const fill = filler(7)
        const a = newArena(32 * 4096)
        const len = 4096
        for (const slots of slotSets()) {
          const src = place(a, slots.length, len, fill)
          const pOff = 20 * len
          const qOff = 21 * len
          fill(a.bytes.subarray(pOff, qOff + len))
          const data = src.map(o => copyOf(a, o, len))
          const wantP = new Uint8Array(len)
          const wantQ = new Uint8Array(len)
          computePQ(data, slots, wantP, wantQ)
          const q2 = new Uint8Array(len)
          computeQ(data, slots, q2)
          assert.deepEqual(q2, wantQ)
          a.pq(src, slots, pOff, qOff, len)
          assert.deepEqual(copyOf(a, pOff, len), wantP, `P, slots ${slots}`)
          assert.deepEqual(copyOf(a, qOff, len), wantQ, `Q, slots ${slots}`)
        }
      })

      it('P+Q over runs longer than the zero region, with holes, and a count below the array length', () => {
        const fill = filler(8)
        const len = 192 * 1024 // > 60 KiB: done in pieces
        const a = newArena(6 * len)
        const slots = Int32Array.from([4, 0, 2, 99])
        const src = Int32Array.from(place(a, 4, len, fill))
        const data = [...src.subarray(0, 3)].map(o => copyOf(a, o, len))
        const wantP = new Uint8Array(len)
        const wantQ = new Uint8Array(len)
        computePQ(data, [4, 0, 2], wantP, wantQ)
        a.pq(src, slots, 4 * len, 5 * len, len, 3)
        assert.deepEqual(copyOf(a, 4 * len, len), wantP)
        assert.deepEqual(copyOf(a, 5 * len, len), wantQ)
      })

      it('a long sequence of calls never leaks stale bytes (zero region, pointer table)', () => {
        const fill = filler(9)
        const a = newArena(16 * 4096)
        for (let round = 0; round < 50; round++) {
          const slots = round % 3 === 0 ? [0, 1, 2, 3, 4] : round % 3 === 1 ? [9, 3] : [1, 5, 7]
          const len = [4096, 64, 2048][round % 3]
          const src = place(a, slots.length, len, fill, 4096)
          const data = src.map(o => copyOf(a, o, len))
          const wantP = new Uint8Array(len)
          const wantQ = new Uint8Array(len)
          computePQ(data, slots, wantP, wantQ)
          a.pq(src, slots, 10 * 4096, 11 * 4096, len)
          assert.deepEqual(copyOf(a, 10 * 4096, len), wantP)
          assert.deepEqual(copyOf(a, 11 * 4096, len), wantQ)
          a.p(src, 12 * 4096, len)
          assert.deepEqual(copyOf(a, 12 * 4096, len), wantP)
        }
      })

      it('rejects ranges outside the arena, bad and repeated slots', () => {
        const a = newArena(8 * 4096)
        assert.throws(() => a.p([0, 7 * 4096 + 64], 4096, 4096), RangeError)
        assert.throws(() => a.p([0], 8 * 4096, 4096), RangeError)
        assert.throws(() => a.p([-64], 4096, 64), RangeError)
        assert.throws(() => a.pq([0, 4096], [0, 255], 2 * 4096, 3 * 4096, 4096), RangeError)
        assert.throws(() => a.pq([0, 4096], [3, 3], 2 * 4096, 3 * 4096, 4096), RangeError)
      })
    })
  }

  it('an arena view can be written to a file directly (fs.writeSync / writevSync from WASM memory)', () => {
    const a = new ParityArena(3 * 4096)
    filler(11)(a.bytes)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-arena-'))
    try {
      const f = path.join(dir, 'out.bin')
      const fd = fs.openSync(f, 'w+')
      try {
        assert.equal(fs.writeSync(fd, a.bytes, 0, 4096, 0), 4096)
        assert.equal(fs.writevSync(fd, [a.bytes.subarray(8192, 12288), a.bytes.subarray(4096, 8192)], 4096), 8192)
        const back = Buffer.alloc(3 * 4096)
        const view = (from: number, to: number) => Buffer.from(a.bytes.buffer, a.bytes.byteOffset + from, to - from)
        assert.equal(fs.readSync(fd, back, 0, back.length, 0), back.length)
        assert.ok(back.subarray(0, 4096).equals(view(0, 4096)))
        assert.ok(back.subarray(4096, 8192).equals(view(8192, 12288)))
        assert.ok(back.subarray(8192).equals(view(4096, 8192)))
        // and read straight into it
        fs.readSync(fd, a.bytes, 0, 4096, 8192)
        assert.ok(view(0, 4096).equals(back.subarray(8192)))
      } finally {
        fs.closeSync(fd)
      }
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })

  it('acquireArena hands a released arena back when it is big enough and computes with the same kernels, and a new one otherwise', () => {
    const wasm = parityKernels('wasm')
    const a = acquireArena(64 * 1024, wasm)
    assert.ok(a.size >= 64 * 1024)
    releaseArena(a)
    const b = acquireArena(32 * 1024, wasm)
    assert.equal(b, a)
    const c = acquireArena(32 * 1024, wasm) // b is taken: a fresh one
    assert.notEqual(c, b)
    releaseArena(b)
    releaseArena(c)
    const d = acquireArena(a.size + 4096, wasm)
    assert.ok(d.size >= a.size + 4096)
    assert.notEqual(d, a)
    releaseArena(d)
    const e = acquireArena(4096, parityKernels('js')) // the spare computes with the other kernels
    assert.notEqual(e, d)
    assert.equal(e.kernels.backend, 'js')
  })
})
