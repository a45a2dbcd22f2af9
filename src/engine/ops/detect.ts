/**
 * detect: an array's lost geometry from its members' content, when superblocks were zeroed or
 * overwritten. Every device is opened read-only and nothing is ever written. The journal is found by
 * its meta blocks (detect/journal.ts), the rest are members; a bounded sample of their stripes
 * (detect/sample.ts) is scored under every hypothesis of level, layout, chunk, data offset and member
 * order worth scoring (detect/candidates.ts, evidence.ts, rank.ts), and the best are checked exactly
 * on whole pages. A surviving superblock supplies what it states (and the array UUID, which the
 * journal's checksums confirm or not); the result says what the content could not decide.
 */
import type {EngineOptions} from '../compute.js'
import {DEFAULT_COMPUTE} from '../compute.js'
import {refuseDuplicateSources} from '../array.js'
import {type BlockDevice, type DeviceSource, isDeviceRef} from '../device.js'
import {UsageError} from '../errors.js'
import type {Geometry} from '../geometry.js'
import {ROLE_JOURNAL, type Superblock} from '../format/superblock.js'
import {findSuperblock} from '../probe.js'
import {formatUuid, layoutName} from '../format/names.js'
import {COMMON_OFFSETS, type OffsetChoice} from '../detect/candidates.js'
import {exactCheck} from '../detect/evidence.js'
import {findJournal, uuidMatchesSeed, type JournalFinding} from '../detect/journal.js'
import {rank, search, type Hints, type Scored} from '../detect/rank.js'
import {ALL_ZERO, NO_PARITY, XOR_IS_PAGE, XOR_ZERO, readSample, type Sample} from '../detect/sample.js'
import {undecided} from '../detect/report.js'

/** candidates listed, and of them checked exactly on whole pages */
const LISTED = 10
const VERIFIED = 5
/** stripes with data re-read for each exact check */
const EXACT_STRIPES = 256
/**
 * The share of the first candidate's exactly checked stripes that must hold for detect to call it
 * found: a crash leaves stripes whose members were written in part (the journal holds them), so not
 * all of a real array's stripes need hold.
 */
const FOUND_RATIO = 0.9

/** A candidate holds when enough of the stripes re-read hold: a crash leaves some half-written, which the journal holds. */
export function exactHolds(checked: number, held: number): boolean {
  return checked > 0 && held >= FOUND_RATIO * checked
}
/** members the search handles (a bit each in the sample's masks) */
export const MAX_MEMBERS = 16

export interface DetectDevice {
  device: string
  sizeBytes: number
  /** valid: magic and checksum hold; damaged: the magic does, something else not; none: no md superblock */
  superblock: 'valid' | 'damaged' | 'none'
  arrayUuid: string | null
  /** what its superblock says it is: "active N", "journal", "spare", "faulty" */
  role: string | null
  journalMetaBlocks: number
}

export interface DetectJournal {
  device: string
  dataOffsetSector: number
  metaBlocks: number
  /** crc32c_le(~0, array UUID) the meta blocks' checksums hold for, 8 hex digits */
  checksumSeed: string
  seedAgreeing: number
  /** whether the UUID found in a superblock is the one the journal was checksummed with; null without one */
  uuidConfirmed: boolean | null
  /** 1 (RAID4/5) or 2 (RAID6: P and Q) parity pages per logged stripe; null when none was seen */
  parityPagesPerStripe: 1 | 2 | null
}

export interface DetectCandidate {
  rank: number
  level: number
  layout: string
  chunkBytes: number
  /** device names by slot */
  members: string[]
  dataOffsetSector: number
  dataOffsetSource: OffsetChoice['source']
  /** sectors of each member the array uses: a surviving superblock's size (when it fits), else the most each member holds past the data offset; in whole chunks */
  memberDataSectors: number
  /** "superblock" or "members" (what they hold) */
  sizeSource: 'superblock' | 'members'
  arraySizeBytes: number
  journal: string | null
  evidence: {
    stripesWithData: number
    parityHeld: number
    parityEmpty: number
    qChecked: number
    qHeld: number
    transitions: number
    /** whole-page check of sampled stripes with data (null: not among the checked candidates) */
    exactChecked: number | null
    exactHeld: number | null
    journalRecords: {agreeing: number; total: number} | null
    /** the journal's logged data pages found on one member: how many the candidate puts on that member */
    journalPagesOnMembers: {matching: number; located: number} | null
    superblockAgrees: string[]
  }
}

