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
import {MetaColumns, PAYLOAD_DATA, PAYLOAD_FLUSH, PAYLOAD_PARITY, encodeMetaBlock} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {alignedBuffer, writePages} from '../device.js'
import type {PageSumsJob} from '../checksum.js'
import {computeP, computeQ} from '../parity.js'
import {CorruptError, UsageError} from '../errors.js'
import {missingMembersError} from '../array.js'
import {scanLog, walkMetaNative, type LogReader, type ScanStop, type ScannedUnit} from './scan.js'
import {BLOCK_SECTORS, PAGE, type Ring} from './ring.js'

/**
 * stripe sector -> (raid slot -> log position of the page to write there), kept compact: one map
 * entry per stripe and a typed row of positions (-1 = nothing), so a plan for a journal of any
 * size costs tens of bytes per stripe rather than objects per page.
 */
export class StripePages {
  private rows = new Map<number, number>()
  private sectorOf: number[] = []
  private pos: Int32Array
  private count = 0

  constructor(readonly slots: number) {
    this.pos = new Int32Array(1024 * slots).fill(-1)
  }

  get size(): number {
    return this.rows.size
  }

  private row(sector: number): number {
    let r = this.rows.get(sector)
    if (r === undefined) {
      r = this.count++
      if (r * this.slots >= this.pos.length) {
        const grown = new Int32Array(this.pos.length * 2).fill(-1)
        grown.set(this.pos)
        this.pos = grown
      }
      this.rows.set(sector, r)
      this.sectorOf[r] = sector
    }
    return r
  }

  set(sector: number, slot: number, logPos: number): void {
    // row() first: it may replace this.pos (growth), and `this.pos[...] = ` would otherwise
    // evaluate the old array before the call and drop the write
    const r = this.row(sector)
    this.pos[r * this.slots + slot] = logPos
  }

  /** the log position of one page (slot `slot` of the stripe at `sector`), or -1 */
  at(sector: number, slot: number): number {
    const r = this.rows.get(sector)
    return r === undefined ? -1 : this.pos[r * this.slots + slot]
  }

  /** slot -> log position pairs of one stripe */
  get(sector: number): Map<number, number> {
    const out = new Map<number, number>()
    const r = this.rows.get(sector)
    if (r === undefined) return out
    for (let k = 0; k < this.slots; k++) {
      const v = this.pos[r * this.slots + k]
      if (v >= 0) out.set(k, v)
    }
    return out
  }

  keys(): IterableIterator<number> {
    return this.rows.keys()
  }

  /** every (sector, slot, log position) */
  forEachPage(fn: (sector: number, slot: number, logPos: number) => void): void {
    for (let r = 0; r < this.count; r++) {
      for (let k = 0; k < this.slots; k++) {
        const v = this.pos[r * this.slots + k]
        if (v >= 0) fn(this.sectorOf[r], k, v)
      }
    }
  }

  pages(): number {
    let n = 0
    for (let i = 0; i < this.count * this.slots; i++) if (this.pos[i] >= 0) n++
    return n
  }
}

/**
 * stripe sector -> row, an open-addressing hash table in typed arrays (linear probing, at most half
 * full). The replay looks a stripe up for every payload and clears the table every window; a Map
 * costs an allocation per growth and per rehash, which the young generation then has to collect.
 */
export class SectorIndex {
  private keys: Float64Array
  private vals: Int32Array
  private used = 0
  private mask: number

  constructor(capacity = 1024) {
    let cap = 16
    while (cap < capacity * 2) cap *= 2
    this.keys = new Float64Array(cap)
    this.vals = new Int32Array(cap).fill(-1)
    this.mask = cap - 1
  }

  get size(): number {
    return this.used
  }

  private slot(sector: number): number {
    // sectors are multiples of 8; the page number, scrambled (low 32 bits; larger sectors just collide more)
    let i = (Math.imul(Math.floor(sector / 8) >>> 0, 0x9e3779b1) >>> 0) & this.mask
    while (this.vals[i] >= 0 && this.keys[i] !== sector) i = (i + 1) & this.mask
    return i
  }

  /** the row of `sector`, or -1 */
  get(sector: number): number {
    return this.vals[this.slot(sector)]
  }

  set(sector: number, row: number): void {
    let i = this.slot(sector)
    if (this.vals[i] < 0) {
      if ((this.used + 1) * 2 > this.vals.length) {
        this.grow()
        i = this.slot(sector)
      }
      this.used++
      this.keys[i] = sector
    }
    this.vals[i] = row
  }

  private grow(): void {
    const keys = this.keys
    const vals = this.vals
    this.keys = new Float64Array(keys.length * 2)
    this.vals = new Int32Array(vals.length * 2).fill(-1)
    this.mask = this.vals.length - 1
    for (let i = 0; i < vals.length; i++) {
      if (vals[i] < 0) continue
      const j = this.slot(keys[i])
      this.keys[j] = keys[i]
      this.vals[j] = vals[i]
    }
  }

