/** read: the array's bytes (io.ts readArray), refusing a dirty journal unless forced. */
import {type DeviceSource, openArray} from '../array.js'
import {readArray} from '../io.js'
import {arraySizeBytes, type Progress} from '../rows.js'
import {journalState} from '../journal/state.js'
import {R5Error, EXIT} from '../errors.js'
import type {EngineOptions} from '../compute.js'

export function readData(
  paths: DeviceSource[],
  offset: number,
  length: number | undefined,
  sink: (v: Uint8Array[]) => void,
  opts: EngineOptions & {force?: boolean},
  progress?: Progress,
): {bytes: number; missingMembers: number[]; arrayUuid: string} {
  const arr = openArray(paths, {writable: false, allowMissingMembers: true, allowMissingJournal: opts.force, compute: opts.compute})
  try {
    if (arr.journal && !opts.force) {
      const js = journalState(arr)
      if (js.state === 'dirty') {
        throw new R5Error(
          `journal is dirty: ${js.stripesDataParity + js.stripesDataOnly} stripe(s) pending replay; the members may be stale`,
          EXIT.DIRTY,
          arr.journal.path,
          'replay it with `r5ctl recover`, or pass --force to read the members as they are',
          'dirty',
        )
      }
    }
    const len = length ?? arraySizeBytes(arr) - offset
    readArray(arr, offset, len, sink, progress)
    return {bytes: len, missingMembers: arr.missingMembers, arrayUuid: arr.uuid}
  } finally {
    arr.close()
  }
}
