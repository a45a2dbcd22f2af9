/**
 * The search: every hypothesis (candidates.ts) scored on the sample (evidence.ts), then ranked —
 * content first (parity that holds, RAID6 Q, the journal's records, no empty parity, continuity),
 * then what a surviving superblock states, then mdadm's defaults — and the hypotheses the content
 * cannot tell from the first named, field by field.
 */
import {Geometry} from '../geometry.js'
import {CHUNK_SECTORS, LAYOUTS, bestOrders, distinctOffsets, levelsToTry, periodOf, type OffsetChoice} from './candidates.js'
import {qCheck, score, segment, type ContentScore, type Hypothesis, type Segments} from './evidence.js'
import {journalAgreement, type JournalFinding} from './journal.js'
import {locateLogged, loggedAgreement, loggedCosts} from './logged.js'
import type {BlockDevice} from '../device.js'
import type {Sample} from './sample.js'

/** What surviving superblocks state: array fields, and each member's slot (null: none survives). */
export interface Hints {
  level: number | null
  layout: number | null
  chunkSectors: number | null
  dataOffsetSector: number | null
  /** sectors of each member the array uses (the superblock's size) */
  memberSectors: number | null
  /** slot[m] of member m, from its own superblock */
  slots: (number | null)[]
}

export interface Scored {
  h: Hypothesis
  g: Geometry
  seg: Segments
  content: ContentScore
  /** journal data records whose stripe is among their block's parity records: [agreeing, total] */
  journal: [number, number] | null
  /** the journal's logged data pages found on the member this hypothesis puts them on: [matching, located] */
  logged: [number, number] | null
  offsetSource: OffsetChoice['source']
  /** the superblock fields this hypothesis agrees with */
  agrees: string[]
  /** the order search for its layout was cut short */
  capped: boolean
  /** its size is a surviving superblock's (else all the members hold past the data offset) */
  sizeFromSuperblock: boolean
}

export interface SearchInput {
  sample: Sample
  /** the members, in the sample's order (the journal's logged pages are looked for on them) */
  devs: BlockDevice[]
  /** smallest member size in sectors */
  memberSectors: number
  offsets: OffsetChoice[]
  journal: JournalFinding | null
  hints: Hints
  qLike: number
}

/** Score every hypothesis the sample admits. */
export function search(inp: SearchInput): Scored[] {
  const s = inp.sample
  const n = s.members
  const out: Scored[] = []
  const segs = new Map<string, Segments>()
  const located_ = new Map<string, Int16Array>()
  const chunks = [...new Set([...CHUNK_SECTORS, ...(inp.hints.chunkSectors ? [inp.hints.chunkSectors] : [])])]
  for (const level of levelsToTry(segXorZero(s), inp.qLike, n, inp.journal?.parityPages ?? null)) {
    for (const layout of LAYOUTS[level]) {
      for (const chunk of chunks) {
        for (const off of distinctOffsets(inp.offsets, chunk, periodOf(level, n, layout))) {
          const room = inp.memberSectors - off.sector
          // a stated size that fits is md's; else all the members hold
          const stated = inp.hints.memberSectors
          const size = stated !== null && stated <= room ? stated : room
          if (size < chunk) continue
          const g = new Geometry(level, n, chunk, layout, BigInt(size))
          const key = `${chunk}/${off.sector}`
          let seg = segs.get(key)
          if (!seg) segs.set(key, (seg = segment(s, chunk / 8, off.sector / 8, (off.sector + Number(g.usedMemberSectors)) / 8)))
          if (seg.totalData === 0) continue
          const located = locate(inp, located_, g, off.sector)
          const logged = inp.journal?.logged ?? []
          const {orders, capped} = bestOrders(seg, level, g, n, cost => loggedCosts(logged, located, g, cost, LOGGED_WEIGHT))
          for (const order of orders) {
            const h: Hypothesis = {level, layout, chunkSectors: chunk, dataOffsetSector: off.sector, order}
            out.push({...scoreOne(inp, h, g, seg, off.source, capped, located), sizeFromSuperblock: size === stated})
          }
        }
      }
    }
  }
  return out
}

/** A logged page found on a member weighs as much as this many stripes' parity evidence. */
const LOGGED_WEIGHT = 64