export interface DetectResult {
  found: boolean
  arrayUuid: string | null
  uuidSource: string | null
  devices: DetectDevice[]
  journal: DetectJournal | null
  sample: {stripes: number; stripesWithData: number; xorZero: number; qLike: number; noParity: number; bytesRead: number}
  candidates: DetectCandidate[]
  undecided: string[]
  notes: string[]
}

interface Probed {
  name: string
  dev: BlockDevice
  sb: Superblock | null
  state: DetectDevice['superblock']
  journal: JournalFinding | null
  /** bytes of it the journal search read */
  bytesRead: number
}

export function detectArray(sources: DeviceSource[], opts: EngineOptions = {}): DetectResult {
  const opened: BlockDevice[] = []
  try {
    return detectOn(sources, opened, false, opts).result
  } finally {
    opened.forEach((d, i) => {
      if (isDeviceRef(sources[i])) d.close()
    })
  }
}

/**
 * Open the sources (read-only, or writable for detect --write) into `opened`, which the caller
 * closes, and detect on them. `intact`: each device's superblock as read, when it is whole (detect
 * --write keeps what the surviving ones say).
 */
export function detectOn(
  sources: DeviceSource[],
  opened: BlockDevice[],
  writable: boolean,
  opts: EngineOptions,
): {result: DetectResult; intact: Map<string, Superblock>} {
  if (sources.length < 3) throw new UsageError('detect needs the devices of one array: at least 3 (members and, if any, the journal)')
  refuseDuplicateSources(sources)
  for (const s of sources) opened.push(isDeviceRef(s) ? s.open({writable}) : s)
  const probed = opened.map((dev, i) => probe(sources[i].name, dev))
  const intact = new Map(probed.flatMap(p => (p.state === 'valid' && p.sb ? [[p.name, p.sb] as const] : [])))
  return {result: detectOpened(probed, opts), intact}
}

function probe(name: string, dev: BlockDevice): Probed {
  const d = findSuperblock(dev)
  const sb: Superblock | null = d?.sb ?? null
  const state: Probed['state'] = !d ? 'none' : d.problems.length === 0 ? 'valid' : 'damaged'
  const read = {bytes: 0}
  const journal = findJournal(dev, read)
  return {name, dev, sb, state, journal, bytesRead: read.bytes}
}

function roleOf(sb: Superblock): number | undefined {
  return sb.devRoles.at(sb.devNumber)
}

function roleName(sb: Superblock): string {
  const r = roleOf(sb)
  if (r === ROLE_JOURNAL) return 'journal'
  if (r !== undefined && r < sb.raidDisks) return `active ${r}`
  return r === 0xfffe ? 'faulty' : 'spare'
}

/**
 * The journal: the device with the most meta blocks, else one whose superblock says so (content
 * first: a create over the wrong disks may have written the journal role onto a member).
 */
function pickJournal(devs: Probed[]): Probed | null {
  const found = devs.filter(d => d.journal).sort((a, b) => b.journal!.metaBlocks - a.journal!.metaBlocks)
  return found.at(0) ?? devs.find(d => d.state === 'valid' && d.sb && roleOf(d.sb) === ROLE_JOURNAL) ?? null
}

/** The UUID a surviving superblock gives: the journal's first, then one the journal's checksums confirm, then any. */
function pickUuid(devs: Probed[], journal: Probed | null): Probed | null {
  const valid = devs.filter(d => d.state === 'valid' && d.sb)
  const seed = journal?.journal?.seed
  return (
    valid.find(d => d === journal) ?? (seed === undefined ? undefined : valid.find(d => uuidMatchesSeed(d.sb!.setUuid, seed))) ?? valid.at(0) ?? null
  )
}