  clear(): void {
    if (this.used === 0) return
    this.vals.fill(-1)
    this.used = 0
  }
}

/** The kernel's per-stripe recovery state, for every stripe at once: current logged pages + caching flag. */
class StripeStates {
  private rows = new SectorIndex()
  private sectorOf: number[] = []
  private cur: Int32Array
  private flags: Uint8Array // bit 0: caching, bit 1: alive
  private count = 0

  constructor(readonly slots: number) {
    this.cur = new Int32Array(1024 * slots).fill(-1)
    this.flags = new Uint8Array(1024)
  }

  /** the last row looked up (consecutive payloads nearly always name the same stripe) */
  private lastSector = -1
  private lastRow = -1

  row(sector: number): number {
    if (sector === this.lastSector) {
      this.flags[this.lastRow] |= 2
      return this.lastRow
    }
    let r = this.rows.get(sector)
    if (r < 0) {
      r = this.count++
      if (r >= this.flags.length) {
        const cur = new Int32Array(this.cur.length * 2).fill(-1)
        cur.set(this.cur)
        this.cur = cur
        const flags = new Uint8Array(this.flags.length * 2)
        flags.set(this.flags)
        this.flags = flags
      }
      this.rows.set(sector, r)
      this.sectorOf[r] = sector
    }
    this.flags[r] |= 2
    this.lastSector = sector
    this.lastRow = r
    return r
  }

  caching(r: number): boolean {
    return (this.flags[r] & 1) !== 0
  }
  setCaching(r: number, on: boolean): void {
    this.flags[r] = (this.flags[r] & ~1) | (on ? 1 : 0)
  }
  has(r: number, slot: number): boolean {
    return this.cur[r * this.slots + slot] >= 0
  }
  set(r: number, slot: number, pos: number): void {
    this.cur[r * this.slots + slot] = pos
  }
  at(r: number, slot: number): number {
    return this.cur[r * this.slots + slot]
  }
  reset(r: number): void {
    this.cur.fill(-1, r * this.slots, (r + 1) * this.slots)
    this.flags[r] &= ~1
  }
  /** a FLUSH payload: the stripe is on the members; forget it */
  drop(sector: number): void {
    const r = this.rows.get(sector)
    if (r < 0) return
    this.reset(r)
    this.flags[r] = 0
  }
  /** data pages row r holds (a stripe with none, parity only, needs no replay) */
  dataPages(r: number, info: {pd: number; qd: number}): number {
    let data = 0
    for (let k = 0; k < this.slots; k++) if (this.has(r, k) && k !== info.pd && k !== info.qd) data++
    return data
  }
  /** rows ever created (alive or dropped) */
  get rowCount(): number {
    return this.count
  }
  isAlive(r: number): boolean {
    return (this.flags[r] & 2) !== 0
  }
  sectorAt(r: number): number {
    return this.sectorOf[r]
  }
  /** forget every row, keeping the tables (the replay reuses two instances instead of allocating) */
  clear(): void {
    this.cur.fill(-1, 0, this.count * this.slots)
    this.flags.fill(0, 0, this.count)
    this.rows.clear()
    this.sectorOf.length = 0
    this.count = 0
    this.lastSector = -1
  }
  *alive(): Generator<[number, number]> {
    for (let r = 0; r < this.count; r++) if (this.flags[r] & 2) yield [this.sectorOf[r], r]
  }
}

/**
 * The kernel's per-payload rules (r5c_recovery_analyze_meta_block) applied to one verified io
 * unit: DATA makes a stripe caching (and first replays it if it was complete), PARITY completes
 * it, FLUSH forgets it. `replay` is called for a complete stripe that new data arrives for.
 */
function feedUnit(arr: MdArray, states: StripeStates, u: ScannedUnit, replay: (sector: number, row: number) => void): void {
  if (u.cols) {
    feedColumns(arr, states, u.position, u.cols, replay)
    return
  }
  const ring = arr.ring!
  const loc = {member: 0, memberSector: 0, dataIndex: 0, row: 0, pd: 0}
  let pos = ring.add(u.position, BLOCK_SECTORS)
  for (const p of u.meta.payloads) {
    if (p.type === PAYLOAD_FLUSH) {
      for (const s of p.stripes) states.drop(Number(s))
      continue
    }
    if (p.type === PAYLOAD_DATA) dataPayload(arr, states, Number(p.location), pos, replay, loc)
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- a type the decoder let through must not be taken for parity
    else if (p.type === PAYLOAD_PARITY) parityPayload(arr, states, Number(p.location), pos)
    pos = ring.add(pos, p.sizeSectors)
  }
}

