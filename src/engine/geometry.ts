/**
 * md RAID4/5/6 address geometry, bit-compatible with the Linux 6.1 md driver
 * (drivers/md/raid5.c: raid5_compute_sector, raid5_compute_blocknr, set_syndrome_sources).
 *
 * Vocabulary (md's, not ours):
 *  - chunk row ("stripe" in raid5_compute_sector): chunk index on a member. Chunk row r spans member
 *    sectors [r·chunk, (r+1)·chunk) on every member and holds dataDisks data chunks plus P (and Q).
 *  - stripe (md's stripe_head): one 4 KiB page per member at the same member offset. Every stripe in a
 *    chunk row has the same layout, so the layout is a function of the chunk row alone.
 *  - member / slot: the raid slot (dev_roles value), 0..raidDisks-1.
 *  - data index (dd): the logical position of a data chunk inside its chunk row, 0..dataDisks-1; array
 *    chunk number = row·dataDisks + dd.
 *  - syndrome slot: the power of g that multiplies a data page in Q (Q = Σ g^slot·D). It is NOT always the
 *    data index: md numbers data disks starting just after Q (asymmetric layouts rotate it), and the DDF
 *    layouts number every physical position, so P and Q leave holes in the slot sequence.
 */

export const ALGORITHM = {
  LEFT_ASYMMETRIC: 0,
  RIGHT_ASYMMETRIC: 1,
  LEFT_SYMMETRIC: 2,
  RIGHT_SYMMETRIC: 3,
  PARITY_0: 4,
  PARITY_N: 5,
  ROTATING_ZERO_RESTART: 8,
  ROTATING_N_RESTART: 9,
  ROTATING_N_CONTINUE: 10,
  LEFT_ASYMMETRIC_6: 16,
  RIGHT_ASYMMETRIC_6: 17,
  LEFT_SYMMETRIC_6: 18,
  RIGHT_SYMMETRIC_6: 19,
  PARITY_0_6: 20,
} as const

export type RaidLevel = 4 | 5 | 6

/** Fewest raid_disks md (with mdadm) will run: the kernel demands 4 for RAID6 in setup_conf; for RAID4/5
 *  it only needs one data disk (mdadm --create refuses fewer than 2 devices). */
export const MIN_RAID_DISKS: Readonly<Record<RaidLevel, number>> = {4: 2, 5: 2, 6: 4}

/**
 * Whether md accepts `layout` for `level` (setup_conf → algorithm_valid_raid5 / algorithm_valid_raid6).
 * RAID4: setup_conf validates nothing, and raid5_compute_sector never reads the layout for level 4 (parity
 * is always on the last slot). mdadm and the takeover code store 0 (raid4_takeover sets new_layout = 0),
 * but any value is accepted, so every integer is "valid" here.
 */
export function validLayout(level: number, layout: number): boolean {
  if (!Number.isInteger(layout)) return false
  switch (level) {
    case 4:
      return true
    case 5:
      return layout >= 0 && layout <= 5
    case 6:
      return (layout >= 0 && layout <= 5) || (layout >= 8 && layout <= 10) || (layout >= 16 && layout <= 20)
    default:
      return false
  }
}

/** DDF RAID6 layouts: Q is computed over every physical position (P/Q positions count as zero pages). */
export function isDdfLayout(level: number, layout: number): boolean {
  return level === 6 && layout >= 8 && layout <= 10
}

/** Layout of one chunk row. Shared and frozen: never mutate. */
export interface StripeInfo {
  /** Slot holding P. */
  pd: number
  /** Slot holding Q; -1 for RAID4/5. */
  qd: number
  /** dataMembers[dd] = slot holding logical data index dd. */
  dataMembers: number[]
  /** qSlot[dd] = syndrome slot (power of g) of data index dd in Q. RAID4/5: dd (unused). */
  qSlot: number[]
  /** dataIndexOf[slot] = data index held by slot, or -1 for P/Q. */
  dataIndexOf: number[]
}

/**
 * Uncached layout of chunk row `row`, written out from the kernel's per-algorithm rules. Geometry caches
 * one period of these; this stays exported so tests can check that the period really repeats.
 */
