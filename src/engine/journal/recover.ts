/**
 * Offline journal replay, mirroring the 6.1 kernel's r5l_recovery_log / r5c_recovery_flush_log:
 *
 *   scan  — walk the live log from journal_tail; every meta block must pass magic, seq, version,
 *           position, checksum and meta_size ≤ 4096; every page of an io unit is verified before
 *           any of it is used; a unit with a bad page is dropped and the walk advances by its meta
 *           block alone, exactly as the kernel does.
 *   plan  — group payloads by stripe with the kernel's state machine: a DATA payload marks the
 *           stripe as caching (data-only); a PARITY payload completes it (data+parity); new DATA
 *           for a complete stripe replays the complete one first; a FLUSH payload drops the
 *           stripe (already on the members). Parity-only stripes need nothing. At the end,
 *           complete stripes are replayed; data-only stripes (write-back) get parity computed
 *           from the members and are written too — the kernel instead rewrites them into the
 *           log and writes them out later, which ends in the same array bytes.
 *   apply — only after the whole plan is known: members (streamed from the log), flush, then an
 *           empty meta block at the stop position with seq + 10000, then journal_tail and
 *           events in every superblock, last.
 */
import {PAYLOAD_DATA, PAYLOAD_FLUSH, PAYLOAD_PARITY, encodeMetaBlock} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import {computeP, computeQ} from '../parity.js'
import {CorruptError} from '../errors.js'
import {scanLog, type ScanStop} from './scan.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

/** stripe sector -> (raid slot -> log position of the page to write there) */
type PageMap = Map<number, Map<number, number>>

interface StripeState {
  caching: boolean
  cur: Map<number, number>
}

export interface SkippedUnit {positionSector: number; seq: string; reason: string}

export interface RecoveryPlan {
  tailSector: number
  tailSeq: bigint
  /** where the scan stopped: the new empty meta block goes here */
  stopSector: number
  /** the seq a meta block at stopSector would have needed */
  stopSeq: bigint
  stop: ScanStop
  newSeq: bigint
  units: number
  emptyUnits: number
  skipped: SkippedUnit[]
  /** replays of complete stripes (the kernel's data_parity_stripes) */
  dataParityStripes: number
  /** stripes left with data and no parity (the kernel's data_only_stripes) */
  dataOnlyStripes: number
  /** pages copied from the log to the members */
  fromLog: PageMap
  /** data-only stripes: logged data pages; parity is computed at apply time */
  dataOnly: PageMap
  pagesFromLog: number
  logBytesScanned: number
  /** nothing to write: the live log holds nothing but one empty meta block */
  clean: boolean
}

