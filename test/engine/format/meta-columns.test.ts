/**
 * decodeMeta into one reused MetaColumns (as a walk of the log decodes every block) against a
 * decode into fresh columns (decodeMetaBlock): the same problems and, on a valid block, the same
 * payloads through the column accessors (type, size, location, checksums, flush stripes), on valid
 * blocks (whose payloads must also be exactly what the encoder was given) and on blocks broken in
 * every field the kernel checks (magic, version, meta_size, checksum, seq, position, payload sizes
 * and types, payloads running past meta_size). Mutated blocks are re-checksummed half of the time,
 * so the payload checks are reached too and not only the checksum.
 */
import assert from 'node:assert/strict'
import {MetaColumns, PAYLOAD_FLUSH, decodeMeta, decodeMetaBlock, encodeMetaBlock, pagesOf} from '../../../src/engine/format/meta.js'
import {SEED, mutate, randomPayloads, rechecksum} from '../../helpers/meta-blocks.js'
import {rng} from '../../helpers/reference.js'

function assertSame(page: Uint8Array, seq: bigint | undefined, position: number, cols: MetaColumns, why: string): void {
  const ref = decodeMetaBlock(page, SEED, {seq, position: BigInt(position)})
  const refOk = ref.meta !== null && ref.problems.length === 0
  const problems = decodeMeta(page, SEED, {seq, position}, cols)
  assert.deepEqual(problems, ref.problems, `${why}: problems`)
  const ok = problems.length === 0
  assert.equal(ok, refOk, why)
  if (!ok) return
  const m = ref.meta!
  assert.equal(cols.seq, m.seq, why)
  assert.equal(cols.count, m.payloads.length, why)
  assert.equal(cols.pages, pagesOf(m), why)
  let huge = false
  m.payloads.forEach((p, i) => {
    assert.equal(cols.type[i], p.type, `${why}: payload ${i} type`)
    if (p.type === PAYLOAD_FLUSH) {
      assert.equal(cols.size[i], 8 * p.stripes.length, `${why}: payload ${i} size`)
      p.stripes.forEach((s, k) => assert.equal(cols.stripe(i, k), Number(s), `${why}: payload ${i} stripe ${k}`))
    } else {
      assert.equal(cols.size[i], p.sizeSectors, `${why}: payload ${i} size`)
      if (p.location >= 2n ** 53n) huge = true
      else assert.equal(cols.location[i], Number(p.location), `${why}: payload ${i} location`)
      p.checksums.forEach((c, k) => assert.equal(cols.sum(i, k), c >>> 0, `${why}: payload ${i} checksum ${k}`))
    }
  })
  assert.equal(cols.hugeLocation, huge, `${why}: hugeLocation`)
  assert.deepEqual(cols.toMetaBlock(), m, `${why}: toMetaBlock`)
}

describe('decodeMeta into reused columns', () => {
  it('agrees on 3000 valid random blocks (payloads, locations beyond 2^32 and 2^53, positions beyond 2^32)', () => {
    const r = rng(101)
    const cols = new MetaColumns()
    for (let t = 0; t < 3000; t++) {
      const seq = BigInt(Math.floor(r() * 2 ** 48))
      const position = r() < 0.2 ? Math.floor(r() * 2 ** 40) * 8 : Math.floor(r() * 2 ** 20) * 8
      const payloads = randomPayloads(r)
      const page = encodeMetaBlock({seq, position: BigInt(position), payloads}, SEED)
      assertSame(page, seq, position, cols, `case ${t}`)
      assert.deepEqual(decodeMeta(page, SEED, {seq, position}, cols), [], `case ${t}: valid block refused`)
      assert.deepEqual(cols.toMetaBlock().payloads, payloads, `case ${t}: the payloads the encoder was given`)
      // no seq expectation (the tail block) is also a yes
      assertSame(page, undefined, position, cols, `case ${t}, no seq`)
    }
  })

  it('refuses a wrong seq or position exactly when the reference does', () => {
    const r = rng(7)
    const cols = new MetaColumns()
    for (let t = 0; t < 500; t++) {
      const seq = BigInt(Math.floor(r() * 2 ** 40))
      const position = Math.floor(r() * 2 ** 36) * 8
      const page = encodeMetaBlock({seq, position: BigInt(position), payloads: randomPayloads(r)}, SEED)
      assertSame(page, seq + 1n, position, cols, `case ${t}: seq + 1`)
      assertSame(page, seq, position + 8, cols, `case ${t}: position + 8`)
      assertSame(page, seq, position + 2 ** 32 * 8, cols, `case ${t}: position + 2^35 (high half only)`)
    }
  })

  it('agrees on 20000 broken blocks, half of them re-checksummed', () => {
    const r = rng(2024)
    const cols = new MetaColumns()
    let refused = 0
    for (let t = 0; t < 20000; t++) {
      const seq = BigInt(Math.floor(r() * 2 ** 32))
      const position = Math.floor(r() * 2 ** 24) * 8
      const page = encodeMetaBlock({seq, position: BigInt(position), payloads: randomPayloads(r)}, SEED)
      const what = mutate(page, r)
      if (r() < 0.5) rechecksum(page)
      assertSame(page, seq, position, cols, `case ${t} (${what})`)
      if (decodeMeta(page, SEED, {seq, position}, cols).length > 0) refused++
    }
    // the mutations must mostly break something, or this test proves little
    assert.ok(refused > 12000, `only ${refused} of 20000 broken blocks were refused`)
  })

  it('refuses a short block, as the reference reports it', () => {
    const page = encodeMetaBlock({seq: 5n, position: 8n, payloads: []}, SEED)
    assertSame(page.subarray(0, 4000), 5n, 8, new MetaColumns(), 'short')
  })
})
