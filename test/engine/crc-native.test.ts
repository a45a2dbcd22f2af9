/**
 * The native CRC32C addon (native/crc32c_pages.c, built into build/Release by `npm install`).
 *
 * The addon-only tests skip when the addon is not built (the module then falls back to
 * @node-rs/crc32 or pure JS); with R5CTL_REQUIRE_NATIVE=1 (CI) a missing addon is a failure.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {createRequire} from 'node:module'
import CRC32C from 'crc-32/crc32c.js'
import {DEFAULT_CRC, crc32c, crc32cPages, crc32cRaw, crc32cRawReference} from '../../src/engine/checksum.js'
import {refRaw, rng, randomBytes, u32} from '../helpers/reference.js'
import {ADDON_PATH, CHECKSUM_MODULE, type LooseAddon} from '../helpers/addon.js'

const ADDON_NAME = 'native addon (sse4.2, batched)'
const PAGE = 4096

/** The addon loaded directly (independently of checksum.ts), or the reason it did not load. */
function loadAddon(): {addon: LooseAddon | null; why: string} {
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as LooseAddon
    if (!addon.sse42) return {addon: null, why: 'the addon loaded but reports no SSE4.2 on this CPU'}
    return {addon, why: ''}
  } catch (e) {
    return {addon: null, why: `${ADDON_PATH} did not load (${(e as Error).message.split('\n')[0]})`}
  }
}
const {addon, why} = loadAddon()
const requireNative = process.env.R5CTL_REQUIRE_NATIVE === '1'

/** Expected raw checksum of every page, from the pure-JS reference. */
function refPages(seed: number, buf: Uint8Array): number[] {
  const want: number[] = []
  for (let i = 0; i < buf.length / PAGE; i++) want.push(crc32cRawReference(seed, buf.subarray(i * PAGE, (i + 1) * PAGE)))
  return want
}

/** Backend name a fresh process reports for crcFor(choice) (undefined: the default). */
function childBackend(choice: string | undefined): string {
  const env = {...process.env}
  delete env.R5CTL_CRC
  const impl = choice === undefined ? 'm.DEFAULT_CRC' : `m.crcFor(${JSON.stringify(choice)})`
  const code = `import(${JSON.stringify(CHECKSUM_MODULE)}).then(m => { const c = ${impl}; process.stdout.write(c.name + ' ' + (~c.raw(0xffffffff, Buffer.from('123456789')) >>> 0).toString(16)) })`
  const res = spawnSync(process.execPath, ['-e', code], {env, encoding: 'utf8'})
  assert.equal(res.status, 0, res.stderr)
  const m = / e3069283$/.exec(res.stdout)
  assert.ok(m, `wrong check value from the child: ${res.stdout}`)
  return res.stdout.slice(0, m.index)
}