export function computeRowLayout(level: RaidLevel, raidDisks: number, layout: number, row: number): StripeInfo {
  const n = raidDisks
  const dataDisks = level === 6 ? n - 2 : n - 1
  const {pd, qd, member, ddf} =
    level === 4
      ? {pd: dataDisks, qd: -1, member: (dd: number) => dd, ddf: false}
      : level === 5
        ? raid5Placement(layout, n, row)
        : raid6Placement(layout, n, row)
  const dataMembers: number[] = []
  const dataIndexOf: number[] = new Array<number>(n).fill(-1)
  for (let dd = 0; dd < dataDisks; dd++) {
    const m = member(dd)
    dataMembers.push(m)
    dataIndexOf[m] = dd
  }

  const qSlot = level === 6 ? syndromeSlots(dataIndexOf, qd, ddf) : dataMembers.map((_, dd) => dd)
  return Object.freeze({
    pd,
    qd,
    dataMembers: Object.freeze(dataMembers) as number[],
    qSlot: Object.freeze(qSlot) as number[],
    dataIndexOf: Object.freeze(dataIndexOf) as number[],
  })
}

/** Where parity sits in a row and how data fills the rest: member(dd) is the slot of data index dd. */
interface Placement {
  pd: number
  qd: number
  member: (dd: number) => number
  /** DDF layouts count P and Q positions in the Q syndrome */
  ddf: boolean
}

/** "asymmetric": data fills the slots left to right, skipping P. */
const skipP = (pd: number) => (dd: number) => (dd >= pd ? dd + 1 : dd)
/** the same, skipping P and Q (Q D D D P when P is last, else D D P Q D) */
const skipPQ = (pd: number, n: number) => (dd: number) => (pd === n - 1 ? dd + 1 : dd >= pd ? dd + 2 : dd)
/** "symmetric": data continues round-robin from just after the parity block(s), over `width` slots. */
const after = (first: number, width: number) => (dd: number) => (first + dd) % width

function raid5Placement(layout: number, n: number, row: number): Placement {
  const dataDisks = n - 1
  const place = (pd: number, member: (dd: number) => number): Placement => ({pd, qd: -1, member, ddf: false})
  switch (layout) {
    case ALGORITHM.LEFT_ASYMMETRIC:
      return place(dataDisks - (row % n), skipP(dataDisks - (row % n)))
    case ALGORITHM.RIGHT_ASYMMETRIC:
      return place(row % n, skipP(row % n))
    case ALGORITHM.LEFT_SYMMETRIC:
      return place(dataDisks - (row % n), after(dataDisks - (row % n) + 1, n))
    case ALGORITHM.RIGHT_SYMMETRIC:
      return place(row % n, after((row % n) + 1, n))
    case ALGORITHM.PARITY_0:
      return place(0, dd => dd + 1)
    case ALGORITHM.PARITY_N:
      return place(dataDisks, dd => dd)
    default:
      throw new RangeError(`RAID5 layout ${layout} is not supported by md`)
  }
}

function raid6Placement(layout: number, n: number, row: number): Placement {
  const dataDisks = n - 2
  const next = (pd: number) => (pd === n - 1 ? 0 : pd + 1)
  const asym = (pd: number, ddf = false): Placement => ({pd, qd: next(pd), member: skipPQ(pd, n), ddf})
  const sym = (pd: number): Placement => ({pd, qd: (pd + 1) % n, member: after(pd + 2, n), ddf: false})
  // the *_6 layouts are the RAID5 layout over the first n-1 slots, with Q parked on the last one
  const with6 = (p: Placement): Placement => ({...p, qd: n - 1})
  switch (layout) {
    case ALGORITHM.LEFT_ASYMMETRIC:
      return asym(n - 1 - (row % n))
    case ALGORITHM.RIGHT_ASYMMETRIC:
      return asym(row % n)
    case ALGORITHM.LEFT_SYMMETRIC:
      return sym(n - 1 - (row % n))
    case ALGORITHM.RIGHT_SYMMETRIC:
      return sym(row % n)
    case ALGORITHM.PARITY_0:
      return {pd: 0, qd: 1, member: dd => dd + 2, ddf: false}
    case ALGORITHM.PARITY_N:
      return {pd: dataDisks, qd: dataDisks + 1, member: dd => dd, ddf: false}
    case ALGORITHM.ROTATING_ZERO_RESTART: // placement of RIGHT_ASYMMETRIC, DDF Q order
      return asym(row % n, true)
    case ALGORITHM.ROTATING_N_RESTART: // LEFT_ASYMMETRIC shifted one row: row 0 is D D D P Q
      return asym(n - 1 - ((row + 1) % n), true)
    case ALGORITHM.ROTATING_N_CONTINUE: {
      // LEFT_SYMMETRIC with Q just before P
      const pd = n - 1 - (row % n)
      return {pd, qd: (pd + n - 1) % n, member: after(pd + 1, n), ddf: true}
    }
    case ALGORITHM.LEFT_ASYMMETRIC_6:
    case ALGORITHM.RIGHT_ASYMMETRIC_6:
    case ALGORITHM.LEFT_SYMMETRIC_6:
    case ALGORITHM.RIGHT_SYMMETRIC_6:
    case ALGORITHM.PARITY_0_6:
      return with6(raid5Placement(layout - ALGORITHM.LEFT_ASYMMETRIC_6 + ALGORITHM.LEFT_ASYMMETRIC, n - 1, row))
    default:
      throw new RangeError(`RAID6 layout ${layout} is not supported by md`)
  }
}

