/**
 * ops/read.ts: the view opened once (what `serve` answers requests from) reads any range as a whole
 * `read` presents it, journal replayed in memory, members left out, and never writes a byte.
 */
import assert from 'node:assert/strict'
import {openForView, viewOf} from '../../../src/engine/index.js'
import {deviceHashes, pseudoRandom} from '../../helpers/model.js'
import {dirtyArray, recoveredBytes} from '../../helpers/dirty.js'

describe('ops/read: the view opened once', () => {
  for (const [level, mode] of [
    [5, 'write-through'],
    [5, 'write-back'],
    [6, 'write-through'],
    [6, 'write-back'],
  ] as const) {
    it(`RAID${level}, ${mode}: reads of any range, in any order, equal recover-then-read, with a member left out too; nothing written`, () => {
      const devs = dirtyArray(level, mode)
      const whole = recoveredBytes(devs)
      for (const set of [devs, [devs[0], ...devs.slice(2)]]) {
        const before = deviceHashes(devs)
        const arr = openForView(set, {})
        try {
          const view = viewOf(arr, {})
          assert.equal(view.size, whole.length)
          const rnd = pseudoRandom(4 * 200, 99)
          for (let k = 0; k < 200; k++) {
            const at = (rnd.readUInt32LE(4 * k) % (whole.length / 512)) * 512
            const len = Math.min(whole.length - at, 512 * (1 + (rnd.readUInt16LE(4 * k) % 300)))
            assert.deepEqual(Buffer.from(view.read(at, len)), whole.subarray(at, at + len), `read of ${len} at ${at}`)
          }
        } finally {
          arr.close()
        }
        assert.deepEqual(deviceHashes(devs), before, 'no device changed')
      }
    })
  }
})
