/**
 * ops/read.ts: the view opened once (what `serve` answers requests from) reads any range as a whole
 * `read` presents it, journal replayed in memory, members left out, and never writes a byte.
 */
import assert from 'node:assert/strict'
import {examineJournal, openForView, readData, recoverArray, viewOf, writeData} from '../../../src/engine/index.js'
import {MemDevice} from '../../../src/engine/device.js'
import {bufferSource, cloneDevs, createMemArray, deviceHashes, pseudoRandom, runWorkload} from '../../helpers/model.js'

const KiB = 1024

/** the reference: recover on a copy, then a whole read of it */
function recoveredBytes(devs: MemDevice[]): Buffer {
  const copy = cloneDevs(devs)
  recoverArray(copy, {})
  const parts: Buffer[] = []
  readData(copy, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {})
  return Buffer.concat(parts)
}

/**
 * A RAID5 or RAID6 array with a dirty journal: write-back records (data-only stripes), or a
 * write-through write cut by a power cut (complete stripes the members may lack)
 */
function dirtyArray(level: 5 | 6, mode: 'write-through' | 'write-back'): MemDevice[] {
  const a = createMemArray({level, raidDevices: level === 6 ? 5 : 4, chunkBytes: 16 * KiB, memberDataBytes: 128 * KiB, journalRingBytes: 512 * KiB})
  writeData(a.devs, 0, a.sizeBytes, bufferSource(pseudoRandom(a.sizeBytes, 7)), {mode: 'write-through'})
  const ops = [
    {offset: 100 * KiB, data: pseudoRandom(12 * KiB, 9), mode},
    {offset: 20 * KiB, data: pseudoRandom(140 * KiB, 8), mode},
    {offset: a.sizeBytes - 64 * KiB, data: pseudoRandom(60 * KiB, 10), mode},
  ]
  const writes = runWorkload(cloneDevs(a.devs), ops).writes
  runWorkload(a.devs, ops, {crashAfter: mode === 'write-back' ? writes : writes - 8})
  assert.equal(examineJournal(a.devs).state, 'dirty')
  return a.devs
}

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