function detectOpened(devs: Probed[], opts: EngineOptions): DetectResult {
  const journal = pickJournal(devs)
  const members = devs.filter(d => d !== journal)
  if (members.length < 2) throw new UsageError('detect needs at least 2 member devices besides the journal')
  if (members.length > MAX_MEMBERS) throw new UsageError(`detect searches arrays of at most ${MAX_MEMBERS} members (${members.length} given)`)
  const uuidFrom = pickUuid(devs, journal)
  const uuid = uuidFrom?.sb ? uuidFrom.sb.setUuid : null
  const hints = hintsFrom(members, uuidFrom)
  const minSectors = Math.floor(Math.min(...members.map(m => m.dev.size)) / 4096) * 8
  const sample = readSample(
    members.map(m => m.dev),
    minSectors / 8,
    journalPages(journal?.journal ?? null),
  )
  const counts = sampleCounts(sample)
  const offsets = offsetChoices(hints, journal?.journal ?? null, members)
  const all = search({
    sample,
    devs: members.map(m => m.dev),
    memberSectors: minSectors,
    offsets,
    journal: journal?.journal ?? null,
    hints,
    qLike: counts.qLike,
  })
  const {ranked, ties} = rank(all, journal?.journal?.parityPages ?? null, sample)
  const verified = verify(
    ranked.slice(0, VERIFIED),
    members.map(m => m.dev),
    sample,
    journal?.journal ?? null,
    opts,
  )
  const listed = [...verified, ...ranked.slice(VERIFIED, LISTED).map(x => ({x, exact: null}))]
  const candidates = listed.map((c, i) => candidateOf(c.x, c.exact, i + 1, members, journal))
  const top = listed.at(0)
  const found = top?.exact != null && exactHolds(top.exact[0], top.exact[1])
  return {
    found,
    arrayUuid: uuid ? formatUuid(uuid) : null,
    uuidSource: uuidFrom?.name ?? null,
    devices: devs.map(deviceOf),
    journal: journal?.journal ? journalOf(journal, uuid) : null,
    sample: {...counts, stripes: sample.stripes, bytesRead: sample.bytesRead + devs.reduce((a, d) => a + d.bytesRead, 0)},
    candidates,
    undecided: undecided(ties, (x: Scored) => x.h.order.map(m => members[m].name)),
    notes: [
      ...notes(found, counts.stripesWithData, uuid, journal, top ?? null),
      ...superblocksNote(found, devs),
      ...memberCountNote(members, uuidFrom),
    ],
  }
}

/**
 * Member pages the journal's parity records name (a stripe's member sector past the data offset,
 * taken to be the journal's): written stripes are there, however little of the array holds data.
 */
function journalPages(j: JournalFinding | null): number[] {
  if (!j) return []
  const sectors = [...new Set(j.records.flatMap(r => r.parity))].sort((a, b) => a - b)
  const step = Math.max(1, sectors.length / 4)
  const out: number[] = []
  for (let k = 0; k * step < sectors.length; k++) out.push((j.dataOffsetSector + sectors[Math.floor(k * step)]) / 8)
  return out
}

function sampleCounts(s: Sample): {stripesWithData: number; xorZero: number; qLike: number; noParity: number} {
  const c = {stripesWithData: 0, xorZero: 0, qLike: 0, noParity: 0}
  for (let i = 0; i < s.stripes; i++) {
    const x = s.xor[i]
    if (x === ALL_ZERO) continue
    c.stripesWithData++
    if (x === XOR_ZERO) c.xorZero++
    else if (x === NO_PARITY) c.noParity++
    else if (x === XOR_IS_PAGE) c.qLike++
  }
  return c
}

