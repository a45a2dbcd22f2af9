/**
 * rebuild (ops/rebuild.ts): a member taken out of a full array is rebuilt onto a blank device, and
 * the device must then hold the bytes the member held before it was taken out (the test keeps them),
 * the array must read the bytes written into it and check clean, and the superblocks must name the
 * new device in its slot, in sync. Each refusal must leave every device as it was.
 */
import assert from 'node:assert/strict'
import {checkArray, examineDevices, rebuildArray, writeData} from '../../../src/engine/index.js'
import {R5Error, SimulatedCrash} from '../../../src/engine/errors.js'
import {CrashController} from '../../../src/engine/crash.js'
import {MemDevice} from '../../../src/engine/device.js'
import {decodeSuperblock, FEATURE_RECOVERY_OFFSET, ROLE_FAULTY} from '../../../src/engine/format/superblock.js'
import {bufferSource, deviceHashes, pseudoRandom, readAll} from '../../helpers/model.js'
import {filledArray, MEMBER_DATA, memberBytes, takeOut} from '../../helpers/rebuild.js'

const KiB = 1024
function sbOf(d: MemDevice) {
  return decodeSuperblock(d.data.subarray(4096, 8192)).sb
}

function refused(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: Error) => e instanceof R5Error && e.code === code, `expected refusal '${code}'`)
}

