/**
 * read and serve: the array's bytes (io.ts readArray) through one view. A dirty journal is replayed in
 * memory (journal/view.ts, on the plan recover would apply): the bytes Linux presents after its
 * replay, with nothing written.
 */
import {type DeviceSource, type MdArray, openArray} from '../array.js'
import {ReadBuffers, readArray} from '../io.js'
import {arraySizeBytes, checkRange, type Progress} from '../rows.js'
import {planOrCorrupt, type RecoveryPlan} from '../journal/plan.js'
import {PlanOverlay, replayedStripes} from '../journal/view.js'
import {CorruptError} from '../errors.js'
import {PAGE} from '../journal/ring.js'
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

/** The array as read presents it: opened once, then read at any offset as often as wanted. */
export interface ArrayView {
  readonly arr: MdArray
  /** bytes */
  readonly size: number
  /** what the view made of the journal; pagesServed and journalBytesRead count every read so far */
  journal(): ReadJournal
  /** the bytes at [offset, offset + length) handed to `sink` window by window (views valid during the call) */
  stream(offset: number, length: number, sink: (v: Uint8Array[]) => void, progress?: Progress): void
  /** the bytes at [offset, offset + length), any alignment, in a buffer of the caller's */
  read(offset: number, length: number): Uint8Array
}

/**
 * The view of an opened array: with a dirty journal (and `replay` not false), the plan recover would
 * apply, laid over the members in memory; otherwise the members as they are. `progress` covers the
 * walk of the log, in bytes of the ring.
 */
export function viewOf(arr: MdArray, opts: ReadOptions, progress?: Progress): ArrayView {
  let journal = journalOf(arr.journal ? 'unchecked' : 'absent')
  let overlay: PlanOverlay | undefined
  if (arr.journal && opts.replay !== false) {
    const p = planOrCorrupt(arr, progress)
    if (p instanceof CorruptError) journal = journalOf('corrupt', undefined, p.message)
    else {
      journal = journalOf(p.clean ? 'clean' : 'dirty', p)
      // with every member present nothing is rebuilt, so the logged parity is not read
      if (journal.replayed) overlay = new PlanOverlay(arr, p, {parity: arr.missingMembers.length > 0})
    }
  }
  const buffers = new ReadBuffers(arr)
  const stream = (offset: number, length: number, sink: (v: Uint8Array[]) => void, pr?: Progress) =>
    readArray(arr, offset, length, sink, pr, overlay, buffers)
  return {
    arr,
    size: arraySizeBytes(arr),
    journal: () => (overlay ? {...journal, pagesServed: overlay.pagesServed, journalBytesRead: overlay.journalBytesRead} : journal),
    stream,
    read(offset, length) {
      // any byte range: the pages around it are read, and the range copied out of them
      const from = offset - (offset % PAGE)
      const to = Math.min(Math.ceil((offset + length) / PAGE) * PAGE, Math.max(from, arraySizeBytes(arr)))
      const out = new Uint8Array(length)
      let at = from
      stream(from, to - from, views => {
        for (const v of views) {
          const a = Math.max(at, offset)
          const b = Math.min(at + v.length, offset + length)
          if (a < b) out.set(v.subarray(a - at, b - at), a - offset)
          at += v.length
        }
      })
      return out
    },
  }
}

/**
 * Open the array read-only (members may be missing) for viewOf; the caller closes it. `hold` keeps
 * writers out while it is open, for a view that outlives a moment (serve).
 */
export function openForView(paths: DeviceSource[], opts: ReadOptions & {hold?: boolean}): MdArray {
  return openArray(paths, {
    writable: false,
    hold: opts.hold,
    allowMissingMembers: true,
    allowMissingJournal: opts.force,
    journalless: true,
    compute: opts.compute,
  })
}

/** Read `length` bytes at `offset` (default: to the end) of the array as viewOf presents it. */
export function readData(
  paths: DeviceSource[],
  offset: number,
  length: number | undefined,
  sink: (v: Uint8Array[]) => void,
  opts: ReadOptions,
  progress?: Progress,
): {bytes: number; missingMembers: number[]; arrayUuid: string; journal: ReadJournal} {
  const arr = openForView(paths, opts)
  try {
    const len = length ?? arraySizeBytes(arr) - offset
    checkRange(arr, offset, len)
    // one measure for the walk of the log and the read: bytes of log walked, then of the array read
    const walk = arr.journal && opts.replay !== false ? (arr.ring?.sizeBytes ?? 0) : 0
    const view = viewOf(arr, opts, progress && ((d, t) => progress(d, t + len)))
    view.stream(offset, len, sink, progress && ((d, t) => progress(walk + d, walk + t)))
    return {bytes: len, missingMembers: arr.missingMembers, arrayUuid: arr.uuid, journal: view.journal()}
  } finally {
    arr.close()
  }
}