/** What the surviving superblock of the UUID's array states, and each member's own slot. */
function hintsFrom(members: Probed[], uuidFrom: Probed | null): Hints {
  const sb = uuidFrom?.sb ?? null
  const same = (m: Probed) => m.state === 'valid' && m.sb !== null && sb !== null && Buffer.compare(m.sb.setUuid, sb.setUuid) === 0
  const memberSb = members.find(same)?.sb ?? null
  return {
    level: sb?.level ?? null,
    layout: sb?.layout ?? null,
    chunkSectors: sb && sb.chunkSize >= 8 && (sb.chunkSize & (sb.chunkSize - 1)) === 0 ? sb.chunkSize : null,
    memberSectors: sb && sb.size > 0n ? Number(sb.size) : null,
    dataOffsetSector: memberSb ? Number(memberSb.dataOffset) : null,
    slots: members.map(m => {
      const r = same(m) ? roleOf(m.sb!) : undefined
      return r !== undefined && sb && r < sb.raidDisks ? r : null
    }),
  }
}

/** Data offsets to try: members' superblocks, the journal's (arrays are usually made with one), then the common ones (only 2048 when one is stated). */
function offsetChoices(hints: Hints, j: JournalFinding | null, members: Probed[]): OffsetChoice[] {
  const list: OffsetChoice[] = []
  const add = (sector: number, source: OffsetChoice['source']) => {
    if (sector >= 16 && sector % 8 === 0 && !list.some(o => o.sector === sector)) list.push({sector, source})
  }
  if (hints.dataOffsetSector !== null) add(hints.dataOffsetSector, 'superblock')
  for (const m of members) if (m.state === 'valid' && m.sb) add(Number(m.sb.dataOffset), 'superblock')
  if (j) add(j.dataOffsetSector, 'journal')
  // an offset stated by a superblock or the journal bounds the search to it and mdadm's usual one
  for (const o of list.length > 0 ? COMMON_OFFSETS.slice(0, 1) : COMMON_OFFSETS) add(o, 'common')
  return list
}

/** The stripes (member sectors) the journal's blocks log under geometry `g`: parity by stripe, data by where `g` puts it. */
function loggedStripes(j: JournalFinding | null, g: Geometry): Set<number> {
  const out = new Set<number>(j?.touched.parity ?? [])
  for (const a of j?.touched.data ?? []) if (a < Number(g.arraySectors)) out.add(Number(g.mapSector(a).memberSector))
  return out
}

/** The exact check of the first candidates, then those that held put first (stable otherwise). */
function verify(
  top: Scored[],
  devs: BlockDevice[],
  sample: Sample,
  journal: JournalFinding | null,
  opts: EngineOptions,
): {x: Scored; exact: [number, number] | null}[] {
  const parity = (opts.compute ?? DEFAULT_COMPUTE).parity
  const out = top.map(x => {
    const step = Math.max(1, x.seg.qStripes.length / EXACT_STRIPES)
    const pages: number[] = []
    for (let k = 0; k * step < x.seg.qStripes.length; k++) pages.push(sample.page[x.seg.qStripes[Math.floor(k * step)]])
    return {x, exact: exactCheck(devs, x.h, x.g, pages, parity, loggedStripes(journal, x.g))}
  })
  const held = (e: [number, number] | null) => (e && e[0] > 0 && e[0] === e[1] ? 1 : 0)
  return out
    .map((c, i) => ({c, i}))
    .sort((a, b) => held(b.c.exact) - held(a.c.exact) || a.i - b.i)
    .map(({c}) => c)
}

