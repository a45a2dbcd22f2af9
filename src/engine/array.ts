/**
 * An opened array: devices identified by their md v1.2 superblocks (in any order, as
 * `mdadm --assemble` does), roles, events, the journal ring, and persistence of the superblocks
 * that carry journal_tail. Every check happens here, before any command writes a byte.
 */
import {randomBytes} from 'node:crypto'
import {uuidSeed} from './checksum.js'
import {type BlockDevice, type DeviceRef, type DeviceSource, alignedBuffer, isDeviceRef} from './device.js'
import {CorruptError, IoError, RefusedError, UsageError, R5Error} from './errors.js'
import {
  FEATURE_JOURNAL,
  ROLE_JOURNAL,
  ROLE_SPARE,
  SB_OFFSET_BYTES,
  SB_OFFSET_SECTORS,
  SB_MAGIC,
  SB_MAX_DEV,
  type Superblock,
  decodeSuperblock,
  encodeSuperblock,
  makeSuperblock,
  mdTime,
  type Problem,
} from './format/superblock.js'
import {formatUuid} from './format/names.js'
import {encodeMetaBlock} from './format/meta.js'
import {Geometry, validLayout, ALGORITHM, MIN_RAID_DISKS} from './geometry.js'
import {Ring, BLOCK_SECTORS} from './journal/ring.js'

export interface DeviceInfo {
  path: string
  dev: BlockDevice
  sb: Superblock
  /** role from dev_roles[dev_number]: slot number, or ROLE_JOURNAL / ROLE_SPARE / ROLE_FAULTY */
  role: number
}

export interface ProbeResult {
  path: string
  size: number
  sb: Superblock | null
  problems: Problem[]
  computedCsum: number
  error?: R5Error
}

export type {DeviceSource} from './device.js'

export function sourceName(s: DeviceSource): string {
  return s.name
}

/** Read and decode the superblock of one device without judging it (for `examine`). */
export function probeDevice(src: DeviceSource): ProbeResult {
  const path = sourceName(src)
  let dev: BlockDevice
  try {
    dev = isDeviceRef(src) ? src.open({writable: false}) : src
  } catch (error) {
    return {path, size: 0, sb: null, problems: [], computedCsum: 0, error: error as R5Error}
  }
  try {
    if (dev.size < SB_OFFSET_BYTES + 4096) {
      return {
        path,
        size: dev.size,
        sb: null,
        problems: [{code: 'short', message: `device is only ${dev.size} bytes: too small to hold an md superblock`}],
        computedCsum: 0,
      }
    }
    const buf = alignedBuffer(4096)
    dev.read(buf, SB_OFFSET_BYTES)
    const {sb, problems, computedCsum} = decodeSuperblock(buf)
    // A raid_disks beyond what dev_roles can describe sizes per-slot tables (examine's array
    // state string, the member table): the superblock cannot be described, let alone used.
    const absurd = sb.magic === SB_MAGIC ? problems.find(x => x.code === 'bad-raid-disks') : undefined
    if (absurd)
      return {
        path,
        size: dev.size,
        sb,
        problems,
        computedCsum,
        error: new CorruptError(`bad superblock: ${absurd.message}`, path, undefined, absurd.code),
      }
    return {path, size: dev.size, sb, problems, computedCsum}
  } finally {
    if (isDeviceRef(src)) dev.close()
  }
}

