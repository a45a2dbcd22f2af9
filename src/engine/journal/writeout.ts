/**
 * Writing the live log out to the members, the one way recover, reclaim and a write on a full ring
 * do it. Complete (data+parity) stripes are copied from the log. Cached (data-only, write-back)
 * stripes never reach a member before their parity is durable in the log: their parity is
 * computed and appended as PARITY records, one journal flush makes it durable, and only then are
 * they, complete stripes in the log now, copied like the others. A cut at any member write thus
 * leaves stripes that replay whole, with a member missing too, as the kernel's r5c write-out
 * (which logs parity before a cached stripe goes to the disks) guarantees. A missing member is
 * written nothing: its pages are what the others' data and parity make of it, as after the
 * kernel's replay at a degraded assemble. A write-back write keeps
 * the room this needs free in the ring (writeOutRoom); only a log filled without that room (by
 * another tool) can leave stripes whose parity does not fit: they are written as a replay would.
 */
import {PAYLOAD_PARITY, seqAfter, type Payload} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import {dataOnlyWrite, type RecoveryPlan} from './plan.js'
import {applyFromLog, applyDataOnly, closeLog, fillRun, runsOf, runStripes, RunBuffers, type ApplyResult} from './apply.js'
import {appendRecords, parityPerUnit, parityUnitsSize, type LogCursor, type LogRecord} from './append.js'
import {StripePages} from './stripes.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

/** sectors kept free after the parity records: FLUSH records and the closing block */
const CLOSING_ROOM = 4 * BLOCK_SECTORS

const parityPages = (arr: MdArray) => (arr.sb.level === 6 ? 2 : 1)

/** One round: these runs' parity logged and flushed, the stripes written, then journal_tail moves. */
export interface WriteOutRound {
  /** runs of consecutive cached stripes, in the order their parity records are appended */
  runs: number[][]
  /** where journal_tail moves once they are on the members (the unit of the oldest page a later round needs), or null */
  tail: number | null
}

/** What writing the cache out will do, decided from sizes alone before anything is read or written. */
export interface WriteOutPlan {
  /**
   * cached stripes every data page of which is in the log, written before the rounds from their
   * logged data and computed parity without logging it (only when the ring lacks room for every
   * stripe's parity): a cut leaves them whole in the log, so they replay without the members' pages
   */
  whole: number[]
  /** where journal_tail moves once `whole` is on the members (the unit of the oldest page still needed), or null */
  wholeTail: number | null
  rounds: WriteOutRound[]
  /** cached stripes whose parity fits no round */
  unlogged: number[]
  /** the log's head and next seq after the parity records, and the sectors it then takes */
  head: number
  seq: bigint
  used: number
}

/**
 * Sectors of ring a write-back write keeps free for writing out `stripes` cached stripes that form
 * at most `runs` runs of consecutive stripe sectors: their parity pages, and a meta block per
 * parityUnitsSize unit of each run planWriteOut makes (runs cut at runStripes), which is at most
 * one per unit's worth of stripes plus one per run and per cut; and the closing room. Full-stripe
 * writes thus keep about one page per parity slot per stripe free, scattered single pages about one
 * more (the kernel's r5c_log_required_to_flush_cache keeps max_degraded + 1 for every stripe).
 */
export function writeOutRoom(arr: MdArray, stripes: number, runs: number): number {
  const nParity = parityPages(arr)
  const metas = Math.ceil(stripes / parityPerUnit(nParity)) + Math.ceil(stripes / runStripes(arr)) + runs
  return (stripes * nParity + metas) * BLOCK_SECTORS + CLOSING_ROOM
}

/**
 * Plan the write-out in rounds, oldest stripes first. When the parity of every cached stripe fits
 * after the live log (always, for a log whose writer kept writeOutRoom free) there is one round. A
 * log filled to the brim first writes the stripes whose data is whole in the log (wholeFirst), then
 * takes as many stripes as the free room holds the parity of; once they are on the members,
 * journal_tail moves to the unit of the oldest page still needed, which frees the room for the next
 * round. Only when a round can take no stripe are the rest left unlogged.
 */
