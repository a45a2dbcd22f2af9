/**
 * One device as found: its md superblock read once and decoded (probeDevice, what `examine` shows),
 * and why it cannot be used in an array (sbVerdict): damage, a geometry md would not accept, or a
 * feature r5ctl does not handle, named.
 */
import {type BlockDevice, type DeviceSource, alignedBuffer, isDeviceRef} from './device.js'
import {CorruptError, RefusedError, type R5Error} from './errors.js'
import {formatUuid} from './format/names.js'
import {
  FEATURE_BITMAP_OFFSET,
  FEATURE_CLUSTERED,
  FEATURE_JOURNAL,
  FEATURE_MULTIPLE_PPLS,
  FEATURE_PPL,
  FEATURE_RECOVERY_OFFSET,
  FEATURE_RESHAPE_ACTIVE,
  ROLE_JOURNAL,
  SB_MAGIC,
  SB_MAX_DEV,
  type Superblock,
  type SuperblockVersion,
  decodeSuperblock,
  describeRole,
  superblockPlaces,
  type Problem,
} from './format/superblock.js'
import {validLayout, MIN_RAID_DISKS} from './geometry.js'
import {BLOCK_SECTORS} from './journal/ring.js'

export interface ProbeResult {
  path: string
  size: number
  sb: Superblock | null
  /** the minor version, from where the superblock was found (null: none found) */
  version: SuperblockVersion | null
  problems: Problem[]
  computedCsum: number
  error?: R5Error
}

export interface FoundSuperblock {
  sb: Superblock
  version: SuperblockVersion
  problems: Problem[]
  computedCsum: number
}

/**
 * The device's v1 superblock, wherever its minor version keeps it. As mdadm's load_super1 chooses:
 * of the places holding a whole one (magic, version and checksum good), the latest creation time;
 * with none whole, what is at the v1.2 place if it has the magic, else any place with it, so a
 * damaged superblock is still shown. Null when no place has the magic.
 */
export function findSuperblock(dev: BlockDevice): FoundSuperblock | null {
  const found: FoundSuperblock[] = []
  for (const {version, sector} of superblockPlaces(dev.size)) {
    const buf = alignedBuffer(4096)
    dev.read(buf, Number(sector) * 512)
    const d = decodeSuperblock(buf, sector)
    if (d.sb.magic === SB_MAGIC) found.push({...d, version})
  }
  const whole = found.filter(f => !f.problems.some(p => WHOLE_BREAKERS.has(p.code)))
  const best = whole.reduce<FoundSuperblock | null>((b, f) => (b === null || f.sb.ctime > b.sb.ctime ? f : b), null)
  return best ?? found.find(f => f.version === '1.2') ?? found.at(0) ?? null
}

/** What makes mdadm pass a place by (load_super1 returning 2): not a v1 superblock it can trust at all. */
const WHOLE_BREAKERS = new Set(['bad-magic', 'bad-version', 'bad-checksum', 'bad-super-offset', 'bad-max-dev', 'short'])

/**
 * An output file that keeps a whole md superblock is some array's device (the member a degraded
 * read leaves out, most likely): writing the array's bytes into it would destroy that member.
 */
export function refuseMemberAsOutput(out: DeviceSource): void {
  const p = probeDevice(out)
  const sb = p.sb?.magic === SB_MAGIC && !p.problems.some(x => WHOLE_BREAKERS.has(x.code)) ? p.sb : null
  if (!sb) return
  throw new RefusedError(
    `--output keeps an md superblock (${describeRole(sb)} of array ${formatUuid(sb.setUuid)}): reading into it would overwrite that device`,
    p.path,
    'name another file for --output (if it really is scratch, wipe its superblock first, e.g. `wipefs -a`)',
    'output-is-device',
  )
}

/** Read and decode the superblock of one device without judging it (for `examine`). */
export function probeDevice(src: DeviceSource): ProbeResult {
  const path = src.name
  let dev: BlockDevice
  try {
    dev = isDeviceRef(src) ? src.open({writable: false}) : src
  } catch (error) {
    return {path, size: 0, sb: null, version: null, problems: [], computedCsum: 0, error: error as R5Error}
  }
  try {
    if (dev.size < 24 * 512) {
      return {
        path,
        size: dev.size,
        sb: null,
        version: null,
        problems: [{code: 'short', message: `device is only ${dev.size} bytes: too small to hold an md superblock`}],
        computedCsum: 0,
      }
    }
    const found = findSuperblock(dev)
    if (!found) {
      const buf = alignedBuffer(4096)
      dev.read(buf, 4096)
      const {sb, problems, computedCsum} = decodeSuperblock(buf)
      return {path, size: dev.size, sb, version: null, problems, computedCsum}
    }
    const {sb, problems, computedCsum, version} = found
    // A raid_disks beyond what dev_roles can describe sizes per-slot tables (examine's array
    // state string, the member table): the superblock cannot be described, let alone used.
    const absurd = sb.magic === SB_MAGIC ? problems.find(x => x.code === 'bad-raid-disks') : undefined
    if (absurd)
      return {
        path,
        size: dev.size,
        sb,
        version,
        problems,
        computedCsum,
        error: new CorruptError(`bad superblock: ${absurd.message}`, path, undefined, absurd.code),
      }
    return {path, size: dev.size, sb, version, problems, computedCsum}
  } finally {
    if (isDeviceRef(src)) dev.close()
  }
}

