/**
 * The recovery plan: one walk of the live log (scan.ts: every meta block and every page verified,
 * a unit with a bad page dropped as the kernel drops it) through the stripe state machine
 * (stripes.ts) gives a RecoveryPlan, a value that holds every page that will be written and where
 * it comes from: a log position for replayed complete stripes and for the logged data of data-only
 * stripes, computed parity for the latter. `recover --dry-run` prints it (planWrites); `recover`
 * and `reclaim` apply it (apply.ts); nothing is written while it is made.
 */
import {MetaColumns, seqAfter, seqAtOrAfter} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {CorruptError, UsageError} from '../errors.js'
import {scanLog, type ScanStop, type ScannedUnit} from './scan.js'
import {StripeMachine, StripePages} from './stripes.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

export interface SkippedUnit {
  positionSector: number
  seq: string
  reason: string
}

/** What a walk of the live log learns: enough to place the closing block, no per-stripe state. */
export interface VerifiedLog {
  tailSector: number
  tailSeq: bigint
  stop: ScanStop
  /** sectors the live log takes: from the tail to the stop, the whole ring when the walk came round to the tail */
  liveSectors: number
  stopSeq: bigint
  newSeq: bigint
  units: number
  /** where each walked unit starts, as sectors from the tail, in log order */
  unitStarts: number[]
  emptyUnits: number
  skipped: SkippedUnit[]
  logBytesScanned: number
  clean: boolean
}

export interface RecoveryPlan extends VerifiedLog {
  /** replays of complete stripes (the kernel's data_parity_stripes) */
  dataParityStripes: number
  /** stripes left with data and no parity (the kernel's data_only_stripes) */
  dataOnlyStripes: number
  /** the last replay's page of every (stripe, slot) that complete stripes write: copied from the log */
  fromLog: StripePages
  /** data-only stripes: their logged data pages; parity is computed when the plan is applied */
  dataOnly: StripePages
}

export interface PlanOptions {
  /** stop after the meta block with this seq (recover --until-seq) */
  untilSeq?: bigint
  /** (bytes of log walked, ring bytes) */
  progress?: (done: number, total: number) => void
  /** bytes of log read per request while walking (default 4 MiB) */
  readBytes?: number
}

/**
 * Walk the live log once and plan the replay. Per (stripe, slot), a later replay's page replaces an
 * earlier one's: writing both in log order would leave the later one, so only it is planned.
 */
export function planRecovery(arr: MdArray, opts: PlanOptions = {}): RecoveryPlan {
  const ring = arr.ring!
  const n = arr.sb.raidDisks
  const fromLog = new StripePages(n)
  const machine = new StripeMachine(arr, (sector, slot, pos) => fromLog.set(sector, slot, pos))
  const tally = new LogTally(arr, arr.journalTail)
  const walk = scanLog(ring, arr, tally.tail, {
    ...tally.scanOptions(opts.untilSeq),
    verdicts: false,
    columns: new MetaColumns(),
    readBytes: opts.readBytes,
  })
  for (const u of walk) {
    tally.count(u)
    machine.feed(u)
    opts.progress?.(tally.scanned, ring.sizeBytes)
  }
  const v = tally.finish()
  const dataOnly = machine.finish()
  return {
    ...v,
    dataParityStripes: machine.dataParityStripes,
    dataOnlyStripes: dataOnly.size,
    fromLog,
    dataOnly,
    clean: fromLog.size === 0 && dataOnly.size === 0 && v.clean,
  }
}

/**
 * The plan, or the CorruptError of a log with no valid block at its tail: a log the kernel discards,
 * which the readers (read, check) then ignore as it does; any other refusal is thrown.
 */
export function planOrCorrupt(arr: MdArray, progress?: (done: number, total: number) => void): RecoveryPlan | CorruptError {
  try {
    return planRecovery(arr, {progress})
  } catch (error) {
    if (error instanceof CorruptError && error.code === 'bad-tail') return error
    throw error
  }
}

export interface WriteRun {
  device: string
  slot: number
  offsetSector: number
  pages: number
  source: 'log' | 'computed'
}

/** A missing member is written nothing: its pages follow from the others'. The rule planWrites lists and apply.ts follows. */
export function writesTo(arr: MdArray, slot: number): boolean {
  return arr.members[slot] !== null
}

/**
 * What a data-only stripe writes to slot `slot`: its logged data page ('log'), its parity
 * ('computed'), or nothing (null). The one rule that planWrites lists and apply.ts writes.
 */
export function dataOnlyWrite(arr: MdArray, dataOnly: StripePages, sector: number, slot: number): 'log' | 'computed' | null {
  if (!writesTo(arr, slot)) return null
  const info = arr.geometry.stripeInfo(sector)
  if (slot === info.pd || slot === info.qd) return 'computed'
  return dataOnly.at(sector, slot) >= 0 ? 'log' : null
}

