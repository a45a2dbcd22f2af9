/**
 * recover and reclaim: one plan of the live log (journal/plan.ts), listed by --dry-run, applied by
 * recover (journal/apply.ts); reclaim writes the cache out (journal/reclaim.ts).
 */
import type {EngineOptions} from '../compute.js'
import {type DeviceSource, type MdArray, openArray} from '../array.js'
import {type Progress} from '../rows.js'
import {planRecovery, planWrites, type RecoveryPlan, type SkippedUnit, type WriteRun} from '../journal/plan.js'
import {applyRecovery, planWriteOut} from '../journal/writeout.js'
import {seqAfter} from '../format/meta.js'
import {reclaimLog, type ReclaimResult} from '../journal/reclaim.js'

export interface RecoverResult {
  arrayUuid: string
  dryRun: boolean
  state: 'clean' | 'replayed' | 'would-replay'
  journalTailSector: number
  tailSeq: string
  stopSector: number
  stopReason: string
  stopMessage: string
  newTailSector: number
  newSeq: string
  metaBlocks: number
  skippedUnits: SkippedUnit[]
  dataParityStripes: number
  dataOnlyStripes: number
  /** data-only stripes whose parity did not fit the ring, written out without it (journal/writeout.ts) */
  unloggedStripes: number
  pagesWritten: number
  logBytesScanned: number
  writes: WriteRun[]
  /** member slots not given: written nothing, their pages follow from the others' (rebuild them next) */
  missingSlots: number[]
}

export type RecoverOptions = EngineOptions & {dryRun?: boolean; untilSeq?: bigint; progress?: Progress}

export function recoverArray(paths: DeviceSource[], opts: RecoverOptions): RecoverResult {
  // with members missing the log replays onto those present, as the kernel's at a degraded assemble
  const arr = openArray(paths, {writable: !opts.dryRun, compute: opts.compute, allowMissingMembers: true})
  try {
    // the whole log is walked and verified, and every write planned, before anything is written;
    // --dry-run lists the writes of this very plan
    const plan = planRecovery(arr, {untilSeq: opts.untilSeq, progress: walkProgress(opts.progress)})
    return replayPlan(arr, plan, opts)
  } finally {
    arr.close()
  }
}

/**
 * One measure for the walk and the writes: the walk fills the first half (of the ring, as the head
 * is not known until it ends), the writes the second (of the live log).
 */
export function walkProgress(p: Progress | undefined): ((done: number, total: number) => void) | undefined {
  return p && ((done, total) => p(done, 2 * total))
}

/** Apply a plan of `arr`'s log (or, with dryRun, list its writes): the second half of recover, also assemble's replay. */
export function replayPlan(arr: MdArray, plan: RecoveryPlan, opts: {dryRun?: boolean; progress?: Progress}): RecoverResult {
  const p = opts.progress
  const writes = opts.dryRun ? planWrites(arr, plan) : []
  const wo = planWriteOut(arr, plan)
  let pages = 0
  for (const w of writes) pages += w.pages
  if (!opts.dryRun) pages = applyRecovery(arr, plan, p && (f => p(1 + f, 2)), wo).pagesWritten
  p?.(1, 1)
  return {
    arrayUuid: arr.uuid,
    dryRun: Boolean(opts.dryRun),
    state: plan.clean ? 'clean' : opts.dryRun ? 'would-replay' : 'replayed',
    journalTailSector: plan.tailSector,
    tailSeq: plan.tailSeq.toString(),
    stopSector: plan.stop.position,
    stopReason: plan.stop.code,
    stopMessage: plan.stop.message,
    newTailSector: plan.clean ? plan.tailSector : wo.head,
    newSeq: (plan.clean ? plan.tailSeq : seqAfter(wo.seq, 10000n)).toString(),
    metaBlocks: plan.units,
    skippedUnits: plan.skipped,
    logBytesScanned: plan.logBytesScanned,
    dataParityStripes: plan.dataParityStripes,
    dataOnlyStripes: plan.dataOnlyStripes,
    unloggedStripes: wo.unlogged.length,
    pagesWritten: plan.clean ? 0 : pages,
    writes,
    missingSlots: arr.missingMembers,
  }
}

export function reclaimArray(paths: DeviceSource[], opts: EngineOptions & {progress?: Progress} = {}): ReclaimResult & {arrayUuid: string} {
  const arr = openArray(paths, {writable: true, compute: opts.compute, allowMissingMembers: true})
  try {
    return {...reclaimLog(arr, opts.progress), arrayUuid: arr.uuid}
  } finally {
    arr.close()
  }
}