describe(`CRC32C native addon (backend in use: ${DEFAULT_CRC.name})`, () => {
  describe('golden values (any backend)', () => {
    it('standard check value of "123456789" is 0xe3069283', () => {
      assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283)
    })
    it('raw crc32c_le(0xffffffff, 4 KiB of zeros) = 0x6706be76', () => {
      const zero = new Uint8Array(PAGE)
      // Independent: the crc-32 package directly (standard form, inverted back) and the bitwise definition.
      assert.equal(~CRC32C.buf(zero, 0) >>> 0, 0x6706be76)
      assert.equal(refRaw(0xffffffff, zero), 0x6706be76)
      assert.equal(crc32cRaw(0xffffffff, zero), 0x6706be76)
      const out = new Uint32Array(3)
      crc32cPages(0xffffffff, new Uint8Array(3 * PAGE), out)
      assert.deepEqual([...out], [0x6706be76, 0x6706be76, 0x6706be76])
    })
  })

  describe('the addon', function () {
    before(function () {
      if (addon) return
      if (requireNative) assert.fail(`R5CTL_REQUIRE_NATIVE=1 but the native CRC addon is unavailable: ${why}`)
      console.log(`      (skipped: native CRC addon not built: ${why}; the module uses ${DEFAULT_CRC.name})`)
      this.skip()
    })
    const A = (): LooseAddon => addon as LooseAddon

    it('is the backend checksum.ts chose by default', () => {
      assert.equal(DEFAULT_CRC.name, ADDON_NAME)
    })

    it("crcFor('node-rs') and crcFor('js') skip it; a fresh process's default is it", () => {
      assert.equal(childBackend(undefined), ADDON_NAME)
      assert.ok(['@node-rs/crc32', 'crc-32 (js)'].includes(childBackend('node-rs')))
      assert.equal(childBackend('js'), 'crc-32 (js)')
    })

    it('exports the CRC functions, nothing else', () => {
      assert.deepEqual(Object.keys(A()).sort(), ['pages', 'raw', 'sse42'])
    })

    it('raw() is the bare register update: check value, empty input, chaining, seed taken mod 2^32', () => {
      const a = A()
      assert.equal(~a.raw(0xffffffff, new TextEncoder().encode('123456789')) >>> 0, 0xe3069283)
      for (const s of [0, 1, 0x80000000, 0xffffffff]) assert.equal(a.raw(s, new Uint8Array(0)), s)
      const r = rng(11)
      const x = randomBytes(r, 1001)
      const s = u32(r)
      assert.equal(a.raw(a.raw(s, x.subarray(0, 333)), x.subarray(333)), a.raw(s, x))
      assert.equal(a.raw(-1, x), a.raw(0xffffffff, x))
      assert.equal(a.raw(~s, x), a.raw(~s >>> 0, x))
    })

    it('raw() agrees with the bitwise definition and crc-32 on random lengths 0..9000 at every byte offset 0..15', () => {
      const a = A()
      const r = rng(12)
      const pool = randomBytes(r, 9000 + 16)
      for (let i = 0; i < 600; i++) {
        const len = i < 40 ? i : (r() * 9001) | 0
        const off = i % 16
        const view = pool.subarray(off, off + len)
        const seed = u32(r)
        const want = crc32cRawReference(seed, view)
        assert.equal(a.raw(seed, view), want, `len ${len} off ${off} seed ${seed}`)
        if (len < 64) assert.equal(want, refRaw(seed, view))
      }
    })

    it('pages() agrees with crc-32 for 1..50 pages (every interleave remainder), many seeds, odd offsets, outOff > 0', () => {
      const a = A()
      const r = rng(13)
      const pool = randomBytes(r, 50 * PAGE + 16)
      const fixedSeeds = [0, 1, 0xffffffff, 0x80000000, 0x12345678]
      for (let n = 1; n <= 50; n++) {
        const seeds = n <= 6 ? [...fixedSeeds, u32(r), u32(r)] : [u32(r)]
        for (const seed of seeds) {
          const off = [0, 1, 3, 7, 13][(n + seed) % 5]
          const outOff = (seed + n) % 4
          const view = pool.subarray(off, off + n * PAGE)
          const out = new Uint32Array(outOff + n + 2).fill(0xdeadbeef)
          a.pages(seed, view, out, outOff)
          const want = refPages(seed, view)
          for (let i = 0; i < outOff; i++) assert.equal(out[i], 0xdeadbeef, `n ${n}: wrote before outOff`)
          assert.deepEqual([...out.subarray(outOff, outOff + n)], want, `n ${n} seed ${seed} off ${off} outOff ${outOff}`)
          assert.deepEqual([...out.subarray(outOff + n)], [0xdeadbeef, 0xdeadbeef], `n ${n}: wrote past the end`)
        }
      }
    })

    it('pages() on a 2 MiB batch and on an exactly-sized out array; crc32cPages gives the same', () => {
      const a = A()
      const r = rng(14)
      const buf = randomBytes(r, 512 * PAGE + 5).subarray(5) // odd offset into the ArrayBuffer
      const seed = u32(r)
      const out = new Uint32Array(512)
      a.pages(seed, buf, out, 0)
      assert.deepEqual([...out], refPages(seed, buf))
      const out2 = new Uint32Array(520)
      crc32cPages(seed, buf, out2, 8)
      assert.deepEqual([...out2.subarray(8)], [...out])
      // a view of a larger Uint32Array: out's own byteOffset must be honoured too
      const big = new Uint32Array(600).fill(7)
      a.pages(seed, buf.subarray(0, 3 * PAGE), big.subarray(10, 13), 0)
      assert.deepEqual([...big.subarray(9, 14)], [7, out[0], out[1], out[2], 7])
      // Buffer (a Uint8Array subclass) works; an empty batch writes nothing, even at outOff = out.length
      a.pages(seed, Buffer.from(buf.subarray(0, PAGE)), out2, 0)
      assert.equal(out2[0], out[0])
      a.pages(seed, new Uint8Array(0), new Uint32Array(0), 0)
      a.pages(seed, new Uint8Array(0), out2, out2.length)
    })

    it('pages() throws RangeError for partial pages or no room, TypeError for wrong argument types', () => {
      const a = A()
      const out = new Uint32Array(2)
      for (const len of [1, 4095, 4097, 8191]) assert.throws(() => a.pages(0, new Uint8Array(len), out, 0), RangeError, `len ${len}`)
      assert.throws(() => a.pages(0, new Uint8Array(3 * PAGE), out, 0), RangeError)
      assert.throws(() => a.pages(0, new Uint8Array(2 * PAGE), out, 1), RangeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out, 2), RangeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out, -1), RangeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out, 0.5), RangeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out, NaN), RangeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out, 2 ** 53), RangeError)
      assert.throws(() => a.pages(0, new Uint16Array(PAGE / 2), out, 0), TypeError)
      assert.throws(() => a.pages(0, new DataView(new ArrayBuffer(PAGE)), out, 0), TypeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), new Int32Array(2), 0), TypeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), [0, 0], 0), TypeError)
      assert.throws(() => a.pages('0', new Uint8Array(PAGE), out, 0), TypeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out, '0'), TypeError)
      assert.throws(() => a.pages(0, new Uint8Array(PAGE), out), TypeError)
      assert.throws(() => a.raw(0, 'abc'), TypeError)
      assert.throws(() => a.raw(0), TypeError)
      assert.deepEqual([...out], [0, 0], 'a rejected call must not write')
      // the exported wrapper keeps its own RangeErrors
      assert.throws(() => crc32cPages(0, new Uint8Array(4095), new Uint32Array(1)), RangeError)
      assert.throws(() => crc32cPages(0, new Uint8Array(2 * PAGE), new Uint32Array(1)), RangeError)
    })
  })
})
