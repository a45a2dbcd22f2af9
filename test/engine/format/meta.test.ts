import assert from 'node:assert/strict'
import {refRaw} from '../../helpers/reference.js'
import {uuidSeed} from '../../../src/engine/checksum.js'
import {
  BLOCK_SIZE,
  META_HEADER_SIZE,
  META_MAGIC,
  type MetaBlock,
  type Payload,
  decodeMetaBlock,
  encodeMetaBlock,
  pagesOf,
  payloadBytes,
} from '../../../src/engine/format/meta.js'

const UUID = Uint8Array.from([0x3a, 0x1f, 0x0c, 0x44, 0x9b, 0x2e, 0x7d, 0x10, 0x55, 0xaa, 0x66, 0xbb, 0x0f, 0x1e, 0x2d, 0x3c])
const SEED = refRaw(0xffffffff, UUID)

/** Recompute and store the checksum of a hand-edited block, the way the kernel does. */
function reseal(b: Uint8Array, seed = SEED): void {
  const dv = new DataView(b.buffer, b.byteOffset, BLOCK_SIZE)
  dv.setUint32(4, 0, true)
  dv.setUint32(4, refRaw(seed, b.subarray(0, BLOCK_SIZE)), true)
}

const data = (location: bigint, checksums: number[], flags = 0): Payload => ({type: 0, flags, sizeSectors: 8 * checksums.length, location, checksums})
const parity = (location: bigint, checksums: number[]): Payload => ({type: 1, flags: 0, sizeSectors: 8 * checksums.length, location, checksums})
const flush = (stripes: bigint[]): Payload => ({type: 2, flags: 1, stripes})

/** A RAID6-like io unit: three data pages, P+Q of one stripe, and a flush list. */
const SAMPLE = {
  seq: 0x1122334455667788n,
  position: 0x0000000000001230n,
  payloads: [
    data(0x1000n, [0xaaaaaaa1]),
    data(0x1008n, [0xaaaaaaa2], 1),
    data(0x2000n, [0xaaaaaaa3]),
    parity(0x800n, [0xbbbbbbb1, 0xbbbbbbb2]),
    flush([0x10n, 0x20n, 0xffffffffffffffffn]),
  ],
}

const codes = (r: {problems: {code: string}[]}): string[] => r.problems.map(p => p.code)

