/**
 * create: the whole array planned and validated (planCreate: every superblock encoded, every device
 * checked), then written (applyCreate), parity synced or zero-filled.
 */
import type {EngineOptions} from '../compute.js'
import {randomBytes} from 'node:crypto'
import {uuidSeed} from '../checksum.js'
import {MdArray, refuseDuplicateSources, sourceName, type DeviceInfo} from '../array.js'
import {probeDevice} from '../probe.js'
import {type BlockDevice, type DeviceRef, type DeviceSource, alignedBuffer, isDeviceRef} from '../device.js'
import {IoError, RefusedError, UsageError, R5Error} from '../errors.js'
import {ROLE_JOURNAL, SB_OFFSET_BYTES, type Superblock, encodeSuperblock, newArraySuperblock} from '../format/superblock.js'
import {encodeMetaBlock} from '../format/meta.js'
import {Geometry, validLayout, ALGORITHM} from '../geometry.js'
import {BLOCK_SECTORS} from '../journal/ring.js'
import {syncParity} from '../io.js'
import {arraySizeBytes, type Progress} from '../rows.js'
import {formatUuid, layoutName} from '../format/names.js'

export interface CreateResult {
  arrayUuid: string
  level: number
  /** null for RAID4, whose layout md ignores (mdadm prints none) */
  layout: string | null
  raidDevices: number
  chunkBytes: number
  memberDataSectors: number
  arraySizeBytes: number
  /** null: an array without a journal (create without --write-journal) */
  journal: string | null
  journalSizeBytes: number
  firstSeq: string | null
  parity: 'synced' | 'zero-filled' | 'assumed-clean'
  devices: {device: string; role: string}[]
}

export function createArray(o: CreateOptions & {assumeClean?: boolean}, progress?: Progress): CreateResult {
  const plan = planCreate(o)
  let parity: CreateResult['parity'] = 'assumed-clean'
  const arr = applyCreate(plan, o, a => {
    if (o.assumeClean) return
    // freshly created sparse files read as zeros, whose parity is zero: already consistent
    if (plan.paths.slice(0, o.raidDevices).every(m => plan.freshFiles.has(m))) {
      parity = 'zero-filled'
      return
    }
    syncParity(a, progress)
    parity = 'synced'
  })
  const sb = plan.sbs[0]
  const result: CreateResult = {
    arrayUuid: formatUuid(sb.setUuid),
    level: sb.level,
    layout: sb.level === 4 ? null : layoutName(sb.level, sb.layout),
    raidDevices: sb.raidDisks,
    chunkBytes: sb.chunkSize * 512,
    memberDataSectors: Number(sb.size),
    arraySizeBytes: arraySizeBytes(arr),
    journal: plan.firstMeta ? plan.paths[o.raidDevices] : null,
    journalSizeBytes: arr.ring?.sizeBytes ?? 0,
    firstSeq: plan.firstMeta ? plan.firstSeq.toString() : null,
    parity,
    devices: plan.paths.map((p, i) => ({device: p, role: i === o.raidDevices ? 'journal' : `active ${i}`})),
  }
  arr.close()
  return result
}

export interface CreateOptions extends EngineOptions {
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
  /** absent: an array without a journal, which `journal add` can give one later */
  journal?: DeviceSource
}

export const DEFAULT_DATA_OFFSET_SECTORS = 2048

