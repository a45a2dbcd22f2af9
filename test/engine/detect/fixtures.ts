/**
 * Arrays for the detect tests: made with the engine's own create and write (in memory), written with
 * pseudo-random extents that leave gaps (as a filesystem leaves free space), then their superblocks
 * zeroed as `mdadm --zero-superblock` zeroes them. The expected geometry is what the test created,
 * never what detect said.
 */
import {MemDevice} from '../../../src/engine/device.js'
import {writeData} from '../../../src/engine/index.js'
import {bufferSource, createMemArray, pseudoRandom, type MemArray} from '../../helpers/model.js'

export const KiB = 1024
const SB_OFFSET = 4096

/** mdadm's names of the layouts (maps.c), written out here rather than taken from the engine */
export const LAYOUT_NAMES: Record<number, string> = {
  0: 'left-asymmetric',
  1: 'right-asymmetric',
  2: 'left-symmetric',
  3: 'right-symmetric',
  4: 'parity-first',
  5: 'parity-last',
  8: 'ddf-zero-restart',
  9: 'ddf-N-restart',
  10: 'ddf-N-continue',
  16: 'left-asymmetric-6',
  17: 'right-asymmetric-6',
  18: 'left-symmetric-6',
  19: 'right-symmetric-6',
  20: 'parity-first-6',
}

export interface Made {
  a: MemArray
  /** the members in slot order, then the journal */
  level: 4 | 5 | 6
  layout: number
  chunkBytes: number
}

/** A journaled array in memory with `extents` random extents of random data written through the journal. */
export function makeArray(level: 4 | 5 | 6, n: number, layout: number, chunkBytes: number, seed: number, extents = 12): Made {
  const a = createMemArray({level, raidDevices: n, chunkBytes, memberDataBytes: 2048 * KiB, journalRingBytes: 1024 * KiB, layout})
  // mulberry32: a small seeded generator with every bit of its output usable
  let x = seed >>> 0
  const rnd = (k: number) => {
    x = (x + 0x6d2b79f5) >>> 0
    let t = Math.imul(x ^ (x >>> 15), 1 | x)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * k
  }
  const pages = a.sizeBytes / 4096
  for (let e = 0; e < extents; e++) {
    const len = 1 + Math.floor(rnd(pages / 16))
    const at = Math.floor(rnd(pages - len))
    const data = pseudoRandom(len * 4096, seed * 100 + e)
    writeData(a.devs, at * 4096, data.length, bufferSource(data), {mode: 'write-through'})
  }
  return {a, level, layout, chunkBytes}
}

/** Zero the md superblock of each device (its 4 KiB at byte 4096), as mdadm --zero-superblock does. */
export function zeroSuperblocks(devs: MemDevice[]): void {
  for (const d of devs) d.data.fill(0, SB_OFFSET, SB_OFFSET + 4096)
}

/** The devices in a fixed shuffled order (a seeded permutation). */
export function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items]
  let x = seed + 1
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 48271) % 2147483647
    const j = x % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}
