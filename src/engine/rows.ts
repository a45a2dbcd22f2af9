/**
 * The array's rows of chunks and byte ranges, as the read path (io.ts) and the write path (write/)
 * both see them: the layout of a chunk row, the array's size, and which ranges may be read or written.
 */
import {UsageError} from './errors.js'
import type {MdArray} from './array.js'
import {PAGE} from './journal/ring.js'

/** bytes of member data moved per window */
export const WINDOW_BYTES = 8 << 20

export type Progress = (done: number, total: number) => void

export interface RowLayout {
  pd: number
  qd: number
  dataMembers: number[]
  qSlot: number[]
}

export function rowLayout(arr: MdArray, row: number): RowLayout {
  const chunkSectors = arr.sb.chunkSize
  return arr.geometry.stripeInfo(BigInt(row) * BigInt(chunkSectors))
}

export function arraySizeBytes(arr: MdArray): number {
  return Number(arr.geometry.arraySectors) * 512
}

/** A range of the array: `offset` a whole page, the end within the array. */
export function checkRange(arr: MdArray, offset: number, length: number): void {
  const size = arraySizeBytes(arr)
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE !== 0)
    throw new UsageError(`offset ${offset} must be a non-negative multiple of 4096`)
  if (offset > size)
    throw new UsageError(
      `offset ${offset} is past the end of the array (${size} bytes)`,
      'give an offset below the array size (`r5ctl examine` shows it)',
    )
  if (!Number.isSafeInteger(length) || length < 0) throw new UsageError(`bad length ${length}`)
  if (offset + length > size) throw new UsageError(`range ${offset}+${length} is beyond the end of the array (${size} bytes)`)
}
