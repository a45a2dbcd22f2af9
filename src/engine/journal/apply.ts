/**
 * Moving a RecoveryPlan's (plan.ts) pages to the devices: pages of complete stripes copied from the
 * log in log order, read in a fixed window; data-only stripes filled in runs (their old data read,
 * their logged data laid over it, parity computed); the closing block. Which of these run, and in
 * what order, is writeout.ts's.
 */
import {encodeMetaBlock} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import {reconstruct} from '../parity.js'
import {dataOnlyWrite, writesTo} from './plan.js'
import type {StripePages} from './stripes.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

/** bytes of log read per request while copying pages to the members */
const WINDOW = 8 << 20
/** bytes of member pages held for one run of data-only stripes */
const RUN_BYTES = 16 << 20

export interface ApplyResult {
  pagesWritten: number
  memberWrites: number
  journalBytesRead: number
}

/** The log ends at `position`: an empty meta block there with `seq`, flushed, then the superblocks point at it. */
export function closeLog(arr: MdArray, position: number, seq: bigint): void {
  arr.ring!.write(encodeMetaBlock({seq, position: BigInt(position), payloads: []}, arr.seed), position)
  arr.journal!.dev.flush()
  arr.writeSuperblocks(position)
}

/**
 * The pages of `pages` in log order, as indices into parallel arrays of their sector and slot. A log
 * page holds one page of one stripe, so its distance from `from` sorts them; the entry index rides
 * in the low bits of the key.
 */
function logOrder(arr: MdArray, pages: StripePages, from: number): {keys: Float64Array; sectors: Float64Array; slots: Uint16Array; unit: number} {
  const ring = arr.ring!
  const count = pages.pages()
  let unit = 1
  while (unit <= count) unit *= 2
  if ((ring.sizeSectors / BLOCK_SECTORS) * unit > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`${count} log pages in a ring of ${ring.sizeBytes} bytes: too many to order`)
  }
  const keys = new Float64Array(count)
  const sectors = new Float64Array(count)
  const slots = new Uint16Array(count)
  let e = 0
  pages.forEachPage((sector, slot, pos) => {
    keys[e] = (ring.distance(from, pos) / BLOCK_SECTORS) * unit + e
    sectors[e] = sector
    slots[e] = slot
    e++
  })
  keys.sort()
  return {keys, sectors, slots, unit}
}

/**
 * Copy `pages` from the log to the members: read the log from `from` to `to` in windows, from the
 * first page needed on, skipping stretches not needed, one member request per run of consecutive
 * member pages. `progress` gets (log bytes done, log bytes in all).
 */
export function applyFromLog(
  arr: MdArray,
  pages: StripePages,
  from: number,
  to: number,
  res: ApplyResult,
  progress?: (done: number, total: number) => void,
): void {
  const ring = arr.ring!
  const {keys, sectors, slots, unit} = logOrder(arr, pages, from)
  const count = keys.length
  const totalPages = ring.distance(from, to) / BLOCK_SECTORS
  if (count === 0 || totalPages === 0) return
  const buf = alignedBuffer(Math.min(WINDOW, totalPages * PAGE))
  let next = 0
  while (next < count) {
    const first = Math.floor(keys[next] / unit)
    const len = Math.min(buf.length / PAGE, totalPages - first)
    const win = buf.subarray(0, len * PAGE)
    ring.read(win, ring.add(from, first * BLOCK_SECTORS))
    res.journalBytesRead += win.length
    const writes: {slot: number; off: number; view: Uint8Array}[] = []
    while (next < count) {
      const page = Math.floor(keys[next] / unit)
      if (page >= first + len) break
      const i = keys[next] - page * unit
      const k = page - first
      if (writesTo(arr, slots[i])) writes.push({slot: slots[i], off: sectors[i] * 512, view: win.subarray(k * PAGE, (k + 1) * PAGE)})
      next++
    }
    res.memberWrites += writeCoalesced(arr, writes)
    res.pagesWritten += writes.length
    progress?.((first + len) * PAGE, totalPages * PAGE)
  }
}

/**
 * Data-only stripes are handled in runs of consecutive stripes, every member's pages of a run held
 * at once in one buffer per member, reused by every run.
 */
