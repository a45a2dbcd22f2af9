/**
 * Applying a RecoveryPlan (plan.ts) to the devices, in the kernel's order: the members first (pages
 * of complete stripes copied from the log, in log order; then data-only stripes with parity
 * computed from the members), a flush, the closing empty meta block at the stop position with
 * seq + 10000, a flush, and journal_tail and events in every superblock last. The log is read in a
 * fixed window; only the pages the plan names are written.
 */
import {encodeMetaBlock} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {missingMembersError} from '../array.js'
import {alignedBuffer} from '../device.js'
import {computeP, computeQ} from '../parity.js'
import type {RecoveryPlan} from './plan.js'
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

/** Carry out a plan. Members first, then the closing meta block, superblocks last. */
export function applyRecovery(arr: MdArray, plan: RecoveryPlan, progress?: (done: number, total: number) => void): ApplyResult {
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  if (plan.clean) return res
  if (arr.missingMembers.length > 0) throw missingMembersError(arr.uuid, arr.missingMembers, 'recovery needs every member')
  applyFromLog(arr, plan, res, progress)
  applyDataOnly(arr, plan.dataOnly, res)
  for (const m of arr.members) m!.dev.flush()
  closeLog(arr, plan.stop.position, plan.newSeq)
  return res
}

/** The log ends at `position`: an empty meta block there with `seq`, flushed, then the superblocks point at it. */
export function closeLog(arr: MdArray, position: number, seq: bigint): void {
  arr.ring!.write(encodeMetaBlock({seq, position: BigInt(position), payloads: []}, arr.seed), position)
  arr.journal!.dev.flush()
  arr.writeSuperblocks(position)
}

/** The plan's log pages in log order: key = page index from the tail * 2^24 + entry, with the entry's sector and slot. */
function logOrder(arr: MdArray, plan: RecoveryPlan): {keys: Float64Array; sectors: Float64Array; slots: Uint16Array} {
  const ring = arr.ring!
  const count = plan.fromLog.pages()
  const keys = new Float64Array(count)
  const sectors = new Float64Array(count)
  const slots = new Uint16Array(count)
  let e = 0
  plan.fromLog.forEachPage((sector, slot, pos) => {
    keys[e] = (ring.distance(plan.tailSector, pos) / BLOCK_SECTORS) * 0x1000000 + e
    sectors[e] = sector
    slots[e] = slot
    e++
  })
  keys.sort()
  return {keys, sectors, slots}
}

/**
 * The complete stripes: read the log in windows, from the first page the plan needs on, skipping
 * stretches it does not need, and send every planned page to its member (one request per run of
 * consecutive member pages). `progress` gets (log bytes done, log bytes in all).
 */
export function applyFromLog(arr: MdArray, plan: RecoveryPlan, res: ApplyResult, progress?: (done: number, total: number) => void): void {
  const ring = arr.ring!
  const {keys, sectors, slots} = logOrder(arr, plan)
  const count = keys.length
  const totalPages = ring.distance(plan.tailSector, plan.stop.position) / BLOCK_SECTORS
  if (count === 0 || totalPages === 0) return
  const buf = alignedBuffer(Math.min(WINDOW, totalPages * PAGE))
  let next = 0
  while (next < count) {
    const first = Math.floor(keys[next] / 0x1000000)
    const len = Math.min(buf.length / PAGE, totalPages - first)
    const win = buf.subarray(0, len * PAGE)
    ring.read(win, ring.add(plan.tailSector, first * BLOCK_SECTORS))
    res.journalBytesRead += win.length
    const writes: {slot: number; off: number; view: Uint8Array}[] = []
    while (next < count) {
      const page = Math.floor(keys[next] / 0x1000000)
      if (page >= first + len) break
      const i = keys[next] - page * 0x1000000
      const k = page - first
      writes.push({slot: slots[i], off: sectors[i] * 512, view: win.subarray(k * PAGE, (k + 1) * PAGE)})
      next++
    }
    res.memberWrites += writeCoalesced(arr, writes)
    res.pagesWritten += writes.length
    progress?.((first + len) * PAGE, totalPages * PAGE)
  }
}

