/**
 * repair (ops/repair.ts): what check finds, rewritten. On RAID6 a page the syndromes locate is put
 * back to the bytes it held before it was damaged (the test's own fill, not a read of ours); on
 * RAID4/5 parity is made to match the data, as md's repair does. Plan first: a refusal or a dry run
 * writes nothing, and a repair cut at any write and run again ends the same.
 */
import assert from 'node:assert/strict'
import {checkArray, repairArray, writeData} from '../../../src/engine/index.js'
import {CrashController} from '../../../src/engine/crash.js'
import {R5Error, SimulatedCrash} from '../../../src/engine/errors.js'
import type {MemDevice} from '../../../src/engine/device.js'
import {
  bufferSource,
  changedPages,
  cloneDevs,
  createMemArray,
  deviceHashes,
  lsStripe,
  pseudoRandom,
  readAll,
  snapshot,
  totalWrites,
} from '../../helpers/model.js'

const KiB = 1024
const CHUNK_SECTORS = 32

function filled(level: 5 | 6): {devs: MemDevice[]; n: number; data: Buffer} {
  const n = level === 6 ? 5 : 4
  const a = createMemArray({level, raidDevices: n, chunkBytes: 16 * KiB, memberDataBytes: 256 * KiB, journalRingBytes: 256 * KiB})
  const data = pseudoRandom(a.sizeBytes, 60 + level)
  writeData(a.devs, 0, data.length, bufferSource(data), {mode: 'write-through'})
  return {devs: a.devs, n, data}
}

function damage(devs: MemDevice[], slot: number, stripeSector: number, byte = 100): void {
  devs[slot + 1].data[(1 << 20) + stripeSector * 512 + byte] ^= 0xa5
}

/** RAID6 damage: a data page (twice, bytes apart), P, Q, and two data pages of one stripe */
function damageRaid6(devs: MemDevice[], n: number): void {
  const st = (s: number) => lsStripe(6, n, CHUNK_SECTORS, s)
  damage(devs, st(8).dataMembers[1], 8, 7)
  damage(devs, st(8).dataMembers[1], 8, 4000)
  damage(devs, st(72).pd, 72)
  damage(devs, st(136).qd, 136)
  damage(devs, st(264).dataMembers[0], 264)
  damage(devs, st(264).dataMembers[2], 264, 300)
}

describe('repair: what check finds, rewritten', function () {
  this.timeout(300_000)

  it('raid6: a located data page, P and Q are put back as they were; two bad pages get P and Q from the data', function () {
    const {devs, n, data} = filled(6)
    const clean = snapshot(devs)
    damageRaid6(devs, n)
    const r = repairArray(devs)
    assert.equal(r.mismatchCount, 4)
    assert.deepEqual(
      r.writes.map(w => [w.stripeSector, w.page]),
      [
        [8, 'data'],
        [72, 'P'],
        [136, 'Q'],
        [264, 'P'],
        [264, 'Q'],
      ],
    )
    assert.equal(checkArray(devs).mismatchCount, 0)
    // every page is back to its bytes before the damage, but stripe 264's: two bad data pages stay, P and Q now match them
    const page264 = ((1 << 20) + 264 * 512) / 4096
    for (let i = 0; i < devs.length; i++) {
      const changed = changedPages(clean[i], devs[i].data)
      assert.ok(
        changed.every(p => p === page264),
        `${devs[i].name}: pages ${changed.join(', ')} differ`,
      )
    }
    const got = readAll(devs)
    assert.ok(got.subarray(0, 64 * KiB).equals(data.subarray(0, 64 * KiB)), 'stripe 8 reads its original bytes')
  })

  it('raid5: parity is made to match the data, whichever page was damaged', function () {
    const {devs, n} = filled(5)
    damage(devs, lsStripe(5, n, CHUNK_SECTORS, 40).dataMembers[2], 40)
    damage(devs, lsStripe(5, n, CHUNK_SECTORS, 200).pd, 200)
    const before = readAll(devs)
    const r = repairArray(devs)
    assert.deepEqual(
      r.writes.map(w => [w.stripeSector, w.slot, w.page]),
      [
        [40, lsStripe(5, n, CHUNK_SECTORS, 40).pd, 'P'],
        [200, lsStripe(5, n, CHUNK_SECTORS, 200).pd, 'P'],
      ],
    )
    assert.equal(checkArray(devs).mismatchCount, 0)
    assert.ok(readAll(devs).equals(before), 'the data reads as before: only parity was written')
  })

  it('--dry-run lists the pages and writes nothing; --from/--to limit both', function () {
    const {devs, n} = filled(6)
    damageRaid6(devs, n)
    const hashes = deviceHashes(devs)
    const dry = repairArray(devs, {dryRun: true})
    assert.equal(dry.pagesWritten, 5)
    assert.deepEqual(deviceHashes(devs), hashes)
    const part = repairArray(devs, {from: 64, to: 200})
    assert.deepEqual(
      part.writes.map(w => w.stripeSector),
      [72, 136],
    )
    assert.deepEqual(
      checkArray(devs).mismatches.map(m => m.stripeSector),
      [8, 264],
    )
  })

  it('a dirty journal is refused before anything is read or written', function () {
    const {devs, n} = filled(5)
    damage(devs, lsStripe(5, n, CHUNK_SECTORS, 40).pd, 40)
    writeData(devs, 0, 8192, bufferSource(pseudoRandom(8192, 3)), {mode: 'write-back'})
    const hashes = deviceHashes(devs)
    assert.throws(
      () => repairArray(devs),
      (e: Error) => e instanceof R5Error && e.code === 'dirty',
    )
    assert.deepEqual(deviceHashes(devs), hashes)
  })

  it('raid6: a repair cut at any write, run again, ends as an uncut one', function () {
    const {devs: base, n} = filled(6)
    damageRaid6(base, n)
    const whole = cloneDevs(base)
    repairArray(whole)
    const want = deviceHashes(whole)
    const W = totalWrites(whole)
    assert.ok(W >= 5, `${W} writes`)
    for (let k = 0; k < W; k++) {
      const devs = cloneDevs(base)
      const ctl = new CrashController(k)
      assert.throws(() => repairArray(devs.map(d => ctl.wrap(d))), SimulatedCrash)
      repairArray(devs)
      assert.deepEqual(deviceHashes(devs), want, `cut after ${k} writes`)
    }
  })
})