/** feedUnit over a meta block decoded into columns (the replay's hot path) */
function feedColumns(arr: MdArray, states: StripeStates, position: number, cols: MetaColumns, replay: (sector: number, row: number) => void): void {
  const ring = arr.ring!
  const loc = {member: 0, memberSector: 0, dataIndex: 0, row: 0, pd: 0}
  const {type, location, size} = cols
  let pos = ring.add(position, BLOCK_SECTORS)
  for (let i = 0; i < cols.count; i++) {
    const t = type[i]
    if (t === PAYLOAD_FLUSH) {
      for (let k = 0; k < size[i] / 8; k++) states.drop(cols.stripe(i, k))
      continue
    }
    if (t === PAYLOAD_DATA) dataPayload(arr, states, location[i], pos, replay, loc)
    else parityPayload(arr, states, location[i], pos)
    pos = ring.add(pos, size[i])
  }
}

/** a DATA payload: the stripe caches (a complete one is replayed first) */
function dataPayload(
  arr: MdArray,
  states: StripeStates,
  location: number,
  pos: number,
  replay: (sector: number, row: number) => void,
  loc: {member: number; memberSector: number; pd?: number},
): void {
  arr.geometry.locate(location, loc)
  const sector = loc.memberSector
  const r = states.row(sector)
  if (!states.caching(r) && states.has(r, loc.pd!)) replay(sector, r)
  states.set(r, loc.member, pos)
  states.setCaching(r, true)
}

/** a PARITY payload: the stripe is complete */
function parityPayload(arr: MdArray, states: StripeStates, sector: number, pos: number): void {
  const r = states.row(sector)
  const info = arr.geometry.stripeInfo(sector)
  states.set(r, info.pd, pos)
  if (info.qd >= 0) states.set(r, info.qd, arr.ring!.add(pos, BLOCK_SECTORS))
  states.setCaching(r, false)
}

type PageMap = StripePages

export interface SkippedUnit {
  positionSector: number
  seq: string
  reason: string
}

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
  const tail = arr.journalTail
  const n = arr.sb.raidDisks
  const states = new StripeStates(n)
  const fromLog = new StripePages(n)
  const tally = new LogTally(arr, tail)
  let dataParity = 0

  const replay = (sector: number, r: number) => {
    if (states.dataPages(r, geo.stripeInfo(sector)) > 0) {
      for (let k = 0; k < n; k++) if (states.has(r, k)) fromLog.set(sector, k, states.at(r, k))
      dataParity++
    }
    states.reset(r)
  }

  for (const u of scanLog(ring, arr.seed, tail, {...tally.scanOptions(opts.untilSeq), verdicts: false, columns: new MetaColumns()})) {
    tally.count(u)
    feedUnit(arr, states, u, replay)
    opts.progress?.(tally.scanned, ring.sizeBytes)
  }
  const v = tally.finish()
  const dataOnly = new StripePages(n)
  for (const [sector, r] of states.alive()) {
    if (!states.caching(r)) replay(sector, r)
    else for (let k = 0; k < n; k++) if (states.has(r, k)) dataOnly.set(sector, k, states.at(r, k))
  }
  const pagesFromLog = fromLog.pages()
  return {
    tailSector: tail,
    tailSeq: v.tailSeq,
    stopSector: v.stop.position,
    stopSeq: v.stopSeq,
    stop: v.stop,
    newSeq: v.newSeq,
    units: v.units,
    emptyUnits: v.emptyUnits,
    skipped: v.skipped,
    dataParityStripes: dataParity,
    dataOnlyStripes: dataOnly.size,
    fromLog,
    dataOnly,
    pagesFromLog,
    logBytesScanned: v.logBytesScanned,
    clean: fromLog.size === 0 && dataOnly.size === 0 && v.clean,
  }
}

export interface WriteRun {
  device: string
  slot: number
  offsetSector: number
  pages: number
  source: 'log' | 'computed'
}

/** Every member write the plan implies, coalesced into runs (what --dry-run prints). */
export function planWrites(arr: MdArray, plan: RecoveryPlan): WriteRun[] {
  // per slot, one number per page: sector * 2 + (1 when the page is computed parity)
  const bySlot: number[][] = Array.from({length: arr.sb.raidDisks}, () => [])
  plan.fromLog.forEachPage((sector, slot) => bySlot[slot].push(sector * 2))
  plan.dataOnly.forEachPage((sector, slot) => bySlot[slot].push(sector * 2))
  for (const sector of plan.dataOnly.keys()) {
    const info = arr.geometry.stripeInfo(sector)
    bySlot[info.pd].push(sector * 2 + 1)
    if (info.qd >= 0) bySlot[info.qd].push(sector * 2 + 1)
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
        run = {device: arr.members[slot]?.path ?? `(slot ${slot} missing)`, slot, offsetSector: sector, pages: 1, source}
        runs.push(run)
      }
    }
  })
  return runs
}

const WINDOW = 8 << 20

export interface ApplyResult {
  pagesWritten: number
  memberWrites: number
  journalBytesRead: number
}

