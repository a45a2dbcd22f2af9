/**
 * md v1.x superblock codec (struct mdp_superblock_1; include/uapi/linux/raid/md_p.h, mdadm super1.c),
 * and where each minor version keeps it.
 *
 * All integers little-endian. The block is the same in every v1 minor version; only its place on the
 * device differs (super_offset records it): v1.2 4 KiB from the start (sector 8), v1.1 at the start,
 * v1.0 at the end (superblockPlaces). Layout:
 *
 *   off  size  field                 notes
 *   ---  ----  --------------------  ------------------------------------------------------------
 *     0     4  magic                 0xa92b4efc
 *     4     4  major_version         1
 *     8     4  feature_map           0x200 = MD_FEATURE_JOURNAL
 *    12     4  pad0                  0
 *    16    16  set_uuid
 *    32    32  set_name              NUL-padded, not necessarily NUL-terminated
 *    64     8  ctime                 low 40 bits seconds, high 24 bits microseconds
 *    72     4  level                 signed (-1 linear, -4 multipath); 4, 5, 6 here
 *    76     4  layout
 *    80     8  size                  sectors of each member used by the array
 *    88     4  chunksize             sectors
 *    92     4  raid_disks
 *    96     4  bitmap_offset         signed sectors from the superblock (mdadm also overlays
 *                                    ppl.offset s16 / ppl.size u16 here)
 *   100     4  new_level             \
 *   104     8  reshape_position       |  reshape fields, meaningful only with
 *   112     4  delta_disks            |  MD_FEATURE_RESHAPE_ACTIVE (0x4)
 *   116     4  new_layout             |
 *   120     4  new_chunk              |
 *   124     4  new_offset            /   signed
 *   128     8  data_offset           sectors from the start of the device
 *   136     8  data_size             sectors usable for data
 *   144     8  super_offset          sectors; 8 for v1.2
 *   152     8  recovery_offset       union: journal_tail on the journal device (sectors from its
 *                                    data_offset)
 *   160     4  dev_number            index of this device in dev_roles (not its role)
 *   164     4  cnt_corrected_read
 *   168    16  device_uuid
 *   184     1  devflags              1 WriteMostly, 2 FailFast
 *   185     1  bblog_shift
 *   186     2  bblog_size
 *   188     4  bblog_offset          signed
 *   192     8  utime                 as ctime
 *   200     8  events
 *   208     8  resync_offset         ~0 = clean
 *   216     4  sb_csum               see checksum.ts sbCsum
 *   220     4  max_dev               number of dev_roles entries
 *   224    32  pad3                  0
 *   256  2*max_dev  dev_roles[]      u16: 0..raid_disks-1 active slot, 0xffff spare,
 *                                    0xfffe faulty, 0xfffd journal
 *
 * The kernel reads the superblock as one 4 KiB block and rejects max_dev > (4096-256)/2 = 1920
 * (super_1_load); mdadm's MAX_DEVS is the same number. ("1K allows 384 devices" in md_p.h is the
 * historical 1 KiB size, not a limit.)
 */
import {sbCsum} from '../checksum.js'

export const SB_MAGIC = 0xa92b4efc
export const SB_OFFSET_BYTES = 4096
/** super_offset of a v1.2 superblock, in sectors. */
export const SB_OFFSET_SECTORS = 8n

export type SuperblockVersion = '1.0' | '1.1' | '1.2'

/**
 * Where each v1 minor version keeps its superblock on a device of this many bytes, in the order
 * mdadm's load_super1 tries them (a tie in creation time goes to the first). v1.0: at least 8 KiB
 * and less than 12 KiB before the end, 4 KiB aligned (super_1_load). Places that do not fit are left out.
 */
export function superblockPlaces(deviceBytes: number): {version: SuperblockVersion; sector: bigint}[] {
  const sectors = BigInt(Math.floor(deviceBytes / 512))
  const out: {version: SuperblockVersion; sector: bigint}[] = []
  if (sectors >= 24n) out.push({version: '1.0', sector: (sectors - 16n) & ~7n})
  if (sectors >= 8n) out.push({version: '1.1', sector: 0n})
  if (sectors >= 16n) out.push({version: '1.2', sector: SB_OFFSET_SECTORS})
  return out
}

