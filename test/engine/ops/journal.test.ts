/**
 * journal remove / add / replace (ops/journal.ts). What the superblocks must say comes from md's
 * rules (md.c super_1_validate / super_1_sync, raid5-cache.c r5l_load_log): the journal feature bit
 * 0x200 on every device or none, role 0xfffd at the journal's dev_number, 0xfffe for a device that
 * left, events one past the set's, resync_offset ~0 for an array md need not resync. The bytes
 * expected are the test's own fill. Every refusal writes nothing; a cut at any write leaves a set
 * that opens and reads the same bytes.
 */
import assert from 'node:assert/strict'
import {addJournal, checkArray, examineJournal, recoverArray, removeJournal, replaceJournal, writeData} from '../../../src/engine/index.js'
import {MemDevice, type BlockDevice} from '../../../src/engine/device.js'
import {R5Error} from '../../../src/engine/errors.js'
import {probeDevice} from '../../../src/engine/probe.js'
import {decodeMetaBlock} from '../../../src/engine/format/meta.js'
import {uuidSeed} from '../../../src/engine/checksum.js'
import {MiB, bufferSource, cloneDevs, createMemArray, cutAfter, deviceHashes, pseudoRandom, readAll, totalWrites} from '../../helpers/model.js'

const KiB = 1024
const CLEAN = 0xffffffffffffffffn

function filled(level: 5 | 6 = 5, ringBytes = 256 * KiB): {journal: MemDevice; members: MemDevice[]; data: Buffer} {
  const a = createMemArray({level, raidDevices: level === 6 ? 5 : 4, chunkBytes: 16 * KiB, memberDataBytes: 256 * KiB, journalRingBytes: ringBytes})
  const data = pseudoRandom(a.sizeBytes, 7 + level)
  writeData(a.devs, 0, data.length, bufferSource(data), {mode: 'write-through'})
  return {journal: a.journal, members: a.members, data}
}

/** write-back data left in the log: a journal with stripes to replay */
function dirty(ringBytes = 256 * KiB, bytes = 64 * KiB): {journal: MemDevice; members: MemDevice[]; data: Buffer} {
  const f = filled(5, ringBytes)
  const fresh = pseudoRandom(bytes, 99)
  writeData([f.journal, ...f.members], 16 * KiB, fresh.length, bufferSource(fresh), {mode: 'write-back'})
  fresh.copy(f.data, 16 * KiB)
  return f
}

const sbOf = (d: MemDevice) => probeDevice(d).sb!
const blank = (name = 'new', size = 2 * MiB) => new MemDevice(name, size)

