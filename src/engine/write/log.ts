/**
 * The journal's side of a write, and with it the order of device writes that keeps the array
 * consistent after a crash at any point: a write starts on a clean log (opened as the kernel does
 * at array start, cached write-back stripes first reclaimed for write-through); each batch goes
 * into the ring and is flushed before its pages reach the members; a full log is made room in by a
 * checkpoint (write-through) or a reclaim (write-back); write-through ends with the members durable,
 * an empty meta block at the head, and the superblocks last.
 */
import {type MdArray} from '../array.js'
import {R5Error, UsageError, EXIT} from '../errors.js'
import {encodeMetaBlock, seqAfter} from '../format/meta.js'
import {planRecovery, type RecoveryPlan} from '../journal/plan.js'
import {reclaimLog} from '../journal/reclaim.js'
import {writeOutRoom} from '../journal/writeout.js'
import {runsOf} from '../journal/apply.js'
import {StripePages} from '../journal/stripes.js'
import {BLOCK_SECTORS, PAGE} from '../journal/ring.js'
import type {LogBatch} from './batch.js'

/** The log's replay plan, refused when anything is pending replay (no device is written). */
export function cleanLogPlan(arr: MdArray): RecoveryPlan {
  const plan = planRecovery(arr)
  if (plan.fromLog.size > 0 || plan.skipped.length > 0)
    throw new R5Error(
      `journal is dirty: ${plan.dataParityStripes} stripe(s) with data and parity pending replay`,
      EXIT.DIRTY,
      arr.journal!.path,
      'replay it first with `r5ctl recover`',
      'dirty',
    )
  return plan
}

/** What a batch commit and the log's close add to the write's result. */
export interface LogTotals {
  journalBytes: number
  checkpoints: number
  reclaimedStripes: number
}

/** Where the write's log stands: the head (next unit), the tail (oldest needed) and the next seq. */
export class WriteLog {
  head: number
  tail: number
  seq: bigint
  /** the last unit whose pages are on the members (the tail a checkpoint moves to) */
  lastUnitOnMembers: number
  /** the pages cached in the live log (write-back): where a partial page's other bytes are newest (none after a reclaim) */
  cached: StripePages
  /** stripes cached in the live log (write-back), and the runs of consecutive ones, at most: a stripe two batches touch counts twice */
  private cachedStripes: number
  private cachedRuns: number

  /**
   * Start the write on `plan` (from cleanLogPlan): write-through first writes cached write-back
   * stripes out (their parity must be on the members before new parity is computed from them);
   * write-back with cached stripes continues the live log; otherwise the log is opened anew with an
   * empty meta block at the head with seq + 10000 as the tail, so nothing stale beyond the head can
   * ever continue it.
   */
  constructor(
    private readonly arr: MdArray,
    plan: RecoveryPlan,
    private readonly wb: boolean,
    private readonly totals: LogTotals,
  ) {
    const ring = arr.ring!
    // a log that fills the ring (which the kernel never leaves) cannot be continued either
    if (plan.dataOnly.size > 0 && (!wb || plan.liveSectors >= ring.sizeSectors)) {
      totals.reclaimedStripes += reclaimLog(arr).dataOnlyStripes
      plan = planRecovery(arr)
    }
    this.cached = plan.dataOnly
    this.cachedStripes = plan.dataOnly.size
    this.cachedRuns = [...runsOf(plan.dataOnly.keys(), Infinity)].length
    if (plan.dataOnly.size > 0) {
      this.head = plan.stop.position
      this.tail = plan.tailSector
      this.seq = plan.stopSeq
      this.lastUnitOnMembers = -1
    } else {
      this.tail = plan.stop.position
      ring.write(encodeMetaBlock({seq: plan.newSeq, position: BigInt(this.tail), payloads: []}, arr.seed), this.tail)
      arr.journal!.dev.flush()
      arr.writeSuperblocks(this.tail)
      this.head = ring.add(this.tail, BLOCK_SECTORS)
      this.seq = seqAfter(plan.newSeq)
      this.lastUnitOnMembers = this.tail
    }
  }

  /** Batch `b` into the ring (room made first), flushed, then its pages onto the members. */
  commit(b: LogBatch, memberBase: number[]): void {
    const arr = this.arr
    const ring = arr.ring!
    const sectors = b.logLen / 512
    this.makeRoom(sectors, b.stripes, b.runs)
    this.seq = b.stamp(arr, ring, this.head, this.seq)
    ring.write(b.log.subarray(0, b.logLen), this.head)
    arr.journal!.dev.flush()
    this.totals.journalBytes += b.logLen
    b.writeMembers(arr, memberBase)
    this.head = ring.add(this.head, sectors)
    this.lastUnitOnMembers = b.lastUnitPos
    if (this.wb) {
      this.cachedStripes += b.stripes
      this.cachedRuns += b.runs
    }
  }

  /**
   * Room for `sectors` more and the closing empty meta block, by a checkpoint or a reclaim.
   * Write-back also keeps free the room that writing its cached stripes out (these `stripes` too)
   * takes, so that no cached stripe ever goes to the members without its parity logged first.
   */
  private makeRoom(sectors: number, stripes: number, runs: number): void {
    const arr = this.arr
    const ring = arr.ring!
    const reserve = () => (this.wb ? writeOutRoom(arr, this.cachedStripes + stripes, this.cachedRuns + runs) : 0)
    const full = () => ring.distance(this.tail, this.head) + sectors + BLOCK_SECTORS + reserve() >= ring.sizeSectors
    if (!full()) return
    if (this.wb) {
      // a full log: write the cached stripes out (parity, members, flush payloads), then go on
      // right after the closing block reclaim leaves at the tail, with the seq it hands out
      // (the batch's meta blocks are stamped afterwards, for that new place)
      const r = reclaimLog(arr)
      this.totals.reclaimedStripes += r.dataOnlyStripes
      this.cached = new StripePages(arr.sb.raidDisks) // all on the members now, and their log places are reused
      this.cachedStripes = 0
      this.cachedRuns = 0
      this.tail = r.journalTailSector
      this.head = ring.add(this.tail, BLOCK_SECTORS)
      this.seq = r.nextSeq
    } else {
      // checkpoint: everything up to the last unit is on the members; make it durable, move the tail
      this.flushMembers()
      arr.writeSuperblocks(this.lastUnitOnMembers)
      this.tail = this.lastUnitOnMembers
    }
    this.totals.checkpoints++
    if (full()) throw new UsageError('journal too small for this write batch', undefined, arr.journal!.path)
  }

  private flushMembers(): void {
    for (const d of this.arr.members) d!.dev.flush()
  }

  /**
   * Close a write-through write: members durable, then an empty meta block at the head, then the
   * tail moves to it (superblocks last). A kernel that assembles this set finds a clean log.
   */
  close(): void {
    const arr = this.arr
    const ring = arr.ring!
    this.flushMembers()
    const empty = encodeMetaBlock({seq: this.seq, position: BigInt(this.head), payloads: []}, arr.seed)
    ring.write(empty, this.head)
    arr.journal!.dev.flush()
    arr.writeSuperblocks(this.head)
    this.totals.journalBytes += PAGE
  }
}