export function planWriteOut(arr: MdArray, plan: RecoveryPlan): WriteOutPlan {
  const ring = arr.ring!
  const out: WriteOutPlan = {
    whole: [],
    wholeTail: null,
    rounds: [],
    unlogged: [],
    head: plan.stop.position,
    seq: plan.stopSeq,
    used: plan.liveSectors,
  }
  const all = plan.dataOnly.keys()
  if (all.length === 0) return out
  // the usual case: every stripe's parity fits after the live log, one round in sector order
  if (parityRoom(arr, all) < ring.sizeSectors - plan.liveSectors - CLOSING_ROOM) {
    addRound(arr, out, [...runsOf(all, runStripes(arr))], null)
    return out
  }
  const order = wholeFirst(arr, plan, out)
  let tail = out.wholeTail ?? plan.tailSector
  let i = 0
  while (i < order.sectors.length) {
    const k = largestFit(arr, order.sectors, i, ring.sizeSectors - out.used - CLOSING_ROOM)
    if (k === 0) break
    i += k
    const next = i < order.sectors.length ? unitOf(arr, plan, order.oldest[i]) : tail
    addRound(arr, out, [...runsOf(order.sectors.slice(i - k, i), runStripes(arr))], next !== tail ? next : null)
    out.used -= ring.distance(tail, next)
    tail = next
  }
  out.unlogged = order.sectors.slice(i)
  return out
}

/**
 * The stripes whose data is whole in the log go out first (out.whole), and the tail moves past the
 * units only they held, which frees room for the others' parity; the others, oldest first, are returned.
 */
function wholeFirst(arr: MdArray, plan: RecoveryPlan, out: WriteOutPlan): {sectors: number[]; oldest: number[]} {
  const all = oldestFirst(arr, plan)
  const rest = {sectors: [] as number[], oldest: [] as number[]}
  all.sectors.forEach((sector, k) => {
    if (wholeInLog(arr, plan.dataOnly, sector)) out.whole.push(sector)
    else {
      rest.sectors.push(sector)
      rest.oldest.push(all.oldest[k])
    }
  })
  if (out.whole.length === 0 || rest.sectors.length === 0) return rest
  const next = unitOf(arr, plan, rest.oldest[0])
  if (next !== plan.tailSector) {
    out.wholeTail = next
    out.used -= arr.ring!.distance(plan.tailSector, next)
  }
  return rest
}

/** every data page of the cached stripe at `sector` is in the log */
function wholeInLog(arr: MdArray, dataOnly: StripePages, sector: number): boolean {
  const info = arr.geometry.stripeInfo(sector)
  for (let slot = 0; slot < arr.sb.raidDisks; slot++) if (slot !== info.pd && slot !== info.qd && dataOnly.at(sector, slot) < 0) return false
  return true
}

/** A round of these runs: the head, seq and used ring move past their parity records. */
function addRound(arr: MdArray, out: WriteOutPlan, runs: number[][], tail: number | null): void {
  for (const run of runs) {
    const size = parityUnitsSize(run.length, parityPages(arr))
    out.head = arr.ring!.add(out.head, size.bytes / 512)
    out.seq = seqAfter(out.seq, BigInt(size.units))
    out.used += size.bytes / 512
  }
  out.rounds.push({runs, tail})
}

/** The cached stripes by the log position of their oldest page (sectors from the tail). */
function oldestFirst(arr: MdArray, plan: RecoveryPlan): {sectors: number[]; oldest: number[]} {
  const ring = arr.ring!
  const keys = plan.dataOnly.keys()
  const first = keys.map(sector => {
    let min = Infinity
    for (let slot = 0; slot < arr.sb.raidDisks; slot++) {
      const pos = plan.dataOnly.at(sector, slot)
      if (pos >= 0) min = Math.min(min, ring.distance(plan.tailSector, pos))
    }
    return min
  })
  const idx = Array.from(keys.keys()).sort((a, b) => first[a] - first[b] || keys[a] - keys[b])
  return {sectors: idx.map(k => keys[k]), oldest: idx.map(k => first[k])}
}

/** ring sectors the parity records of these stripes take, appended run by run */
function parityRoom(arr: MdArray, sectors: number[]): number {
  let bytes = 0
  for (const run of runsOf(sectors, runStripes(arr))) bytes += parityUnitsSize(run.length, parityPages(arr)).bytes
  return bytes / 512
}