function candidateOf(x: Scored, exact: [number, number] | null, rankNo: number, members: Probed[], journal: Probed | null): DetectCandidate {
  const c = x.content
  return {
    rank: rankNo,
    level: x.h.level,
    layout: layoutName(x.h.level, x.h.layout),
    chunkBytes: x.h.chunkSectors * 512,
    members: x.h.order.map(m => members[m].name),
    dataOffsetSector: x.h.dataOffsetSector,
    dataOffsetSource: x.offsetSource,
    memberDataSectors: Number(x.g.usedMemberSectors),
    sizeSource: x.sizeFromSuperblock ? 'superblock' : 'members',
    arraySizeBytes: Number(x.g.arraySectors) * 512,
    journal: journal?.name ?? null,
    evidence: {
      stripesWithData: c.dataStripes,
      parityHeld: c.parityHeld,
      parityEmpty: c.parityEmpty,
      qChecked: c.qChecked,
      qHeld: c.qHeld,
      transitions: c.transitions,
      exactChecked: exact ? exact[0] : null,
      exactHeld: exact ? exact[1] : null,
      journalRecords: x.journal ? {agreeing: x.journal[0], total: x.journal[1]} : null,
      journalPagesOnMembers: x.logged ? {matching: x.logged[0], located: x.logged[1]} : null,
      superblockAgrees: x.agrees,
    },
  }
}

function deviceOf(d: Probed): DetectDevice {
  return {
    device: d.name,
    sizeBytes: d.dev.size,
    superblock: d.state,
    arrayUuid: d.sb ? formatUuid(d.sb.setUuid) : null,
    role: d.sb ? roleName(d.sb) : null,
    journalMetaBlocks: d.journal?.metaBlocks ?? 0,
  }
}

function journalOf(j: Probed, uuid: Uint8Array | null): DetectJournal {
  const f = j.journal!
  return {
    device: j.name,
    dataOffsetSector: f.dataOffsetSector,
    metaBlocks: f.metaBlocks,
    checksumSeed: f.seed.toString(16).padStart(8, '0'),
    seedAgreeing: f.seedAgreeing,
    uuidConfirmed: uuid ? uuidMatchesSeed(uuid, f.seed) : null,
    parityPagesPerStripe: f.parityPages,
  }
}

/**
 * Content that decides nothing (a fresh array, nothing written) leaves detect without a candidate;
 * when every device still has a whole superblock of one array, those state the geometry.
 */
function superblocksNote(found: boolean, devs: Probed[]): string[] {
  if (found || devs.some(d => d.state !== 'valid')) return []
  const uuids = new Set(devs.map(d => formatUuid(d.sb!.setUuid)))
  if (uuids.size !== 1) return []
  return [`every device has a valid superblock of array ${[...uuids][0]}: \`r5ctl examine\` shows the geometry they state`]
}

/**
 * Every device but the journal is searched as a member; a surviving superblock that counts other
 * members says one is not (an all-zero spare fits any layout's parity, so the content cannot tell).
 */
function memberCountNote(members: Probed[], uuidFrom: Probed | null): string[] {
  const sb = uuidFrom?.sb
  if (!sb || sb.raidDisks === members.length) return []
  return [
    `${members.length} devices were searched as members, but the superblock of ${uuidFrom.name} says the array has ${sb.raidDisks}: leave out the devices that are not its members (detect --write refuses a candidate that contradicts it)`,
  ]
}

/** What the reader must know about the result beyond the candidates. */
function notes(
  found: boolean,
  withData: number,
  uuid: Uint8Array | null,
  journal: Probed | null,
  top: {x: Scored; exact: [number, number] | null} | null,
): string[] {
  const out: string[] = []
  const e = top?.exact
  if (withData === 0) out.push('every sampled stripe is zero: the content holds no evidence')
  else if (!found)
    out.push("no candidate's parity held on enough of the stripes checked: these may not be one array's members, or a member is missing")
  else if (e && e[1] < e[0])
    out.push(`${e[0] - e[1]} of ${e[0]} stripes checked do not hold: a crash leaves such stripes (the journal holds their data), as does damage`)
  if (!uuid && journal?.journal)
    out.push('no superblock survives: the array UUID cannot be read back from content, only the journal checksum seed it gives')
  if (!uuid && !journal?.journal) out.push('no superblock and no journal: the array UUID is lost')
  if (!journal) out.push('no journal device found among the devices (no r5l meta block in the sampled windows)')
  if (top && !top.x.sizeFromSuperblock)
    out.push('size: the most the members hold past the data offset, in whole chunks; a smaller size recorded at create cannot be seen in the content')
  return out
}