export function planRecovery(arr: MdArray, opts: {untilSeq?: bigint; progress?: (done: number, total: number) => void} = {}): RecoveryPlan {
  const ring = arr.ring!
  const geo = arr.geometry
  const level = arr.sb.level
  const tail = arr.journalTail
  const states = new Map<number, StripeState>()
  const fromLog: PageMap = new Map()
  const skipped: SkippedUnit[] = []
  let stop: ScanStop | undefined
  let units = 0
  let emptyUnits = 0
  let tailSeq: bigint | null = null
  let dataParity = 0
  let scanned = 0

  const replay = (sector: number, st: StripeState) => {
    const info = geo.stripeInfo(sector)
    let data = 0
    for (const slot of st.cur.keys()) if (slot !== info.pd && slot !== info.qd) data++
    if (data > 0) {
      let m = fromLog.get(sector)
      if (!m) fromLog.set(sector, (m = new Map()))
      for (const [slot, pos] of st.cur) m.set(slot, pos)
      dataParity++
    }
    st.cur = new Map()
    st.caching = false
  }
  const state = (sector: number) => {
    let st = states.get(sector)
    if (!st) states.set(sector, (st = {caching: false, cur: new Map()}))
    return st
  }

  for (const u of scanLog(ring, arr.seed, tail, {
    onStop: s => (stop = s),
    untilSeq: opts.untilSeq,
    kernelSkipOnDataMismatch: x => {
      // a dropped unit still counts: the tail block may be one (its meta block is valid)
      if (tailSeq === null) tailSeq = x.seq
      skipped.push({positionSector: x.position, seq: x.seq.toString(), reason: x.message})
    },
  })) {
    if (tailSeq === null) tailSeq = u.seq
    units++
    scanned += (1 + u.pages) * PAGE
    if (u.meta.payloads.length === 0) emptyUnits++
    let pos = ring.add(u.position, BLOCK_SECTORS)
    for (const p of u.meta.payloads) {
      if (p.type === PAYLOAD_FLUSH) {
        for (const s of p.stripes) states.delete(Number(s))
        continue
      }
      if (p.type === PAYLOAD_DATA) {
        const loc = geo.mapSector(p.location)
        const sector = Number(loc.memberSector)
        const st = state(sector)
        const info = geo.stripeInfo(sector)
        if (!st.caching && st.cur.has(info.pd)) replay(sector, st)
        st.cur.set(loc.member, pos)
        st.caching = true
      } else if (p.type === PAYLOAD_PARITY) {
        const sector = Number(p.location)
        const st = state(sector)
        const info = geo.stripeInfo(sector)
        st.cur.set(info.pd, pos)
        if (level === 6) st.cur.set(info.qd, ring.add(pos, BLOCK_SECTORS))
        st.caching = false
      }
      pos = ring.add(pos, p.sizeSectors)
    }
    opts.progress?.(scanned, ring.sizeBytes)
  }
  if (tailSeq === null) {
    throw new CorruptError(`no valid meta block at the journal tail (sector ${tail}): ${stop!.message}; the kernel would discard the whole log`,
      arr.journal!.path, 'inspect it with `r5ctl dump-meta --from SECTOR`; nothing was written', 'bad-tail')
  }
  const dataOnly: PageMap = new Map()
  for (const [sector, st] of states) {
    if (!st.caching) replay(sector, st)
    else dataOnly.set(sector, st.cur)
  }
  let pagesFromLog = 0
  for (const m of fromLog.values()) pagesFromLog += m.size
  const stopSeq = stop!.expectedSeq ?? tailSeq + BigInt(units + skipped.length)
  return {
    tailSector: tail, tailSeq, stopSector: stop!.position, stopSeq, stop: stop!, newSeq: stopSeq + 10000n,
    units, emptyUnits, skipped, dataParityStripes: dataParity, dataOnlyStripes: dataOnly.size,
    fromLog, dataOnly, pagesFromLog, logBytesScanned: scanned,
    clean: fromLog.size === 0 && dataOnly.size === 0 && units === 1 && emptyUnits === 1 && skipped.length === 0,
  }
}

export interface WriteRun {device: string; slot: number; offsetSector: number; pages: number; source: 'log' | 'computed'}

/** Every member write the plan implies, coalesced into runs (what --dry-run prints). */
export function planWrites(arr: MdArray, plan: RecoveryPlan): WriteRun[] {
  const bySlot = new Map<number, {sector: number; source: 'log' | 'computed'}[]>()
  const add = (slot: number, sector: number, source: 'log' | 'computed') => {
    let l = bySlot.get(slot)
    if (!l) bySlot.set(slot, (l = []))
    l.push({sector, source})
  }
  for (const [sector, m] of plan.fromLog) for (const slot of m.keys()) add(slot, sector, 'log')
  for (const [sector, m] of plan.dataOnly) {
    const info = arr.geometry.stripeInfo(sector)
    for (const slot of m.keys()) add(slot, sector, 'log')
    add(info.pd, sector, 'computed')
    if (info.qd >= 0) add(info.qd, sector, 'computed')
  }
  const runs: WriteRun[] = []
  for (const slot of [...bySlot.keys()].sort((a, b) => a - b)) {
    const l = bySlot.get(slot)!.sort((a, b) => a.sector - b.sector)
    let run: WriteRun | null = null
    for (const w of l) {
      if (run && run.source === w.source && run.offsetSector + run.pages * BLOCK_SECTORS === w.sector) run.pages++
      else {
        run = {device: arr.members[slot]?.path ?? `(slot ${slot} missing)`, slot, offsetSector: w.sector, pages: 1, source: w.source}
        runs.push(run)
      }
    }
  }
  return runs
}

const WINDOW = 8 << 20

export interface ApplyResult {pagesWritten: number; memberWrites: number; journalBytesRead: number}

