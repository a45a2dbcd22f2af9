/**
 * repair: md's `repair` sync action offline, on what check (scrub.ts) finds. Plan first: the whole
 * range is checked and every page to write named before any write. Then each named page is
 * recomputed from its stripe as read again and written: RAID4/5 parity from the data (which page is
 * wrong cannot be known, so the kernel's repair rewrites parity too); RAID6 the located page (a data
 * page rebuilt from P and the other data, or P, or Q), and P and Q from the data when no single page
 * is to blame. A dirty journal is refused: its replay changes stripes first. Superblocks are left
 * alone, as the kernel's repair leaves them.
 */
import type {EngineOptions} from '../compute.js'
import {type DeviceSource, type MdArray, openArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import {EXIT, R5Error} from '../errors.js'
import {planRecovery} from '../journal/plan.js'
import {reconstruct} from '../parity.js'
import {rowLayout, type Progress, type RowLayout} from '../rows.js'
import {forEachWindow, Scrubber, type Mismatch} from '../scrub.js'
import {MISMATCHES_LISTED, memberRange} from './check.js'
import {PAGE} from '../journal/ring.js'

export interface RepairOptions extends EngineOptions {
  from?: number
  to?: number
  dryRun?: boolean
  progress?: Progress
  /** go on without the journal device: records only in it are lost, parity is made to match the data the members hold */
  force?: boolean
}

/** One page repair writes: the stripe (member sector), the member slot, and what it is. */
export interface RepairWrite {
  stripeSector: number
  slot: number
  page: 'P' | 'Q' | 'data'
}

export interface RepairResult {
  arrayUuid: string
  dryRun: boolean
  fromSector: number
  toSector: number
  stripes: number
  mismatchCount: number
  pagesWritten: number
  /** the first MISMATCHES_LISTED pages written (or, dry run, to be written), in sector order */
  writes: RepairWrite[]
}

export function repairArray(paths: DeviceSource[], opts: RepairOptions = {}): RepairResult {
  const arr = openArray(paths, {writable: !opts.dryRun, journalless: true, allowMissingJournal: Boolean(opts.force), compute: opts.compute})
  try {
    const {from, to} = memberRange(arr, opts)
    refuseDirty(arr)
    const half = opts.progress && ((d: number, t: number) => opts.progress!(opts.dryRun ? d : d / 2, t))
    const found = findMismatches(arr, from, to, half)
    const writes = found.flatMap(m => pagesFor(arr, m))
    if (!opts.dryRun && writes.length > 0) applyRepair(arr, from, to, found, opts.progress && ((d, t) => opts.progress!(t / 2 + d / 2, t)))
    opts.progress?.(1, 1)
    return {
      arrayUuid: arr.uuid,
      dryRun: Boolean(opts.dryRun),
      fromSector: from,
      toSector: to,
      stripes: (to - from) / 8,
      mismatchCount: found.length,
      pagesWritten: writes.length,
      writes: writes.slice(0, MISMATCHES_LISTED),
    }
  } finally {
    arr.close()
  }
}

/** A journal with records pending replay is refused before anything is read of the members. */
function refuseDirty(arr: MdArray): void {
  if (!arr.journal) return
  const plan = planRecovery(arr)
  if (!plan.clean)
    throw new R5Error(
      'journal is dirty: its replay changes stripes, so repairing now could undo it',
      EXIT.DIRTY,
      arr.journal.path,
      'replay it first with `r5ctl recover`; nothing was written',
      'dirty',
    )
}

/** Every mismatch in member sectors [from, to), in sector order. */
function findMismatches(arr: MdArray, from: number, to: number, progress?: Progress): Mismatch[] {
  const scrub = new Scrubber(arr)
  const found: Mismatch[] = []
  const skip = (s: number) => s < from || s >= to
  const chunkBytes = arr.sb.chunkSize * 512
  forEachWindow(
    arr,
    from,
    to,
    (r0, r1, slots) => {
      for (let r = r0; r < r1; r++) found.push(...scrub.row(r, rowLayout(arr, r), slots, (r - r0) * chunkBytes, skip))
    },
    {progress},
  )
  return found
}

/** The pages repair writes for one mismatch. */
function pagesFor(arr: MdArray, m: Mismatch): RepairWrite[] {
  const lay = arr.geometry.stripeInfo(m.stripeSector)
  const at = (slot: number, page: RepairWrite['page']) => ({stripeSector: m.stripeSector, slot, page})
  if (m.kind === 'data') return [at(m.slot!, 'data')]
  if (m.kind === 'Q') return [at(lay.qd, 'Q')]
  if (m.kind === 'P') return [at(lay.pd, 'P')]
  return [at(lay.pd, 'P'), at(lay.qd, 'Q')]
}

/** Read again the windows that hold mismatches, recompute the planned pages in place and write them; members flushed. */
function applyRepair(arr: MdArray, from: number, to: number, found: Mismatch[], progress?: Progress): void {
  const chunk = arr.sb.chunkSize
  const scratch = [alignedBuffer(PAGE), alignedBuffer(PAGE)]
  let next = 0
  const wanted = (r0: number, r1: number) => {
    while (next < found.length && found[next].stripeSector < r0 * chunk) next++
    return next < found.length && found[next].stripeSector < r1 * chunk
  }
  forEachWindow(
    arr,
    from,
    to,
    (r0, r1, slots) => {
      for (; next < found.length && found[next].stripeSector < r1 * chunk; next++) {
        const m = found[next]
        const off = (m.stripeSector - r0 * chunk) * 512
        const page = (slot: number) => slots[slot].subarray(off, off + PAGE)
        for (const w of fixStripe(arr, m, rowLayout(arr, Math.floor(m.stripeSector / chunk)), page, scratch)) {
          arr.members[w.slot]!.dev.write(w.bytes, arr.memberBase(w.slot) + m.stripeSector * 512)
        }
      }
    },
    {wanted, progress},
  )
  for (const d of arr.members) d!.dev.flush()
}

/** Recompute a mismatched stripe's planned pages (pagesFor) from its pages as read. */
function fixStripe(
  arr: MdArray,
  m: Mismatch,
  lay: RowLayout,
  page: (slot: number) => Uint8Array,
  scratch: Uint8Array[],
): {slot: number; bytes: Uint8Array}[] {
  const parity = arr.compute.parity
  const data = lay.dataMembers.map(page)
  if (m.kind === 'data') {
    const pages = [...data, page(lay.pd), ...(lay.qd >= 0 ? [page(lay.qd)] : [])]
    reconstruct(arr.sb.level as 4 | 5 | 6, pages, lay.qSlot, [lay.dataMembers.indexOf(m.slot!)], parity)
    return [{slot: m.slot!, bytes: page(m.slot!)}]
  }
  if (m.kind === 'Q') {
    parity.computeQ(data, lay.qSlot, scratch[1])
    return [{slot: lay.qd, bytes: scratch[1]}]
  }
  if (m.kind === 'P') {
    parity.computeP(data, scratch[0])
    return [{slot: lay.pd, bytes: scratch[0]}]
  }
  parity.computePQ(data, lay.qSlot, scratch[0], scratch[1])
  return [
    {slot: lay.pd, bytes: scratch[0]},
    {slot: lay.qd, bytes: scratch[1]},
  ]
}
