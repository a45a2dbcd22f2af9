/**
 * Writing the live log out to the members, the one way recover, reclaim and a write on a full ring
 * do it. Complete (data+parity) stripes are copied from the log. Cached (data-only, write-back)
 * stripes never reach a member before their parity is durable in the log: their parity is
 * computed and appended as PARITY records, one journal flush makes it durable, and only then are
 * they, complete stripes in the log now, copied like the others. A cut at any member write thus
 * leaves stripes that replay whole, with a member missing too, as the kernel's r5c write-out
 * (which logs parity before a cached stripe goes to the disks) guarantees. A write-back write keeps
 * the room this needs free in the ring (writeOutRoom); only a log filled without that room (by
 * another tool) can leave stripes whose parity does not fit: they are written as a replay would.
 */
import {PAYLOAD_PARITY, seqAfter, type Payload} from '../format/meta.js'
import {missingMembersError, type MdArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import {dataOnlyWrite, type RecoveryPlan} from './plan.js'
import {applyFromLog, applyDataOnly, closeLog, fillRun, runsOf, runStripes, RunBuffers, type ApplyResult} from './apply.js'
import {appendRecords, parityUnitsSize, type LogCursor, type LogRecord} from './append.js'
import {StripePages} from './stripes.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

/** sectors kept free after the parity records: FLUSH records and the closing block */
const CLOSING_ROOM = 4 * BLOCK_SECTORS

/** What writing the cache out will do, decided from sizes alone before anything is read or written. */
export interface WriteOutPlan {
  /** runs of consecutive cached stripes whose parity is logged, in log order of their records */
  logged: number[][]
  /** cached stripes whose parity does not fit the ring */
  unlogged: number[]
  /** the log's head and next seq after the parity records */
  head: number
  seq: bigint
}

/**
 * Sectors of ring a write-back write keeps free for writing `stripes` cached stripes out: at worst
 * each stripe is a run of its own, one parity page per parity slot plus a meta block (the kernel's
 * r5c_log_required_to_flush_cache reserves the same per stripe), and the closing room.
 */
export function writeOutRoom(arr: MdArray, stripes: number): number {
  const nParity = arr.sb.level === 6 ? 2 : 1
  return stripes * (nParity + 1) * BLOCK_SECTORS + CLOSING_ROOM
}

/** Which runs' parity fits after the live log, in the order appendParity writes them. */
export function planWriteOut(arr: MdArray, plan: RecoveryPlan): WriteOutPlan {
  const ring = arr.ring!
  const nParity = arr.sb.level === 6 ? 2 : 1
  const out: WriteOutPlan = {logged: [], unlogged: [], head: plan.stop.position, seq: plan.stopSeq}
  let used = ring.distance(plan.tailSector, plan.stop.position)
  for (const run of runsOf(plan.dataOnly.keys(), runStripes(arr))) {
    const size = parityUnitsSize(run.length, nParity)
    if (used + size.bytes / 512 + CLOSING_ROOM >= ring.sizeSectors) {
      out.unlogged.push(...run)
      continue
    }
    out.logged.push(run)
    used += size.bytes / 512
    out.head = ring.add(out.head, size.bytes / 512)
    out.seq = seqAfter(out.seq, BigInt(size.units))
  }
  return out
}

/**
 * Bring the members up to date from `plan`: complete stripes copied from the log, then the cached
 * stripes as the file's comment says. The members are not flushed here. Returns where the log's
 * head and next seq are (after the parity records). `progress` gets a fraction of the work.
 */
export function writeOut(arr: MdArray, plan: RecoveryPlan, res: ApplyResult, progress?: (fraction: number) => void): LogCursor {
  const stripes = plan.dataParityStripes + plan.dataOnlyStripes || 1
  const share = plan.dataParityStripes / stripes
  applyFromLog(arr, plan.fromLog, plan.tailSector, plan.stop.position, res, progress && ((d, t) => progress((share * d) / t)))
  if (plan.dataOnly.size === 0) return {head: plan.stop.position, seq: plan.stopSeq}
  const wo = planWriteOut(arr, plan)
  const rb = new RunBuffers(arr)
  const pages = appendParity(arr, plan, wo, rb, res, done => progress?.(share + ((1 - share) * done) / stripes))
  // the parity must be durable before any page of its stripes goes to the members: a write cut
  // short there is then replayed whole from the log
  if (wo.logged.length > 0) arr.journal!.dev.flush()
  applyFromLog(arr, pages, plan.tailSector, wo.head, res)
  applyDataOnly(arr, plan.dataOnly, wo.unlogged, res, rb)
  progress?.(1)
  return {head: wo.head, seq: wo.seq}
}

/**
 * Compute the parity of the logged runs and append it as PARITY records after the live log, which
 * makes them complete stripes there. Returns every page of those stripes (data and parity) as log
 * positions, the way complete stripes are copied.
 */
function appendParity(
  arr: MdArray,
  plan: RecoveryPlan,
  wo: WriteOutPlan,
  rb: RunBuffers,
  res: ApplyResult,
  progress: (done: number) => void,
): StripePages {
  const pages = new StripePages(arr.sb.raidDisks)
  const scratch = alignedBuffer(rb.stripes * 3 * PAGE)
  let cur: LogCursor = {head: plan.stop.position, seq: plan.stopSeq}
  let done = 0
  for (const run of wo.logged) {
    progress(done)
    done += run.length
    fillRun(arr, plan.dataOnly, run, rb, res)
    const records = parityRecords(arr, run, rb.members)
    const put = appendRecords(arr, cur, records, scratch)
    run.forEach((sector, i) => addStripe(arr, plan.dataOnly, pages, sector, put.pagePos.slice(i * records[i].pages.length)))
    cur = put
  }
  return pages
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
 * recover: carry out a plan in the kernel's order: the members (writeOut), a flush, the closing
 * empty meta block after the log with seq + 10000 (nothing stale beyond it can continue the log),
 * a flush, and journal_tail and events in every superblock last.
 */
export function applyRecovery(arr: MdArray, plan: RecoveryPlan, progress?: (fraction: number) => void): ApplyResult & LogCursor {
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  if (plan.clean) return {...res, head: plan.tailSector, seq: plan.tailSeq}
  if (arr.missingMembers.length > 0) throw missingMembersError(arr.uuid, arr.missingMembers, 'recovery needs every member')
  const end = writeOut(arr, plan, res, progress)
  for (const m of arr.members) m!.dev.flush()
  const close = {head: end.head, seq: seqAfter(end.seq, 10000n)}
  closeLog(arr, close.head, close.seq)
  return {...res, ...close}
}
