/**
 * detect --write (ops/detect-write.ts): arrays made with r5ctl's create, written through to the
 * members and then write-back (a dirty journal), their superblocks zeroed. Writing the first
 * candidate's superblocks must give back a set that opens, reads what it read before (the journal
 * laid over it), and replays its journal with recover; every refusal writes nothing.
 */
import assert from 'node:assert/strict'
import {detectArray, examineJournal, recoverArray, writeData, writeDetected} from '../../../src/engine/index.js'
import {R5Error} from '../../../src/engine/errors.js'
import {MemDevice} from '../../../src/engine/device.js'
import {bufferSource, changedSince, pseudoRandom, readAll, snapshot} from '../../helpers/model.js'
import {KiB, makeArray, shuffled, zeroSuperblocks, type Made} from '../detect/fixtures.js'

/** a write-back write on top of the array makeArray wrote: its stripes stay in the journal */
function dirty(m: Made, seed: number): Buffer {
  const data = pseudoRandom(40 * 4096, seed)
  writeData(m.a.devs, 8 * 4096, data.length, bufferSource(data), {mode: 'write-back'})
  return readAll(m.a.devs)
}

/** set_uuid: 16 bytes at offset 16 of the superblock at 4 KiB, as the journal's holds it */
function uuidOf(m: Made): Uint8Array {
  return Uint8Array.from(m.a.journal.data.subarray(4096 + 16, 4096 + 32))
}

function refusedWithNothingWritten(m: Made, run: () => unknown, code: string): void {
  const snap = snapshot(m.a.devs)
  assert.throws(run, (e: unknown) => e instanceof R5Error && e.code === code)
  assert.deepEqual(changedSince(m.a.devs, snap), [])
}

describe('detect --write: superblocks for the found geometry', function () {
  this.timeout(120000)

  for (const [level, n, layout] of [
    [5, 4, 2],
    [6, 5, 2],
  ] as const) {
    it(`raid${level}: members' superblocks zeroed, the journal's kept: the set opens again, reads the same, and recover replays its journal`, function () {
      const m = makeArray(level, n, layout, 64 * KiB, 21)
      const want = dirty(m, 5)
      zeroSuperblocks(m.a.members)
      const r = writeDetected(shuffled(m.a.devs, 3))
      assert.equal(r.write.journalTailSource, 'superblock')
      assert.deepEqual(
        r.write.devices.map(d => `${d.device}:${d.role}`),
        [...m.a.members.map((_, i) => `m${i}:active ${i}`), 'j:journal'],
      )
      assert.deepEqual(readAll(m.a.devs), want)
      assert.equal(examineJournal(m.a.devs).state, 'dirty')
      recoverArray(m.a.devs, {})
      assert.equal(examineJournal(m.a.devs).state, 'clean')
      assert.deepEqual(readAll(m.a.devs), want)
    })
  }

  it("every superblock zeroed: --uuid is checked against the journal's checksums, and the log replays from the start of its newest chain", function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 22)
    const want = dirty(m, 6)
    const uuid = uuidOf(m)
    zeroSuperblocks(m.a.devs)
    refusedWithNothingWritten(m, () => writeDetected(m.a.devs), 'uuid-unknown')
    const wrong = Uint8Array.from(uuid, (b, i) => (i === 0 ? b ^ 1 : b))
    refusedWithNothingWritten(m, () => writeDetected(m.a.devs, {uuid: wrong}), 'uuid-mismatch')
    const r = writeDetected(m.a.devs, {uuid})
    assert.equal(r.write.journalTailSource, 'log')
    assert.deepEqual(readAll(m.a.devs), want)
    recoverArray(m.a.devs, {})
    assert.deepEqual(readAll(m.a.devs), want)
  })

  it('--dry-run plans the same superblocks and writes nothing', function () {
    const m = makeArray(5, 3, 2, 64 * KiB, 23)
    zeroSuperblocks(m.a.members)
    const snap = snapshot(m.a.devs)
    const r = writeDetected(m.a.devs, {dryRun: true})
    assert.equal(r.write.dryRun, true)
    assert.equal(r.write.devices.length, 4)
    assert.deepEqual(changedSince(m.a.devs, snap), [])
  })

  it('refuses, with nothing written: no candidate of that rank, a candidate whose parity did not hold, no journal device', function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 24)
    zeroSuperblocks(m.a.members)
    refusedWithNothingWritten(m, () => writeDetected(m.a.devs, {candidate: 99}), 'no-candidate')
    refusedWithNothingWritten(m, () => writeDetected(m.a.members), 'missing-journal')
    // a different byte changed on each member in every page: no stripe holds any more
    m.a.members.forEach((d, k) => {
      for (let i = 1 << 20; i < d.size; i += 4096) d.data[i + 7] ^= 1 << k
    })
    refusedWithNothingWritten(m, () => writeDetected(m.a.devs), 'unconfirmed-candidate')
  })

  it('refuses a member of another array among the devices (foreign-device), writing nothing to either array', function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 25)
    const other = makeArray(5, 4, 2, 64 * KiB, 26)
    zeroSuperblocks(m.a.members)
    const stranger = other.a.members[3]
    const all = [...m.a.devs, stranger]
    const snap = snapshot(all)
    assert.throws(
      () => writeDetected(all),
      (e: unknown) => e instanceof R5Error && e.code === 'foreign-device' && e.device === stranger.name,
    )
    assert.deepEqual(changedSince(all, snap), [])
  })

  it('refuses a candidate that contradicts the geometry a surviving superblock keeps (a blank spare among the devices), writing nothing', function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 27)
    zeroSuperblocks(m.a.members)
    // an all-zero device: every layout's parity holds with it as one more member
    const blank = new MemDevice('blank', m.a.members[0].size)
    const all = [...m.a.devs, blank]
    const found = detectArray(all)
    assert.ok(
      found.notes.some(n => /searched as members, but the superblock of j says the array has 4/.test(n)),
      found.notes.join('; '),
    )
    const r = found.candidates
    const contradicting = r.findIndex(c => c.members.length !== 4 || c.chunkBytes !== 64 * KiB)
    assert.ok(contradicting >= 0, 'detect ranks a candidate over the blank spare that contradicts the journal superblock')
    const snap = snapshot(all)
    assert.throws(
      () => writeDetected(all, {candidate: contradicting + 1, force: true}),
      (e: unknown) => e instanceof R5Error && e.code === 'geometry-mismatch',
    )
    assert.deepEqual(changedSince(all, snap), [])
  })
})
