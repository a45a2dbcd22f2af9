/**
 * The one stripe state machine of raid5-cache recovery (the kernel's
 * r5c_recovery_analyze_meta_block): a DATA payload makes a stripe cache (data-only); a PARITY
 * payload completes it (data-parity); new DATA for a complete stripe replays the complete one
 * first; a FLUSH payload forgets the stripe (its bytes are on the members). At the end of the log,
 * complete stripes are replayed and caching ones are left as data-only stripes (write-back).
 * `recover`, `reclaim`, `examine --journal` and `write`'s pre-check all run their scan through it.
 *
 * Also the compact tables it keeps: stripe sector -> row in typed arrays, so a log of any size
 * costs tens of bytes per stripe rather than objects per page.
 */
import {PAYLOAD_DATA, PAYLOAD_FLUSH} from '../format/meta.js'
import type {MdArray} from '../array.js'
import type {ScannedUnit} from './scan.js'
import {BLOCK_SECTORS} from './ring.js'

/**
 * stripe sector -> (raid slot -> log position of the page to write there), one typed row of
 * positions per stripe (-1 = nothing).
 */
export class StripePages {
  private readonly rows = new StripeRows()
  private pos: Int32Array

  constructor(readonly slots: number) {
    this.pos = new Int32Array(1024 * slots).fill(-1)
  }

  /** stripes that have a row */
  get size(): number {
    return this.rows.count
  }

  private row(sector: number): number {
    const r = this.rows.row(sector)
    if ((r + 1) * this.slots > this.pos.length) this.pos = grownRows(this.pos, -1)
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
    return r < 0 ? -1 : this.pos[r * this.slots + slot]
  }

  /** slot -> log position pairs of one stripe */
  get(sector: number): Map<number, number> {
    const out = new Map<number, number>()
    const r = this.rows.get(sector)
    if (r < 0) return out
    for (let k = 0; k < this.slots; k++) {
      const v = this.pos[r * this.slots + k]
      if (v >= 0) out.set(k, v)
    }
    return out
  }

  /** the stripe sectors, in the order they were first set */
  keys(): number[] {
    return this.rows.sectors()
  }

  /** every (sector, slot, log position) */
  forEachPage(fn: (sector: number, slot: number, logPos: number) => void): void {
    for (let r = 0; r < this.rows.count; r++) {
      for (let k = 0; k < this.slots; k++) {
        const v = this.pos[r * this.slots + k]
        if (v >= 0) fn(this.rows.sectorOf(r), k, v)
      }
    }
  }

  pages(): number {
    let n = 0
    for (let i = 0; i < this.rows.count * this.slots; i++) if (this.pos[i] >= 0) n++
    return n
  }
}

/**
 * stripe sector <-> row: rows numbered in the order their stripes are first seen, the sectors in a
 * typed array, found through an open-addressing hash of row numbers (linear probing, at most half
 * full). A Map of a million stripes costs objects the garbage collector must walk; this costs 8
 * bytes a row and 8 to 16 of hash, so that a plan of a log of several GiB stays well inside the
 * memory budget.
 */
export class StripeRows {
  private sectorsOf = new Float64Array(1024)
  private hash = new Int32Array(2048).fill(-1)
  count = 0

  /** the row of `sector`, or -1 */
  get(sector: number): number {
    return this.hash[this.slot(sector)]
  }

  /** the row of `sector`, the next new one when it has none */
  row(sector: number): number {
    const i = this.slot(sector)
    if (this.hash[i] >= 0) return this.hash[i]
    const r = this.count++
    if (r >= this.sectorsOf.length) this.sectorsOf = grownRows(this.sectorsOf, 0)
    this.sectorsOf[r] = sector
    if (this.count * 2 > this.hash.length) this.rehash()
    else this.hash[i] = r
    return r
  }

  sectorOf(row: number): number {
    return this.sectorsOf[row]
  }

  /** every row's sector, in row order */
  sectors(): number[] {
    return Array.from(this.sectorsOf.subarray(0, this.count))
  }

