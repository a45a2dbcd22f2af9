/**
 * writeArray: the array's write path (write-through: parity, log, flush, members, as raid5-cache.c
 * does; write-back: data into the log only). It owns the stream: the input read row by row into the
 * arena, each row's stripes decided (stripes.ts), laid into the batch (apply.ts), and each full batch
 * committed to the log and the members (log.ts), until the input or the range ends.
 */
import {alignedBuffer} from '../device.js'
import {R5Error, UsageError, EXIT} from '../errors.js'
import {missingMembersError, type MdArray} from '../array.js'
import {acquireArena, releaseArena} from '../parity-arena.js'
import type {StripePages} from '../journal/stripes.js'
import {BLOCK_SECTORS, PAGE} from '../journal/ring.js'
import {seqAfter} from '../format/meta.js'
import {WINDOW_BYTES, checkRange, rowLayout, type Progress} from '../rows.js'
import {LogBatch, META_LIMIT} from './batch.js'
import {StripeLayer, arenaBytes} from './apply.js'
import {RowPlan} from './stripes.js'
import {WriteLog, cleanLogPlan} from './log.js'

export interface WriteResult {
  bytes: number
  stripes: number
  ioUnits: number
  journalBytes: number
  rmwStripes: number
  rcwStripes: number
  checkpoints: number
  headSector: number
  lastSeq: bigint
  mode: 'write-through' | 'write-back'
  /** cached write-back stripes written out first (write-through after write-back, or a full log) */
  reclaimedStripes: number
  /** bytes acknowledged */
  acknowledged: number
}

/** Fill `buf` completely from the input; returns bytes read (less only at end of input). */
export type Source = (buf: Uint8Array) => number

export interface WriteOptions {
  mode?: 'write-through' | 'write-back'
  progress?: Progress
  /**
   * Bytes of log per batch (one journal write, one flush, then the members). Default 8 MiB: with
   * fdatasync at every batch that is group commit. Without flushes (--no-flush) nothing is amortized
   * and a 2 MiB batch stays in cache from the copy through CRC, parity and the writes.
   */
  batchBytes?: number
  /** called when the first `bytes` of the write are acknowledged (write-through: on the members; write-back: in the log) */
  onAck?: (bytes: number) => void
  /** `length` is an upper bound: a short read ends the write there, without an error (the result's `bytes` says where) */
  endAtShortInput?: boolean
}

/**
 * A batch is at most a quarter of the ring (so a checkpoint or reclaim always makes room for the
 * next one) and holds two of the largest stripes; checked before the first device write.
 * Write-back batches are smaller still: after a reclaim, the batch and the room kept for writing
 * its stripes out (writeOutRoom: up to nParity + 1 pages for a stripe of one page) fit half the ring.
 */
function batchLimitOf(arr: MdArray, opts: WriteOptions): number {
  const D = arr.geometry.dataDisks
  const nParity = arr.sb.level === 6 ? 2 : 1
  const wb = opts.mode === 'write-back'
  const ring = arr.ring!
  const share = wb ? 2 * (nParity + 2) : 4
  const batchLimit = Math.min(Math.max(16 * PAGE, opts.batchBytes ?? WINDOW_BYTES), Math.floor(ring.sizeBytes / share / PAGE) * PAGE)
  const maxStripeBytes = (1 + D + (wb ? 0 : nParity)) * PAGE
  if (batchLimit < 2 * maxStripeBytes) {
    throw new UsageError(
      `journal too small for one stripe of this array: a ${wb ? 'write-back ' : ''}write needs a journal of at least ${(2 * share * maxStripeBytes) / 1024} KiB of data area`,
      'recreate the array with a larger --journal-size',
      arr.journal!.path,
    )
  }
  return batchLimit
}