/** The members the logged pages are found on under g's chunk, data disks and this data offset (cached). */
function locate(inp: SearchInput, cache: Map<string, Int16Array>, g: Geometry, offsetSector: number): Int16Array {
  const key = `${g.chunkSectors}/${g.dataDisks}/${offsetSector}`
  let r = cache.get(key)
  if (!r) {
    const logged = inp.journal?.logged ?? []
    r = locateLogged(inp.devs, logged, g.chunkSectors, g.dataDisks, offsetSector, Number(g.usedMemberSectors))
    cache.set(key, r)
  }
  return r
}

function segXorZero(s: Sample): number {
  let k = 0
  for (let i = 0; i < s.stripes; i++) if (s.xor[i] === -1) k++
  return k
}

function scoreOne(
  inp: SearchInput,
  h: Hypothesis,
  g: Geometry,
  seg: Segments,
  source: OffsetChoice['source'],
  capped: boolean,
  located: Int16Array,
): Omit<Scored, 'sizeFromSuperblock'> {
  const j = inp.journal
  const journal = j && j.records.length > 0 ? journalAgreement(j.records, h.chunkSectors, g.dataDisks) : null
  const lg = loggedAgreement(j?.logged ?? [], located, g, h.order)
  const logged = lg[1] > 0 ? lg : null
  const hint = inp.hints
  const agrees: string[] = []
  if (hint.level === h.level) agrees.push('level')
  if (hint.layout === h.layout || (h.level === 4 && hint.level === 4)) agrees.push('layout')
  if (hint.chunkSectors === h.chunkSectors) agrees.push('chunk')
  if (hint.dataOffsetSector === h.dataOffsetSector) agrees.push('data offset')
  if (hint.slots.some((slot, m) => slot !== null && h.order[slot] === m) && hint.slots.every((slot, m) => slot === null || h.order[slot] === m))
    agrees.push('member slots')
  return {h, g, seg, content: score(inp.sample, seg, h, g), journal, logged, offsetSource: source, agrees, capped}
}

const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b)

/** The content's verdict, best first when compared: equal keys mean the content cannot tell two apart. */
function contentKey(x: Scored, journalLevel: 1 | 2 | null): number[] {
  const c = x.content
  const levelFits = journalLevel === null || (journalLevel === 2) === (x.h.level === 6) ? 1 : 0
  return [
    levelFits,
    ratio(c.parityHeld, c.dataStripes),
    x.h.level === 6 ? (c.qChecked === 0 ? (c.dataStripes === 0 ? 1 : 0) : c.qHeld / c.qChecked) : 1,
    x.journal ? ratio(x.journal[0], x.journal[1]) : 1,
    x.logged ? x.logged[0] : 0,
    // a data offset past the true one leaves stripes with data out of the array
    c.dataStripes,
    -c.parityEmpty,
    -c.transitions,
  ]
}

/** What the content cannot decide falls back on: superblock fields, then the offset's source, then mdadm's defaults. */
function priorKey(x: Scored): number[] {
  const src = {superblock: 2, journal: 1, common: 0}[x.offsetSource]
  const defaults = (x.h.level === 4 || x.h.layout === 2 ? 1 : 0) + (x.h.chunkSectors === 1024 ? 1 : 0)
  return [x.agrees.length, src, x.h.dataOffsetSector === 2048 ? 1 : 0, defaults]
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return b[i] - a[i]
  return 0
}

/** RAID6 hypotheses Q-checked: those that lead on the rest of the evidence */
const Q_RANKED = 1000

/**
 * Rank best first; `ties` are those whose content key equals the first's. RAID6 hypotheses are
 * ranked once without their Q check, the leading ones Q-checked, then all ranked again (one not
 * checked counts as failing it).
 */
export function rank(all: Scored[], journalLevel: 1 | 2 | null, sample: Sample): {ranked: Scored[]; ties: Scored[]} {
  const byKeys = (xs: Scored[]) => {
    const keyed = xs.map(x => ({x, c: contentKey(x, journalLevel), p: priorKey(x)}))
    keyed.sort((a, b) => compareKeys(a.c, b.c) || compareKeys(a.p, b.p))
    return keyed
  }
  let checked = 0
  for (const {x} of byKeys(all.filter(x => x.h.level === 6))) {
    if (checked++ >= Q_RANKED) break
    qCheck(sample, x.seg, x.h, x.g, x.content)
  }
  const keyed = byKeys(all)
  const top = keyed.at(0)
  const ties = top ? keyed.filter(k => compareKeys(k.c, top.c) === 0).map(k => k.x) : []
  return {ranked: keyed.map(k => k.x), ties}
}