  private slot(sector: number): number {
    // sectors are multiples of 8; the page number, scrambled (low 32 bits; larger sectors just collide more)
    const mask = this.hash.length - 1
    let i = (Math.imul(Math.floor(sector / 8) >>> 0, 0x9e3779b1) >>> 0) & mask
    while (this.hash[i] >= 0 && this.sectorsOf[this.hash[i]] !== sector) i = (i + 1) & mask
    return i
  }

  private rehash(): void {
    this.hash = new Int32Array(this.hash.length * 2).fill(-1)
    for (let r = 0; r < this.count; r++) this.hash[this.slot(this.sectorsOf[r])] = r
  }
}

/** a per-row typed array twice as long, the new part filled with `fill` */
function grownRows<T extends Int32Array | Uint8Array | Float64Array>(a: T, fill: number): T {
  const b = new (a.constructor as new (n: number) => T)(a.length * 2)
  b.set(a)
  if (fill !== 0) b.fill(fill, a.length)
  return b
}

/** The kernel's per-stripe recovery state, for every stripe at once: current logged pages + caching flag. */
class StripeStates {
  private readonly rows = new StripeRows()
  private cur: Int32Array
  private flags: Uint8Array // bit 0: caching, bit 1: alive

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
    const r = this.rows.row(sector)
    if (r >= this.flags.length) {
      this.cur = grownRows(this.cur, -1)
      this.flags = grownRows(this.flags, 0)
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
  *alive(): Generator<[number, number]> {
    for (let r = 0; r < this.rows.count; r++) if (this.flags[r] & 2) yield [this.rows.sectorOf(r), r]
  }
}

/**
 * The state machine over a whole log: feed it every verified io unit in log order, then finish().
 * Each replay of a complete stripe that holds data is reported to `onReplay`, page by page (slot,
 * log position), in log order: the same stripe may be replayed more than once.
 */
export class StripeMachine {
  private readonly states: StripeStates
  private readonly replayRow: (sector: number, r: number) => void
  /** replays of complete stripes (the kernel's data_parity_stripes) */
  dataParityStripes = 0

  constructor(
    private readonly arr: MdArray,
    onReplay: (sector: number, slot: number, logPos: number) => void = () => {},
  ) {
    const n = arr.sb.raidDisks
    const states = new StripeStates(n)
    this.states = states
    this.replayRow = (sector, r) => {
      if (states.dataPages(r, arr.geometry.stripeInfo(sector)) > 0) {
        for (let k = 0; k < n; k++) if (states.has(r, k)) onReplay(sector, k, states.at(r, k))
        this.dataParityStripes++
      }
      states.reset(r)
    }
  }

  feed(u: ScannedUnit): void {
    feedUnit(this.arr, this.states, u, this.replayRow)
  }

  /** The end of the log: complete stripes are replayed; the caching ones are returned (data-only stripes). */
  finish(): StripePages {
    const n = this.arr.sb.raidDisks
    const dataOnly = new StripePages(n)
    for (const [sector, r] of this.states.alive()) {
      if (!this.states.caching(r)) this.replayRow(sector, r)
      else for (let k = 0; k < n; k++) if (this.states.has(r, k)) dataOnly.set(sector, k, this.states.at(r, k))
    }
    return dataOnly
  }
}

/**
 * The kernel's per-payload rules (r5c_recovery_analyze_meta_block) applied to one verified io
 * unit: DATA makes a stripe caching (and first replays it if it was complete), PARITY completes
 * it, FLUSH forgets it. `replay` is called for a complete stripe that new data arrives for.
 */
function feedUnit(arr: MdArray, states: StripeStates, u: ScannedUnit, replay: (sector: number, row: number) => void): void {
  const ring = arr.ring!
  const loc = {member: 0, memberSector: 0, dataIndex: 0, row: 0, pd: 0}
  const {type, location, size} = u.cols
  let pos = ring.add(u.position, BLOCK_SECTORS)
  for (let i = 0; i < u.cols.count; i++) {
    const t = type[i]
    if (t === PAYLOAD_FLUSH) {
      for (let k = 0; k < size[i] / 8; k++) states.drop(u.cols.stripe(i, k))
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
