/**
 * rebuild cut by a power cut after every device write request (crash.ts), with and without seeded
 * loss of the writes not yet flushed, then `--resume`: the surviving members must always open and
 * read the bytes written into the array, and the resumed rebuild must end with the new devices
 * holding the bytes the members held before they were taken out, the array reading as written and
 * checking clean. Some cut must resume from a checkpoint, not from the start, and a cut within the last
 * superblock update (the new devices marked in sync, the rest of the set not yet) copies nothing again.
 */
import assert from 'node:assert/strict'
import {checkArray, rebuildArray} from '../../../src/engine/index.js'
import {CrashController} from '../../../src/engine/crash.js'
import {SimulatedCrash} from '../../../src/engine/errors.js'
import {MemDevice} from '../../../src/engine/device.js'
import {cloneDevs, readAll, totalWrites} from '../../helpers/model.js'
import {filledArray, memberBytes, takeOut} from '../../helpers/rebuild.js'

const KiB = 1024
const EVERY = 64 * KiB

describe('rebuild: cut at every write, then --resume', function () {
  this.timeout(300_000)

  for (const [level, slots] of [
    [5, [1]],
    [6, [0, 2]],
  ] as const) {
    it(`raid${level}, slot(s) ${slots.join(', ')}: the survivors read as written after any cut, and the resumed rebuild ends as an uncut one`, function () {
      const f = filledArray(level, 21)
      const {survivors, blanks, originals} = takeOut(f, [...slots])
      const whole = cloneDevs([...survivors, ...blanks])
      rebuildArray(whole.slice(0, survivors.length), whole.slice(survivors.length), {slots: [...slots], checkpointBytes: EVERY})
      const W = totalWrites(whole)
      assert.ok(W >= 10, `${W} writes`)
      let resumedLate = 0
      for (let k = 0; k < W; k++) {
        for (const seed of [undefined, 1000 + k]) {
          const devs = cloneDevs([...survivors, ...blanks])
          const surv = devs.slice(0, survivors.length)
          const targets = devs.slice(survivors.length)
          const ctl = new CrashController(k, seed)
          assert.throws(
            () =>
              rebuildArray(
                surv.map(d => ctl.wrap(d)),
                targets.map(d => ctl.wrap(d)),
                {slots: [...slots], checkpointBytes: EVERY},
              ),
            SimulatedCrash,
          )
          const at = `cut after ${k} writes${seed === undefined ? '' : `, seed ${seed}`}`
          assert.ok(readAll(surv).equals(f.data), `${at}: the survivors read as written`)
          const r = rebuildArray(surv, targets, {slots: [...slots], resume: true, checkpointBytes: EVERY})
          if (r.targets.every(t => t.startSector > 0)) resumedLate++
          // cut within the last superblock update, after the new devices got theirs: nothing is copied again
          if (k >= W - surv.length) assert.equal(r.bytesWritten, 0, `${at}: copied again`)
          for (const [i, t] of targets.entries()) assert.ok(memberBytes(t).equals(originals[i]), `${at}: slot ${slots[i]} holds its old bytes`)
          assert.ok(readAll([...surv, ...targets]).equals(f.data), `${at}: the rebuilt array reads as written`)
          assert.equal(checkArray([...surv, ...targets]).mismatchCount, 0, at)
        }
      }
      assert.ok(resumedLate > 0, 'some resume went on from a checkpoint')
    })
  }

  it('--resume onto a device that never got a superblock starts from the beginning', function () {
    const f = filledArray(5, 5)
    const {survivors, originals} = takeOut(f, [3])
    const blank = new MemDevice('new', f.devs[4].size)
    const r = rebuildArray(survivors, [blank], {slots: [3], resume: true})
    assert.equal(r.targets[0].startSector, 0)
    assert.ok(memberBytes(blank).equals(originals[0]))
  })
})
