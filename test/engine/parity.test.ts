import assert from 'node:assert/strict'

import {mulInto, DEFAULT_PARITY, reconstruct as reconstructWith, parityKernels, xorInto} from '../../src/engine/parity.js'
import {gfInv, gfMul, gfPow2} from '../../src/engine/gf256.js'
import {ALGORITHM, Geometry} from '../../src/engine/geometry.js'

// ---------------------------------------------------------------------------------------------------
// Independent references, written from the definitions rather than from parity.ts.

/** Carry-less product of two bytes, reduced modulo x^8+x^4+x^3+x^2+1 one bit at a time. */
function clmul(a: number, b: number): number {
  let r = 0
  for (let i = 7; i >= 0; i--) {
    r <<= 1
    if (r & 0x100) r ^= 0x11d
    if ((b >> i) & 1) r ^= a
  }
  return r
}

function pow2(e: number): number {
  let r = 1
  for (let i = 0; i < e; i++) r = clmul(r, 2)
  return r
}

/** Q[i] = Σ g^slot · D[i], byte by byte. */
function naiveQ(data: Uint8Array[], slots: number[], len: number): Uint8Array {
  const q = new Uint8Array(len)
  data.forEach((d, z) => {
    const c = pow2(slots[z])
    for (let i = 0; i < len; i++) q[i] ^= clmul(c, d[i])
  })
  return q
}

function naiveP(data: Uint8Array[], len: number): Uint8Array {
  const p = new Uint8Array(len)
  for (const d of data) for (let i = 0; i < len; i++) p[i] ^= d[i]
  return p
}

/** xorshift32: reproducible random bytes. */
function rng(seed: number) {
  let x = seed >>> 0 || 0x9e3779b9
  const next = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
  const fill = (a: Uint8Array) => {
    for (let i = 0; i < a.length; i++) a[i] = next() & 255
    return a
  }
  return {next, fill, bytes: (n: number) => fill(new Uint8Array(n))}
}

/** A random page of `len` bytes starting `misalign` bytes into a fresh buffer. */
function page(r: ReturnType<typeof rng>, len: number, misalign = 0): Uint8Array {
  return r.fill(new Uint8Array(new ArrayBuffer(len + misalign + 8), misalign, len))
}

// ---------------------------------------------------------------------------------------------------

