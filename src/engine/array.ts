/**
 * An opened array: devices identified by their md v1.2 superblocks (in any order, as
 * `mdadm --assemble` does), roles, events, the journal ring, and persistence of the superblocks
 * that carry journal_tail. Every check happens here, before any command writes a byte.
 */
import {uuidSeed} from './checksum.js'
import {DEFAULT_COMPUTE, type Compute} from './compute.js'
import {type BlockDevice, type DeviceSource, isDeviceRef} from './device.js'
import {noJournalFeature, probeDevice, sbVerdict, type ProbeResult} from './probe.js'
import {CorruptError, RefusedError, UsageError} from './errors.js'
import {FEATURE_JOURNAL, ROLE_FAULTY, ROLE_JOURNAL, ROLE_SPARE, type Superblock, encodeSuperblock, mdTime, versionAt} from './format/superblock.js'
import {formatUuid} from './format/names.js'
import {Geometry, validLayout} from './geometry.js'
import {Ring, BLOCK_SECTORS} from './journal/ring.js'

export interface DeviceInfo {
  path: string
  dev: BlockDevice
  sb: Superblock
  /** role from dev_roles[dev_number]: slot number, or ROLE_JOURNAL / ROLE_SPARE / ROLE_FAULTY */
  role: number
}

export type {DeviceSource} from './device.js'

export function sourceName(s: DeviceSource): string {
  return s.name
}

export interface OpenOptions {
  writable: boolean
  /** members that may be absent (reads reconstruct them) */
  allowMissingMembers?: boolean
  /** proceed without the journal device (members are read as they are) */
  allowMissingJournal?: boolean
  /** only the journal matters (dump-meta / examine --journal on the journal alone) */
  journalOnly?: boolean
  /**
   * writable: the most superblock updates the operation can make (default 1). Each advances events
   * by one, so the counter must have that much room before the first write.
   */
  superblockUpdates?: number | ((arr: MdArray) => number)
  /** the CRC32C and parity implementations (default: DEFAULT_COMPUTE) */
  compute?: Compute
  /** read-only, with writers kept out for as long as it is open (serve) */
  hold?: boolean
  /** an array without a journal (the freshest superblock lacks feature 0x200) is fine too */
  journalless?: boolean
}

const U64_MAX = 0xffffffffffffffffn

export class MdArray {
  /** members by slot; null when absent */
  readonly members: (DeviceInfo | null)[]
  readonly journal: DeviceInfo | null
  readonly geometry: Geometry
  readonly seed: number
  readonly ring: Ring | null
  /** the freshest superblock, the model for all rewrites */
  readonly sb: Superblock
  /** what checksums and parity are computed with */
  readonly compute: Compute
  /** devices given but left out: journals the freshest superblock no longer lists (removed or replaced) */
  leftOut: string[] = []

  constructor(devs: DeviceInfo[], sb: Superblock, compute: Compute = DEFAULT_COMPUTE) {
    this.sb = sb
    this.compute = compute
    this.members = Array.from({length: sb.raidDisks}, () => null)
    let journal: DeviceInfo | null = null
    for (const d of devs) {
      if (d.role === ROLE_JOURNAL) journal = d
      else if (d.role < sb.raidDisks) this.members[d.role] = d
    }
    this.journal = journal
    this.geometry = new Geometry(sb.level as 4 | 5 | 6, sb.raidDisks, sb.chunkSize, sb.layout, sb.size)
    this.seed = uuidSeed(sb.setUuid)
    this.ring = journal
      ? new Ring(journal.dev, Number(journal.sb.dataOffset) * 512, Math.floor(Number(journal.sb.dataSize) / BLOCK_SECTORS) * BLOCK_SECTORS)
      : null
  }

  get uuid(): string {
    return formatUuid(this.sb.setUuid)
  }
  get missingMembers(): number[] {
    return this.members.flatMap((m, i) => (m ? [] : [i]))
  }
  /** make every present member's writes durable (a missing one has none) */
  flushMembers(): void {
    for (const m of this.members) m?.dev.flush()
  }
  /** the freshest superblock has the journal feature: the array has a journal, present or not */
  get hasJournalFeature(): boolean {
    return (this.sb.featureMap & FEATURE_JOURNAL) !== 0
  }
  get journalTail(): number {
    return Number(this.journal?.sb.journalTail ?? 0n)
  }
  /** data offset of a member in bytes */
  memberBase(slot: number): number {
    return Number(this.members[slot]!.sb.dataOffset) * 512
  }

  all(): DeviceInfo[] {
    return [...this.members.filter((m): m is DeviceInfo => m !== null), ...(this.journal ? [this.journal] : [])]
  }