/** How many of sectors[from..] (at most) have parity records that fit in `room` sectors. */
function largestFit(arr: MdArray, sectors: number[], from: number, room: number): number {
  let lo = 0
  let hi = sectors.length - from
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (parityRoom(arr, sectors.slice(from, from + mid)) < room) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** The ring position of the walked unit that holds the log page `distance` sectors from the tail. */
function unitOf(arr: MdArray, plan: RecoveryPlan, distance: number): number {
  const starts = plan.unitStarts
  let lo = 0
  let hi = starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (starts[mid] <= distance) lo = mid
    else hi = mid - 1
  }
  return arr.ring!.add(plan.tailSector, starts[lo])
}

/**
 * Bring the members up to date from `plan` (and `wo`, planWriteOut's of it): complete stripes copied from the log, then the cached
 * stripes round by round as the file's comment says. The members are flushed before journal_tail
 * moves, not at the end. Returns where the log's tail, head and next seq are. `progress` gets a
 * fraction of the work.
 */
export function writeOut(
  arr: MdArray,
  plan: RecoveryPlan,
  wo: WriteOutPlan,
  res: ApplyResult,
  progress?: (fraction: number) => void,
): LogCursor & {tail: number} {
  const stripes = plan.dataParityStripes + plan.dataOnlyStripes || 1
  const share = plan.dataParityStripes / stripes
  applyFromLog(arr, plan.fromLog, plan.tailSector, plan.stop.position, res, progress && ((d, t) => progress((share * d) / t)))
  let cur: LogCursor & {tail: number} = {head: plan.stop.position, seq: plan.stopSeq, tail: plan.tailSector}
  if (plan.dataOnly.size === 0) return cur
  const rb = new RunBuffers(arr)
  const scratch = alignedBuffer(rb.stripes * 3 * PAGE)
  applyDataOnly(arr, plan.dataOnly, wo.whole, res, rb)
  if (wo.wholeTail !== null) cur = moveTail(arr, cur, wo.wholeTail)
  let done = wo.whole.length
  for (const round of wo.rounds) {
    const pages = new StripePages(arr.sb.raidDisks)
    for (const run of round.runs) {
      progress?.(share + ((1 - share) * done) / stripes)
      done += run.length
      cur = {...appendParity(arr, plan.dataOnly, run, cur, rb, res, scratch, pages), tail: cur.tail}
    }
    // the parity must be durable before any page of its stripes goes to the members: a write cut
    // short there is then replayed whole from the log
    arr.journal!.dev.flush()
    applyFromLog(arr, pages, cur.tail, cur.head, res)
    if (round.tail !== null) cur = moveTail(arr, cur, round.tail)
  }
  applyDataOnly(arr, plan.dataOnly, wo.unlogged, res, rb)
  progress?.(1)
  return cur
}

/** journal_tail to `tail`, once the members hold what the log before it held */
function moveTail(arr: MdArray, cur: LogCursor & {tail: number}, tail: number): LogCursor & {tail: number} {
  arr.flushMembers()
  arr.writeSuperblocks(tail)
  return {...cur, tail}
}

/**
 * Compute the parity of one run and append it as PARITY records at `cur`, which makes its stripes
 * complete in the log; every page of them (data and parity) goes into `pages` as log positions,
 * the way complete stripes are copied. Returns the new head and seq.
 */
function appendParity(
  arr: MdArray,
  dataOnly: StripePages,
  run: number[],
  cur: LogCursor,
  rb: RunBuffers,
  res: ApplyResult,
  scratch: Uint8Array,
  pages: StripePages,
): LogCursor {
  fillRun(arr, dataOnly, run, rb, res)
  const records = parityRecords(arr, run, rb.members)
  const put = appendRecords(arr, cur, records, scratch)
  run.forEach((sector, i) => addStripe(arr, dataOnly, pages, sector, put.pagePos.slice(i * records[i].pages.length)))
  return {head: put.head, seq: put.seq}
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
export function applyRecovery(
  arr: MdArray,
  plan: RecoveryPlan,
  progress?: (fraction: number) => void,
  wo: WriteOutPlan = planWriteOut(arr, plan),
): ApplyResult & LogCursor {
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  if (plan.clean) return {...res, head: plan.tailSector, seq: plan.tailSeq}
  const end = writeOut(arr, plan, wo, res, progress)
  arr.flushMembers()
  const close = {head: end.head, seq: seqAfter(end.seq, 10000n)}
  closeLog(arr, close.head, close.seq)
  return {...res, ...close}
}