/** The minor version a superblock found at `sector` belongs to. */
export function versionAt(sector: bigint): SuperblockVersion {
  return sector === SB_OFFSET_SECTORS ? '1.2' : sector === 0n ? '1.1' : '1.0'
}
export const SB_BLOCK_SIZE = 4096
export const SB_HEADER_SIZE = 256
/** Largest max_dev whose roles still fit in the 4 KiB superblock block. */
export const SB_MAX_DEV = (SB_BLOCK_SIZE - SB_HEADER_SIZE) / 2

export const FEATURE_BITMAP_OFFSET = 0x1
export const FEATURE_RECOVERY_OFFSET = 0x2
export const FEATURE_RESHAPE_ACTIVE = 0x4
export const FEATURE_BAD_BLOCKS = 0x8
export const FEATURE_CLUSTERED = 0x100
export const FEATURE_JOURNAL = 0x200
export const FEATURE_PPL = 0x400
export const FEATURE_MULTIPLE_PPLS = 0x800
/** MD_FEATURE_ALL of Linux 6.1 (bits 0..12); super_1_load refuses any other bit. */
export const FEATURE_ALL_6_1 = 0x1fff

export const ROLE_SPARE = 0xffff
export const ROLE_FAULTY = 0xfffe
export const ROLE_JOURNAL = 0xfffd

export interface Superblock {
  magic: number
  majorVersion: number
  featureMap: number
  setUuid: Uint8Array // 16 bytes
  setName: string
  ctime: bigint // raw u64: low 40 bits seconds, high 24 bits microseconds
  level: number
  layout: number
  size: bigint // sectors
  chunkSize: number // sectors
  raidDisks: number
  bitmapOffset: number // signed
  newLevel: number
  reshapePosition: bigint
  deltaDisks: number // signed
  newLayout: number
  newChunk: number
  newOffset: number // signed
  dataOffset: bigint
  dataSize: bigint
  superOffset: bigint
  journalTail: bigint // = recovery_offset (union)
  devNumber: number
  cntCorrectedRead: number
  deviceUuid: Uint8Array // 16 bytes
  devflags: number
  bblogShift: number
  bblogSize: number
  bblogOffset: number // signed
  utime: bigint
  events: bigint
  resyncOffset: bigint
  sbCsum: number
  maxDev: number
  devRoles: number[]
}

export interface Problem {
  code: string
  message: string
}

const hex8 = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0')

// ---------------------------------------------------------------------------------------------
// Time

const SEC_MASK = (1n << 40n) - 1n

/** Date -> md time word (low 40 bits seconds, high 24 bits microseconds). */
/** What a superblock says its device is, for messages: "the journal", "member N", or "a device" (spare, faulty). */
export function describeRole(sb: Superblock): string {
  const role = sb.devRoles.at(sb.devNumber)
  if (role === ROLE_JOURNAL) return 'the journal'
  return role !== undefined && role < sb.raidDisks ? `member ${role}` : 'a device'
}

/**
 * Date -> md time word, whole seconds only. md_p.h allows microseconds in the top 24 bits, but
 * mdadm writes 0 there and Linux 6.1 reads the whole u64 as seconds (super_1_validate:
 * mddev->ctime = le64_to_cpu(sb->ctime)), so microseconds would show up in `mdadm --detail` as a
 * creation time in 2106. Found by the kernel interop suite.
 */
export function mdTime(date: Date): bigint {
  const ms = date.getTime()
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`mdTime: unrepresentable date ${String(date)}`)
  return BigInt(Math.floor(ms / 1000)) & SEC_MASK
}

/** md time word -> Date (millisecond precision; mdadm shows only the seconds). */
export function mdTimeToDate(v: bigint): Date {
  const sec = Number(v & SEC_MASK)
  const usec = Number((v >> 40n) & 0xffffffn)
  return new Date(sec * 1000 + Math.floor(usec / 1000))
}

// ---------------------------------------------------------------------------------------------
// Decode

/**
 * Decode a superblock block, the 4096 bytes read at sector `at` (v1.2's place unless said). Never throws: a short
 * buffer is zero-padded and reported as 'short'. When the magic is wrong the block is not a
 * superblock, so only 'bad-magic' is reported (the other checks would be noise), though the fields
 * are still decoded for inspection.
 */
