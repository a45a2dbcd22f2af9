/**
 * recover's progress: one measure from the walk of the log to the last page written, so a progress
 * bar fills once instead of filling for the walk and starting again for the writes.
 */
import assert from 'node:assert/strict'
import {recoverArray} from '../../../src/engine/index.js'
import {cloneArray, createMemArray, MiB, pseudoRandom, runWorkload} from '../../helpers/model.js'

describe('recover: progress', function () {
  this.timeout(60000)

  for (const mode of ['write-through', 'write-back'] as const) {
    it(`${mode}: the progress fraction never goes back and ends at 1`, () => {
      // a log of more than one 8 MiB copy window that fills most of the ring: the walk ends near the
      // whole ring, where a bar that restarted for the writes would fall back
      const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 65536, memberDataBytes: 8 * MiB, journalRingBytes: 20 * MiB})
      const data = pseudoRandom(12 * MiB, 5)
      // a write-through write cut just before its closing block and superblocks leaves a dirty log;
      // write-back leaves its data in the log anyway
      const all = runWorkload(cloneArray(a).devs, [{offset: 0, data, mode}]).writes
      const w = runWorkload(a.devs, [{offset: 0, data, mode}], {crashAfter: mode === 'write-through' ? all - 1 - a.devs.length : undefined})
      assert.ok(mode === 'write-back' || w.interrupted === 0, 'the write was cut')
      const seen: number[] = []
      const r = recoverArray(a.devs, {progress: (done, total) => seen.push(done / total)})
      assert.equal(r.state, 'replayed')
      assert.ok(seen.length >= 2, `${seen.length} progress calls`)
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress went from ${seen[i - 1]} back to ${seen[i]} (call ${i})`)
      assert.equal(seen[seen.length - 1], 1)
    })
  }
})