export interface DataOnlyRun {
  /** stripe sectors of the run (consecutive) */
  sectors: number[]
  /** per member, the run's pages after the logged data and computed parity were applied */
  bufs: Uint8Array[]
  first: number
}

/**
 * The data-only stripes, in runs of consecutive stripes: read the members, put the logged
 * data over them, compute parity. `beforeWrite` (reclaim) may log the parity first.
 */
export function applyDataOnly(arr: MdArray, dataOnly: StripePages, res: ApplyResult, beforeWrite?: (run: DataOnlyRun) => void): void {
  const ring = arr.ring!
  const level = arr.sb.level
  const D = arr.geometry.dataDisks
  const n = arr.sb.raidDisks
  const scratch = alignedBuffer(256 * PAGE)
  const sectors = dataOnly.keys().sort((a, b) => a - b)
  // stripes per run: every member's pages of a run are held at once, in one buffer per member
  // reused by every run (at most RUN_BYTES in all); reclaim logs a run's parity as one record set,
  // which must fit in the room the ring has left
  const run = Math.max(16, Math.min(256, Math.floor(RUN_BYTES / n / PAGE)))
  const runBufs = Array.from({length: n}, () => alignedBuffer(run * PAGE))
  for (let i = 0; i < sectors.length;) {
    let j = i + 1
    while (j < sectors.length && j - i < run && sectors[j] === sectors[j - 1] + BLOCK_SECTORS) j++
    const first = sectors[i]
    const count = (sectors[j - 1] - first) / BLOCK_SECTORS + 1
    const bufs = runBufs.map((b, m) => {
      const v = b.subarray(0, count * PAGE)
      arr.members[m]!.dev.read(v, arr.memberBase(m) + first * 512)
      return v
    })
    // the logged pages of the run, read in runs of consecutive log pages (not one request per page)
    const logPos: number[] = []
    const dest: number[] = [] // slot * 2^32 + byte offset in the run's buffer
    for (let k = i; k < j; k++) {
      for (const [slot, lp] of dataOnly.get(sectors[k])) {
        logPos.push(lp)
        dest.push(slot * 0x100000000 + (sectors[k] - first) * 512)
      }
    }
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
        res.pagesWritten++
      }
      a = b
    }
    for (let k = i; k < j; k++) {
      const sector = sectors[k]
      const o = (sector - first) * 512
      const info = arr.geometry.stripeInfo(sector)
      const data: Uint8Array[] = []
      for (let d = 0; d < D; d++) data.push(bufs[info.dataMembers[d]].subarray(o, o + PAGE))
      computeP(data, bufs[info.pd].subarray(o, o + PAGE))
      if (level === 6) computeQ(data, info.qSlot, bufs[info.qd].subarray(o, o + PAGE))
      res.pagesWritten += level === 6 ? 2 : 1
    }
    beforeWrite?.({sectors: sectors.slice(i, j), bufs, first})
    res.memberWrites += writePlanned(arr, dataOnly, sectors.slice(i, j), bufs, first)
    i = j
  }
}

/**
 * Write back, per member, only the pages a data-only stripe changes (its logged data and its
 * parity), one request per run of consecutive pages: exactly what planWrites lists.
 */
function writePlanned(arr: MdArray, dataOnly: StripePages, sectors: number[], bufs: Uint8Array[], first: number): number {
  let requests = 0
  for (let m = 0; m < bufs.length; m++) {
    const planned = (sector: number) => {
      const info = arr.geometry.stripeInfo(sector)
      return m === info.pd || m === info.qd || dataOnly.at(sector, m) >= 0
    }
    for (let a = 0; a < sectors.length; a++) {
      if (!planned(sectors[a])) continue
      let b = a + 1
      while (b < sectors.length && planned(sectors[b])) b++
      const from = (sectors[a] - first) * 512
      arr.members[m]!.dev.write(bufs[m].subarray(from, from + (b - a) * PAGE), arr.memberBase(m) + sectors[a] * 512)
      requests++
      a = b
    }
  }
  return requests
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