/** Carry out a verified plan. Members first, then the closing meta block, superblocks last. */
export function applyRecovery(arr: MdArray, plan: RecoveryPlan, progress?: (done: number, total: number) => void): ApplyResult {
  const ring = arr.ring!
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  if (plan.clean) return res
  if (arr.missingMembers.length > 0) throw missingMembersError(arr.uuid, arr.missingMembers, 'recovery needs every member')
  applyFromLog(arr, plan, res, progress)
  applyDataOnly(arr, plan.dataOnly, res)
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
  // every page to copy, ordered by where it lies in the log: key = page index from the tail
  // (high bits) and entry number (low 24 bits), sorted as plain numbers
  const count = plan.pagesFromLog
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
  const total = ring.distance(plan.tailSector, plan.stopSector) * 512
  if (count === 0 || total === 0) return
  let next = 0
  const buf = alignedBuffer(Math.min(WINDOW, total))
  let done = 0
  let pos = plan.tailSector
  while (done < total && next < count) {
    const len = Math.min(buf.length, total - done)
    const win = buf.subarray(0, len)
    ring.read(win, pos)
    res.journalBytesRead += len
    const writes: {slot: number; off: number; view: Uint8Array}[] = []
    const firstPage = done / PAGE
    const endPage = firstPage + len / PAGE
    while (next < count) {
      const page = Math.floor(keys[next] / 0x1000000)
      if (page >= endPage) break
      const i = keys[next] - page * 0x1000000
      const k = page - firstPage
      writes.push({slot: slots[i], off: sectors[i] * 512, view: win.subarray(k * PAGE, (k + 1) * PAGE)})
      next++
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
export function applyDataOnly(arr: MdArray, dataOnly: StripePages, res: ApplyResult, beforeWrite?: (run: DataOnlyRun) => void): void {
  const ring = arr.ring!
  const level = arr.sb.level
  const D = arr.geometry.dataDisks
  const n = arr.sb.raidDisks
  const scratch = alignedBuffer(256 * PAGE)
  const sectors = [...dataOnly.keys()].sort((a, b) => a - b)
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
    arr.members[slot]!.dev.writev(
      writes.slice(i, j).map(w => w.view),
      arr.memberBase(slot) + writes[i].off,
    )
    requests++
    i = j
  }
  return requests
}

// ---------------------------------------------------------------------------------------------
// Bounded-memory replay

/** What a walk of the live log learns: enough to place the closing block, no per-stripe state. */
export interface VerifiedLog {
  tailSector: number
  tailSeq: bigint
  stop: ScanStop
  stopSeq: bigint
  newSeq: bigint
  units: number
  emptyUnits: number
  skipped: SkippedUnit[]
  logBytesScanned: number
  clean: boolean
}

/**
 * The bookkeeping every walk of the live log shares (the plan, the replay, the extent pre-walk):
 * the tail's seq, units, empty units, dropped units and where and why the walk stopped.
 */
class LogTally {
  readonly skipped: SkippedUnit[] = []
  stop: ScanStop | undefined
  units = 0
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
        if (this.tailSeq === null) this.tailSeq = x.seq
        this.skipped.push({positionSector: x.position, seq: x.seq.toString(), reason: x.message})
      },
    }
  }

  /** `n` units at once (walkMetaNative): the first with `firstSeq`, `sectors` in all, `empty` without payloads */
  countMany(n: number, sectors: number, empty: number, firstSeq: bigint): void {
    if (this.tailSeq === null) this.tailSeq = firstSeq
    this.units += n
    this.scanned += sectors * 512
    this.emptyUnits += empty
  }

  count(u: ScannedUnit): void {
    if (this.tailSeq === null) this.tailSeq = u.seq
    this.units++
    this.scanned += (1 + u.pages) * PAGE
    if ((u.cols ? u.cols.count : u.meta.payloads.length) === 0) this.emptyUnits++
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
    // a seq below the tail's names a block that is no longer in the live log: stopping "after" it
    // would replay the tail's unit anyway, and stopping before the tail would drop the whole log
    if (this.untilSeq !== undefined && this.untilSeq < this.tailSeq) {
      throw new UsageError(
        `--until-seq ${this.untilSeq} is below the seq of the journal tail (sector ${this.tail}, seq ${this.tailSeq}): no such meta block in the live log`,
        `give a seq from ${this.tailSeq} on (\`r5ctl dump-meta\` lists them); nothing was written`,
        this.arr.journal!.path,
      )
    }
    const stopSeq = stop.expectedSeq ?? this.tailSeq + BigInt(this.units + this.skipped.length)
    return {
      tailSector: this.tail,
      tailSeq: this.tailSeq,
      stop,
      stopSeq,
      newSeq: stopSeq + 10000n,
      units: this.units,
      emptyUnits: this.emptyUnits,
      skipped: this.skipped,
      logBytesScanned: this.scanned,
      clean: this.units === 1 && this.emptyUnits === 1 && this.skipped.length === 0,
    }
  }
}

