/**
 * The bounded-memory replay (complete stripes replayed early, in batches) must leave the members
 * exactly as one replay at the end would, and as the full-plan path does: every batch size, on
 * write-through and write-back logs with stripes logged several times.
 */
import assert from 'node:assert/strict'
import {recoverArray} from '../../src/engine/index.js'
import {setReplayWindow, planRecovery, applyRecovery} from '../../src/engine/journal/recover.js'
import {openArray} from '../../src/engine/array.js'
import {createMemArray, cloneDevs, runWorkload, pseudoRandom, snapshot, type WriteOp} from '../helpers/model.js'

describe('recover: bounded-memory replay equals the whole-log plan', function () {
  this.timeout(120000)
  for (const level of [5, 6] as const) {
    for (const mode of ['write-through', 'write-back'] as const) {
      it(`raid${level} ${mode}: batches of 1, 2, 7 and default stripes give the same members as the full plan`, () => {
        const a = createMemArray({level, raidDevices: level === 6 ? 5 : 4, chunkBytes: 16384, memberDataBytes: 1 << 20, journalRingBytes: 2 << 20})
        // overlapping writes so stripes are logged several times; cut before the log is closed
        const ops: WriteOp[] = [
          {offset: 0, data: pseudoRandom(160 << 10, 1), mode},
          {offset: 16 << 10, data: pseudoRandom(48 << 10, 2), mode},
          {offset: 64 << 10, data: pseudoRandom(300 << 10, 3), mode},
        ]
        const total = runWorkload(cloneDevs(a.devs), ops).writes
        const dirty = cloneDevs(a.devs)
        // write-through: cut before the log is closed; write-back: the cached stripes stay in the log anyway
        runWorkload(dirty, ops, mode === 'write-through' ? {crashAfter: total - 3} : {})
        // reference: the whole-log plan applied at once
        const ref = cloneDevs(dirty)
        const arr = openArray(ref, {writable: true})
        const plan = planRecovery(arr)
        assert.ok(plan.fromLog.size + plan.dataOnly.size > 0, 'the log holds something to replay')
        applyRecovery(arr, plan)
        arr.close()
        const want = snapshot(ref)
        for (const batch of [1, 2, 7, 33, 2048]) {
          const old = setReplayWindow(batch)
          try {
            const devs = cloneDevs(dirty)
            const r = recoverArray(devs, {})
            assert.equal(r.state, 'replayed')
            const got = snapshot(devs)
            // members identical; journal identical too (same closing block, same superblocks but utime)
            for (let i = 1; i < devs.length; i++)
              assert.ok(Buffer.from(got[i].subarray(8192)).equals(Buffer.from(want[i].subarray(8192))), `batch ${batch}: member ${i - 1}`)
            assert.equal(recoverArray(devs, {}).state, 'clean')
          } finally {
            setReplayWindow(old)
          }
        }
      })
    }
  }
})