describe('journal remove / add / replace', function () {
  this.timeout(300_000)

  it('remove: the members lose the feature and the journal role, events move on, the bytes stay', function () {
    const {journal, members, data} = filled()
    const before = sbOf(members[0])
    const jHash = deviceHashes([journal])
    const r = removeJournal([journal, ...members])
    assert.equal(r.journalBefore, 'present')
    for (const m of members) {
      const sb = sbOf(m)
      assert.equal(sb.featureMap & 0x200, 0)
      assert.equal(sb.devRoles[before.raidDisks], 0xfffe, 'the journal’s dev_number (4) is faulty now')
      assert.deepEqual(sb.devRoles.slice(0, 4), [0, 1, 2, 3])
      assert.equal(sb.events, before.events + 1n)
      assert.equal(sb.resyncOffset, CLEAN)
    }
    assert.deepEqual(deviceHashes([journal]), jHash, 'the old journal keeps its superblock, as md leaves a removed device')
    assert.ok(readAll(members).equals(data))
    assert.ok(readAll([journal, ...members]).equals(data), 'the old journal given too is left out')
    assert.equal(checkArray(members).mismatchCount, 0)
  })

  it('add: a fresh empty log and a new journal role; the array then writes through it', function () {
    const {journal, members, data} = filled()
    removeJournal([journal, ...members])
    const events = sbOf(members[0]).events
    const nj = blank()
    const r = addJournal(nj, members)
    assert.equal(r.journalBefore, 'none')
    const jsb = sbOf(nj)
    // the removed journal held dev_number 4 (now faulty): the new one takes 5, a number never held
    assert.equal(jsb.devNumber, 5)
    assert.equal(jsb.devRoles[5], 0xfffd)
    assert.equal(jsb.devRoles[4], 0xfffe)
    assert.equal(jsb.journalTail, 0n)
    assert.equal(jsb.dataOffset, 2048n)
    assert.equal(jsb.dataSize, BigInt(2 * MiB) / 512n - 2048n)
    for (const d of [nj, ...members]) {
      assert.equal(sbOf(d).featureMap & 0x200, 0x200)
      assert.equal(sbOf(d).events, events + 1n)
      assert.deepEqual(sbOf(d).devRoles, jsb.devRoles)
    }
    const mb = decodeMetaBlock(nj.data.subarray(MiB, MiB + 4096), uuidSeed(jsb.setUuid), {seq: BigInt(r.firstSeq!), position: 0n})
    assert.deepEqual(mb.problems, [], 'a valid meta block at ring sector 0 with the reported seq')
    assert.equal(mb.meta?.payloads.length, 0)
    assert.ok(
      nj.data.subarray(MiB + 4096, MiB + 8192).every(b => b === 0),
      'the block after it is zero',
    )
    assert.equal(examineJournal([nj, ...members]).state, 'clean')
    const more = pseudoRandom(32 * KiB, 5)
    writeData([nj, ...members], 0, more.length, bufferSource(more), {mode: 'write-back'})
    more.copy(data, 0)
    assert.ok(readAll([nj, ...members]).equals(data))
  })

  it('replace: a dirty log is copied, and replaying the copy gives the bytes replaying the old one gives', function () {
    const {journal, members, data} = dirty()
    assert.equal(examineJournal([journal, ...members]).state, 'dirty')
    const nj = blank('new', 3 * MiB)
    const r = replaceJournal(journal, nj, members)
    assert.ok(r.copiedLogBytes > 0)
    assert.ok(r.stripesPending > 0)
    assert.equal(sbOf(nj).devRoles[sbOf(nj).devNumber], 0xfffd)
    assert.equal(examineJournal([nj, ...members]).state, 'dirty')
    assert.ok(readAll([nj, ...members]).equals(data), 'the replayed view of the copy')
    assert.ok(readAll([journal, nj, ...members]).equals(data), 'with the old journal given too, it is left out')
    recoverArray([nj, ...members], {})
    assert.ok(readAll([nj, ...members]).equals(data))
    assert.equal(checkArray([nj, ...members]).mismatchCount, 0)
  })

  it('remove --recover replays a dirty journal first', function () {
    const {journal, members, data} = dirty()
    const r = removeJournal([journal, ...members], {recover: true})
    assert.equal(r.recovery?.state, 'replayed')
    assert.ok(readAll(members).equals(data))
    assert.equal(checkArray(members).mismatchCount, 0)
  })

  it('remove --recover --dry-run says the events and writes the real run then makes', function () {
    const {journal, members} = dirty()
    const devs = [journal, ...members]
    const dry = removeJournal(cloneDevs(devs), {recover: true, dryRun: true})
    const real = removeJournal(devs, {recover: true})
    assert.equal(dry.events, real.events)
    assert.equal(sbOf(members[0]).events.toString(), real.events)
    assert.deepEqual(dry.writes, real.writes)
    assert.equal(dry.recovery?.state, 'would-replay')
    assert.equal(real.recovery?.state, 'replayed')
  })

  it('a remove cut after the first member’s superblock is finished by running it again', function () {
    const {journal, members, data} = filled()
    const events = sbOf(members[0]).events
    assert.ok(cutAfter([journal, ...members], 1, d => removeJournal(d)))
    assert.deepEqual(
      members.map(m => sbOf(m).featureMap & 0x200),
      [0, 0x200, 0x200, 0x200],
      'the cut left the members split',
    )
    removeJournal(members)
    for (const m of members) {
      assert.equal(sbOf(m).featureMap & 0x200, 0)
      assert.equal(sbOf(m).events, events + 1n, 'finished at the events count the cut one began')
    }
    assert.throws(
      () => removeJournal(members),
      (e: Error) => e instanceof R5Error && e.code === 'no-journal',
    )
    assert.ok(readAll(members).equals(data))
  })

  it('remove --force over a missing journal marks the array for a resync; add --force gives it a new journal', function () {
    const {journal, members, data} = filled()
    const r = removeJournal(members, {force: true})
    assert.equal(r.journalBefore, 'missing')
    assert.ok(r.journalLost && r.resync)
    for (const m of members) {
      assert.equal(sbOf(m).featureMap & 0x200, 0)
      assert.equal(sbOf(m).resyncOffset, 0n, 'md resyncs an array whose resync_offset is 0')
      assert.equal(sbOf(m).devRoles[4], 0xfffe)
    }
    assert.ok(readAll(members).equals(data))
    const nj = blank()
    assert.throws(
      () => addJournal(nj, members),
      (e: Error) => e instanceof R5Error && e.code === 'not-clean',
    )
    const a = addJournal(nj, members, {force: true})
    assert.equal(a.journalBefore, 'none')
    assert.equal(sbOf(nj).resyncOffset, CLEAN)
    assert.ok(readAll([journal, nj, ...members]).equals(data), 'the old journal, given too, is left out')
  })

  describe('every refusal writes nothing', function () {
    const refusals: [string, string, () => {devs: MemDevice[]; run: () => unknown}][] = [
      [
        'remove over a dirty journal',
        'dirty',
        () => {
          const f = dirty()
          return {devs: [f.journal, ...f.members], run: () => removeJournal([f.journal, ...f.members])}
        },
      ],
      [
        'remove without the journal',
        'missing-journal',
        () => {
          const f = filled()
          return {devs: [f.journal, ...f.members], run: () => removeJournal(f.members)}
        },
      ],
      [
        'remove from an array without one',
        'no-journal',
        () => {
          const f = filled()
          removeJournal([f.journal, ...f.members])
          return {devs: f.members, run: () => removeJournal(f.members)}
        },
      ],
      [
        'add to an array with a journal',
        'has-journal',
        () => {
          const f = filled()
          const nj = blank()
          return {devs: [nj, f.journal, ...f.members], run: () => addJournal(nj, [f.journal, ...f.members])}
        },
      ],
      [
        'add over a missing journal without --force',
        'missing-journal',
        () => {
          const f = filled()
          const nj = blank()
          return {devs: [nj, ...f.members], run: () => addJournal(nj, f.members)}
        },
      ],
      [
        'add a device that carries a superblock',
        'would-overwrite',
        () => {
          const f = filled()
          const g = filled()
          removeJournal([f.journal, ...f.members])
          return {devs: [g.journal, ...f.members], run: () => addJournal(g.journal, f.members)}
        },
      ],
      [
        'add a member of the array as its journal',
        'missing-member',
        () => {
          const f = filled()
          removeJournal([f.journal, ...f.members])
          return {devs: f.members, run: () => addJournal(f.members[0], f.members.slice(1), {force: true})}
        },
      ],
      [
        'add a device too small for a journal',
        'usage',
        () => {
          const f = filled()
          removeJournal([f.journal, ...f.members])
          const nj = blank('new', MiB + 64 * KiB)
          return {devs: [nj, ...f.members], run: () => addJournal(nj, f.members)}
        },
      ],
      [
        'replace naming a member as OLD',
        'not-journal',
        () => {
          const f = filled()
          const nj = blank()
          return {devs: [nj, f.journal, ...f.members], run: () => replaceJournal(f.members[0], nj, [f.journal, ...f.members.slice(1)])}
        },
      ],
      [
        'replace with a ring too small for the live log',
        'usage',
        () => {
          const f = dirty(MiB, 400 * KiB)
          const nj = blank('new', MiB + 300 * KiB)
          return {devs: [nj, f.journal, ...f.members], run: () => replaceJournal(f.journal, nj, f.members)}
        },
      ],
    ]
    for (const [name, code, make] of refusals) {
      it(`${name}: ${code}`, function () {
        const {devs, run} = make()
        const hashes = deviceHashes(devs)
        assert.throws(run, (e: Error) => e instanceof R5Error && e.code === code)
        assert.deepEqual(deviceHashes(devs), hashes)
      })
    }
  })

  describe('a cut at any write leaves a set that opens and reads the same bytes', function () {
    const ops: [string, () => {base: MemDevice[]; data: Buffer; op: (d: BlockDevice[]) => unknown}][] = [
      ['remove', () => ({...flat(filled()), op: d => removeJournal(d)})],
      [
        'add',
        () => {
          const f = filled()
          removeJournal([f.journal, ...f.members])
          return {base: [blank(), ...f.members], data: f.data, op: d => addJournal(d[0], d.slice(1))}
        },
      ],
      [
        'replace (a dirty log copied)',
        () => {
          const f = dirty()
          return {base: [blank('new', 3 * MiB), f.journal, ...f.members], data: f.data, op: d => replaceJournal(d[1], d[0], d.slice(2))}
        },
      ],
    ]
    for (const [name, make] of ops) {
      for (const seed of [undefined, 1, 2]) {
        it(`${name}${seed === undefined ? '' : `, unflushed writes lost at random (seed ${seed})`}`, function () {
          const {base, data, op} = make()
          const whole = cloneDevs(base)
          op(whole)
          const W = totalWrites(whole)
          assert.ok(W >= 3, `${W} writes`)
          for (let k = 0; k <= W; k++) {
            const devs = cloneDevs(base)
            cutAfter(devs, k, op, seed)
            // the devices md would take: those with a superblock (a new journal cut before its superblock has none)
            const set = devs.filter(d => probeDevice(d).problems.length === 0)
            assert.ok(readAll(set).equals(data), `cut after ${k} writes`)
          }
        })
      }
    }
  })
})

function flat(f: {journal: MemDevice; members: MemDevice[]; data: Buffer}): {base: MemDevice[]; data: Buffer} {
  return {base: [f.journal, ...f.members], data: f.data}
}