/** Why a superblock is unusable, as one line; null when it is fine. */
function sbVerdict(p: ProbeResult): R5Error | null {
  if (p.error) return p.error
  if (!p.sb || p.problems.length > 0) {
    const pr = p.problems.at(0)
    if (pr?.code === 'bad-magic')
      return new CorruptError(
        `no md superblock: ${pr.message}`,
        p.path,
        'is this an array member? `r5ctl examine` shows what is there',
        'no-superblock',
      )
    return new CorruptError(
      `bad superblock: ${pr?.message ?? 'unreadable'}`,
      p.path,
      'the superblock is damaged; leave this device out (degraded read) or restore it',
      pr?.code ?? 'bad-superblock',
    )
  }
  const sb = p.sb
  if (!(sb.featureMap & FEATURE_JOURNAL))
    return new RefusedError('array has no write journal (feature map lacks 0x200): not a journaled array', p.path, undefined, 'no-journal-feature')
  if (![4, 5, 6].includes(sb.level)) return new CorruptError(`unsupported raid level ${sb.level}`, p.path)
  // the geometry md itself would accept (raid5.c setup_conf), checked before anything is sized by it
  const level = sb.level as 4 | 5 | 6
  if (sb.raidDisks < MIN_RAID_DISKS[level] || sb.raidDisks > SB_MAX_DEV)
    return new CorruptError(`raid${level} with ${sb.raidDisks} raid disks is not a valid array`, p.path, undefined, 'bad-geometry')
  if (sb.chunkSize < BLOCK_SECTORS || (sb.chunkSize & (sb.chunkSize - 1)) !== 0)
    return new CorruptError(`chunk size ${sb.chunkSize} sectors is not a power-of-two multiple of 4 KiB`, p.path, undefined, 'bad-geometry')
  if (!validLayout(level, sb.layout)) return new CorruptError(`unsupported layout ${sb.layout} for raid${level}`, p.path, undefined, 'bad-geometry')
  const need = Number(sb.dataOffset + sb.dataSize) * 512
  if (need > p.size)
    return new CorruptError(
      `device is truncated: superblock says data ends at byte ${need}, device has ${p.size}`,
      p.path,
      'restore the full image',
      'truncated',
    )
  if (sb.dataOffset < SB_OFFSET_SECTORS + BigInt(BLOCK_SECTORS))
    return new CorruptError(
      `data_offset ${sb.dataOffset} overlaps the superblock (it ends at sector ${SB_OFFSET_SECTORS + BigInt(BLOCK_SECTORS)})`,
      p.path,
      undefined,
      'bad-data-offset',
    )
  const role = sb.devRoles[sb.devNumber]
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- dev_number is read from disk and may be past dev_roles
  if (role !== undefined && role < sb.raidDisks && sb.size > sb.dataSize)
    return new CorruptError(
      `member uses ${sb.size} sectors but its data area holds only ${sb.dataSize}`,
      p.path,
      'restore the full image',
      'bad-size',
    )
  return null
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

  constructor(devs: DeviceInfo[], sb: Superblock) {
    this.sb = sb
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
    // Normally events + 1. When an earlier update was cut short (the set is split between E and
    // E+1), finish it at E+1 instead: then any partial write of this update also leaves every
    // device within the one event md tolerates.
    const max = this.all().reduce((m, d) => (d.sb.events > m ? d.sb.events : m), 0n)
    const min = this.all().reduce((m, d) => (d.sb.events < m ? d.sb.events : m), max)
    const events = min < max ? max : max + 1n
    const now = mdTime(new Date())
    const bufs: [DeviceInfo, Uint8Array][] = []
    for (const d of this.all()) {
      const sb: Superblock = {...d.sb, events, utime: now}
      if (d.role === ROLE_JOURNAL) sb.journalTail = BigInt(journalTail)
      bufs.push([d, encodeSuperblock(sb)])
      d.sb = sb
    }
    for (const [d, b] of bufs) d.dev.write(b, SB_OFFSET_BYTES)
    for (const [d] of bufs) d.dev.flush()
  }
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
  // The set is defined by the majority uuid (ties: the first device), as mdadm picks the array
  // the named devices agree on; a device of another array is named.
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
  // The freshest superblock (highest events) describes the array; older ones are stale.
  let best = set[0].sb!
  for (const p of set) if (p.sb!.events > best.events) best = p.sb!
  const roleOf = (sb: Superblock) => best.devRoles[sb.devNumber] ?? ROLE_SPARE
  const devs: DeviceInfo[] = []
  const slots = new Map<number, string>()
  const odd = oddGeometry(set, best)
  if (odd) throw new CorruptError('superblock geometry disagrees with the rest of the set', odd.path, undefined, 'geometry-mismatch')
  for (const p of set) {
    const sb = p.sb!
    // md accepts a device one event behind the freshest (super_1_validate: ++ev1 < events):
    // a power cut between the superblock writes of one update leaves exactly that.
    if (sb.events + 1n < best.events)
      throw new RefusedError(
        `stale member: events ${sb.events}, the set is at ${best.events}`,
        p.path,
        'leave it out (a degraded read reconstructs it)',
        'stale-device',
      )
    const role = roleOf(sb)
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
  for (const p of set) {
    const src = sourceOf.get(p)!
    const dev = isDeviceRef(src) ? src.open({writable: opts.writable}) : src
    devs.push({path: p.path, dev, sb: p.sb!, role: roleOf(p.sb!)})
  }
  const arr = new MdArray(devs, best)
  const missing = arr.missingMembers
  const tolerable = best.level === 6 ? 2 : 1
  if (!opts.journalOnly && missing.length > 0 && (!opts.allowMissingMembers || missing.length > tolerable)) {
    arr.close()
    if (opts.allowMissingMembers)
      throw missingMembersError(setUuid, missing, `raid${best.level} can rebuild at most ${tolerable}`, 'name more members', 'refused')
    throw missingMembersError(setUuid, missing, 'this command needs every member')
  }
  // a device that was not given cannot be named: the message names the array instead
  if (!arr.journal && (opts.journalOnly || !opts.allowMissingJournal)) {
    arr.close()
    throw new RefusedError(
      `journal device missing for array ${setUuid}: pending journal records would be lost`,
      undefined,
      'name the journal device too (mdadm refuses to assemble without it as well)',
      'missing-journal',
    )
  }
  if (arr.journal && arr.ring!.sizeSectors < 2 * BLOCK_SECTORS) {
    arr.close()
    throw new CorruptError('journal data area too small', arr.journal.path)
  }
  if (arr.journal) {
    arr.ring!.payloadLimits = {
      arraySectors: Number(arr.geometry.arraySectors),
      memberSectors: Number(arr.geometry.usedMemberSectors),
      device: arr.journal.path,
    }
  }
  // a superblock is rewritten from its decoded fields: its name must encode back to the same bytes,
  // and its events counter must have room for every update the operation makes, each + 1 (a u64
  // cannot go past 2^64-1; the kernel's md_update_sb never lets it wrap either)
  if (opts.writable) {
    const updates = BigInt(typeof opts.superblockUpdates === 'function' ? opts.superblockUpdates(arr) : (opts.superblockUpdates ?? 1))
    if (best.events + updates > U64_MAX) {
      arr.close()
      throw new CorruptError(
        `events counter ${best.events} cannot be advanced ${updates} time(s): it is a 64-bit counter, at most ${U64_MAX}`,
        set.find(p => p.sb === best)!.path,
        'inspect it with `r5ctl examine`; nothing was written',
        'bad-events',
      )
    }
    for (const d of arr.all()) {
      const name = d.sb.setName
      if (Buffer.byteLength(name, 'utf8') > 32 || name.includes('\uFFFD')) {
        arr.close()
        throw new CorruptError(
          'set_name is not valid UTF-8: the superblock could not be rewritten as it is',
          d.path,
          'inspect it with `r5ctl examine`; nothing was written',
          'bad-name',
        )
      }
    }
  }
  // journal_tail must name a 4 KiB block inside the ring (the kernel's r5l_load_log checks the
  // same and would start a new, empty log; offline we refuse and write nothing)
  if (arr.journal) {
    const tail = arr.journal.sb.journalTail
    if (tail >= BigInt(arr.ring!.sizeSectors) || tail % BigInt(BLOCK_SECTORS) !== 0n) {
      arr.close()
      throw new CorruptError(
        `journal_tail ${tail} is not a 4 KiB-aligned sector inside the journal (size ${arr.ring!.sizeSectors} sectors)`,
        arr.journal.path,
        'inspect it with `r5ctl examine`; nothing was written',
        'bad-journal-tail',
      )
    }
  }
  return arr
}

// ---------------------------------------------------------------------------------------------
// create

export interface CreateOptions {
  level: number
  raidDevices: number
  chunkBytes: number
  layout?: number
  /** member size for files that do not exist yet */
  sizeBytes?: number
  journalSizeBytes?: number
  name?: string
  uuid?: Uint8Array
  force?: boolean
  members: DeviceSource[]
  journal: DeviceSource
}

export const DEFAULT_DATA_OFFSET_SECTORS = 2048

export interface CreatePlan {
  sbs: Superblock[]
  /** every superblock as it will be written, encoded while planning (a value that does not fit fails here) */
  sbBlocks: Uint8Array[]
  /** the journal's first (empty) meta block */
  firstMeta: Uint8Array
  paths: string[]
  sources: DeviceSource[]
  /** names of the members made by create, as sparse files (all zero, so parity is already consistent) */
  freshFiles: Set<string>
  geometry: Geometry
  firstSeq: bigint
}

/**
 * mdadm's defaults (Create.c default_layout): left-symmetric for RAID5/6, and 0 for RAID4, whose
 * layout the kernel ignores (raid5_compute_sector puts RAID4 parity on the last member).
 */
export function defaultLayout(level: number): number {
  return level === 4 ? 0 : ALGORITHM.LEFT_SYMMETRIC
}

/** an exact power of two (bit operations would see only the low 32 bits) */
function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n
}

