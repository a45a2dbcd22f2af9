/**
 * Arrays with a dirty journal, and the bytes they should read as once replayed: shared by the
 * tests of the replayed view and of recover.
 */
import assert from 'node:assert/strict'
import {examineJournal, readData, recoverArray, writeData} from '../../src/engine/index.js'
import type {MemDevice} from '../../src/engine/device.js'
import {bufferSource, cloneDevs, createMemArray, pseudoRandom, runWorkload} from './model.js'

const KiB = 1024

/** the reference: recover on a copy of the whole set, then a whole read of it */
export function recoveredBytes(devs: MemDevice[]): Buffer {
  const copy = cloneDevs(devs)
  recoverArray(copy, {})
  return readBytes(copy)
}

/** every byte of the array as read (refuses a dirty journal) */
export function readBytes(devs: MemDevice[]): Buffer {
  const parts: Buffer[] = []
  readData(devs, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {})
  return Buffer.concat(parts)
}

/**
 * A RAID5 or RAID6 array (journal first, then the members in slot order) with a dirty journal:
 * write-back records (data-only stripes), or a write-through write cut by a power cut (complete
 * stripes the members may lack)
 */
export function dirtyArray(level: 5 | 6, mode: 'write-through' | 'write-back'): MemDevice[] {
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