describe('parity', () => {
  describe('GF(2^8)', () => {
    it('gfMul matches a bitwise carry-less multiply mod 0x11d for all 65536 pairs', () => {
      for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) if (gfMul(a, b) !== clmul(a, b)) assert.fail(`${a}·${b}`)
    })
    it('gfInv(a)·a = 1 for every a ≠ 0, and gfInv(0) throws', () => {
      for (let a = 1; a < 256; a++) assert.equal(clmul(a, gfInv(a)), 1, `a=${a}`)
      assert.throws(() => gfInv(0), RangeError)
    })
    it('gfPow2 is g^e with g = 2 of order 255', () => {
      for (let e = 0; e < 300; e++) assert.equal(gfPow2(e), pow2(e % 255), `e=${e}`)
      assert.equal(gfPow2(255), 1)
      assert.equal(gfPow2(8), 0x1d)
      assert.equal(clmul(gfPow2(-1), 2), 1)
      for (let e = 1; e < 255; e++) assert.notEqual(gfPow2(e), 1)
    })
  })

  it('uses WebAssembly SIMD kernels where available, and by default', () => {
    assert.equal(parityKernels('wasm').backend, 'wasm-simd') // Node >= 16.4 always has WebAssembly SIMD
    assert.equal(parityKernels('js').backend, 'js')
    assert.equal(DEFAULT_PARITY.backend, 'wasm-simd')
  })

  for (const backend of ['wasm', 'js'] as const) {
    describe(`${backend} backend`, () => {
      // this implementation's functions, in place of the module's (which use the one in use)
      const kernels = parityKernels(backend)
      const {computeP, computeQ, computePQ} = kernels
      // every other call works in a caller's scratch left full of junk: what it held must never leak
      let calls = 0
      const reconstruct = (level: 4 | 5 | 6, pages: Uint8Array[], slots: readonly number[], missing: readonly number[]) => {
        const scratch = calls++ % 2 === 1 ? Uint8Array.from({length: 2 * pages[0].length + 64}, (_, i) => (i * 131 + calls) & 255) : undefined
        reconstructWith(level, pages, slots, missing, kernels, scratch)
      }

      it('a sequence of calls with different lengths and slot holes stays correct', () => {
        // the WASM path reuses one memory arena: stale bytes from an earlier call must never leak
        const r = rng(99)
        for (const len of [4096, 64, 65536, 128, 4096, 192, 4096]) {
          for (const slots of [[0, 1, 2, 3], [0, 1, 4, 5], [7, 2, 9], [3], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]) {
            const data = slots.map(() => page(r, len))
            const p = page(r, len)
            const q = page(r, len)
            computePQ(data, slots, p, q)
            assert.deepEqual(q, naiveQ(data, slots, len), `len ${len} slots ${slots}`)
            assert.deepEqual(p, naiveP(data, len))
            computeQ(data, slots, r.fill(q))
            assert.deepEqual(q, naiveQ(data, slots, len))
            computeP(data, r.fill(p))
            assert.deepEqual(p, naiveP(data, len))
          }
        }
      })

      describe('computeP / computeQ / computePQ', () => {
        const r = rng(1)
        for (const n of [1, 2, 3, 4, 5, 7, 8, 13]) {
          it(`${n} data pages: contiguous and DDF-like slots match the definition`, () => {
            const len = 4096
            const data = Array.from({length: n}, () => page(r, len))
            const slotSets = [
              Array.from({length: n}, (_, i) => i), // md
              Array.from({length: n}, (_, i) => (i + 2) % n), // md asymmetric rows: rotated
              Array.from({length: n}, (_, i) => (i >= 1 ? i + 2 : i)), // DDF: P, Q at slots 1, 2
              Array.from({length: n}, (_, i) => i + 2), // DDF: P, Q at 0, 1
              Array.from({length: n}, (_, i) => 3 * i + 5), // arbitrary gaps and offset
            ]
            const wantP = naiveP(data, len)
            for (const slots of slotSets) {
              const wantQ = naiveQ(data, slots, len)
              const p = new Uint8Array(len).fill(0xaa)
              const q = new Uint8Array(len).fill(0x55)
              computeQ(data, slots, q)
              assert.deepEqual(q, wantQ, `Q slots ${slots}`)
              computeP(data, p)
              assert.deepEqual(p, wantP)
              p.fill(1)
              q.fill(2)
              computePQ(data, slots, p, q)
              assert.deepEqual(p, wantP)
              assert.deepEqual(q, wantQ, `PQ slots ${slots}`)
            }
          })
        }
        it('more data pages than the WASM pointer table holds (300)', () => {
          const r2 = rng(300)
          const data = Array.from({length: 300}, () => page(r2, 128))
          const p = new Uint8Array(128)
          computeP(data, p)
          assert.deepEqual(p, naiveP(data, 128))
        })
        it('zero data pages give zero parity', () => {
          const p = new Uint8Array(64).fill(9)
          const q = new Uint8Array(64).fill(9)
          computePQ([], [], p, q)
          assert.deepEqual(p, new Uint8Array(64))
          assert.deepEqual(q, new Uint8Array(64))
          computeP([], p.fill(3))
          assert.deepEqual(p, new Uint8Array(64))
        })
        it('rejects mismatched lengths and bad slots', () => {
          const a = new Uint8Array(64)
          assert.throws(() => computeP([a, new Uint8Array(32)], new Uint8Array(64)), RangeError)
          assert.throws(() => computeQ([a, a], [0, 0], new Uint8Array(64)), RangeError)
          assert.throws(() => computeQ([a], [255], new Uint8Array(64)), RangeError)
          assert.throws(() => computeQ([a, a], [0], new Uint8Array(64)), RangeError)
          assert.throws(() => xorInto(a, new Uint8Array(8)), RangeError)
        })
        it('Q of a single page at slot s is g^s·D (the generator really is 2)', () => {
          const d = Uint8Array.from({length: 64}, (_, i) => i * 3 + 1)
          const q = new Uint8Array(64)
          computeQ([d], [1], q)
          for (let i = 0; i < 64; i++) assert.equal(q[i], clmul(2, d[i]))
        })
      })

      describe('fast paths against byte-wise references at odd alignments and lengths', () => {
        const r = rng(7)
        // offsets 0 (64-bit words), 4 (32-bit words), 1-3 (bytes); lengths with and without tails
        const shapes: [number, number][] = [
          [4096, 0],
          [4096, 4],
          [4096, 1],
          [4096, 2],
          [4096, 3],
          [4100, 0],
          [4099, 4],
          [13, 0],
          [7, 5],
          [0, 0],
          [64, 8],
          [72, 12],
        ]
        for (const [len, off] of shapes) {
          it(`length ${len}, byteOffset ${off}`, () => {
            for (const n of [1, 2, 3, 4, 5, 6, 9]) {
              // mix alignments within one call: the first page sets the offset, the others vary
              const data = Array.from({length: n}, (_, i) => page(r, len, i === 0 ? off : (off + i * 4) % 16))
              const slots = Array.from({length: n}, (_, i) => (n > 2 && i >= 1 ? i + 2 : i))
              const p = page(r, len, off)
              const q = page(r, len, (off + 8) % 16)
              computePQ(data, slots, p, q)
              assert.deepEqual(p, naiveP(data, len))
              assert.deepEqual(q, naiveQ(data, slots, len))
              const contiguous = slots.map((_, i) => i)
              computeQ(data, contiguous, q)
              assert.deepEqual(q, naiveQ(data, contiguous, len))
              computeP(data, p)
              assert.deepEqual(p, naiveP(data, len))
            }
            const dst = page(r, len, off)
            const src = page(r, len, (off + 4) % 8)
            const want = Uint8Array.from(dst, (v, i) => v ^ src[i])
            xorInto(dst, src)
            assert.deepEqual(dst, want)
            for (const c of [0, 1, 2, 0x1d, 0x53, 0x8e, 0xff]) {
              const d2 = page(r, len, off)
              const want2 = Uint8Array.from(d2, (v, i) => v ^ clmul(c, src[i]))
              mulInto(d2, src, c)
              assert.deepEqual(d2, want2, `coef ${c}`)
            }
          })
        }
      })

      describe('reconstruct', () => {
        const r = rng(42)
        const len = 4096

        /** Builds a consistent stripe, wipes `missing`, rebuilds it and compares with the original. */
        function roundTrip(level: 4 | 5 | 6, k: number, slots: number[], missing: number[], misalign = 0): void {
          const data = Array.from({length: k}, () => page(r, len, misalign))
          const p = new Uint8Array(len)
          const q = new Uint8Array(len)
          if (level === 6) computePQ(data, slots, p, q)
          else computeP(data, p)
          const pages = level === 6 ? [...data, p, q] : [...data, p]
          const original = pages.map(x => Uint8Array.from(x))
          for (const m of missing) r.fill(pages[m])
          reconstruct(level, pages, slots, missing)
          pages.forEach((x, i) => assert.deepEqual(x, original[i], `level ${level} k=${k} slots=${slots} missing=${missing}: page ${i}`))
        }

        for (const level of [4, 5] as const) {
          it(`RAID${level}: any single missing page, 1..8 data pages`, () => {
            for (let k = 1; k <= 8; k++) {
              const slots = Array.from({length: k}, (_, i) => i)
              for (let m = 0; m <= k; m++) roundTrip(level, k, slots, [m])
              roundTrip(level, k, slots, [])
            }
          })
        }

        it('RAID6: every single and every pair, 2..8 data pages, md / rotated / DDF slots', () => {
          for (let k = 2; k <= 8; k++) {
            const slotSets = [
              Array.from({length: k}, (_, i) => i),
              Array.from({length: k}, (_, i) => (i + 1) % k),
              Array.from({length: k}, (_, i) => (i >= k - 1 ? i + 2 : i)), // DDF: P, Q in the middle
              Array.from({length: k}, (_, i) => i + 2), // DDF: P, Q first
            ]
            for (const slots of slotSets) {
              for (let a = 0; a < k + 2; a++) {
                roundTrip(6, k, slots, [a])
                for (let b = a + 1; b < k + 2; b++) roundTrip(6, k, slots, b % 2 ? [a, b] : [b, a])
              }
            }
          }
        })

        it('RAID6 with the slots Geometry hands out, every layout', () => {
          for (const layout of [0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 18, 19, 20]) {
            const g = new Geometry(6, 7, 8, layout, 8n * 7n)
            for (let row = 0; row < g.period; row++) {
              const {qSlot} = g.rowInfo(row)
              roundTrip(6, g.dataDisks, [...qSlot], [0, 3])
              roundTrip(6, g.dataDisks, [...qSlot], [2, g.dataDisks])
            }
          }
          assert.equal(ALGORITHM.ROTATING_N_CONTINUE, 10)
        })

        it('works on unaligned pages', () => {
          roundTrip(6, 5, [0, 1, 2, 3, 4], [1, 3], 3)
          roundTrip(6, 5, [0, 1, 4, 5, 6], [0, 5], 4)
          roundTrip(5, 5, [0, 1, 2, 3, 4], [2], 1)
        })

        it('refuses more losses than the level tolerates', () => {
          const pages = Array.from({length: 5}, () => new Uint8Array(64))
          assert.throws(() => reconstruct(5, pages, [0, 1, 2, 3], [0, 1]), RangeError)
          assert.throws(() => reconstruct(6, pages, [0, 1, 2], [0, 1, 2]), RangeError)
          assert.throws(() => reconstruct(6, pages, [0, 1, 2], [5]), RangeError)
          assert.throws(() => reconstruct(6, pages, [0, 1], [0]), RangeError)
        })
      })
    })
  }
})