  close(): void {
    for (const d of this.all()) d.dev.close()
  }

  /**
   * Persist new superblocks on every present device: events + 1, utime now, journal_tail.
   * Callers flush data first; superblocks are always the last write of an operation.
   */
  writeSuperblocks(journalTail: number): void {
    const events = nextEvents(this.all().map(d => d.sb))
    const now = mdTime(new Date())
    const bufs: [DeviceInfo, Uint8Array][] = []
    // every device carries the freshest roles and journal feature, as md's super_1_sync writes them
    const feature = this.sb.featureMap & FEATURE_JOURNAL
    for (const d of this.all()) {
      const sb: Superblock = {
        ...d.sb,
        featureMap: (d.sb.featureMap & ~FEATURE_JOURNAL) | feature,
        devRoles: this.sb.devRoles,
        maxDev: this.sb.maxDev,
        events,
        utime: now,
      }
      if (d.role === ROLE_JOURNAL) sb.journalTail = BigInt(journalTail)
      bufs.push([d, encodeSuperblock(sb)])
      d.sb = sb
    }
    // where each device's superblock was found: super_offset says so (checked when probed)
    for (const [d, b] of bufs) d.dev.write(b, Number(d.sb.superOffset) * 512)
    for (const [d] of bufs) d.dev.flush()
  }
}

/**
 * The events count of a superblock update of these devices. Normally events + 1. When an earlier
 * update was cut short (the set is split between E and E+1), finish it at E+1 instead: then any
 * partial write of this update also leaves every device within the one event md tolerates.
 */
export function nextEvents(sbs: Superblock[]): bigint {
  const max = sbs.reduce((m, sb) => (sb.events > m ? sb.events : m), 0n)
  const min = sbs.reduce((m, sb) => (sb.events < m ? sb.events : m), max)
  return min < max ? max : max + 1n
}

/**
 * A new device gets a superblock where the array's minor version keeps it, and the data area that
 * version leaves; r5ctl lays out new devices only for v1.2 (what it creates, and mdadm's default).
 */
export function refuseNewDeviceUnlessV12(arr: MdArray, command: string): void {
  const version = versionAt(arr.sb.superOffset)
  if (version !== '1.2')
    throw new RefusedError(
      `the array's superblocks are v${version}: ${command} writes a new device's superblock only for v1.2 arrays`,
      undefined,
      'use mdadm with the array assembled for this one; nothing was written',
      'superblock-version',
    )
}

/**
 * The same device twice is a UsageError naming both: a named device by any spelling (symlink, hard link, a
 * loop device over it: DeviceRef.key), an open one as the same object.
 */
export function refuseDuplicateSources(sources: DeviceSource[]): void {
  const seen = new Map<string, string>()
  for (const s of sources) {
    if (!isDeviceRef(s)) continue
    const key = s.key()
    const first = seen.get(key)
    if (first !== undefined)
      throw new UsageError(`device given twice: ${s.name}${first === s.name ? '' : ` is the same device as ${first}`}`, 'name each device once')
    seen.set(key, s.name)
  }
  const opened = sources.filter(s => !isDeviceRef(s))
  const twice = opened.find((s, i) => opened.indexOf(s) !== i)
  if (twice) throw new UsageError(`device given twice: ${sourceName(twice)}`, 'name each device once')
}

/**
 * A device whose geometry (level, raid_disks, chunk, layout, size) differs from the one most of the
 * set agrees on (ties: the freshest superblock's), or undefined. Comparing with the majority, not
 * with the freshest superblock, names the odd device even when it is the freshest.
 */
function oddGeometry(set: ProbeResult[], best: Superblock): ProbeResult | undefined {
  const key = (sb: Superblock) => `${sb.level}/${sb.raidDisks}/${sb.chunkSize}/${sb.layout}/${sb.size}`
  const votes = new Map<string, number>()
  for (const p of set) votes.set(key(p.sb!), (votes.get(key(p.sb!)) ?? 0) + 1)
  let agreed = key(best)
  for (const [k, n] of votes) if (n > votes.get(agreed)!) agreed = k
  return set.find(p => key(p.sb!) !== agreed)
}

/**
 * Member slots with no device among those given. The problem is the set's, not any device's: the
 * error names no device and says which array the slots belong to.
 */
export function missingMembersError(
  uuid: string,
  missing: number[],
  why: string,
  hint = 'name every member and the journal',
  code = 'missing-member',
): RefusedError {
  const s = missing.length > 1 ? 's' : ''
  return new RefusedError(`member${s} for slot${s} ${missing.join(', ')} of array ${uuid} missing: ${why}`, undefined, hint, code)
}