describe('meta block', () => {
  it("seed used by these tests is the module's uuidSeed", () => {
    assert.equal(uuidSeed(UUID), SEED)
  })

  describe('pinned offsets', () => {
    const b = encodeMetaBlock(SAMPLE, SEED)
    const dv = new DataView(b.buffer, b.byteOffset, b.length)
    it('header', () => {
      assert.equal(b.length, BLOCK_SIZE)
      assert.equal(dv.getUint32(0, true), 0x6433c509, 'magic')
      assert.equal(b[8], 1, 'version')
      assert.equal(b[9], 0, 'pad')
      assert.equal(dv.getUint16(10, true), 0, 'pad')
      assert.equal(dv.getUint32(12, true), 32 + 3 * 20 + 24 + 8 + 24, 'meta_size')
      assert.equal(dv.getBigUint64(16, true), 0x1122334455667788n, 'seq')
      assert.equal(dv.getBigUint64(24, true), 0x1230n, 'position')
    })
    it('data payloads: type, flags, size (sectors), location, checksum', () => {
      let off = 32
      for (const [loc, csum, flags] of [
        [0x1000n, 0xaaaaaaa1, 0],
        [0x1008n, 0xaaaaaaa2, 1],
        [0x2000n, 0xaaaaaaa3, 0],
      ] as const) {
        assert.equal(dv.getUint16(off, true), 0, 'type DATA')
        assert.equal(dv.getUint16(off + 2, true), flags, 'flags')
        assert.equal(dv.getUint32(off + 4, true), 8, 'size in sectors')
        assert.equal(dv.getBigUint64(off + 8, true), loc, 'location')
        assert.equal(dv.getUint32(off + 16, true), csum, 'checksum[0]')
        off += 20
      }
    })
    it('parity payload with two checksums (P and Q)', () => {
      const off = 32 + 60
      assert.equal(dv.getUint16(off, true), 1)
      assert.equal(dv.getUint32(off + 4, true), 16)
      assert.equal(dv.getBigUint64(off + 8, true), 0x800n)
      assert.equal(dv.getUint32(off + 16, true), 0xbbbbbbb1)
      assert.equal(dv.getUint32(off + 20, true), 0xbbbbbbb2)
    })
    it('flush payload: size is bytes of the list', () => {
      const off = 32 + 60 + 24
      assert.equal(dv.getUint16(off, true), 2)
      assert.equal(dv.getUint16(off + 2, true), 1)
      assert.equal(dv.getUint32(off + 4, true), 24)
      assert.equal(dv.getBigUint64(off + 8, true), 0x10n)
      assert.equal(dv.getBigUint64(off + 16, true), 0x20n)
      assert.equal(dv.getBigUint64(off + 24, true), 0xffffffffffffffffn)
    })
    it('zeros after meta_size; checksum over the whole page with the field zeroed', () => {
      assert.ok(b.subarray(32 + 60 + 24 + 32).every(x => x === 0))
      const copy = Uint8Array.from(b)
      new DataView(copy.buffer).setUint32(4, 0, true)
      assert.equal(dv.getUint32(4, true), refRaw(SEED, copy))
    })
  })

  describe('round trip', () => {
    it('decode(encode(m)) gives the payloads back with no problems', () => {
      const b = encodeMetaBlock(SAMPLE, SEED)
      const r = decodeMetaBlock(b, SEED, {seq: SAMPLE.seq, position: SAMPLE.position})
      assert.deepEqual(r.problems, [])
      const meta = r.meta as MetaBlock
      assert.equal(meta.magic, META_MAGIC)
      assert.equal(meta.version, 1)
      assert.equal(meta.metaSize, 32 + SAMPLE.payloads.reduce((s, p) => s + payloadBytes(p), 0))
      assert.equal(meta.checksum, r.computedChecksum)
      assert.equal(meta.seq, SAMPLE.seq)
      assert.equal(meta.position, SAMPLE.position)
      assert.deepEqual(meta.payloads, SAMPLE.payloads)
      assert.equal(pagesOf(meta), 5)
      assert.deepEqual(encodeMetaBlock(meta, SEED), b)
    })
    it('payloadBytes', () => {
      assert.equal(payloadBytes(data(0n, [1])), 20)
      assert.equal(payloadBytes(parity(0n, [1, 2])), 24)
      assert.equal(payloadBytes(flush([])), 8)
      assert.equal(payloadBytes(flush([1n, 2n])), 24)
    })
    it('writes into a caller buffer in place, clearing stale bytes', () => {
      const out = new Uint8Array(BLOCK_SIZE + 16).fill(0xee)
      const ret = encodeMetaBlock({seq: 5n, position: 8n, payloads: [data(0n, [7])]}, SEED, out)
      assert.equal(ret.buffer, out.buffer)
      assert.equal(ret.byteOffset, 0)
      assert.equal(ret.length, BLOCK_SIZE)
      assert.ok(out.subarray(52, BLOCK_SIZE).every(x => x === 0))
      assert.ok(
        out.subarray(BLOCK_SIZE).every(x => x === 0xee),
        'bytes past the block untouched',
      )
      assert.deepEqual(codes(decodeMetaBlock(out.subarray(0, BLOCK_SIZE), SEED)), [])
    })
    it('a block filling the page exactly', () => {
      // 32 + 203 * 20 = 4092; one more 4-byte checksum on the last payload makes 4096.
      const payloads = Array.from({length: 203}, (_, i) => data(BigInt(i * 8), [i]))
      payloads[202] = data(0n, [1, 2])
      const b = encodeMetaBlock({seq: 1n, position: 0n, payloads}, SEED)
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(r.problems, [])
      assert.equal(r.meta?.metaSize, 4096)
      assert.equal(r.meta.payloads.length, 203)
      assert.equal(pagesOf(r.meta), 204)
    })
  })

  describe('empty meta block (as r5l_log_write_empty_meta_block and mdadm write it)', () => {
    it('matches a block built by hand and checksummed with the bitwise reference', () => {
      const seq = 0x9e3779b9n
      const position = 0n
      const want = new Uint8Array(BLOCK_SIZE)
      const dv = new DataView(want.buffer)
      dv.setUint32(0, 0x6433c509, true)
      want[8] = 1
      dv.setUint32(12, 32, true)
      dv.setBigUint64(16, seq, true)
      dv.setBigUint64(24, position, true)
      dv.setUint32(4, refRaw(refRaw(0xffffffff, UUID), want), true)
      const got = encodeMetaBlock({seq, position, payloads: []}, uuidSeed(UUID))
      assert.deepEqual(got, want)
      const r = decodeMetaBlock(got, SEED, {seq, position})
      assert.deepEqual(r.problems, [])
      assert.deepEqual(r.meta?.payloads, [])
      assert.equal(pagesOf(r.meta), 0)
    })
    it('checksum depends on the seed (set uuid)', () => {
      const a = encodeMetaBlock({seq: 1n, position: 0n, payloads: []}, SEED)
      const b = encodeMetaBlock({seq: 1n, position: 0n, payloads: []}, SEED ^ 1)
      assert.notDeepEqual(a.subarray(4, 8), b.subarray(4, 8))
      assert.deepEqual(codes(decodeMetaBlock(a, SEED ^ 1)), ['bad-checksum'])
    })
  })

  describe('problems', () => {
    const good = (): Uint8Array => encodeMetaBlock(SAMPLE, SEED)
    it('short: under 32 bytes gives no meta', () => {
      for (const n of [0, 1, 31]) {
        const r = decodeMetaBlock(good().subarray(0, n), SEED)
        assert.equal(r.meta, null)
        assert.deepEqual(codes(r), ['short'])
      }
    })
    it('short: a partial page still decodes the header', () => {
      const r = decodeMetaBlock(good().subarray(0, 100), SEED)
      assert.ok(r.meta)
      assert.equal(r.meta.seq, SAMPLE.seq)
      assert.deepEqual(codes(r), ['short', 'bad-checksum'])
    })
    it('bad-magic and a zeroed block', () => {
      const b = good()
      b[0] ^= 1
      reseal(b)
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(codes(r), ['bad-magic'])
      assert.deepEqual(r.meta?.payloads, [], 'payloads are not parsed from a non-meta block')
      const z = decodeMetaBlock(new Uint8Array(BLOCK_SIZE), SEED)
      assert.deepEqual(codes(z), ['bad-magic', 'bad-version', 'bad-checksum'])
      assert.equal(z.problems[0].message, 'bad magic 0x00000000 (expected 0x6433c509)')
    })
    it('bad-version', () => {
      const b = good()
      b[8] = 2
      reseal(b)
      assert.deepEqual(codes(decodeMetaBlock(b, SEED)), ['bad-version'])
    })
    it('bad-checksum, with expected and stored values', () => {
      const b = good()
      b[4000] ^= 0x40 // past meta_size: still covered by the checksum
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(codes(r), ['bad-checksum'])
      const stored = new DataView(b.buffer).getUint32(4, true)
      const hex = (v: number): string => '0x' + v.toString(16).padStart(8, '0')
      assert.equal(r.problems[0].message, `checksum expected ${hex(r.computedChecksum)} got ${hex(stored)}`)
      assert.equal(r.meta?.payloads.length, 5, 'payloads are still parsed for inspection')
    })
    it('seq-mismatch and position-mismatch', () => {
      const b = good()
      assert.deepEqual(codes(decodeMetaBlock(b, SEED, {seq: SAMPLE.seq + 1n})), ['seq-mismatch'])
      assert.deepEqual(codes(decodeMetaBlock(b, SEED, {position: 0n})), ['position-mismatch'])
      assert.deepEqual(codes(decodeMetaBlock(b, SEED, {seq: 0n, position: 0n})), ['seq-mismatch', 'position-mismatch'])
      assert.deepEqual(codes(decodeMetaBlock(b, SEED, {})), [])
    })
    it('bad-meta-size: meta_size > 4096 (payload parsing stops at the page end)', () => {
      const b = good()
      new DataView(b.buffer).setUint32(12, 5000, true)
      reseal(b)
      const r = decodeMetaBlock(b, SEED)
      // The zeros after the sample (from offset 148) parse as 16-byte empty DATA payloads; the
      // 247th would end at 4100, past the page, so parsing stops there.
      assert.deepEqual(codes(r), ['bad-meta-size', 'bad-payload'])
      assert.match(r.problems[1].message, /runs past 4096/)
    })
    it('meta_size below the header is accepted like the kernel does (no payloads)', () => {
      const b = good()
      new DataView(b.buffer).setUint32(12, 0, true)
      reseal(b)
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(codes(r), [])
      assert.deepEqual(r.meta?.payloads, [])
    })
    it('bad-payload: truncated payload (meta_size cuts it)', () => {
      const b = good()
      new DataView(b.buffer).setUint32(12, 32 + 20 + 10, true)
      reseal(b)
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(codes(r), ['bad-payload'])
      assert.equal(r.meta?.payloads.length, 1, 'payloads before the bad one are kept')
      const c = good()
      new DataView(c.buffer).setUint32(12, 32 + 20 + 4, true) // not even a payload header left
      reseal(c)
      assert.deepEqual(codes(decodeMetaBlock(c, SEED)), ['bad-payload'])
    })
    it('bad-payload: unknown type', () => {
      const b = good()
      new DataView(b.buffer).setUint16(32 + 20, 7, true)
      reseal(b)
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(codes(r), ['bad-payload'])
      assert.match(r.problems[0].message, /unknown payload type 7 at offset 52/)
      assert.equal(r.meta?.payloads.length, 1)
    })
    it('bad-payload: sizes the kernel never writes', () => {
      const b = good()
      new DataView(b.buffer).setUint32(32 + 4, 12, true) // data size 12 sectors
      reseal(b)
      assert.deepEqual(codes(decodeMetaBlock(b, SEED)), ['bad-payload'])
      const c = good()
      new DataView(c.buffer).setUint32(32 + 84 + 4, 20, true) // flush list of 20 bytes
      reseal(c)
      assert.deepEqual(codes(decodeMetaBlock(c, SEED)), ['bad-payload'])
    })
    it('bad-payload: data payload with a huge size overruns', () => {
      const b = good()
      new DataView(b.buffer).setUint32(32 + 4, 0x7ffffff8, true)
      reseal(b)
      const r = decodeMetaBlock(b, SEED)
      assert.deepEqual(codes(r), ['bad-payload'])
      assert.deepEqual(r.meta?.payloads, [])
    })
    it('random garbage never throws', () => {
      let x = 99
      const b = new Uint8Array(BLOCK_SIZE)
      for (let i = 0; i < 300; i++) {
        for (let j = 0; j < b.length; j++) b[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24
        const dv = new DataView(b.buffer)
        if (i % 2) {
          dv.setUint32(0, META_MAGIC, true)
          b[8] = 1
          dv.setUint32(12, 32 + (i % 300), true)
        }
        assert.doesNotThrow(() => decodeMetaBlock(b.subarray(0, (i * 53) % (BLOCK_SIZE + 1)), SEED))
      }
    })
  })

  describe('encode refuses what cannot be stored', () => {
    it('payloads over one page', () => {
      const tooMany = Array.from({length: 204}, () => data(0n, [0]))
      assert.throws(() => encodeMetaBlock({seq: 0n, position: 0n, payloads: tooMany}, SEED), RangeError)
      assert.throws(() => encodeMetaBlock({seq: 0n, position: 0n, payloads: [flush(new Array(508).fill(0n))]}, SEED), RangeError)
      assert.doesNotThrow(() => encodeMetaBlock({seq: 0n, position: 0n, payloads: [flush(new Array(507).fill(0n))]}, SEED))
    })
    it('checksum count that disagrees with the size', () => {
      assert.throws(
        () => encodeMetaBlock({seq: 0n, position: 0n, payloads: [{type: 0, flags: 0, sizeSectors: 16, location: 0n, checksums: [1]}]}, SEED),
        RangeError,
      )
      assert.throws(
        () => encodeMetaBlock({seq: 0n, position: 0n, payloads: [{type: 1, flags: 0, sizeSectors: 4, location: 0n, checksums: []}]}, SEED),
        RangeError,
      )
    })
    it('unknown type and a small output buffer', () => {
      assert.throws(() => encodeMetaBlock({seq: 0n, position: 0n, payloads: [{type: 3} as unknown as Payload]}, SEED), RangeError)
      assert.throws(() => encodeMetaBlock({seq: 0n, position: 0n, payloads: []}, SEED, new Uint8Array(100)), RangeError)
    })
  })

  it('header size constant', () => {
    assert.equal(META_HEADER_SIZE, 32)
  })
})
