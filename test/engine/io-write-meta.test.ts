/**
 * encodeDataParityMeta (the write path's allocation-free meta block encoder) against the reference
 * encodeMetaBlock: byte-identical pages for random payload sets — RAID4/5 stripes (data + one
 * parity page), RAID6 stripes (parity payloads of 16 sectors with two checksums), write-back
 * data-only units, locations and positions beyond 32 bits, full meta blocks.
 */
import assert from 'node:assert/strict'
import {uuidSeed} from '../../src/engine/checksum.js'
import {
  type DataParityRecords,
  type Payload,
  BLOCK_SIZE,
  PAYLOAD_DATA,
  PAYLOAD_PARITY,
  decodeMetaBlock,
  encodeDataParityMeta,
  encodeMetaBlock,
} from '../../src/engine/format/meta.js'

function rng(seed: number) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x100000000
  }
}

const SEED = uuidSeed(Uint8Array.from({length: 16}, (_, i) => i * 17 + 3))

interface Case {
  seq: bigint
  position: number
  payloads: Payload[]
  recs: DataParityRecords
  from: number
  to: number
  sums: Uint32Array
}

/**
 * A random io unit as the write path builds it: `stripes` stripes of 1..D data pages, each followed
 * by its parity payload unless write-back; placed at record index `from` of larger tables, with
 * checksums at a random place in a larger sums array.
 */
function randomCase(r: () => number, opts: {nParity: 0 | 1 | 2; stripes: number; maxData: number; bigLocations: boolean}): Case {
  const cap = 2048
  const recs: DataParityRecords = {
    type: new Uint8Array(cap),
    location: new Float64Array(cap),
    firstSum: new Int32Array(cap),
    pages: new Uint8Array(cap),
  }
  const sums = new Uint32Array(cap)
  for (let i = 0; i < cap; i++) sums[i] = Math.floor(r() * 0x100000000)
  // garbage around the range the encoder must read
  for (let i = 0; i < cap; i++) {
    recs.type[i] = 7
    recs.location[i] = r() * 1e12
    recs.firstSum[i] = -1
    recs.pages[i] = 9
  }
  const from = Math.floor(r() * 100)
  let page = Math.floor(r() * 50)
  let i = from
  const payloads: Payload[] = []
  const locBase = opts.bigLocations ? Math.floor(r() * 2 ** 52) : Math.floor(r() * 2 ** 30)
  for (let s = 0; s < opts.stripes; s++) {
    const stripe = locBase + s * 8 * (1 + Math.floor(r() * 4))
    const d = 1 + Math.floor(r() * opts.maxData)
    page++ // the meta block's own page is in the log too
    for (let k = 0; k < d; k++) {
      const location = stripe * 3 + k * 8
      recs.type[i] = PAYLOAD_DATA
      recs.location[i] = location
      recs.firstSum[i] = page
      recs.pages[i] = 1
      payloads.push({type: PAYLOAD_DATA, flags: 0, sizeSectors: 8, location: BigInt(location), checksums: [sums[page]]})
      i++
      page++
    }
    if (opts.nParity) {
      recs.type[i] = PAYLOAD_PARITY
      recs.location[i] = stripe
      recs.firstSum[i] = page
      recs.pages[i] = opts.nParity
      payloads.push({
        type: PAYLOAD_PARITY,
        flags: 0,
        sizeSectors: 8 * opts.nParity,
        location: BigInt(stripe),
        checksums: [...sums.subarray(page, page + opts.nParity)],
      })
      i++
      page += opts.nParity
    }
  }
  const seq = BigInt(Math.floor(r() * 2 ** 32)) * BigInt(Math.floor(r() * 2 ** 32)) + BigInt(Math.floor(r() * 1000))
  const position = opts.bigLocations ? Math.floor(r() * 2 ** 40) * 8 : Math.floor(r() * 2 ** 20) * 8
  return {seq, position, payloads, recs, from, to: i, sums}
}

describe('write path meta encoder (encodeDataParityMeta)', () => {
  const r = rng(2024)
  const kinds = [
    {name: 'RAID5 stripes (data + P)', nParity: 1 as const, maxData: 7},
    {name: 'RAID6 stripes (data + 16-sector P+Q payloads)', nParity: 2 as const, maxData: 6},
    {name: 'write-back data-only units', nParity: 0 as const, maxData: 12},
  ]
  for (const k of kinds) {
    it(`${k.name}: byte-identical to encodeMetaBlock`, () => {
      for (let trial = 0; trial < 300; trial++) {
        const stripes = 1 + Math.floor(r() * 40)
        const c = randomCase(r, {nParity: k.nParity, stripes, maxData: k.maxData, bigLocations: trial % 2 === 1})
        let size = 32
        for (const p of c.payloads) size += p.type === 2 ? 0 : 16 + 4 * p.checksums.length
        const want = size <= BLOCK_SIZE ? encodeMetaBlock({seq: c.seq, position: BigInt(c.position), payloads: c.payloads}, SEED) : null
        // output into a dirty buffer at an offset: every byte of the page must be written
        const out = new Uint8Array(BLOCK_SIZE + 100).fill(0xa5).subarray(37)
        if (!want) {
          assert.throws(() => encodeDataParityMeta(out, SEED, c.seq, c.position, c.recs, c.from, c.to, c.sums), RangeError)
          continue
        }
        const got = encodeDataParityMeta(out, SEED, c.seq, c.position, c.recs, c.from, c.to, c.sums)
        assert.equal(got.length, BLOCK_SIZE)
        assert.equal(got.byteOffset, out.byteOffset)
        assert.deepEqual(got, want, `trial ${trial}`)
        const dec = decodeMetaBlock(got, SEED, {seq: c.seq, position: BigInt(c.position)})
        assert.deepEqual(dec.problems, [])
        assert.deepEqual(dec.meta!.payloads, c.payloads)
      }
    })
  }

  it('a meta block filled as far as its payloads go, and one payload more is refused', () => {
    const r2 = rng(7)
    for (const nParity of [0, 1, 2] as const) {
      const c = randomCase(r2, {nParity, stripes: 400, maxData: 1, bigLocations: false})
      // largest prefix that fits
      let size = 32
      let to = c.from
      while (to < c.to && size + 16 + 4 * c.recs.pages[to] <= BLOCK_SIZE) size += 16 + 4 * c.recs.pages[to++]
      const payloads = c.payloads.slice(0, to - c.from)
      const want = encodeMetaBlock({seq: c.seq, position: BigInt(c.position), payloads}, SEED)
      assert.deepEqual(encodeDataParityMeta(new Uint8Array(BLOCK_SIZE), SEED, c.seq, c.position, c.recs, c.from, to, c.sums), want)
      assert.throws(() => encodeDataParityMeta(new Uint8Array(BLOCK_SIZE), SEED, c.seq, c.position, c.recs, c.from, to + 1, c.sums), RangeError)
    }
  })

  it('an empty range encodes the empty meta block', () => {
    const c = randomCase(rng(3), {nParity: 1, stripes: 2, maxData: 2, bigLocations: true})
    const want = encodeMetaBlock({seq: c.seq, position: BigInt(c.position), payloads: []}, SEED)
    assert.deepEqual(encodeDataParityMeta(new Uint8Array(BLOCK_SIZE), SEED, c.seq, c.position, c.recs, 5, 5, c.sums), want)
  })
})
