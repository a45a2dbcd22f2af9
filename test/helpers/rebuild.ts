/** Full in-memory arrays with members taken out, for the rebuild tests (engine and crash sweep). */
import {writeData} from '../../src/engine/index.js'
import {MemDevice} from '../../src/engine/device.js'
import {bufferSource, createMemArray, DATA_OFFSET_BYTES, pseudoRandom} from './model.js'

const KiB = 1024
export const MEMBER_DATA = 256 * KiB

export interface Filled {
  /** journal first, then the members by slot */
  devs: MemDevice[]
  data: Buffer
  level: 5 | 6
}

export function filledArray(level: 5 | 6, seed = 7): Filled {
  const n = level === 6 ? 5 : 4
  const a = createMemArray({level, raidDevices: n, chunkBytes: 16 * KiB, memberDataBytes: MEMBER_DATA, journalRingBytes: 256 * KiB})
  const data = pseudoRandom(a.sizeBytes, seed + level)
  writeData(a.devs, 0, data.length, bufferSource(data), {mode: 'write-through'})
  return {devs: a.devs, data, level}
}

/** The member data area of a device (what the slot holds). */
export function memberBytes(d: MemDevice): Buffer {
  return Buffer.from(d.data.subarray(DATA_OFFSET_BYTES, DATA_OFFSET_BYTES + MEMBER_DATA))
}

/** The devices without the members of `slots`, and a blank device per slot. */
export function takeOut(f: Filled, slots: number[]): {survivors: MemDevice[]; blanks: MemDevice[]; originals: Buffer[]} {
  return {
    survivors: f.devs.filter((_, i) => !slots.includes(i - 1)),
    blanks: slots.map(s => new MemDevice(`new${s}`, f.devs[s + 1].size)),
    originals: slots.map(s => memberBytes(f.devs[s + 1])),
  }
}