/** The values create takes from its caller that end in a superblock field: each must fit it exactly. */
function checkCreateValues(o: CreateOptions): void {
  if (!isPowerOfTwo(o.chunkBytes) || o.chunkBytes < 4096)
    throw new UsageError(`--chunk must be a power of two of at least 4K (got ${o.chunkBytes} bytes)`)
  if (o.chunkBytes / 512 > 0xffffffff)
    throw new UsageError(`--chunk ${o.chunkBytes} bytes is ${o.chunkBytes / 512} sectors: more than the superblock's 32-bit chunk size holds`)
  for (const [flag, v] of [
    ['--size', o.sizeBytes],
    ['--journal-size', o.journalSizeBytes],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new UsageError(`${flag} ${v} is not a whole number of bytes below 2^53`)
  }
  const name = o.name ?? ''
  if (Buffer.byteLength(name, 'utf8') > 32)
    throw new UsageError(`--name is ${Buffer.byteLength(name, 'utf8')} bytes: the superblock's set_name holds 32`, 'choose a shorter name')
  if (name.includes('\0')) throw new UsageError('--name contains a NUL byte: set_name ends at the first one', 'choose a name without it')
}

/**
 * Validate everything and decide every byte create writes (superblocks, the first meta block);
 * writes nothing. Every refusal happens here.
 */
export function planCreate(o: CreateOptions): CreatePlan {
  if (![4, 5, 6].includes(o.level)) throw new UsageError(`--level must be 4, 5 or 6 for a journaled array (got ${o.level})`)
  const minDisks = o.level === 6 ? 4 : 3
  if (!Number.isInteger(o.raidDevices) || o.raidDevices < minDisks)
    throw new UsageError(`raid${o.level} needs at least ${minDisks} devices (got --raid-devices ${o.raidDevices})`)
  // one meta block must hold a full stripe's payloads: 20 bytes per data page plus the parity payload
  const maxData = Math.floor((4096 - 32 - (16 + 4 * (o.level === 6 ? 2 : 1))) / 20)
  if (o.raidDevices - (o.level === 6 ? 2 : 1) > maxData)
    throw new UsageError(
      `raid${o.level} with a journal supports at most ${maxData + (o.level === 6 ? 2 : 1)} devices (a stripe's journal record must fit one 4 KiB meta block)`,
    )
  if (o.members.length !== o.raidDevices)
    throw new UsageError(
      `--raid-devices ${o.raidDevices} but ${o.members.length} member device(s) given`,
      'pass the journal with --write-journal, not as a member',
    )
  checkCreateValues(o)
  const layout = o.layout ?? defaultLayout(o.level)
  if (!validLayout(o.level, layout)) throw new UsageError(`layout ${layout} is not valid for raid${o.level}`)
  const sources = [...o.members, o.journal]
  const all = sources.map(sourceName)
  refuseDuplicateSources(sources)
  const freshFiles = new Set<string>()
  const sizes: number[] = []
  for (const src of sources) {
    const p = sourceName(src)
    const isJournal = src === o.journal
    if (isDeviceRef(src) && !src.exists()) {
      const size = isJournal ? o.journalSizeBytes : o.sizeBytes
      if (!size) throw new UsageError(`${p} does not exist; give ${isJournal ? '--journal-size' : '--size'} to create it`)
      src.checkCreatable()
      sizes.push(size)
      freshFiles.add(p)
      continue
    }
    const pr = probeDevice(src)
    if (pr.error) throw pr.error
    if (pr.sb && pr.sb.magic === 0xa92b4efc && !o.force)
      throw new RefusedError(
        `already carries an md superblock (array ${formatUuid(pr.sb.setUuid)})`,
        p,
        'use --force to overwrite it',
        'would-overwrite',
      )
    sizes.push(pr.size)
  }
  const dataOffset = DEFAULT_DATA_OFFSET_SECTORS
  const chunkSectors = o.chunkBytes / 512
  const memberSectors = sizes.slice(0, o.raidDevices).map(s => Math.floor(s / 512) - dataOffset)
  const minMember = Math.min(...memberSectors)
  const size = Math.floor(minMember / chunkSectors) * chunkSectors
  if (size < chunkSectors) {
    const i = memberSectors.indexOf(minMember)
    throw new UsageError(`device too small: needs at least ${(dataOffset + chunkSectors) * 512} bytes`, undefined, all[i])
  }
  const jSectors = Math.floor(sizes[o.raidDevices] / 512) - dataOffset
  if (jSectors < 64 * BLOCK_SECTORS)
    throw new UsageError(`journal too small: needs at least ${(dataOffset + 64 * BLOCK_SECTORS) * 512} bytes`, undefined, all[o.raidDevices])
  let geometry: Geometry
  try {
    geometry = new Geometry(o.level as 4 | 5 | 6, o.raidDevices, chunkSectors, layout, BigInt(size))
  } catch (error) {
    throw new UsageError(`cannot lay out this array: ${(error as Error).message}`)
  }
  const setUuid = o.uuid ?? new Uint8Array(randomBytes(16))
  if (setUuid.length !== 16) throw new UsageError(`--uuid must be 16 bytes (got ${setUuid.length})`)
  const now = mdTime(new Date())
  const devRoles = [...Array.from({length: o.raidDevices}, (_, i) => i), ROLE_JOURNAL]
  const sbs = all.map((_p, i) =>
    makeSuperblock({
      featureMap: FEATURE_JOURNAL,
      setUuid,
      setName: o.name ?? 'r5ctl:0',
      ctime: now,
      utime: now,
      level: o.level,
      layout,
      size: BigInt(size),
      chunkSize: chunkSectors,
      raidDisks: o.raidDevices,
      dataOffset: BigInt(dataOffset),
      dataSize: BigInt(i === o.raidDevices ? jSectors : memberSectors[i]),
      superOffset: 8n,
      journalTail: 0n,
      devNumber: i,
      deviceUuid: new Uint8Array(randomBytes(16)),
      events: 0n,
      resyncOffset: 0xffffffffffffffffn,
      devRoles,
    }),
  )
  const sbBlocks = sbs.map((sb, i) => {
    try {
      return encodeSuperblock(sb)
    } catch (error) {
      throw new UsageError(`the superblock cannot be written: ${(error as Error).message}`, undefined, all[i])
    }
  })
  const firstSeq = BigInt(randomBytes(4).readUInt32LE(0))
  const firstMeta = encodeMetaBlock({seq: firstSeq, position: 0n, payloads: []}, uuidSeed(setUuid))
  return {sbs, sbBlocks, firstMeta, paths: all, sources, freshFiles, geometry, firstSeq}
}

/**
 * Open every device a create plan names, existing ones first, so that a device that cannot be
 * opened for writing stops the create before any file is made; the files made here are removed
 * again when a later one fails.
 */
function openForCreate(plan: CreatePlan, o: CreateOptions): BlockDevice[] {
  const devs: (BlockDevice | null)[] = plan.sources.map(() => null)
  const made: DeviceRef[] = []
  try {
    plan.sources.forEach((src, i) => {
      if (!isDeviceRef(src)) devs[i] = src
      else if (!plan.freshFiles.has(src.name)) devs[i] = src.open({writable: true})
    })
    plan.sources.forEach((src, i) => {
      if (!isDeviceRef(src) || !plan.freshFiles.has(src.name)) return
      try {
        src.create(i === o.raidDevices ? o.journalSizeBytes! : o.sizeBytes!)
      } catch (error) {
        throw new IoError(`cannot create: ${(error as Error).message}`, src.name)
      }
      made.push(src)
      devs[i] = src.open({writable: true})
    })
  } catch (error) {
    plan.sources.forEach((src, i) => {
      if (isDeviceRef(src)) devs[i]?.close()
    })
    for (const f of made) f.remove()
    throw error
  }
  return devs as BlockDevice[]
}

/**
 * Carry out a create plan: open (and create) every device, wipe old superblocks, (caller syncs
 * parity), then the journal's first empty meta block, then superblocks last.
 */
export function applyCreate(plan: CreatePlan, o: CreateOptions, syncParity: (arr: MdArray) => void): MdArray {
  const opened = openForCreate(plan, o)
  const devs: DeviceInfo[] = plan.sources.map((_, i) => ({
    path: plan.paths[i],
    dev: opened[i],
    sb: plan.sbs[i],
    role: i === o.raidDevices ? ROLE_JOURNAL : i,
  }))
  const arr = new MdArray(devs, plan.sbs[0])
  try {
    // An old superblock must not survive a failed create: wipe it before anything else is written.
    const zero = alignedBuffer(4096)
    for (const d of devs) if (!plan.freshFiles.has(d.path)) d.dev.write(zero, SB_OFFSET_BYTES)
    syncParity(arr)
    arr.ring!.write(plan.firstMeta, 0)
    for (const d of devs) d.dev.flush()
    devs.forEach((d, i) => d.dev.write(plan.sbBlocks[i], SB_OFFSET_BYTES))
    for (const d of devs) d.dev.flush()
  } catch (error) {
    arr.close()
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- anything can be thrown; its message may not be a string
    throw error instanceof R5Error ? error : new IoError(String((error as Error).message))
  }
  return arr
}