export function decodeSuperblock(block: Uint8Array, at: bigint = SB_OFFSET_SECTORS): {sb: Superblock; problems: Problem[]; computedCsum: number} {
  const problems: Problem[] = []
  let buf: Buffer
  if (block.length >= SB_BLOCK_SIZE) {
    buf = Buffer.from(block.buffer, block.byteOffset, SB_BLOCK_SIZE)
  } else {
    buf = Buffer.alloc(SB_BLOCK_SIZE)
    buf.set(block)
    if (block.length < SB_HEADER_SIZE) {
      problems.push({code: 'short', message: `short superblock: ${block.length} bytes, header needs ${SB_HEADER_SIZE}`})
    }
  }

  const maxDevRaw = buf.readUInt32LE(220)
  // Roles beyond the 4 KiB block cannot exist; decode only what fits so garbage cannot blow up.
  const maxDev = Math.min(maxDevRaw, SB_MAX_DEV)
  const devRoles: number[] = new Array<number>(maxDev)
  for (let i = 0; i < maxDev; i++) devRoles[i] = buf.readUInt16LE(SB_HEADER_SIZE + 2 * i)

  const sb = readFields(buf, devRoles)

  const computedCsum = sbCsum(buf, maxDev)

  problems.push(...superblockProblems(sb, block.length, computedCsum, at))
  return {sb, problems, computedCsum}
}

/** The fields of a v1.2 superblock block, as they are (roles already read). */
function readFields(buf: Buffer, devRoles: number[]): Superblock {
  return {
    magic: buf.readUInt32LE(0),
    majorVersion: buf.readUInt32LE(4),
    featureMap: buf.readUInt32LE(8),
    setUuid: Uint8Array.from(buf.subarray(16, 32)),
    setName: decodeName(buf.subarray(32, 64)),
    ctime: buf.readBigUInt64LE(64),
    level: buf.readInt32LE(72),
    layout: buf.readUInt32LE(76),
    size: buf.readBigUInt64LE(80),
    chunkSize: buf.readUInt32LE(88),
    raidDisks: buf.readUInt32LE(92),
    bitmapOffset: buf.readInt32LE(96),
    newLevel: buf.readInt32LE(100),
    reshapePosition: buf.readBigUInt64LE(104),
    deltaDisks: buf.readInt32LE(112),
    newLayout: buf.readUInt32LE(116),
    newChunk: buf.readUInt32LE(120),
    newOffset: buf.readInt32LE(124),
    dataOffset: buf.readBigUInt64LE(128),
    dataSize: buf.readBigUInt64LE(136),
    superOffset: buf.readBigUInt64LE(144),
    journalTail: buf.readBigUInt64LE(152),
    devNumber: buf.readUInt32LE(160),
    cntCorrectedRead: buf.readUInt32LE(164),
    deviceUuid: Uint8Array.from(buf.subarray(168, 184)),
    devflags: buf.readUInt8(184),
    bblogShift: buf.readUInt8(185),
    bblogSize: buf.readUInt16LE(186),
    bblogOffset: buf.readInt32LE(188),
    utime: buf.readBigUInt64LE(192),
    events: buf.readBigUInt64LE(200),
    resyncOffset: buf.readBigUInt64LE(208),
    sbCsum: buf.readUInt32LE(216),
    maxDev: buf.readUInt32LE(220),
    devRoles,
  }
}

/**
 * What is wrong with a decoded superblock, in a fixed order (the one its errors are reported in): with a bad magic
 * the block is not a superblock and nothing else is reported. `length` is the bytes the block had.
 */