export class RunBuffers {
  /** stripes per run: at most RUN_BYTES of member pages, and few enough that reclaim's parity records of a run fit a ring with little room left */
  readonly stripes: number
  readonly members: Uint8Array[]
  readonly scratch = alignedBuffer(256 * PAGE)

  constructor(arr: MdArray) {
    this.stripes = runStripes(arr)
    this.members = Array.from({length: arr.sb.raidDisks}, () => alignedBuffer(this.stripes * PAGE))
  }

  /** the stripe sectors, sorted, cut into runs of consecutive stripes */
  runs(sectors: number[]): Generator<number[]> {
    return runsOf(sectors, this.stripes)
  }
}

/** stripes per run of data-only stripes for this array: at most RUN_BYTES of member pages */
export function runStripes(arr: MdArray): number {
  return Math.max(16, Math.min(256, Math.floor(RUN_BYTES / arr.sb.raidDisks / PAGE)))
}

/** The stripe sectors, sorted, cut into runs of at most `most` consecutive stripes. */
export function* runsOf(sectors: number[], most: number): Generator<number[]> {
  const sorted = Float64Array.from(sectors).sort()
  for (let i = 0; i < sorted.length;) {
    let j = i + 1
    while (j < sorted.length && j - i < most && sorted[j] === sorted[j - 1] + BLOCK_SECTORS) j++
    yield Array.from(sorted.subarray(i, j))
    i = j
  }
}

/**
 * A run's pages as they will be on the members: the old data pages parity needs (those not
 * logged) read from the members, the logged data put over them (read in runs of consecutive log
 * pages), parity computed. Returns one view per member; pages no stripe needs are left as they are.
 * With members missing, the present members' whole run is read and the missing ones' old pages
 * rebuilt from it first, as a degraded read would give them.
 */
export function fillRun(arr: MdArray, dataOnly: StripePages, run: number[], rb: RunBuffers, res: ApplyResult): Uint8Array[] {
  const first = run[0]
  const bytes = (run[run.length - 1] - first + BLOCK_SECTORS) * 512
  const bufs = rb.members.map(b => b.subarray(0, bytes))
  if (arr.missingMembers.length > 0) readRebuilt(arr, run, bufs, rb.scratch)
  else bufs.forEach((buf, m) => readOldData(arr, dataOnly, run, m, buf))
  const logPos: number[] = []
  const dest: number[] = [] // slot * 2^32 + byte offset in the run's buffers
  for (const sector of run) {
    for (let slot = 0; slot < bufs.length; slot++) {
      const lp = dataOnly.at(sector, slot)
      if (lp < 0) continue
      logPos.push(lp)
      dest.push(slot * 0x100000000 + (sector - first) * 512)
    }
  }
  overlayLogged(arr, logPos, dest, bufs, rb.scratch, res)
  for (const sector of run) {
    const o = (sector - first) * 512
    const info = arr.geometry.stripeInfo(sector)
    const data = info.dataMembers.map(m => bufs[m].subarray(o, o + PAGE))
    arr.compute.parity.computeP(data, bufs[info.pd].subarray(o, o + PAGE))
    if (arr.sb.level === 6) arr.compute.parity.computeQ(data, info.qSlot, bufs[info.qd].subarray(o, o + PAGE))
  }
  return bufs
}

/** Every present member's pages of the run, one request each, and the missing members' pages rebuilt from them. */
function readRebuilt(arr: MdArray, run: number[], bufs: Uint8Array[], scratch: Uint8Array): void {
  const first = run[0]
  const missing = arr.missingMembers
  bufs.forEach((buf, m) => {
    if (arr.members[m]) arr.members[m].dev.read(buf, arr.memberBase(m) + first * 512)
  })
  for (const sector of run) {
    const o = (sector - first) * 512
    const info = arr.geometry.stripeInfo(sector)
    const order = [...info.dataMembers, info.pd, ...(info.qd >= 0 ? [info.qd] : [])]
    const pages = order.map(m => bufs[m].subarray(o, o + PAGE))
    reconstruct(
      arr.sb.level as 4 | 5 | 6,
      pages,
      info.qSlot,
      missing.map(m => order.indexOf(m)),
      arr.compute.parity,
      scratch,
    )
  }
}