/**
 * A quick walk of the meta blocks alone (one 4 KiB read per io unit, no page checksums): the
 * extent of the log for progress and read sizes, and every refusal that does not depend on page
 * contents (no valid block at the tail, payloads outside the array) raised before anything is
 * written. Where a unit would be dropped for a bad page the real walk ends earlier; the extent
 * is then an overestimate, never used for correctness. On a plain file the addon walks the blocks
 * it accepts (scan.ts walkMetaNative: ~4 ms a GiB of log instead of ~25 for the JavaScript walk,
 * which has not been optimized by V8 yet at that point); the JavaScript walk takes over where it
 * stops, so the stop and any refusal are always its own.
 */
export function logExtent(arr: MdArray, untilSeq?: bigint, units?: UnitList): VerifiedLog {
  const tally = new LogTally(arr, arr.journalTail)
  // the addon walks what it can (not with --until-seq); the JavaScript walk takes over where it stops
  const fast =
    untilSeq !== undefined
      ? null
      : walkMetaNative(arr.ring!, arr.seed, tally.tail, (pos, pages, n, firstSeq, empty) => {
          let sectors = 0
          for (let i = 0; i < n; i++) {
            sectors += (1 + pages[i]) * BLOCK_SECTORS
            units?.push(pos[i], pages[i])
          }
          tally.countMany(n, sectors, empty, firstSeq)
        })
  for (const u of scanLog(arr.ring!, arr.seed, fast ? fast.position : tally.tail, {
    ...tally.scanOptions(untilSeq),
    metaOnly: true,
    columns: new MetaColumns(),
    firstSeq: fast?.seq,
    startWalked: fast?.walked,
  })) {
    tally.count(u)
    units?.push(u.position, u.pages)
  }
  return tally.finish()
}

/** Where the io units of a log lie: (position, pages) pairs, 16 bytes a unit (about 23 KB per GiB of log). */
export class UnitList {
  pos = new Float64Array(1024)
  pages = new Float64Array(1024)
  n = 0
  push(pos: number, pages: number): void {
    if (this.n === this.pos.length) {
      const p = new Float64Array(this.n * 2)
      p.set(this.pos)
      this.pos = p
      const q = new Float64Array(this.n * 2)
      q.set(this.pages)
      this.pages = q
    }
    this.pos[this.n] = pos
    this.pages[this.n++] = pages
  }
}

/**
 * LogWindow's rule, in one place: the window (bytes to read) that a request for `bytes` at `pos` opens
 * when it is not inside the current one; -1 when it wraps around the ring's end (read into a private
 * copy, the window stays). What the log still holds is read, at least the request, up to the window size.
 */
function windowLength(ring: Ring, tail: number, extentSectors: number, pos: number, bytes: number): number {
  const toEnd = (ring.sizeSectors - pos) * 512
  if (bytes > toEnd) return -1
  const left = (extentSectors - ring.distance(tail, pos)) * 512 + PAGE
  return Math.min(toEnd, Math.max(bytes, Math.min(WINDOW_PAGES * PAGE, left))) // >= bytes: bytes <= toEnd here
}

/** The windows the replay will open, in order (planWindows): ring position and length in bytes of each. */
export interface WindowPlan {
  start: Float64Array
  len: Float64Array
  n: number
}

function planWindows(ring: Ring, tail: number, extentSectors: number, units: UnitList): WindowPlan {
  const starts: number[] = [] // about 250 windows a GiB of log
  const lens: number[] = []
  const W = WINDOW_PAGES * PAGE
  let start = -1
  let len = 0
  const inside = (pos: number, bytes: number) => start >= 0 && pos >= start && (pos - start) * 512 + bytes <= len
  for (let i = 0; i < units.n; i++) {
    const pos = units.pos[i]
    if (!inside(pos, PAGE)) {
      // a window of whole units from here, as many as fit (the unit cut at a window's end would be read
      // twice): one unit at least, never past the ring's end (a unit that crosses it keeps its meta
      // block here and has its pages read into a private copy)
      start = pos
      const toEnd = (ring.sizeSectors - pos) * 512
      len = 0
      for (let j = i; j < units.n; j++) {
        const size = (1 + units.pages[j]) * PAGE
        if (j > i && len + size > W) break
        if (len + size > toEnd) {
          if (j === i) len = toEnd
          break
        }
        len += size
      }
      starts.push(start)
      lens.push(len)
    }
    const dataPos = ring.add(pos, BLOCK_SECTORS)
    const bytes = units.pages[i] * PAGE
    if (bytes > 0 && !inside(dataPos, bytes)) {
      // only after a ring end: LogWindow's rule, as a request there would open
      const l = windowLength(ring, tail, extentSectors, dataPos, bytes)
      if (l >= 0) {
        start = dataPos
        len = l
        starts.push(start)
        lens.push(len)
      }
    }
  }
  return {start: Float64Array.from(starts), len: Float64Array.from(lens), n: starts.length}
}

export interface StreamResult extends VerifiedLog {
  dataParityStripes: number
  dataOnlyStripes: number
  pagesWritten: number
}