function superblockProblems(sb: Superblock, length: number, computedCsum: number, at: bigint): Problem[] {
  const maxDev = Math.min(sb.maxDev, SB_MAX_DEV)
  const problems: Problem[] = []
  if (sb.magic !== SB_MAGIC) {
    return [{code: 'bad-magic', message: `bad magic ${hex8(sb.magic)} (expected ${hex8(SB_MAGIC)})`}]
  }
  if (length >= SB_HEADER_SIZE && length < SB_HEADER_SIZE + 2 * maxDev) {
    problems.push({code: 'short', message: `short superblock: ${length} bytes, ${maxDev} roles need ${SB_HEADER_SIZE + 2 * maxDev}`})
  }
  if (sb.majorVersion !== 1) {
    problems.push({code: 'bad-version', message: `major version ${sb.majorVersion} (expected 1)`})
  }
  if (sb.maxDev > SB_MAX_DEV) {
    problems.push({code: 'bad-max-dev', message: `max_dev ${sb.maxDev} exceeds ${SB_MAX_DEV} (roles would overflow the 4096-byte superblock)`})
  }
  if (sb.raidDisks > SB_MAX_DEV) {
    // dev_roles has room for SB_MAX_DEV devices, so no real array has more raid disks; the value
    // also sizes per-slot tables and strings, so a garbage one must not get further than here.
    problems.push({code: 'bad-raid-disks', message: `raid_disks ${sb.raidDisks} exceeds ${SB_MAX_DEV} (more slots than a superblock has roles for)`})
  }
  // md takes a superblock only where its super_offset says it is (super_1_load)
  if (sb.superOffset !== at) {
    problems.push({code: 'bad-super-offset', message: `super_offset ${sb.superOffset}, but the superblock is at sector ${at}`})
  }
  if ((sb.featureMap & ~FEATURE_ALL_6_1) !== 0) {
    problems.push({
      code: 'bad-features',
      message: `feature_map ${hex8(sb.featureMap)} has bits Linux 6.1 does not know (${hex8(sb.featureMap & ~FEATURE_ALL_6_1)})`,
    })
  }
  // With an oversized max_dev the checksum above covers the clamped range; the kernel would have
  // rejected the block before summing, so a mismatch there is secondary to 'bad-max-dev'.
  if (computedCsum !== sb.sbCsum) {
    problems.push({code: 'bad-checksum', message: `checksum expected ${hex8(computedCsum)} got ${hex8(sb.sbCsum)}`})
  }
  return problems
}

function decodeName(b: Uint8Array): string {
  const end = b.indexOf(0)
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8')
}

// ---------------------------------------------------------------------------------------------
// Encode

function writeU32or32(buf: Buffer, v: number, off: number): void {
  // Fields that C declares __le32 but md treats as signed accept either range.
  if (v < 0) buf.writeInt32LE(v, off)
  else buf.writeUInt32LE(v, off)
}

/**
 * Encode into a fresh 4096-byte block: header, dev_roles[maxDev], zeros after. sb_csum is computed
 * (the input's sbCsum is ignored). Roles missing from devRoles (devRoles.length < maxDev) are
 * written as 0xffff, as mdadm leaves unused slots. Throws RangeError on values that do not fit.
 */
export function encodeSuperblock(sb: Superblock): Buffer {
  if (sb.setUuid.length !== 16) throw new RangeError(`setUuid must be 16 bytes, got ${sb.setUuid.length}`)
  if (sb.deviceUuid.length !== 16) throw new RangeError(`deviceUuid must be 16 bytes, got ${sb.deviceUuid.length}`)
  if (!Number.isInteger(sb.maxDev) || sb.maxDev < 0 || sb.maxDev > SB_MAX_DEV)
    throw new RangeError(`maxDev ${sb.maxDev} out of range 0..${SB_MAX_DEV}`)
  if (sb.devRoles.length > sb.maxDev) throw new RangeError(`devRoles has ${sb.devRoles.length} entries but maxDev is ${sb.maxDev}`)
  const name = Buffer.from(sb.setName, 'utf8')
  if (name.length > 32) throw new RangeError(`setName is ${name.length} bytes (max 32)`)

  const buf = Buffer.alloc(SB_BLOCK_SIZE)
  buf.writeUInt32LE(sb.magic, 0)
  buf.writeUInt32LE(sb.majorVersion, 4)
  buf.writeUInt32LE(sb.featureMap, 8)
  buf.set(sb.setUuid, 16)
  buf.set(name, 32)
  buf.writeBigUInt64LE(sb.ctime, 64)
  writeU32or32(buf, sb.level, 72)
  buf.writeUInt32LE(sb.layout, 76)
  buf.writeBigUInt64LE(sb.size, 80)
  buf.writeUInt32LE(sb.chunkSize, 88)
  buf.writeUInt32LE(sb.raidDisks, 92)
  writeU32or32(buf, sb.bitmapOffset, 96)
  writeU32or32(buf, sb.newLevel, 100)
  buf.writeBigUInt64LE(sb.reshapePosition, 104)
  writeU32or32(buf, sb.deltaDisks, 112)
  buf.writeUInt32LE(sb.newLayout, 116)
  buf.writeUInt32LE(sb.newChunk, 120)
  writeU32or32(buf, sb.newOffset, 124)
  buf.writeBigUInt64LE(sb.dataOffset, 128)
  buf.writeBigUInt64LE(sb.dataSize, 136)
  buf.writeBigUInt64LE(sb.superOffset, 144)
  buf.writeBigUInt64LE(sb.journalTail, 152)
  buf.writeUInt32LE(sb.devNumber, 160)
  buf.writeUInt32LE(sb.cntCorrectedRead, 164)
  buf.set(sb.deviceUuid, 168)
  buf.writeUInt8(sb.devflags, 184)
  buf.writeUInt8(sb.bblogShift, 185)
  buf.writeUInt16LE(sb.bblogSize, 186)
  writeU32or32(buf, sb.bblogOffset, 188)
  buf.writeBigUInt64LE(sb.utime, 192)
  buf.writeBigUInt64LE(sb.events, 200)
  buf.writeBigUInt64LE(sb.resyncOffset, 208)
  buf.writeUInt32LE(sb.maxDev, 220)
  for (let i = 0; i < sb.maxDev; i++) {
    buf.writeUInt16LE(i < sb.devRoles.length ? sb.devRoles[i] : ROLE_SPARE, SB_HEADER_SIZE + 2 * i)
  }
  buf.writeUInt32LE(sbCsum(buf, sb.maxDev), 216)
  return buf
}