/** Member `m`'s data pages of the run that have no logged page, one request per span of them. */
function readOldData(arr: MdArray, dataOnly: StripePages, run: number[], m: number, buf: Uint8Array): void {
  const needs = (sector: number) => arr.geometry.stripeInfo(sector).dataIndexOf[m] >= 0 && dataOnly.at(sector, m) < 0
  for (let a = 0; a < run.length; a++) {
    if (!needs(run[a])) continue
    let b = a + 1
    while (b < run.length && needs(run[b])) b++
    const o = (run[a] - run[0]) * 512
    arr.members[m]!.dev.read(buf.subarray(o, o + (b - a) * PAGE), arr.memberBase(m) + run[a] * 512)
    a = b
  }
}

/**
 * Read the log pages at `logPos` (in runs of consecutive positions) into the places `dest` names
 * (slot * 2^32 + byte offset in bufs[slot]). Used by fillRun and by the replayed view (view.ts).
 */
export function overlayLogged(arr: MdArray, logPos: number[], dest: number[], bufs: Uint8Array[], scratch: Uint8Array, res: ApplyResult): void {
  const ring = arr.ring!
  const order = Array.from(logPos.keys()).sort((a, b) => logPos[a] - logPos[b])
  for (let a = 0; a < order.length;) {
    let b = a + 1
    while (b < order.length && b - a < scratch.length / PAGE && logPos[order[b]] === logPos[order[b - 1]] + BLOCK_SECTORS) b++
    const got = scratch.subarray(0, (b - a) * PAGE)
    ring.read(got, logPos[order[a]])
    res.journalBytesRead += got.length
    for (let c = a; c < b; c++) {
      const d = dest[order[c]]
      const slot = Math.floor(d / 0x100000000)
      bufs[slot].set(got.subarray((c - a) * PAGE, (c - a + 1) * PAGE), d - slot * 0x100000000)
    }
    a = b
  }
}

/** The data-only stripes `sectors`: per run, fill it (fillRun) and write the pages the plan names. */
export function applyDataOnly(arr: MdArray, dataOnly: StripePages, sectors: number[], res: ApplyResult, buffers?: RunBuffers): void {
  if (sectors.length === 0) return
  const rb = buffers ?? new RunBuffers(arr)
  for (const run of rb.runs(sectors)) {
    writePlanned(arr, dataOnly, run, fillRun(arr, dataOnly, run, rb, res), res)
  }
}

/**
 * Write back, per member, only the pages a data-only stripe changes (dataOnlyWrite: its logged data
 * and its parity), one request per run of consecutive pages: exactly what planWrites lists.
 */
function writePlanned(arr: MdArray, dataOnly: StripePages, run: number[], bufs: Uint8Array[], res: ApplyResult): void {
  const first = run[0]
  for (let m = 0; m < bufs.length; m++) {
    const planned = (sector: number) => dataOnlyWrite(arr, dataOnly, sector, m) !== null
    for (let a = 0; a < run.length; a++) {
      if (!planned(run[a])) continue
      let b = a + 1
      while (b < run.length && planned(run[b])) b++
      const from = (run[a] - first) * 512
      arr.members[m]!.dev.write(bufs[m].subarray(from, from + (b - a) * PAGE), arr.memberBase(m) + run[a] * 512)
      res.memberWrites++
      res.pagesWritten += b - a
      a = b
    }
  }
}

/** Sort page writes by member and offset and issue one request per contiguous run. */
export function writeCoalesced(arr: MdArray, writes: {slot: number; off: number; view: Uint8Array}[]): number {
  writes.sort((a, b) => a.slot - b.slot || a.off - b.off)
  let requests = 0
  let i = 0
  while (i < writes.length) {
    let j = i + 1
    let end = writes[i].off + writes[i].view.length
    while (j < writes.length && writes[j].slot === writes[i].slot && writes[j].off === end) {
      end += writes[j].view.length
      j++
    }
    const slot = writes[i].slot
    arr.members[slot]!.dev.writev(
      writes.slice(i, j).map(w => w.view),
      arr.memberBase(slot) + writes[i].off,
    )
    requests++
    i = j
  }
  return requests
}
