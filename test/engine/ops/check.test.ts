/**
 * check (ops/check.ts, scrub.ts): md's `check` offline. Corruptions are put at known places of known
 * members and the check must name those stripes, and on RAID6 those slots; where parity lives comes
 * from the test's own left-symmetric model (helpers/model.ts lsStripe), not from the engine.
 */
import assert from 'node:assert/strict'
import {checkArray, recoverArray, writeData} from '../../../src/engine/index.js'
import {RefusedError} from '../../../src/engine/errors.js'
import type {MemDevice} from '../../../src/engine/device.js'
import {
  bufferSource,
  cloneDevs,
  createMemArray,
  deviceHashes,
  lsArraySector,
  lsStripe,
  pseudoRandom,
  runWorkload,
  totalWrites,
  type WriteOp,
} from '../../helpers/model.js'

const KiB = 1024
const CHUNK_SECTORS = 32

function filled(level: 5 | 6): {devs: MemDevice[]; n: number} {
  const n = level === 6 ? 5 : 4
  const a = createMemArray({level, raidDevices: n, chunkBytes: 16 * KiB, memberDataBytes: 256 * KiB, journalRingBytes: 256 * KiB})
  const data = pseudoRandom(a.sizeBytes, 40 + level)
  writeData(a.devs, 0, data.length, bufferSource(data), {mode: 'write-through'})
  return {devs: a.devs, n}
}

/** flip one byte of member `slot`'s page of the stripe at `stripeSector` */
function damage(devs: MemDevice[], slot: number, stripeSector: number, byte = 100): void {
  devs[slot + 1].data[(1 << 20) + stripeSector * 512 + byte] ^= 0x5a
}