/** bytes of log read per window by the replay (tests shrink it to run every path on small logs) */
let WINDOW_PAGES = Number(process.env.R5CTL_REPLAY_WINDOW_PAGES) || (4 << 20) / PAGE

/** For tests: a tiny window (in 4 KiB pages) makes every replay path run on small logs. Returns the old value. */
export function setReplayWindow(pages: number): number {
  const old = WINDOW_PAGES
  WINDOW_PAGES = Math.max(1, Math.floor(pages))
  return old
}

/**
 * The replay's view of the ring: one large read at a time, served to scanLog as views. Windows are
 * read together with their page checksums on the CRC addon's helper thread (Ring.readPagesAsync).
 * Once the current window's job is complete, the next window of the plan (planWindows) is read
 * ahead into the spare buffer while this one is walked; views wait only for pages that have not
 * arrived. Moving on (a unit that does not lie inside the current window) takes the read-ahead when
 * it is the window needed (else reads it now: the first window, or a walk that left the plan after
 * a dropped unit), then calls `beforeMove`, which sends the complete stripes to the members while
 * their pages are still in the old window. The spare is free when the read-ahead starts: its window
 * was drained when the current one opened. A unit that wraps around the ring's end is read into a
 * private copy instead (the window never wraps), and is checksummed by scanLog.
 */
class LogWindow implements LogReader {
  private buf: Uint8Array
  private spare: Uint8Array
  private sums: Uint32Array
  private spareSums: Uint32Array
  private job: PageSumsJob | null = null
  private scratch: Uint8Array = new Uint8Array(0)
  private start = -1
  private len = 0
  /** the window being read ahead (plan entry preIndex) into the spare buffer, if any */
  private pre: PageSumsJob | null = null
  private preIndex = -1
  /** plan entry of the current window; -1 once the walk left the plan (a dropped unit) */
  private wi = -1

  /** sectors from the tail up to which reading is useful (the extent pre-walk's stop) */
  constructor(
    private readonly ring: Ring,
    private readonly seed: number,
    private readonly tail: number,
    private readonly extentSectors: number,
    private readonly beforeMove: () => void,
    private readonly plan: WindowPlan | null = null,
  ) {
    const size = Math.min(WINDOW_PAGES * PAGE, Math.max(PAGE, extentSectors * 512 + PAGE))
    this.buf = alignedBuffer(size)
    this.spare = alignedBuffer(size)
    this.sums = new Uint32Array(size / PAGE)
    this.spareSums = new Uint32Array(size / PAGE)
  }

  /** pages the window can hold */
  get pages(): number {
    return this.buf.length / PAGE
  }

  /** the current window's buffer (page i of the window is its page i) */
  get buffer(): Uint8Array {
    return this.buf
  }

  /** index of the page at ring position `pos` in the window, or -1 when it is not there */
  pageIndex(pos: number): number {
    if (this.start < 0 || pos < this.start) return -1
    const off = (pos - this.start) * 512
    return off + PAGE <= this.len ? off / PAGE : -1
  }

  view(pos: number, bytes: number): Uint8Array {
    if (this.start >= 0 && pos >= this.start && (pos - this.start) * 512 + bytes <= this.len) {
      const off = (pos - this.start) * 512
      this.job!.wait((off + bytes) / PAGE) // the helper may still be reading it
      if (!this.pre) this.readAhead()
      return this.buf.subarray(off, off + bytes)
    }
    const toEnd = (this.ring.sizeSectors - pos) * 512
    if (bytes > toEnd) {
      if (this.scratch.length < bytes) this.scratch = alignedBuffer(bytes)
      const v = this.scratch.subarray(0, bytes)
      this.ring.read(v, pos)
      return v
    }
    const plan = this.plan
    // the plan's next window, when the walk is still on it (else LogWindow's rule)
    const planned = plan && this.wi + 1 < plan.n && plan.start[this.wi + 1] === pos && plan.len[this.wi + 1] >= bytes ? this.wi + 1 : -1
    const len = planned >= 0 ? plan!.len[planned] : windowLength(this.ring, this.tail, this.extentSectors, pos, bytes)
    let job: PageSumsJob
    if (this.pre && planned >= 0 && this.preIndex === planned) {
      job = this.pre // read ahead while the last window was walked
    } else {
      // not read ahead (the first window, or the walk left the plan): read it now. Starting a job
      // first completes any read-ahead, so the spare buffer is free.
      this.spareFor(len)
      job = this.ring.readPagesAsync(this.spare.subarray(0, len), pos, this.seed, this.spareSums)
    }
    this.wi = planned
    this.pre = null
    const nextBuf = this.spare
    this.beforeMove() // the old window's complete stripes, while the helper reads and checksums the new one
    this.spare = this.buf
    this.buf = nextBuf
    const sums = this.sums
    this.sums = this.spareSums
    this.spareSums = sums
    this.job = job
    this.start = pos
    this.len = len
    job.wait(bytes / PAGE)
    return this.buf.subarray(0, bytes)
  }

