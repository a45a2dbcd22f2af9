/**
 * check: md's `check` sync action offline. Every stripe of a range of member sectors is read from
 * every member, a dirty journal's complete stripes laid over it as the replayed view lays them
 * (journal/view.ts), and its parity compared (scrub.ts). Writes nothing. Stripes the journal holds
 * as data only are not judged: replaying them computes their parity, so they hold after it.
 */
import type {EngineOptions} from '../compute.js'
import {type DeviceSource, type MdArray, openArray} from '../array.js'
import {CorruptError, UsageError} from '../errors.js'
import {FEATURE_JOURNAL} from '../format/superblock.js'
import {planOrCorrupt, type RecoveryPlan} from '../journal/plan.js'
import {PlanOverlay} from '../journal/view.js'
import {rowLayout, type Progress} from '../rows.js'
import {forEachWindow, Scrubber, type Mismatch} from '../scrub.js'

/** at most this many mismatches are listed; all are counted */
export const MISMATCHES_LISTED = 10000

export interface CheckOptions extends EngineOptions {
  /** first member sector to check (a multiple of 8); default 0 */
  from?: number
  /** member sector to stop before (a multiple of 8); default the end of the members' data */
  to?: number
  /** false: the members as they are, a dirty journal not laid over them (--no-replay) */
  replay?: boolean
  /** check without the journal device: the members as they are (--force, as read has it) */
  force?: boolean
  /** (member bytes read, member bytes to read) */
  progress?: Progress
  /** the member sector checked up to, after each window: a later check resumes there with `from` */
  position?: (sector: number) => void
}

export interface CheckResult {
  arrayUuid: string
  level: number
  fromSector: number
  /** where the check stopped: the end of the range (a later --from resumes here) */
  toSector: number
  stripes: number
  mismatchCount: number
  /** the first MISMATCHES_LISTED of them, in sector order */
  mismatches: Mismatch[]
  /** clean, dirty (its complete stripes laid over the members), corrupt (ignored as the kernel does), unchecked (--no-replay), absent (an array without a journal), missing (not given: --force) */
  journal: 'clean' | 'dirty' | 'corrupt' | 'unchecked' | 'absent' | 'missing'
  /** stripes not judged: data-only in a dirty journal */
  skippedStripes: number
}

export function checkArray(paths: DeviceSource[], opts: CheckOptions = {}): CheckResult {
  const arr = openArray(paths, {writable: false, journalless: true, allowMissingJournal: opts.force, compute: opts.compute})
  try {
    const {from, to} = memberRange(arr, opts)
    const {plan, journal} = replayPlan(arr, opts.replay !== false)
    return {
      arrayUuid: arr.uuid,
      level: arr.sb.level,
      fromSector: from,
      toSector: to,
      journal,
      ...scrubRange(arr, from, to, plan, withPosition(arr, from, opts)),
    }
  } finally {
    arr.close()
  }
}

/** The progress callback, which also tells `position` the member sector reached. */
function withPosition(arr: MdArray, from: number, opts: CheckOptions): Progress | undefined {
  const {progress, position} = opts
  if (!position) return progress
  const perSector = 512 * arr.sb.raidDisks
  return (done, total) => {
    position(from + done / perSector)
    progress?.(done, total)
  }
}

/** The member sectors [from, to) of --from/--to: multiples of 8 within the members' data. */
export function memberRange(arr: MdArray, opts: {from?: number; to?: number}): {from: number; to: number} {
  const end = Number(arr.geometry.usedMemberSectors)
  const from = opts.from ?? 0
  const to = opts.to ?? end
  for (const [name, v] of [
    ['--from', from],
    ['--to', to],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0 || v % 8 !== 0 || v > end)
      throw new UsageError(`${name} ${v} must be a member sector, a multiple of 8, at most ${end}`)
  }
  if (to < from) throw new UsageError(`--to ${to} is before --from ${from}`)
  return {from, to}
}

/** The plan a dirty journal is laid over the members by; a corrupt one is ignored, as read ignores it. */
function replayPlan(arr: MdArray, replay: boolean): {plan: RecoveryPlan | null; journal: CheckResult['journal']} {
  if (!arr.journal) return {plan: null, journal: arr.sb.featureMap & FEATURE_JOURNAL ? 'missing' : 'absent'}
  if (!replay) return {plan: null, journal: 'unchecked'}
  const plan = planOrCorrupt(arr)
  if (plan instanceof CorruptError) return {plan: null, journal: 'corrupt'}
  return plan.clean ? {plan: null, journal: 'clean'} : {plan, journal: 'dirty'}
}

/** Judge member sectors [from, to) window by window of chunk rows. */
function scrubRange(
  arr: MdArray,
  from: number,
  to: number,
  plan: RecoveryPlan | null,
  progress?: Progress,
): {stripes: number; mismatchCount: number; mismatches: Mismatch[]; skippedStripes: number} {
  const cached = new Set(plan?.dataOnly.keys() ?? [])
  const scrub = new Scrubber(arr)
  const out = {stripes: 0, mismatchCount: 0, mismatches: [] as Mismatch[], skippedStripes: 0}
  for (const s of cached) if (s >= from && s < to) out.skippedStripes++
  const skip = (s: number) => s < from || s >= to || cached.has(s)
  const chunkBytes = arr.sb.chunkSize * 512
  const visit = (r0: number, r1: number, slots: Uint8Array[]) => {
    for (let r = r0; r < r1; r++) {
      for (const m of scrub.row(r, rowLayout(arr, r), slots, (r - r0) * chunkBytes, skip)) {
        out.mismatchCount++
        if (out.mismatches.length < MISMATCHES_LISTED) out.mismatches.push(m)
      }
    }
  }
  forEachWindow(arr, from, to, visit, {overlay: plan && new PlanOverlay(arr, plan), progress})
  out.stripes = (to - from) / 8 - out.skippedStripes
  return out
}