/** Every member write the plan implies, coalesced into runs (what --dry-run prints). */
export function planWrites(arr: MdArray, plan: RecoveryPlan): WriteRun[] {
  // per slot, one number per page: sector * 2 + (1 when the page is computed parity)
  const bySlot: number[][] = Array.from({length: arr.sb.raidDisks}, () => [])
  plan.fromLog.forEachPage((sector, slot) => {
    if (writesTo(arr, slot)) bySlot[slot].push(sector * 2)
  })
  for (const sector of plan.dataOnly.keys()) {
    for (let slot = 0; slot < bySlot.length; slot++) {
      const how = dataOnlyWrite(arr, plan.dataOnly, sector, slot)
      if (how !== null) bySlot[slot].push(sector * 2 + (how === 'computed' ? 1 : 0))
    }
  }
  const runs: WriteRun[] = []
  bySlot.forEach((list, slot) => {
    const sorted = Float64Array.from(list).sort()
    let run: WriteRun | null = null
    for (const v of sorted) {
      const sector = Math.floor(v / 2)
      const source = v % 2 === 1 ? ('computed' as const) : ('log' as const)
      if (run && run.source === source && run.offsetSector + run.pages * BLOCK_SECTORS === sector) run.pages++
      else {
        run = {device: arr.members[slot]!.path, slot, offsetSector: sector, pages: 1, source}
        runs.push(run)
      }
    }
  })
  return runs
}

/**
 * The bookkeeping of a walk of the live log: the tail's seq, units, empty units, dropped units and
 * where and why the walk stopped. An --until-seq below the tail is refused at the tail's unit,
 * before anything else happens; finish() refuses a log without a valid tail block.
 */
class LogTally {
  readonly skipped: SkippedUnit[] = []
  stop: ScanStop | undefined
  units = 0
  readonly unitStarts: number[] = []
  emptyUnits = 0
  tailSeq: bigint | null = null
  scanned = 0
  private untilSeq: bigint | undefined

  constructor(
    private readonly arr: MdArray,
    readonly tail: number,
  ) {}

  scanOptions(untilSeq?: bigint) {
    this.untilSeq = untilSeq
    return {
      onStop: (s: ScanStop) => {
        this.stop = s
      },
      untilSeq,
      kernelSkipOnDataMismatch: (x: {position: number; seq: bigint; message: string}) => {
        // a dropped unit still counts: the tail block may be one (its meta block is valid)
        this.atTail(x.seq)
        this.skipped.push({positionSector: x.position, seq: x.seq.toString(), reason: x.message})
      },
    }
  }

  /** the first unit of the walk: --until-seq is checked against it before anything else happens (progress included) */
  private atTail(seq: bigint): void {
    if (this.tailSeq !== null) return
    this.tailSeq = seq
    // a seq below the tail's names a block that is no longer in the live log: stopping "after" it
    // would replay the tail's unit anyway, and stopping before the tail would drop the whole log
    if (this.untilSeq !== undefined && !seqAtOrAfter(this.untilSeq, seq)) {
      throw new UsageError(
        `--until-seq ${this.untilSeq} names no meta block of the live log, which starts at the journal tail (sector ${this.tail}) with seq ${seq}`,
        `give a seq from ${seq} on (\`r5ctl dump-meta\` lists them); nothing was written`,
        this.arr.journal!.path,
      )
    }
  }

  count(u: ScannedUnit): void {
    this.atTail(u.seq)
    this.units++
    this.unitStarts.push(this.arr.ring!.distance(this.tail, u.position))
    this.scanned += (1 + u.pages) * PAGE
    if (u.cols.count === 0) this.emptyUnits++
  }

  finish(): VerifiedLog {
    const stop = this.stop!
    if (this.tailSeq === null) {
      throw new CorruptError(
        `no valid meta block at the journal tail (sector ${this.tail}): ${stop.message}; the kernel would discard the whole log`,
        this.arr.journal!.path,
        'inspect it with `r5ctl dump-meta --from SECTOR`; nothing was written',
        'bad-tail',
      )
    }
    const stopSeq = stop.expectedSeq ?? seqAfter(this.tailSeq, this.units + this.skipped.length)
    // a seq the walk never reached names no block either: replaying the whole log is not what was asked
    if (this.untilSeq !== undefined && stop.code !== 'until-seq')
      throw new UsageError(
        `--until-seq ${this.untilSeq} names no meta block of the live log, which ends after seq ${seqAfter(stopSeq, -1n)} (${stop.message})`,
        `give a seq from ${this.tailSeq} to ${seqAfter(stopSeq, -1n)} (\`r5ctl dump-meta\` lists them); nothing was written`,
        this.arr.journal!.path,
      )
    return {
      tailSector: this.tail,
      tailSeq: this.tailSeq,
      stop,
      // the walk always takes the tail's block, so a stop at the tail is a log that fills the ring
      liveSectors: stop.position === this.tail ? this.arr.ring!.sizeSectors : this.arr.ring!.distance(this.tail, stop.position),
      stopSeq,
      newSeq: seqAfter(stopSeq, 10000n),
      units: this.units,
      unitStarts: this.unitStarts,
      emptyUnits: this.emptyUnits,
      skipped: this.skipped,
      logBytesScanned: this.scanned,
      clean: this.units === 1 && this.emptyUnits === 1 && this.skipped.length === 0,
    }
  }
}
