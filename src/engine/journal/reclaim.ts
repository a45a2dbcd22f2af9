/**
 * reclaim: write out everything the live log still holds for the members, the way the kernel's
 * r5c code flushes cached stripes: complete stripes are replayed from the log; the parity of
 * data-only (write-back) stripes is computed and logged, made durable with one flush, and those
 * stripes, complete now, are copied from the log to the members; FLUSH payloads record that they
 * are on the members, and finally an empty meta block closes the log and journal_tail moves to it
 * (superblocks last).
 */
import {PAYLOAD_FLUSH, PAYLOAD_PARITY, seqAfter, type Payload} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {dataOnlyWrite, planRecovery, type RecoveryPlan} from './plan.js'
import {applyFromLog, applyDataOnly, closeLog, fillRun, RunBuffers, type ApplyResult} from './apply.js'
import {appendRecords, unitsSize, type LogCursor, type LogRecord} from './append.js'
import {StripePages} from './stripes.js'
import {alignedBuffer} from '../device.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

export interface ReclaimResult {
  wasClean: boolean
  usedBytesBefore: number
  usedBytesAfter: number
  freeBytesBefore: number
  freeBytesAfter: number
  sizeBytes: number
  dataOnlyStripes: number
  dataParityStripes: number
  parityLogged: number
  flushPayloadStripes: number
  pagesWritten: number
  journalTailSector: number
  nextSeq: bigint
}

const FLUSH_PER_PAYLOAD = Math.floor((4096 - 32 - 8) / 8)

/** `progress` receives (stripes written out so far, stripes to write out). */
export function reclaimLog(arr: MdArray, progress?: (done: number, total: number) => void): ReclaimResult {
  const ring = arr.ring!
  const plan = planRecovery(arr)
  const usedBefore = ring.distance(plan.tailSector, plan.stop.position) * 512
  const base = {
    sizeBytes: ring.sizeBytes,
    usedBytesBefore: usedBefore,
    freeBytesBefore: ring.sizeBytes - usedBefore,
    dataOnlyStripes: plan.dataOnlyStripes,
    dataParityStripes: plan.dataParityStripes,
  }
  if (plan.clean) {
    return {
      ...base,
      wasClean: true,
      usedBytesAfter: usedBefore,
      freeBytesAfter: ring.sizeBytes - usedBefore,
      parityLogged: 0,
      flushPayloadStripes: 0,
      pagesWritten: 0,
      journalTailSector: plan.tailSector,
      nextSeq: plan.stopSeq,
    }
  }
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  const stripes = plan.dataParityStripes + plan.dataOnlyStripes
  const step = progress && ((done: number) => progress(done, stripes))
  applyFromLog(
    arr,
    plan.fromLog,
    plan.tailSector,
    plan.stop.position,
    res,
    progress && ((done, total) => progress(Math.floor((plan.dataParityStripes * done) / total), stripes)),
  )
  const rb = new RunBuffers(arr)
  const logged = logParity(arr, plan, rb, res, done => step?.(plan.dataParityStripes + done))
  // the parity must be durable before any page of its stripes goes to the members: a write cut
  // short there is then replayed whole from the log
  if (logged.stripes > 0) arr.journal!.dev.flush()
  applyFromLog(arr, logged.pages, plan.tailSector, logged.cursor.head, res)
  applyDataOnly(arr, plan.dataOnly, logged.unlogged, res, rb)
  for (const m of arr.members) m!.dev.flush()
  step?.(stripes)
  const cur = appendFlushRecords(arr, plan.tailSector, plan.dataOnly.keys(), logged.cursor)
  closeLog(arr, cur.head, cur.seq)
  return {
    ...base,
    wasClean: false,
    usedBytesAfter: PAGE,
    freeBytesAfter: ring.sizeBytes - PAGE,
    parityLogged: logged.stripes,
    flushPayloadStripes: plan.dataOnlyStripes,
    pagesWritten: res.pagesWritten,
    journalTailSector: cur.head,
    nextSeq: seqAfter(cur.seq),
  }
}

interface LoggedParity {
  /** every page of the stripes whose parity was logged: their data and parity, now complete stripes in the log */
  pages: StripePages
  stripes: number
  /** the data-only stripes whose parity did not fit the ring */
  unlogged: number[]
  cursor: LogCursor
}