describe('check: parity of every stripe compared, mismatches named', function () {
  this.timeout(120_000)

  for (const level of [5, 6] as const) {
    it(`raid${level}: a clean array has no mismatch, every stripe counted`, function () {
      const {devs} = filled(level)
      const r = checkArray(devs)
      assert.equal(r.mismatchCount, 0)
      assert.equal(r.stripes, (256 * KiB) / 4096)
      assert.equal(r.toSector, 512)
    })
  }

  it('raid5: a damaged data page and a damaged parity page each name their stripe (kind P: which page, RAID5 cannot know)', function () {
    const {devs, n} = filled(5)
    const a = lsStripe(5, n, CHUNK_SECTORS, 40)
    const b = lsStripe(5, n, CHUNK_SECTORS, 200)
    damage(devs, a.dataMembers[1], 40)
    damage(devs, b.pd, 200)
    const r = checkArray(devs)
    assert.deepEqual(
      r.mismatches.map(m => [m.stripeSector, m.kind, m.slot]),
      [
        [40, 'P', null],
        [200, 'P', null],
      ],
    )
    assert.equal(r.mismatches[0].arraySector, lsArraySector(5, n, CHUNK_SECTORS, 40, 0))
  })

  it('raid6: the bad page located from the syndromes: a data page, P, Q; two bad pages are not pinned on one', function () {
    const {devs, n} = filled(6)
    const cases: [number, 'data' | 'P' | 'Q' | 'two'][] = [
      [8, 'data'],
      [72, 'P'],
      [136, 'Q'],
      [264, 'two'],
      [488, 'data'],
    ]
    const want: [number, string, number | null][] = []
    for (const [s, what] of cases) {
      const st = lsStripe(6, n, CHUNK_SECTORS, s)
      if (what === 'data') {
        const slot = st.dataMembers[s % 3]
        damage(devs, slot, s, 7)
        damage(devs, slot, s, 4000)
        want.push([s, 'data', slot])
      } else if (what === 'P') {
        damage(devs, st.pd, s)
        want.push([s, 'P', st.pd])
      } else if (what === 'Q') {
        damage(devs, st.qd, s)
        want.push([s, 'Q', st.qd])
      } else {
        damage(devs, st.dataMembers[0], s)
        damage(devs, st.dataMembers[2], s, 300)
        want.push([s, 'unlocated', null])
      }
    }
    const r = checkArray(devs)
    assert.deepEqual(
      r.mismatches.map(m => [m.stripeSector, m.kind, m.slot]),
      want,
    )
  })

  it('without its journal device: refused, and with force the members are checked as they are (the journal said missing)', function () {
    const {devs} = filled(5)
    const members = devs.slice(1)
    assert.throws(
      () => checkArray(members),
      (e: unknown) => e instanceof RefusedError && e.code === 'missing-journal',
    )
    damage(devs, 1, 64)
    const r = checkArray(members, {force: true})
    assert.equal(r.journal, 'missing')
    assert.equal(r.mismatchCount, 1)
  })

  it('--from/--to: only stripes in the range are judged, and the end is where a later check resumes', function () {
    const {devs, n} = filled(5)
    damage(devs, lsStripe(5, n, CHUNK_SECTORS, 16).pd, 16)
    damage(devs, lsStripe(5, n, CHUNK_SECTORS, 96).pd, 96)
    const first = checkArray(devs, {from: 0, to: 64})
    assert.deepEqual(
      first.mismatches.map(m => m.stripeSector),
      [16],
    )
    assert.equal(first.stripes, 8)
    const rest = checkArray(devs, {from: first.toSector})
    assert.deepEqual(
      rest.mismatches.map(m => m.stripeSector),
      [96],
    )
    assert.throws(() => checkArray(devs, {from: 3}), /--from 3 must be a member sector, a multiple of 8/)
    assert.throws(() => checkArray(devs, {from: 64, to: 8}), /--to 8 is before --from 64/)
  })

  it('a dirty journal: complete stripes are judged as replayed, data-only ones are not judged', function () {
    const {devs} = filled(5)
    const ops: WriteOp[] = [{offset: 0, data: pseudoRandom(96 * KiB, 7), mode: 'write-through'}]
    const W = runWorkload(cloneDevs(devs), ops).writes
    let inconsistentMembers = 0
    for (let N = 1; N < W; N++) {
      const crashed = cloneDevs(devs)
      runWorkload(crashed, ops, {crashAfter: N})
      const viewed = checkArray(crashed)
      assert.equal(viewed.mismatchCount, 0, `crash after ${N}: the replayed view holds`)
      if (checkArray(crashed, {replay: false}).mismatchCount > 0) inconsistentMembers++
      const recovered = cloneDevs(crashed)
      recoverArray(recovered, {})
      assert.equal(checkArray(recovered).mismatchCount, 0)
    }
    assert.ok(inconsistentMembers > 0, 'some crash left the members alone inconsistent')
    const cached = cloneDevs(devs)
    writeData(cached, 4096, 8192, bufferSource(pseudoRandom(8192, 8)), {mode: 'write-back'})
    const r = checkArray(cached)
    assert.equal(r.journal, 'dirty')
    assert.equal(r.skippedStripes, 2)
    assert.equal(r.mismatchCount, 0)
  })

  it('a check stopped part way says where to resume: positions climb window by window to the end, and a check from any of them finds the rest', function () {
    // all zero (parity holds) and large enough for several windows of rows
    const n = 4
    const {devs} = createMemArray({level: 5, raidDevices: n, chunkBytes: 16 * KiB, memberDataBytes: 8 << 20, journalRingBytes: 256 * KiB})
    for (const s of [16, 5000, 9000, 16000]) damage(devs, lsStripe(5, n, CHUNK_SECTORS, s).pd, s)
    const positions: number[] = []
    const all = checkArray(devs, {position: s => positions.push(s)})
    assert.ok(positions.length >= 4, `${positions.length} positions reported`)
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
    )
    assert.equal(positions.at(-1), all.toSector)
    for (const at of positions) {
      assert.equal(at % 8, 0)
      const rest = checkArray(devs, {from: at})
      assert.deepEqual(
        rest.mismatches.map(m => m.stripeSector),
        all.mismatches.map(m => m.stripeSector).filter(s => s >= at),
      )
    }
  })

  it('check writes nothing: every device is byte for byte the same afterwards, damaged, dirty or not', function () {
    const {devs} = filled(6)
    damage(devs, 2, 64)
    writeData(devs, 4096, 8192, bufferSource(pseudoRandom(8192, 9)), {mode: 'write-back'})
    const before = deviceHashes(devs)
    const writes = totalWrites(devs)
    assert.ok(checkArray(devs).mismatchCount > 0)
    checkArray(devs, {replay: false})
    assert.equal(totalWrites(devs), writes)
    assert.deepEqual(deviceHashes(devs), before)
  })

  it('a missing member is refused: a check needs every member', function () {
    const {devs} = filled(6)
    assert.throws(
      () => checkArray(devs.filter((_, i) => i !== 2)),
      (e: Error) => e instanceof RefusedError && /slot 1 .* missing: this command needs every member/.test(e.message),
    )
  })
})