export function writeArray(arr: MdArray, offset: number, length: number, source: Source, opts: WriteOptions = {}): WriteResult {
  checkRange(arr, offset, length)
  if (arr.missingMembers.length > 0) throw missingMembersError(arr.uuid, arr.missingMembers, 'writing needs every member')
  const wb = opts.mode === 'write-back'
  const plan = cleanLogPlan(arr)
  const batchLimit = batchLimitOf(arr, opts)
  const res: WriteResult = {
    bytes: 0,
    stripes: 0,
    ioUnits: 0,
    journalBytes: 0,
    rmwStripes: 0,
    rcwStripes: 0,
    checkpoints: 0,
    headSector: 0,
    lastSeq: 0n,
    mode: wb ? 'write-back' : 'write-through',
    reclaimedStripes: 0,
    acknowledged: 0,
  }
  if (length === 0) {
    // nothing to write: the log is not even opened (every check above has been made)
    res.headSector = plan.stop.position
    res.lastSeq = seqAfter(plan.stopSeq, -1n)
    return res
  }
  // the log is opened when the first input has arrived: an input that is empty writes nothing
  const openLog = () => {
    const log = new WriteLog(arr, plan, wb, res)
    res.headSector = log.head
    res.lastSeq = seqAfter(log.seq, -1n)
    return log
  }
  const w = new RowWriter(arr, offset, length, source, opts, openLog, plan.dataOnly, res, batchLimit)
  try {
    w.run()
  } finally {
    w.release()
  }
  const written = w.length
  res.bytes = written
  const log = w.log
  if (!log) {
    res.headSector = plan.stop.position
    res.lastSeq = seqAfter(plan.stopSeq, -1n)
  } else if (!wb) {
    log.close()
    res.lastSeq = log.seq
    res.headSector = arr.ring!.add(log.head, BLOCK_SECTORS)
  } else {
    // write-back: acknowledged once in the log; the stripes stay cached until reclaim
    res.headSector = log.head
    res.lastSeq = seqAfter(log.seq, -1n)
  }
  if (w.shortInput >= 0) throwShort(w.shortInput, w.consumed, written)
  return res
}

/** One write's stream of rows: input into the arena, stripes into batches, batches into the log. */
class RowWriter {
  private readonly arena
  private readonly batch: LogBatch
  private readonly plan: RowPlan
  private readonly layer: StripeLayer
  private readonly rowIn: Uint8Array
  private readonly memberBase: number[]
  private readonly wb: boolean
  private readonly payloadMetaParity: number
  /** the chunk row being laid out */
  private row = 0
  /** input bytes taken so far, and those whose stripes are laid out */
  consumed = 0
  private completed = 0
  /** where the input ended short (an error after the write), -1 when it did not */
  shortInput = -1
  /** the write's log, once the first input has arrived */
  log: WriteLog | null = null
  /** the current content of the write's last page when the write ends inside it (its rest is kept) */
  private tailPage: Uint8Array | null = null

  constructor(
    private readonly arr: MdArray,
    private readonly offset: number,
    public length: number,
    private readonly source: Source,
    private readonly opts: WriteOptions,
    private readonly openLog: () => WriteLog,
    /** the pages cached in the live log before it is opened (opening it may write them out) */
    private readonly planCached: StripePages,
    private readonly res: WriteResult,
    batchLimit: number,
  ) {
    const n = arr.sb.raidDisks
    const D = arr.geometry.dataDisks
    const chunkBytes = arr.sb.chunkSize * 512
    const nParity = arr.sb.level === 6 ? 2 : 1
    this.wb = opts.mode === 'write-back'
    this.payloadMetaParity = this.wb ? 0 : 16 + 4 * nParity
    this.arena = acquireArena(arenaBytes(batchLimit, D * chunkBytes, n, chunkBytes), arr.compute.parity)
    this.batch = new LogBatch(this.arena.bytes.subarray(0, batchLimit), n)
    this.plan = new RowPlan(n, D, chunkBytes / PAGE, nParity)
    this.layer = new StripeLayer(arr, this.arena, this.batch, this.plan, batchLimit, this.wb)
    this.rowIn = this.arena.bytes.subarray(this.layer.rowInBase, this.layer.rowInBase + D * chunkBytes)
    this.memberBase = Array.from({length: n}, (_, m) => arr.memberBase(m))
  }

  release(): void {
    releaseArena(this.arena)
  }

  private tailOf(end: number): Uint8Array | null {
    if (end % PAGE === 0) return null
    const page = alignedBuffer(PAGE)
    oldPageContent(this.arr, this.log?.cached ?? this.planCached, Math.floor((this.offset + end) / PAGE), page)
    return page
  }

