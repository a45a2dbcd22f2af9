/**
 * assemble on a dirty journal: the replay it runs is recover's own plan, made once on the devices
 * it opened, and it leaves the set as recover does.
 */
import assert from 'node:assert/strict'
import {assembleArray, recoverArray} from '../../../src/engine/index.js'
import {cloneDevs} from '../../helpers/model.js'
import {dirtyArray, readBytes, recoveredBytes} from '../../helpers/dirty.js'

describe('assemble: replay of a dirty journal', () => {
  for (const mode of ['write-through', 'write-back'] as const) {
    it(`${mode}: assemble reads the log no more than recover does, and leaves the set as recover does`, () => {
      const devs = dirtyArray(5, mode)
      const viaRecover = cloneDevs(devs)
      const viaAssemble = cloneDevs(devs)
      const r = recoverArray(viaRecover, {})
      const a = assembleArray(viaAssemble, {})
      assert.equal(a.recovery?.state, 'replayed')
      assert.deepEqual({...a.recovery, writes: []}, {...r, writes: []})
      // superblock probes aside, the journal is read by one walk and one copy of the pages it replays
      const read = (d: (typeof devs)[number]) => d.stats.bytesRead
      assert.ok(
        read(viaAssemble[0]) <= read(viaRecover[0]) + 64 * 1024,
        `assemble read ${read(viaAssemble[0])} journal bytes, recover ${read(viaRecover[0])}`,
      )
      assert.ok(readBytes(viaAssemble).equals(recoveredBytes(devs)))
    })
  }
})