type Required = Pick<Superblock, 'setUuid' | 'level' | 'raidDisks' | 'devNumber' | 'devRoles'>

/**
 * A Superblock with defaults for everything not given: magic, major version 1, super_offset 8
 * (v1.2), resync_offset ~0 (clean), maxDev = devRoles.length, zero elsewhere. Byte arrays and the
 * roles list are copied so the result does not alias the caller's.
 */
export function makeSuperblock(fields: Partial<Superblock> & Required): Superblock {
  const defaults: Omit<Superblock, keyof Required> = {
    magic: SB_MAGIC,
    majorVersion: 1,
    featureMap: 0,
    setName: '',
    ctime: 0n,
    layout: 0,
    size: 0n,
    chunkSize: 0,
    bitmapOffset: 0,
    newLevel: 0,
    reshapePosition: 0n,
    deltaDisks: 0,
    newLayout: 0,
    newChunk: 0,
    newOffset: 0,
    dataOffset: 0n,
    dataSize: 0n,
    superOffset: SB_OFFSET_SECTORS,
    journalTail: 0n,
    cntCorrectedRead: 0,
    deviceUuid: new Uint8Array(16),
    devflags: 0,
    bblogShift: 0,
    bblogSize: 0,
    bblogOffset: 0,
    utime: 0n,
    events: 0n,
    resyncOffset: 0xffffffffffffffffn,
    sbCsum: 0,
    maxDev: fields.devRoles.length,
  }
  const sb: Superblock = {...defaults, ...fields}
  sb.setUuid = Uint8Array.from(sb.setUuid)
  sb.deviceUuid = Uint8Array.from(sb.deviceUuid)
  sb.devRoles = [...sb.devRoles]
  return sb
}

/**
 * What every device of a new array shares (create, detect --write): a fresh creation time (it must
 * win over any superblock left at another version's place), the geometry, the slots in order and
 * the journal's role last, clean. The caller sets what differs per device: devNumber, deviceUuid,
 * dataOffset, dataSize, journalTail.
 */
export function newArraySuperblock(a: {
  setUuid: Uint8Array
  setName: string
  level: number
  layout: number
  size: bigint
  chunkSize: number
  raidDisks: number
  journal: boolean
  events: bigint
}): Superblock {
  const now = mdTime(new Date())
  return makeSuperblock({
    featureMap: a.journal ? FEATURE_JOURNAL : 0,
    setUuid: a.setUuid,
    setName: a.setName,
    ctime: now,
    utime: now,
    level: a.level,
    layout: a.layout,
    size: a.size,
    chunkSize: a.chunkSize,
    raidDisks: a.raidDisks,
    devNumber: 0,
    events: a.events,
    devRoles: [...Array.from({length: a.raidDisks}, (_, i) => i), ...(a.journal ? [ROLE_JOURNAL] : [])],
  })
}