/** Carry out a verified plan. Members first, then the closing meta block, superblocks last. */
export function applyRecovery(arr: MdArray, plan: RecoveryPlan, progress?: (done: number, total: number) => void): ApplyResult {
  const ring = arr.ring!
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  if (plan.clean) return res
  if (arr.missingMembers.length > 0) throw new CorruptError('recovery needs every member', arr.all()[0].path)
  applyFromLog(arr, plan, res, progress)
  applyDataOnly(arr, plan, res)
  for (const m of arr.members) m!.dev.flush()
  const mb = encodeMetaBlock({seq: plan.newSeq, position: BigInt(plan.stopSector), payloads: []}, arr.seed)
  ring.write(mb, plan.stopSector)
  arr.journal!.dev.flush()
  arr.writeSuperblocks(plan.stopSector)
  return res
}

/** Phase A: stream the live log once, in windows, and send every final page to its member. */
export function applyFromLog(arr: MdArray, plan: RecoveryPlan, res: ApplyResult, progress?: (done: number, total: number) => void): void {
  const ring = arr.ring!
  const targets = new Map<number, number>()
  const slotOf = new Map<number, number>()
  for (const [sector, m] of plan.fromLog) for (const [slot, pos] of m) { targets.set(pos, sector); slotOf.set(pos, slot) }
  const total = ring.distance(plan.tailSector, plan.stopSector) * 512
  if (targets.size === 0 || total === 0) return
  const buf = alignedBuffer(Math.min(WINDOW, total))
  let done = 0
  let pos = plan.tailSector
  while (done < total) {
    const len = Math.min(buf.length, total - done)
    const win = buf.subarray(0, len)
    ring.read(win, pos)
    res.journalBytesRead += len
    const writes: {slot: number; off: number; view: Uint8Array}[] = []
    for (let k = 0; k < len / PAGE; k++) {
      const p = ring.add(pos, k * BLOCK_SECTORS)
      const sector = targets.get(p)
      if (sector === undefined) continue
      writes.push({slot: slotOf.get(p)!, off: sector * 512, view: win.subarray(k * PAGE, (k + 1) * PAGE)})
    }
    res.memberWrites += writeCoalesced(arr, writes)
    res.pagesWritten += writes.length
    done += len
    pos = ring.add(pos, len / 512)
    progress?.(done, total)
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
 * Phase B: data-only stripes, in runs of consecutive stripes: read the members, put the logged
 * data over them, compute parity. `beforeWrite` (reclaim) may log the parity first.
 */
export function applyDataOnly(arr: MdArray, plan: RecoveryPlan, res: ApplyResult, beforeWrite?: (run: DataOnlyRun) => void): void {
  const ring = arr.ring!
  const level = arr.sb.level
  const D = arr.geometry.dataDisks
  const n = arr.sb.raidDisks
  const page = alignedBuffer(PAGE)
  const sectors = [...plan.dataOnly.keys()].sort((a, b) => a - b)
  const RUN = 256
  for (let i = 0; i < sectors.length;) {
    let j = i + 1
    while (j < sectors.length && j - i < RUN && sectors[j] === sectors[j - 1] + BLOCK_SECTORS) j++
    const first = sectors[i]
    const count = (sectors[j - 1] - first) / BLOCK_SECTORS + 1
    const bufs = Array.from({length: n}, (_, m) => {
      const b = alignedBuffer(count * PAGE)
      arr.members[m]!.dev.read(b, arr.memberBase(m) + first * 512)
      return b
    })
    for (let k = i; k < j; k++) {
      const sector = sectors[k]
      const o = (sector - first) * 512
      const info = arr.geometry.stripeInfo(sector)
      for (const [slot, lp] of plan.dataOnly.get(sector)!) {
        ring.read(page, lp)
        res.journalBytesRead += PAGE
        bufs[slot].set(page, o)
        res.pagesWritten++
      }
      const data: Uint8Array[] = []
      for (let d = 0; d < D; d++) data.push(bufs[info.dataMembers[d]].subarray(o, o + PAGE))
      computeP(data, bufs[info.pd].subarray(o, o + PAGE))
      if (level === 6) computeQ(data, info.qSlot, bufs[info.qd].subarray(o, o + PAGE))
      res.pagesWritten += level === 6 ? 2 : 1
    }
    beforeWrite?.({sectors: sectors.slice(i, j), bufs, first})
    // whole runs per member: one request each
    for (let m = 0; m < n; m++) {
      arr.members[m]!.dev.write(bufs[m], arr.memberBase(m) + first * 512)
      res.memberWrites++
    }
    i = j
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
    arr.members[slot]!.dev.writev(writes.slice(i, j).map(w => w.view), arr.memberBase(slot) + writes[i].off)
    requests++
    i = j
  }
  return requests
}