/**
 * Compute the parity of the data-only stripes run by run and append it as PARITY records right
 * after the live log, which makes them complete stripes there, as the kernel's r5c write-out does.
 * A run that does not fit the ring (room is kept for the FLUSH records and the closing block) is
 * left out before anything of it is read: offline its data stays in the log until the tail moves,
 * and applyDataOnly writes it as a replay would.
 */
function logParity(arr: MdArray, plan: RecoveryPlan, rb: RunBuffers, res: ApplyResult, progress?: (done: number) => void): LoggedParity {
  const ring = arr.ring!
  const out: LoggedParity = {
    pages: new StripePages(arr.sb.raidDisks),
    stripes: 0,
    unlogged: [],
    cursor: {head: plan.stop.position, seq: plan.stopSeq},
  }
  // a run's records: one parity page (two for RAID6) per stripe, and their meta blocks
  const scratch = alignedBuffer(rb.stripes * 3 * PAGE)
  let done = 0
  for (const run of rb.runs(plan.dataOnly.keys())) {
    progress?.(done)
    done += run.length
    // the records are views of the run's buffers: their size is known before fillRun computes the parity in them
    const records = parityRecords(arr, run, rb.members)
    const used = ring.distance(plan.tailSector, out.cursor.head) * 512
    if ((used + unitsSize(records)) / 512 + 4 * BLOCK_SECTORS >= ring.sizeSectors) {
      out.unlogged.push(...run)
      continue
    }
    fillRun(arr, plan.dataOnly, run, rb, res)
    const put = appendRecords(arr, out.cursor, records, scratch)
    run.forEach((sector, i) => addStripe(arr, plan.dataOnly, out.pages, sector, put.pagePos.slice(i * records[i].pages.length)))
    out.cursor = put
    out.stripes += run.length
  }
  return out
}

/** A stripe whose parity was logged, as complete-stripe pages: what dataOnlyWrite says it writes, from the log. */
function addStripe(arr: MdArray, dataOnly: StripePages, pages: StripePages, sector: number, parityPos: number[]): void {
  const info = arr.geometry.stripeInfo(sector)
  for (let slot = 0; slot < arr.sb.raidDisks; slot++) {
    const how = dataOnlyWrite(arr, dataOnly, sector, slot)
    if (how === 'log') pages.set(sector, slot, dataOnly.at(sector, slot))
    else if (how === 'computed') pages.set(sector, slot, parityPos[slot === info.pd ? 0 : 1])
  }
}

/** One PARITY record per stripe of the run: P (and Q) from the run's computed pages. */
function parityRecords(arr: MdArray, run: number[], bufs: Uint8Array[]): LogRecord[] {
  return run.map(sector => {
    const info = arr.geometry.stripeInfo(sector)
    const o = (sector - run[0]) * 512
    const pages = [bufs[info.pd].subarray(o, o + PAGE)]
    if (info.qd >= 0) pages.push(bufs[info.qd].subarray(o, o + PAGE))
    const p: Payload = {type: PAYLOAD_PARITY, flags: 0, sizeSectors: pages.length * BLOCK_SECTORS, location: BigInt(sector), checksums: []}
    return {payloads: [p], pages}
  })
}

/**
 * FLUSH payloads for the data-only stripes now on the members (as r5c_finish_stripe_write_out),
 * when the ring has room for them; returns where the closing block goes.
 */
function appendFlushRecords(arr: MdArray, tail: number, sectors: number[], cur: LogCursor): LogCursor {
  const flushed = Float64Array.from(sectors).sort()
  const records: LogRecord[] = []
  for (let i = 0; i < flushed.length; i += FLUSH_PER_PAYLOAD) {
    records.push({payloads: [{type: PAYLOAD_FLUSH, flags: 0, stripes: Array.from(flushed.subarray(i, i + FLUSH_PER_PAYLOAD), BigInt)}], pages: []})
  }
  const space = arr.ring!.sizeSectors - arr.ring!.distance(tail, cur.head)
  if (records.length === 0 || unitsSize(records) / 512 + BLOCK_SECTORS >= space) return cur
  return appendRecords(arr, cur, records)
}