export interface CreatePlan {
  sbs: Superblock[]
  /** every superblock as it will be written, encoded while planning (a value that does not fit fails here) */
  sbBlocks: Uint8Array[]
  /** the journal's first (empty) meta block; null without a journal */
  firstMeta: Uint8Array | null
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
  checkShape(o)
  checkCreateValues(o)
  const layout = o.layout ?? defaultLayout(o.level)
  if (!validLayout(o.level, layout)) throw new UsageError(`layout ${layout} is not valid for raid${o.level}`)
  const sources = o.journal ? [...o.members, o.journal] : o.members
  const all = sources.map(sourceName)
  refuseDuplicateSources(sources)
  const {sizes, freshFiles} = deviceSizes(o, sources)
  const dataOffset = DEFAULT_DATA_OFFSET_SECTORS
  const chunkSectors = o.chunkBytes / 512
  const memberSectors = sizes.slice(0, o.raidDevices).map(s => Math.floor(s / 512) - dataOffset)
  const minMember = Math.min(...memberSectors)
  const size = Math.floor(minMember / chunkSectors) * chunkSectors
  if (size < chunkSectors) {
    const i = memberSectors.indexOf(minMember)
    throw new UsageError(`device too small: needs at least ${(dataOffset + chunkSectors) * 512} bytes`, undefined, all[i])
  }
  const jSectors = o.journal ? Math.floor(sizes[o.raidDevices] / 512) - dataOffset : 0
  if (o.journal && jSectors < 64 * BLOCK_SECTORS)
    throw new UsageError(`journal too small: needs at least ${(dataOffset + 64 * BLOCK_SECTORS) * 512} bytes`, undefined, all[o.raidDevices])
  let geometry: Geometry
  try {
    geometry = new Geometry(o.level as 4 | 5 | 6, o.raidDevices, chunkSectors, layout, BigInt(size))
  } catch (error) {
    throw new UsageError(`cannot lay out this array: ${(error as Error).message}`)
  }
  const setUuid = o.uuid ?? new Uint8Array(randomBytes(16))
  if (setUuid.length !== 16) throw new UsageError(`--uuid must be 16 bytes (got ${setUuid.length})`)
  const dataSectors = o.journal ? [...memberSectors, jSectors] : memberSectors
  const shared = arraySuperblock(o, geometry, setUuid, dataOffset)
  const sbs = dataSectors.map((sectors, i) => ({...shared, devNumber: i, dataSize: BigInt(sectors), deviceUuid: new Uint8Array(randomBytes(16))}))
  const sbBlocks = sbs.map((sb, i) => {
    try {
      return encodeSuperblock(sb)
    } catch (error) {
      throw new UsageError(`the superblock cannot be written: ${(error as Error).message}`, undefined, all[i])
    }
  })
  const firstSeq = BigInt(randomBytes(4).readUInt32LE(0))
  const firstMeta = o.journal ? encodeMetaBlock({seq: firstSeq, position: 0n, payloads: []}, uuidSeed(setUuid)) : null
  return {sbs, sbBlocks, firstMeta, paths: all, sources, freshFiles, geometry, firstSeq}
}

/** Level, device count and members the journal format can hold. */
function checkShape(o: CreateOptions): void {
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
}

/**
 * Every device's size: made by create (its --size / --journal-size), or probed, refusing one that
 * holds an array unless --force. An existing member given --size uses that much of itself (as
 * mdadm's --size does), and is refused when it holds less.
 */
function deviceSizes(o: CreateOptions, sources: DeviceSource[]): {sizes: number[]; freshFiles: Set<string>} {
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
    // (--journal-size has a default: it sizes a journal file create makes, never an existing device)
    const asked = isJournal ? undefined : o.sizeBytes
    if (asked !== undefined && asked > pr.size)
      throw new UsageError(
        `holds ${pr.size} bytes; --size asks for ${asked}`,
        'give a size it holds, or leave --size out to use the whole device; nothing was written',
        p,
      )
    sizes.push(asked ?? pr.size)
  }
  return {sizes, freshFiles}
}

/** The superblock fields every device of a new array shares; each device then gets its number, data size and UUID. */
function arraySuperblock(o: CreateOptions, g: Geometry, setUuid: Uint8Array, dataOffset: number): Superblock {
  const sb = newArraySuperblock({
    setUuid,
    setName: o.name ?? 'r5ctl:0',
    level: g.level,
    layout: g.layout,
    size: g.memberSectors,
    chunkSize: g.chunkSectors,
    raidDisks: g.raidDisks,
    journal: Boolean(o.journal),
    events: 0n,
  })
  return {...sb, dataOffset: BigInt(dataOffset)}
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
      // counted as made before it is sized: a file the file system cannot make that large is removed too
      made.push(src)
      const size = i === o.raidDevices ? o.journalSizeBytes! : o.sizeBytes!
      try {
        src.create(size)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EFBIG')
          throw new IoError(
            `cannot create a file of ${size} bytes: this file system does not allow one that large`,
            src.name,
            'give a smaller size; no file was left behind',
          )
        throw new IoError(`cannot create: ${(error as Error).message}`, src.name)
      }
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
  const arr = new MdArray(devs, plan.sbs[0], o.compute)
  try {
    // An old superblock must not survive a failed create: wipe it before anything else is written.
    const zero = alignedBuffer(4096)
    for (const d of devs) if (!plan.freshFiles.has(d.path)) d.dev.write(zero, SB_OFFSET_BYTES)
    syncParity(arr)
    if (plan.firstMeta) arr.ring!.write(plan.firstMeta, 0)
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