/** Open and validate a device set. Throws an R5Error naming the device at the first problem. */
export function openArray(sources: DeviceSource[], opts: OpenOptions): MdArray {
  if (sources.length === 0) throw new UsageError('no devices given', 'name the members and the journal, in any order')
  refuseDuplicateSources(sources)
  const probes = sources.map(probeDevice)
  const sourceOf = new Map(probes.map((p, i) => [p, sources[i]]))
  for (const p of probes) {
    const err = sbVerdict(p)
    if (err) throw err
  }
  const picked = pickSet(probes)
  const best = picked.best
  if (!opts.journalless && !(best.featureMap & FEATURE_JOURNAL)) throw noJournalFeature(picked.set.find(p => p.sb === best)!.path)
  const set = picked.set.filter(p => !removedJournal(p.sb!, best))
  checkRoles(set, best)
  const devs: DeviceInfo[] = set.map(p => {
    const src = sourceOf.get(p)!
    const dev = isDeviceRef(src) ? src.open({writable: opts.writable, hold: opts.hold}) : src
    return {path: p.path, dev, sb: p.sb!, role: best.devRoles[p.sb!.devNumber] ?? ROLE_SPARE}
  })
  const arr = new MdArray(devs, best, opts.compute)
  arr.leftOut = picked.set.filter(p => !set.includes(p)).map(p => p.path)
  try {
    checkOpened(arr, opts, set.find(p => p.sb === best)!.path)
  } catch (e) {
    arr.close()
    throw e
  }
  if (arr.journal) {
    arr.ring!.payloadLimits = {
      arraySectors: Number(arr.geometry.arraySectors),
      memberSectors: Number(arr.geometry.usedMemberSectors),
      device: arr.journal.path,
    }
  }
  return arr
}

/**
 * The set is defined by the majority uuid (ties: the first device), as mdadm picks the array the
 * named devices agree on; a device of another array is named. The freshest superblock (highest
 * events) describes the array; older ones are stale.
 */
function pickSet(probes: ProbeResult[]): {set: ProbeResult[]; best: Superblock} {
  const byUuid = new Map<string, ProbeResult[]>()
  for (const p of probes) {
    const u = formatUuid(p.sb!.setUuid)
    byUuid.set(u, [...(byUuid.get(u) ?? []), p])
  }
  let set = probes.filter(p => formatUuid(p.sb!.setUuid) === formatUuid(probes[0].sb!.setUuid))
  for (const group of byUuid.values()) if (group.length > set.length) set = group
  const setUuid = formatUuid(set[0].sb!.setUuid)
  for (const p of probes) {
    if (formatUuid(p.sb!.setUuid) !== setUuid)
      throw new RefusedError(
        `belongs to another array (uuid ${formatUuid(p.sb!.setUuid)}, expected ${setUuid})`,
        p.path,
        'leave it out of the device list',
        'foreign-device',
      )
  }
  let best = set[0].sb!
  for (const p of set) if (p.sb!.events > best.events) best = p.sb!
  return {set, best}
}

/**
 * A journal whose own superblock still says journal while the freshest one lists its dev_number
 * as faulty or spare: removed or replaced by `r5ctl journal`, and ignored as md ignores it.
 */
function removedJournal(sb: Superblock, best: Superblock): boolean {
  const role = best.devRoles[sb.devNumber] ?? ROLE_SPARE
  return sb.events < best.events && sb.devRoles[sb.devNumber] === ROLE_JOURNAL && (role === ROLE_FAULTY || role === ROLE_SPARE)
}

/** Every device of the set: same geometry, fresh enough, an active role, no role twice; a layout md knows. */
function checkRoles(set: ProbeResult[], best: Superblock): void {
  const odd = oddGeometry(set, best)
  if (odd) throw new CorruptError('superblock geometry disagrees with the rest of the set', odd.path, undefined, 'geometry-mismatch')
  // md loads every device of an array at the place of the array's one minor version (super_1_load)
  const version = versionAt(best.superOffset)
  const other = set.find(p => p.version !== version)
  if (other)
    throw new CorruptError(
      `superblock is v${other.version ?? '?'} where the rest of the set has v${version}: md reads one version per array`,
      other.path,
      'leave it out, or restore its superblock where the others keep theirs',
      'version-mismatch',
    )
  const slots = new Map<number, string>()
  for (const p of set) {
    const sb = p.sb!
    const role = best.devRoles[sb.devNumber] ?? ROLE_SPARE
    // md accepts a device one event behind the freshest (super_1_validate: ++ev1 < events):
    // a power cut between the superblock writes of one update leaves exactly that.
    if (sb.events + 1n < best.events)
      throw role === ROLE_JOURNAL
        ? new RefusedError(
            `stale journal: events ${sb.events}, the set is at ${best.events}; its log is older than what the members hold`,
            p.path,
            'never replay it: find the current journal, or see docs/runbooks/journal-stale.md; nothing was written',
            'stale-journal',
          )
        : new RefusedError(
            `stale member: events ${sb.events}, the set is at ${best.events}`,
            p.path,
            'leave it out (a degraded read reconstructs it)',
            'stale-device',
          )
    if (role !== ROLE_JOURNAL && role >= best.raidDisks)
      throw new RefusedError(`device is not an active member (role 0x${role.toString(16)})`, p.path, 'leave it out', 'not-active')
    const key = role === ROLE_JOURNAL ? -1 : role
    if (slots.has(key))
      throw new RefusedError(
        `duplicate ${role === ROLE_JOURNAL ? 'journal' : `member for slot ${role}`} (also ${slots.get(key)})`,
        p.path,
        'leave one of them out',
        'duplicate-device',
      )
    slots.set(key, p.path)
  }
  if (!validLayout(best.level, best.layout)) throw new CorruptError(`unsupported layout ${best.layout} for raid${best.level}`, set[0].path)
}