/**
 * set_syndrome_sources: walk the slots cyclically from raid6_d0 handing out syndrome slots
 * (raid6_idx_to_slot). md starts just after Q and counts data disks only; DDF starts at slot 0 and
 * counts P and Q positions too, so there a data disk's syndrome slot is simply its raid slot.
 */
function syndromeSlots(dataIndexOf: number[], qd: number, ddf: boolean): number[] {
  const n = dataIndexOf.length
  const qSlot: number[] = []
  const d0 = ddf ? 0 : qd === n - 1 ? 0 : qd + 1
  let count = 0
  for (let k = 0, i = d0; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
    const dd = dataIndexOf[i]
    if (dd >= 0) qSlot[dd] = count
    if (ddf || dd >= 0) count++
  }
  return qSlot
}

/**
 * Number of chunk rows after which a layout repeats. Rotating layouts depend on row % raidDisks, except
 * the *_6 ones, which rotate P over raidDisks-1 slots; fixed-parity layouts (RAID4, PARITY_*) never change.
 */
export function layoutPeriod(level: RaidLevel, raidDisks: number, layout: number): number {
  if (level === 4) return 1
  if (layout === ALGORITHM.PARITY_0 || layout === ALGORITHM.PARITY_N || layout === ALGORITHM.PARITY_0_6) return 1
  if (level === 6 && layout >= 16) return raidDisks - 1
  return raidDisks
}