/**
 * What a superblock asks for that r5ctl does not do, by name: md keeps a write-intent bitmap, a
 * partial parity log or a cluster apart from a journal, a reshape gives the array two geometries
 * until it ends, and a member being rebuilt is in sync only up to its recovery_offset.
 */
function unhandledFeature(sb: Superblock): {message: string; hint: string; code: string} | null {
  const f = sb.featureMap
  if (f & FEATURE_BITMAP_OFFSET)
    return {
      message: 'has a write-intent bitmap (feature 0x1): md never runs one beside a journal, and r5ctl does not keep one',
      hint: 'examine the set with `mdadm --examine`; nothing was written',
      code: 'bitmap',
    }
  if (f & (FEATURE_PPL | FEATURE_MULTIPLE_PPLS))
    return {
      message: 'uses a partial parity log (PPL, feature 0x400/0x800), which md never runs beside a journal',
      hint: 'examine the set with `mdadm --examine`; nothing was written',
      code: 'ppl',
    }
  if (f & FEATURE_CLUSTERED)
    return {
      message: 'is a clustered array (feature 0x100): r5ctl does not take cluster locks',
      hint: 'stop the array on every node and use mdadm; nothing was written',
      code: 'clustered',
    }
  if (f & FEATURE_RESHAPE_ACTIVE)
    return {
      message: `a reshape is in progress (feature 0x4, at sector ${sb.reshapePosition}): the array has two geometries until it ends`,
      hint: 'let the kernel finish the reshape (mdadm --assemble); nothing was written',
      code: 'reshape',
    }
  if (f & FEATURE_RECOVERY_OFFSET && sb.devRoles[sb.devNumber] !== ROLE_JOURNAL && sb.journalTail < sb.size)
    return {
      message: `member is still being rebuilt: in sync only up to sector ${sb.journalTail} of ${sb.size} (recovery_offset)`,
      hint: 'leave it out: r5ctl reads and recovers the array degraded without it, and `r5ctl rebuild --resume` finishes it; nothing was written',
      code: 'recovering',
    }
  return null
}

/**
 * The data area must leave the superblock's 4 KiB block alone: after it for v1.1 and v1.2, before it
 * for v1.0 (md checks the same, super_1_load, with the superblock's own length).
 */
function dataOverlapsSuperblock(sb: Superblock): string | null {
  const sbEnd = sb.superOffset + BigInt(BLOCK_SECTORS)
  if (sb.superOffset < sb.dataOffset)
    return sb.dataOffset < sbEnd ? `data_offset ${sb.dataOffset} overlaps the superblock (it ends at sector ${sbEnd})` : null
  const dataEnd = sb.dataOffset + sb.dataSize
  return dataEnd > sb.superOffset
    ? `the data area (sectors ${sb.dataOffset} to ${dataEnd}) overlaps the superblock at sector ${sb.superOffset}`
    : null
}

/** A set whose freshest superblock lacks the journal feature, refused by commands that need a journal. */
export function noJournalFeature(path: string): R5Error {
  return new RefusedError(
    'array has no write journal (feature map lacks 0x200): not a journaled array',
    path,
    'give it one with `r5ctl journal add NEW DEV...`',
    'no-journal-feature',
  )
}

/**
 * Raid disks a journaled array may have: a stripe's record (32-byte meta header, then per disk a
 * 16-byte payload header and a 4-byte checksum) must fit one 4 KiB meta block (raid5-cache.c r5l_init_log).
 */
const JOURNAL_MAX_DISKS = Math.floor((4096 - 32) / (16 + 4))

/**
 * Why a superblock is unusable, as one line; null when it is fine. Whether the array has a journal
 * is the freshest superblock's to say (openArray), as md takes the feature from it.
 */
export function sbVerdict(p: ProbeResult): R5Error | null {
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
  const unhandled = unhandledFeature(sb)
  if (unhandled) return new RefusedError(unhandled.message, p.path, unhandled.hint, unhandled.code)
  if (![4, 5, 6].includes(sb.level)) return new CorruptError(`unsupported raid level ${sb.level}`, p.path)
  // the geometry md itself would accept (raid5.c setup_conf), checked before anything is sized by it
  const level = sb.level as 4 | 5 | 6
  if (sb.raidDisks < MIN_RAID_DISKS[level] || sb.raidDisks > SB_MAX_DEV)
    return new CorruptError(`raid${level} with ${sb.raidDisks} raid disks is not a valid array`, p.path, undefined, 'bad-geometry')
  if (sb.featureMap & FEATURE_JOURNAL && sb.raidDisks > JOURNAL_MAX_DISKS)
    return new RefusedError(
      `raid${level} with ${sb.raidDisks} raid disks and a journal: one meta block names at most ${JOURNAL_MAX_DISKS} disks' pages, and md refuses it too (r5l_init_log)`,
      p.path,
      'nothing was written',
      'journal-too-many-disks',
    )
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
  const overlap = dataOverlapsSuperblock(sb)
  if (overlap) return new CorruptError(overlap, p.path, undefined, 'bad-data-offset')
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