/** What the operation needs of the opened set: its members, its journal, room in its counters, a sane tail. */
function checkOpened(arr: MdArray, opts: OpenOptions, bestPath: string): void {
  const best = arr.sb
  const missing = arr.missingMembers
  const tolerable = best.level === 6 ? 2 : 1
  if (!opts.journalOnly && missing.length > 0 && (!opts.allowMissingMembers || missing.length > tolerable)) {
    if (opts.allowMissingMembers)
      throw missingMembersError(arr.uuid, missing, `raid${best.level} can rebuild at most ${tolerable}`, 'name more members', 'refused')
    throw missingMembersError(arr.uuid, missing, 'this command needs every member')
  }
  // a device that was not given cannot be named: the message names the array instead
  if (!arr.journal && !arr.hasJournalFeature && opts.journalOnly)
    throw new RefusedError(`array ${arr.uuid} has no journal`, undefined, 'give it one with `r5ctl journal add NEW DEV...`', 'no-journal')
  if (!arr.journal && arr.hasJournalFeature && (opts.journalOnly || !opts.allowMissingJournal)) {
    throw new RefusedError(
      `journal device missing for array ${arr.uuid}: pending journal records would be lost`,
      undefined,
      'name the journal device too (mdadm refuses to assemble without it as well)',
      'missing-journal',
    )
  }
  if (arr.journal && arr.ring!.sizeSectors < 2 * BLOCK_SECTORS) throw new CorruptError('journal data area too small', arr.journal.path)
  if (opts.writable) checkRewritable(arr, opts, bestPath)
  // journal_tail must name a 4 KiB block inside the ring (the kernel's r5l_load_log checks the
  // same and would start a new, empty log; offline we refuse and write nothing)
  if (arr.journal) {
    const tail = arr.journal.sb.journalTail
    if (tail >= BigInt(arr.ring!.sizeSectors) || tail % BigInt(BLOCK_SECTORS) !== 0n) {
      throw new CorruptError(
        `journal_tail ${tail} is not a 4 KiB-aligned sector inside the journal (size ${arr.ring!.sizeSectors} sectors)`,
        arr.journal.path,
        'inspect it with `r5ctl examine`; nothing was written',
        'bad-journal-tail',
      )
    }
  }
}

/**
 * A superblock is rewritten from its decoded fields: its name must encode back to the same bytes,
 * and its events counter must have room for every update the operation makes, each + 1 (a u64
 * cannot go past 2^64-1; the kernel's md_update_sb never lets it wrap either).
 */
function checkRewritable(arr: MdArray, opts: OpenOptions, bestPath: string): void {
  const events = arr.sb.events
  const updates = BigInt(typeof opts.superblockUpdates === 'function' ? opts.superblockUpdates(arr) : (opts.superblockUpdates ?? 1))
  if (events + updates > U64_MAX) {
    throw new CorruptError(
      `events counter ${events} cannot be advanced ${updates} time(s): it is a 64-bit counter, at most ${U64_MAX}`,
      bestPath,
      'inspect it with `r5ctl examine`; nothing was written',
      'bad-events',
    )
  }
  for (const d of arr.all()) {
    const name = d.sb.setName
    if (Buffer.byteLength(name, 'utf8') > 32 || name.includes('\uFFFD')) {
      throw new CorruptError(
        'set_name is not valid UTF-8: the superblock could not be rewritten as it is',
        d.path,
        'inspect it with `r5ctl examine`; nothing was written',
        'bad-name',
      )
    }
  }
}