const toNum = (x: bigint | number, what: string): number => {
  const v = typeof x === 'bigint' ? Number(x) : x
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} ${x} is not a non-negative safe integer`)
  return v
}

export class Geometry {
  readonly level: RaidLevel
  readonly raidDisks: number
  readonly chunkSectors: number
  readonly layout: number
  /** sb.size: sectors of each member used for data (before rounding down to whole chunks). */
  readonly memberSectors: bigint
  readonly dataDisks: number
  readonly pagesPerChunk: number
  /** Array size as md reports it: member size rounded down to whole chunks, times dataDisks (raid5_size). */
  readonly arraySectors: bigint
  /** Data sectors used on each member: memberSectors rounded down to whole chunks. */
  readonly usedMemberSectors: bigint
  /** Chunk rows per layout period (see layoutPeriod). */
  readonly period: number
  readonly ddf: boolean
  /** Number of syndrome slots gen_syndrome runs over: dataDisks, or raidDisks for DDF layouts. */
  readonly syndromeDisks: number

  private readonly rows: StripeInfo[]
  private readonly usedMember: number
  private readonly arraySize: number

  constructor(level: RaidLevel, raidDisks: number, chunkSectors: number, layout: number, memberSectors: bigint) {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition, @typescript-eslint/restrict-template-expressions -- levels come from disk and flags
    if (level !== 4 && level !== 5 && level !== 6) throw new RangeError(`RAID level ${level} is not 4, 5 or 6`)
    if (!Number.isInteger(raidDisks) || raidDisks < MIN_RAID_DISKS[level] || raidDisks > 1920)
      throw new RangeError(`RAID${level} cannot have ${raidDisks} raid disks`)
    // setup_conf: a power of two and a whole number of pages (the stripe cache works in pages).
    if (!Number.isInteger(chunkSectors) || chunkSectors < 8 || (chunkSectors & (chunkSectors - 1)) !== 0)
      throw new RangeError(`chunk of ${chunkSectors} sectors is not a power-of-two multiple of 4 KiB`)
    if (!validLayout(level, layout)) throw new RangeError(`layout ${layout} is not valid for RAID${level}`)
    if (memberSectors < 0n) throw new RangeError('memberSectors must be >= 0')

    this.level = level
    this.raidDisks = raidDisks
    this.chunkSectors = chunkSectors
    this.layout = layout
    this.memberSectors = memberSectors
    this.dataDisks = raidDisks - (level === 6 ? 2 : 1)
    this.pagesPerChunk = chunkSectors / 8
    this.usedMemberSectors = memberSectors - (memberSectors % BigInt(chunkSectors))
    this.arraySectors = this.usedMemberSectors * BigInt(this.dataDisks)
    this.usedMember = toNum(this.usedMemberSectors, 'member size')
    this.arraySize = toNum(this.arraySectors, 'array size')
    this.ddf = isDdfLayout(level, layout)
    this.syndromeDisks = this.ddf ? raidDisks : this.dataDisks
    this.period = layoutPeriod(level, raidDisks, layout)
    this.rows = []
    for (let r = 0; r < this.period; r++) this.rows.push(computeRowLayout(level, raidDisks, layout, r))
  }

  /** Layout of chunk row `chunkRow` (chunk index on a member). Cached; do not mutate. */
  rowInfo(chunkRow: number): StripeInfo {
    return this.rows[chunkRow % this.period]
  }

  /** Layout of the stripe at member sector `memberSector`. Cached; do not mutate. */
  stripeInfo(memberSector: bigint | number): StripeInfo {
    const s = typeof memberSector === 'bigint' ? Number(memberSector) : memberSector
    if (!(s >= 0 && s < this.usedMember)) throw new RangeError(`member sector ${memberSector} is outside the data area`)
    const off = s % this.chunkSectors
    return this.rows[((s - off) / this.chunkSectors) % this.period]
  }

  /**
   * mapSector's member slot and member sector (and data index, chunk row and P slot) for a numeric array
   * sector, written into `out` (no allocation: the replay calls this for every logged data page).
   */
  locate(arraySector: number, out: {member: number; memberSector: number; dataIndex?: number; row?: number; pd?: number}): void {
    const a = arraySector
    if (!(a >= 0 && a < this.arraySize) || !Number.isInteger(a))
      throw new RangeError(`array sector ${arraySector} is outside the array (${this.arraySectors} sectors)`)
    const chunk = this.chunkSectors
    const chunkOffset = a % chunk
    const chunkNumber = (a - chunkOffset) / chunk
    const dataIndex = chunkNumber % this.dataDisks
    const row = (chunkNumber - dataIndex) / this.dataDisks
    const info = this.rows[row % this.period]
    out.member = info.dataMembers[dataIndex]
    out.memberSector = row * chunk + chunkOffset
    out.dataIndex = dataIndex
    out.row = row
    out.pd = info.pd
  }

  /** raid5_compute_sector: where array sector `arraySector` lives. */
  mapSector(arraySector: bigint | number): {
    dataIndex: number
    member: number
    memberSector: bigint
    pd: number
    qd: number
  } {
    const o = {member: 0, memberSector: 0, dataIndex: 0, row: 0}
    this.locate(typeof arraySector === 'bigint' ? Number(arraySector) : arraySector, o)
    const info = this.rows[o.row % this.period]
    return {dataIndex: o.dataIndex, member: o.member, memberSector: BigInt(o.memberSector), pd: info.pd, qd: info.qd}
  }

  /** raid5_compute_blocknr: the array sector stored at `memberSector` of slot `member`, or null for P/Q. */
  arraySectorOf(member: number, memberSector: bigint | number): bigint | null {
    if (!Number.isInteger(member) || member < 0 || member >= this.raidDisks) throw new RangeError(`slot ${member} is not in 0..${this.raidDisks - 1}`)
    const s = typeof memberSector === 'bigint' ? Number(memberSector) : memberSector
    if (!(s >= 0 && s < this.usedMember) || !Number.isInteger(s)) throw new RangeError(`member sector ${memberSector} is outside the data area`)
    const chunk = this.chunkSectors
    const off = s % chunk
    const row = (s - off) / chunk
    const dd = this.rows[row % this.period].dataIndexOf[member]
    if (dd < 0) return null
    return BigInt((row * this.dataDisks + dd) * chunk + off)
  }
}