describe('rebuild: a missing member reconstructed onto a new device', function () {
  this.timeout(120_000)

  for (const [level, slots] of [
    [5, [2]],
    [6, [0, 3]],
    [6, [4]],
  ] as const) {
    it(`raid${level}: slot(s) ${slots.join(', ')} rebuilt hold the member bytes, the array reads as written and checks clean`, function () {
      const f = filledArray(level)
      const {survivors, blanks, originals} = takeOut(f, [...slots])
      const r = rebuildArray(survivors, blanks, {slots: [...slots], checkpointBytes: 64 * KiB})
      assert.ok(r.checkpoints >= 2, `${r.checkpoints} checkpoints`)
      for (const [i, b] of blanks.entries()) assert.ok(memberBytes(b).equals(originals[i]), `slot ${slots[i]} holds its old bytes`)
      const all = [...survivors, ...blanks]
      assert.ok(readAll(all).equals(f.data), 'the array reads the bytes written into it')
      assert.equal(checkArray(all).mismatchCount, 0)
      for (const [i, b] of blanks.entries()) {
        const sb = sbOf(b)
        assert.equal(sb.devRoles[sb.devNumber], slots[i])
        assert.equal(sb.featureMap & FEATURE_RECOVERY_OFFSET, 0, 'in sync: no recovery_offset')
        assert.equal(sb.journalTail, 0n)
        // every other device names it in the same slot, and the old device's entry faulty
        for (const d of survivors) {
          const o = sbOf(d)
          assert.equal(o.devRoles[sb.devNumber], slots[i], d.name)
          assert.equal(o.events, sb.events, d.name)
          assert.equal(o.devRoles[slots[i]], ROLE_FAULTY, `${d.name}: the old member's entry`)
        }
      }
      const ex = examineDevices(all)
      assert.ok(
        ex.every(d => d.checksumOk === true),
        'every checksum holds',
      )
    })
  }

  it('a cut rebuild leaves the new device in recovery: examine shows its recovery offset, and only --resume takes it', function () {
    const f = filledArray(5, 3)
    const {survivors, blanks} = takeOut(f, [2])
    // the first superblock update (new device, then 4 devices), then windows of 64 KiB each with its checkpoint
    const ctl = new CrashController(5 + 2 * 2)
    assert.throws(
      () =>
        rebuildArray(
          survivors.map(d => ctl.wrap(d)),
          blanks.map(d => ctl.wrap(d)),
          {slots: [2], checkpointBytes: 64 * KiB},
        ),
      SimulatedCrash,
    )
    const [ex] = examineDevices(blanks)
    assert.equal(ex.recoveryOffsetSector, 2 * 128)
    assert.equal(ex.deviceRole, 'Active device 2')
    assert.ok(examineDevices(survivors).every(d => d.recoveryOffsetSector === null))
    refused(() => rebuildArray(survivors, blanks, {slots: [2]}), 'is-member')
    assert.equal(rebuildArray(survivors, blanks, {slots: [2], resume: true}).targets[0].startSector, 2 * 128)
  })

  it('replace: the old member is neither read nor written, and a replace cut short goes on with --resume', function () {
    const f = filledArray(6, 9)
    const old = f.devs[3]
    const oldBytes = Buffer.from(old.data)
    const readsBefore = old.stats.reads
    const others = f.devs.filter(d => d !== old)
    const blank = new MemDevice('new', old.size)
    const ctl = new CrashController(5 + 3)
    assert.throws(
      () =>
        rebuildArray(
          others.map(d => ctl.wrap(d)),
          [ctl.wrap(blank)],
          {slots: [], replacing: old, checkpointBytes: 64 * KiB},
        ),
      SimulatedCrash,
    )
    const r = rebuildArray(others, [blank], {slots: [], replacing: old, resume: true, checkpointBytes: 64 * KiB})
    assert.equal(r.targets[0].slot, 2)
    assert.ok(r.targets[0].startSector > 0, 'went on from the checkpoint')
    assert.ok(memberBytes(blank).equals(memberBytes(old)), 'the new device holds the slot')
    assert.ok(Buffer.from(old.data).equals(oldBytes), 'the old member is unchanged')
    // probing looks at the three places a v1 superblock may be (v1.0, v1.1, v1.2), once per run
    assert.equal(old.stats.reads - readsBefore, 2 * 3, 'only its superblock was read, once per run')
    assert.ok(readAll([...others, blank]).equals(f.data))
  })

  describe('refusals write nothing', function () {
    const f = filledArray(5)
    const cases: [string, string, (s: MemDevice[], b: MemDevice[]) => unknown][] = [
      ['a slot past the last', 'usage', (s, b) => rebuildArray(s, b, {slots: [4]})],
      ['a slot that is not missing', 'slot-present', (s, b) => rebuildArray(s, b, {slots: [1]})],
      ['a new device too small', 'too-small', s => rebuildArray(s, [new MemDevice('small', f.devs[1].size - 4096)], {slots: [0]})],
      ['a new device that is a member of the set (the one taken out)', 'is-member', s => rebuildArray(s, [f.devs[1]], {slots: [0]})],
      ['too many missing members', 'refused', (s, b) => rebuildArray(s.slice(0, 3), b, {slots: [0]})],
    ]
    for (const [what, code, fn] of cases)
      it(what, function () {
        const {survivors, blanks} = takeOut(f, [0])
        const before = deviceHashes([...f.devs, ...blanks])
        refused(() => fn(survivors, blanks), code)
        assert.deepEqual(deviceHashes([...f.devs, ...blanks]), before)
      })

    it('a dirty journal', function () {
      const g = filledArray(5, 11)
      writeData(g.devs, 0, 8192, bufferSource(pseudoRandom(8192, 3)), {mode: 'write-back'})
      const {survivors, blanks} = takeOut(g, [1])
      const before = deviceHashes([...g.devs, ...blanks])
      refused(() => rebuildArray(survivors, blanks, {slots: [1]}), 'dirty')
      assert.deepEqual(deviceHashes([...g.devs, ...blanks]), before)
    })

    it('a dry run', function () {
      const {survivors, blanks} = takeOut(f, [0])
      const before = deviceHashes([...f.devs, ...blanks])
      const r = rebuildArray(survivors, blanks, {slots: [0], dryRun: true})
      assert.equal(r.bytesWritten, MEMBER_DATA)
      assert.deepEqual(deviceHashes([...f.devs, ...blanks]), before)
    })
  })
})