  run(): void {
    const {arr, offset} = this
    const ppc = this.plan.ppc
    const D = this.plan.dataDisks
    const rowBytes = D * ppc * PAGE
    const startPage = offset / PAGE
    const endPage = startPage + Math.ceil(this.length / PAGE)
    const firstRow = Math.floor(offset / rowBytes)
    const lastRow = Math.floor((endPage * PAGE - 1) / rowBytes)
    this.tailPage = this.tailOf(this.length)
    for (let r = firstRow; r <= lastRow; r++) {
      const rowPage0 = r * D * ppc
      // page index p = i·ppc + k within the row's data is touched when from <= p < to
      const from = Math.max(startPage, rowPage0) - rowPage0
      const to = this.takeInput(from, Math.min(endPage, rowPage0 + D * ppc) - rowPage0)
      if (to < 0) break
      this.log ??= this.openLog()
      this.plan.decide(rowLayout(arr, r), from, to, this.wb)
      this.layer.startRow(r)
      this.row = r
      for (let k = 0; k < ppc; k++) this.putStripe(k)
      this.completed = this.consumed
      this.opts.progress?.(this.consumed, this.length)
      if (this.consumed === this.length) break
    }
    this.flushBatch()
    this.res.rmwStripes = this.layer.rmwStripes
    this.res.rcwStripes = this.layer.rcwStripes
  }

  /**
   * The row's input for its new pages [from, to) into rowIn; returns the end of the pages the
   * input covers, or -1 when the write stops before this row.
   */
  private takeInput(from: number, to: number): number {
    let inBytes = Math.min((to - from) * PAGE, this.length - this.consumed)
    const got = this.source(this.rowIn.subarray(0, inBytes))
    if (got !== inBytes && !this.opts.endAtShortInput) {
      // short input: what came before this row is written and the log is closed normally
      this.shortInput = this.consumed + got
      return -1
    }
    if (got !== inBytes) {
      // the input ends inside this row, and so does the write (its last page keeps the old bytes after the end)
      this.length = this.consumed + got
      if (got === 0) return -1
      inBytes = got
      to = from + Math.ceil(got / PAGE)
      this.tailPage = this.tailOf(this.length)
    }
    if (this.tailPage && this.consumed + inBytes === this.length) this.rowIn.set(this.tailPage.subarray(this.length % PAGE), inBytes)
    this.consumed += inBytes
    return to
  }

  /** Stripe k of the row into the batch: a new io unit when its meta block is full, a commit when the batch is. */
  private putStripe(k: number): void {
    const t = this.plan.touched[k]
    if (t === 0) return
    const b = this.batch
    const stripeBytes = (t + (this.wb ? 0 : this.plan.nParity)) * PAGE
    const payloadMeta = t * 20 + this.payloadMetaParity
    if (b.unitStart >= 0 && b.unitMetaSize + payloadMeta > META_LIMIT) this.closeUnit()
    if (b.logLen + stripeBytes + (b.unitStart < 0 ? PAGE : 0) > b.log.length) this.flushBatch()
    if (b.unitStart < 0) b.openUnit()
    b.logLen += this.layer.lay(k)
    b.unitMetaSize += payloadMeta
    b.addStripe(this.row * this.arr.sb.chunkSize + k * 8)
    this.res.stripes++
  }

  private closeUnit(): void {
    if (this.batch.closeUnit()) this.res.ioUnits++
  }

  /** Commit the batch (if it holds anything) and acknowledge the rows laid out before it. */
  private flushBatch(): void {
    this.closeUnit()
    if (this.batch.logLen === 0) return
    this.log!.commit(this.batch, this.memberBase)
    this.batch.clear()
    this.res.acknowledged = this.completed
    this.opts.onAck?.(this.completed)
  }
}

/**
 * The current content of array page `page`, into `out` (one page): its newest copy cached in the
 * live log when a write-back write put it there and it is not on the members yet (`cached`: the
 * plan's data-only pages, the last logged position of each), else the member's. Every write that
 * covers part of a page keeps the rest from here. Write-through reads its rmw/rcw pages from the
 * members directly: it reclaims the cached stripes first, so `cached` is empty for it.
 */
export function oldPageContent(arr: MdArray, cached: StripePages, page: number, out: Uint8Array): void {
  const loc = {member: 0, memberSector: 0}
  arr.geometry.locate(page * BLOCK_SECTORS, loc)
  const logPos = cached.at(loc.memberSector, loc.member)
  if (logPos >= 0) arr.ring!.read(out, logPos)
  else arr.members[loc.member]!.dev.read(out, arr.memberBase(loc.member) + loc.memberSector * 512)
}

function throwShort(got: number, written: number, length: number): never {
  throw new R5Error(
    `input ended after ${got} of ${length} bytes; the first ${written} bytes were written and the journal is clean`,
    EXIT.FAILED,
    undefined,
    'give --length matching the input',
    'short-input',
  )
}