  /** a spare buffer of at least `len` bytes (larger than the window only for a huge unit: tests) */
  private spareFor(len: number): void {
    if (this.spare.length < len) {
      this.spare = alignedBuffer(len)
      this.spareSums = new Uint32Array(len / PAGE)
    }
  }

  /**
   * Once the current window is read, start reading the next planned one into the spare buffer (free:
   * its window was drained when this one opened), so the helper works while this window is walked.
   */
  private readAhead(): void {
    const plan = this.plan
    if (!plan || this.wi < 0 || this.wi + 1 >= plan.n || this.job!.poll() < this.job!.pages) return
    const k = this.wi + 1
    this.spareFor(plan.len[k])
    this.pre = this.ring.readPagesAsync(this.spare.subarray(0, plan.len[k]), plan.start[k], this.seed, this.spareSums)
    this.preIndex = k
  }

  pageSums(pos: number, pages: number): Uint32Array | null {
    if (!this.job || this.start < 0 || pos < this.start) return null
    const first = ((pos - this.start) * 512) / PAGE
    if ((first + pages) * PAGE > this.len) return null
    this.job.wait(first + pages)
    return this.sums.subarray(first, first + pages)
  }

  /** let the last jobs finish (their buffers are released) */
  close(): void {
    this.job?.wait(this.job.pages)
    this.job = null
    try {
      this.pre?.wait(this.pre.pages)
    } catch {
      // a read-ahead the walk never used: its failure does not matter
    }
    this.pre = null
  }
}

/**
 * The replay, in one pass over the log with bounded memory. First `logExtent` walks the meta
 * blocks alone, so every refusal that needs no page contents comes before any write. Then the log
 * is read once, window by window: every io unit's pages are verified before any of it is used
 * (the kernel's rule: a unit with a bad page is dropped), the kernel's per-stripe state machine
 * runs over the payloads, and before the window moves on, every complete stripe goes to the
 * members straight from the window. Data-only (write-back) stripes stay cached, as positions,
 * until the end, when they are written with parity computed. Then the members are flushed, the
 * empty meta block goes at the stop position with seq + 10000, and the superblocks come last.
 *
 * Per stripe, writes happen in log order, so the members end as with one replay at the end —
 * except, like the kernel when its recovery stripe cache runs short, a complete stripe replayed
 * early is not un-written by a FLUSH payload that comes later (harmless in a real log: FLUSH
 * means those very bytes already reached the members).
 */
