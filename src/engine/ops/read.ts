/**
 * read: the array's bytes (io.ts readArray). A dirty journal is replayed in memory (journal/view.ts,
 * on the plan recover would apply): the bytes Linux presents after its replay, with nothing written.
 */
import {type DeviceSource, openArray} from '../array.js'
import {readArray} from '../io.js'
import {arraySizeBytes, checkRange, type Progress} from '../rows.js'
import {planOrCorrupt, type RecoveryPlan} from '../journal/plan.js'
import {readReplayed, replayedStripes} from '../journal/view.js'
import {CorruptError} from '../errors.js'
import type {EngineOptions} from '../compute.js'

/** What read made of the journal. */
export interface ReadJournal {
  /**
   * `clean`, `dirty` (replayed in memory unless `replay: false`), `corrupt` (no valid meta block at
   * the tail: the kernel discards such a log, so the members are read as they are), `absent` (no
   * journal device, with `force`), `unchecked` (`replay: false`: the log was not read)
   */
  state: 'clean' | 'dirty' | 'corrupt' | 'absent' | 'unchecked'
  /** the bytes include pages served from the journal */
  replayed: boolean
  /** distinct stripes served from the journal (all of the plan's, whatever the range read) */
  stripes: number
  dataParityStripes: number
  dataOnlyStripes: number
  /** log pages laid over the members' pages within the range read */
  pagesServed: number
  journalBytesRead: number
  /** why the journal is corrupt */
  message: string | null
}

export interface ReadOptions extends EngineOptions {
  /** read without the journal device (the members as they are) */
  force?: boolean
  /** false: read the members as they are even when the journal is dirty (--no-replay); default true */
  replay?: boolean
}

function journalOf(state: ReadJournal['state'], plan?: RecoveryPlan, message: string | null = null): ReadJournal {
  const replayed = state === 'dirty'
  return {
    state,
    replayed,
    stripes: replayed && plan ? replayedStripes(plan) : 0,
    dataParityStripes: plan?.dataParityStripes ?? 0,
    dataOnlyStripes: plan?.dataOnlyStripes ?? 0,
    pagesServed: 0,
    journalBytesRead: 0,
    message,
  }
}

/** The plan of the live log, or why there is none: no valid meta block at the tail (the kernel would start a new, empty log). */
export function readData(
  paths: DeviceSource[],
  offset: number,
  length: number | undefined,
  sink: (v: Uint8Array[]) => void,
  opts: ReadOptions,
  progress?: Progress,
): {bytes: number; missingMembers: number[]; arrayUuid: string; journal: ReadJournal} {
  const arr = openArray(paths, {writable: false, allowMissingMembers: true, allowMissingJournal: opts.force, compute: opts.compute})
  try {
    const len = length ?? arraySizeBytes(arr) - offset
    checkRange(arr, offset, len)
    let journal = journalOf(arr.journal ? 'unchecked' : 'absent')
    let plan: RecoveryPlan | null = null
    // one measure for the walk of the log and the read: bytes of log walked, then of the array read
    const walk = arr.ring?.sizeBytes ?? 0
    if (arr.journal && opts.replay !== false) {
      const p = planOrCorrupt(arr, progress && ((d, t) => progress(d, t + len)))
      if (p instanceof CorruptError) journal = journalOf('corrupt', undefined, p.message)
      else {
        plan = p
        journal = journalOf(p.clean ? 'clean' : 'dirty', p)
      }
    }
    if (plan && journal.replayed) {
      const st = readReplayed(arr, plan, offset, len, sink, progress && ((d, t) => progress(walk + d, walk + t)))
      journal = {...journal, pagesServed: st.pagesServed, journalBytesRead: st.journalBytesRead}
    } else readArray(arr, offset, len, sink, progress)
    return {bytes: len, missingMembers: arr.missingMembers, arrayUuid: arr.uuid, journal}
  } finally {
    arr.close()
  }
}