export function recoverStreaming(arr: MdArray, untilSeq?: bigint, progress?: (done: number, total: number) => void): StreamResult {
  const ring = arr.ring!
  const geo = arr.geometry
  const n = arr.sb.raidDisks
  const units = new UnitList()
  const extent = logExtent(arr, untilSeq, units)
  if (extent.clean) return {...extent, dataParityStripes: 0, dataOnlyStripes: 0, pagesWritten: 0}
  if (arr.missingMembers.length > 0) throw missingMembersError(arr.uuid, arr.missingMembers, 'recovery needs every member')
  const extentSectors = ring.distance(extent.tailSector, extent.stop.position)
  const total = extentSectors * 512
  const out = {dataParityStripes: 0, pagesWritten: 0}
  let states = new StripeStates(n)
  // pages of replayed stripes still to be written: log position, slot, stripe sector
  let pendPos = new Float64Array(4096)
  let pendSlot = new Uint16Array(4096)
  let pendSector = new Float64Array(4096)
  let pendN = 0
  const pend = (pos: number, slot: number, sector: number) => {
    if (pendN === pendPos.length) {
      const grow = <T extends Float64Array | Uint16Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2)
        b.set(a)
        return b
      }
      pendPos = grow(pendPos)
      pendSlot = grow(pendSlot)
      pendSector = grow(pendSector)
    }
    pendPos[pendN] = pos
    pendSlot[pendN] = slot
    pendSector[pendN++] = sector
  }
  // per slot, the window's pages to write (keys below), reused by every drain
  let slotKeys = Array.from({length: n}, () => new Float64Array(1024))
  const slotCount = new Int32Array(n)
  const slotSorted = new Uint8Array(n)
  let runPages = new Int32Array(1024)
  const reread = alignedBuffer(Math.min(2 << 20, WINDOW_PAGES * PAGE))
  const replay = (sector: number, r: number) => {
    if (states.dataPages(r, geo.stripeInfo(sector)) > 0) {
      for (let k = 0; k < n; k++) if (states.has(r, k)) pend(states.at(r, k), k, sector)
      out.dataParityStripes++
    }
    states.reset(r)
  }
  const window = new LogWindow(
    ring,
    arr.seed,
    extent.tailSector,
    extentSectors,
    () => drain(),
    planWindows(ring, extent.tailSector, extentSectors, units),
  )
  /** every complete stripe to the members; keep only the cached (data-only) ones */
  let spare = new StripeStates(n)
  const drain = () => {
    // complete stripes are replayed; the cached (data-only) ones move to the spare table, which
    // becomes the live one (two tables reused: nothing per window is left for the old generation)
    const keep = spare
    keep.clear()
    for (let r = 0; r < states.rowCount; r++) {
      if (!states.isAlive(r)) continue
      const sector = states.sectorAt(r)
      if (!states.caching(r)) {
        replay(sector, r)
        continue
      }
      const kr = keep.row(sector)
      keep.setCaching(kr, true)
      for (let k = 0; k < n; k++) if (states.has(r, k)) keep.set(kr, k, states.at(r, k))
    }
    spare = states
    states = keep
    if (pendN === 0) return
    // Pages no longer in the window are older than every page in it, so they go first: in log order
    // (a stripe replayed twice is written twice, older first), read back in runs of consecutive pages.
    const old: number[] = []
    // per slot, pages in the window: key = member page * window pages + window page (log order breaks ties)
    const winPages = Math.max(1, window.pages)
    slotCount.fill(0)
    slotSorted.fill(1)
    if (slotKeys[0].length < pendN) slotKeys = Array.from({length: n}, () => new Float64Array(pendPos.length))
    for (let e = 0; e < pendN; e++) {
      const w = window.pageIndex(pendPos[e])
      if (w < 0) {
        old.push(e)
        continue
      }
      const slot = pendSlot[e]
      const key = (pendSector[e] / BLOCK_SECTORS) * winPages + w
      const c = slotCount[slot]++
      // a full-stripe log lists each member's pages in order already: no sort needed then
      if (c > 0 && slotKeys[slot][c - 1] > key) slotSorted[slot] = 0
      slotKeys[slot][c] = key
    }
    if (old.length > 0) {
      old.sort((a, b) => ring.distance(extent.tailSector, pendPos[a]) - ring.distance(extent.tailSector, pendPos[b]) || a - b)
      let i = 0
      while (i < old.length) {
        let j = i + 1
        while (j < old.length && j - i < reread.length / PAGE && pendPos[old[j]] === ring.add(pendPos[old[j - 1]], BLOCK_SECTORS)) j++
        const buf = reread.subarray(0, (j - i) * PAGE)
        ring.read(buf, pendPos[old[i]])
        const writes = []
        for (let k = i; k < j; k++)
          writes.push({slot: pendSlot[old[k]], off: pendSector[old[k]] * 512, view: buf.subarray((k - i) * PAGE, (k - i + 1) * PAGE)})
        writeCoalesced(arr, writes)
        out.pagesWritten += writes.length
        i = j
      }
    }
    // the window's pages: one request per run of consecutive member pages, in slot order
    for (let slot = 0; slot < n; slot++) {
      const keys = slotKeys[slot].subarray(0, slotCount[slot])
      if (!slotSorted[slot]) keys.sort()
      let i = 0
      while (i < keys.length) {
        const first = Math.floor(keys[i] / winPages)
        let j = i + 1
        while (j < keys.length && Math.floor(keys[j] / winPages) === first + (j - i)) j++
        // page numbers, not views (FileDevice: one native pwritev)
        if (runPages.length < j - i) runPages = new Int32Array(Math.max(j - i, runPages.length * 2))
        for (let k = i; k < j; k++) runPages[k - i] = keys[k] - (first + k - i) * winPages
        writePages(arr.members[slot]!.dev, window.buffer, runPages, 0, j - i, arr.memberBase(slot) + first * PAGE)
        out.pagesWritten += j - i
        i = j
      }
    }
    pendN = 0
  }
  const tally = new LogTally(arr, extent.tailSector)
  for (const u of scanLog(ring, arr.seed, tally.tail, {
    ...tally.scanOptions(untilSeq),
    reader: window,
    verdicts: false,
    columns: new MetaColumns(),
    locationsChecked: true,
  })) {
    tally.count(u)
    feedUnit(arr, states, u, replay)
    progress?.(Math.min(tally.scanned, total), total)
  }
  const v = tally.finish()
  drain()
  window.close()
  // the end of the log: data-only stripes, with parity computed
  const dataOnly = new StripePages(n)
  for (const [sector, r] of states.alive()) for (let k = 0; k < n; k++) if (states.has(r, k)) dataOnly.set(sector, k, states.at(r, k))
  const ar: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  applyDataOnly(arr, dataOnly, ar)
  for (const m of arr.members) m!.dev.flush()
  ring.write(encodeMetaBlock({seq: v.newSeq, position: BigInt(v.stop.position), payloads: []}, arr.seed), v.stop.position)
  arr.journal!.dev.flush()
  arr.writeSuperblocks(v.stop.position)
  return {...v, dataParityStripes: out.dataParityStripes, dataOnlyStripes: dataOnly.size, pagesWritten: out.pagesWritten + ar.pagesWritten}
}
