/**
 * The devices a rebuild writes onto: each one checked (its size, what it carries now) and given the
 * v1.2 superblock of its slot as the kernel keeps it for a member in recovery (md.c super_1_sync:
 * feature 0x2 and recovery_offset while it is not in sync, neither once it is), and the roles table
 * the whole set carries from the rebuild's first superblock update on.
 */
import {randomBytes} from 'node:crypto'
import type {MdArray} from '../array.js'
import {type BlockDevice, type DeviceSource, isDeviceRef} from '../device.js'
import {RefusedError, UsageError} from '../errors.js'
import {
  FEATURE_BAD_BLOCKS,
  FEATURE_RECOVERY_OFFSET,
  ROLE_FAULTY,
  ROLE_JOURNAL,
  ROLE_SPARE,
  SB_MAGIC,
  SB_MAX_DEV,
  type Superblock,
} from '../format/superblock.js'
import {formatUuid} from '../format/names.js'
import {probeDevice, sbVerdict} from '../probe.js'
import {BLOCK_SECTORS} from '../journal/ring.js'

/** One device a rebuild writes the bytes of a slot onto. */
export interface Target {
  slot: number
  path: string
  source: DeviceSource
  /** bytes */
  size: number
  /** its superblock when it carries this array's, for this slot (an interrupted rebuild) */
  found: Superblock | null
  /** member sector the copy starts from: 0, or the checkpoint of the interrupted rebuild */
  start: number
  /** why the copy does not go on from the found checkpoint, or null */
  restartReason: string | null
  devNumber: number
  deviceUuid: Uint8Array
  /** sectors: the set's member data offset */
  dataOffset: bigint
  dataSize: bigint
  dev: BlockDevice | null
}

export interface TargetOptions {
  resume?: boolean
  force?: boolean
}

/** The superblock of a present member: the model of a new member's fields (not the journal's). */
export function memberModel(arr: MdArray): Superblock {
  const members = arr.members.filter(d => d !== null)
  let best = members[0].sb
  for (const d of members) if (d.sb.events > best.events) best = d.sb
  return best
}

/** Each slot a missing member of the array: a slot number in range, named once, not held by a device given. */
export function checkSlots(arr: MdArray, slots: number[]): void {
  if (slots.length === 0) throw new UsageError('no slot to rebuild', 'name it with --slot N')
  for (const [i, s] of slots.entries()) {
    if (!Number.isInteger(s) || s < 0 || s >= arr.sb.raidDisks)
      throw new UsageError(
        `slot ${s} is not a slot of this array: raid${arr.sb.level} with ${arr.sb.raidDisks} devices has slots 0 to ${arr.sb.raidDisks - 1}`,
      )
    if (slots.indexOf(s) !== i) throw new UsageError(`slot ${s} named twice`)
    const holder = arr.members[s]
    if (holder)
      throw new RefusedError(
        `slot ${s} is not missing: ${holder.path} holds it`,
        holder.path,
        'leave it out of the device list to rebuild its slot, or use `r5ctl replace OLD NEW`; nothing was written',
        'slot-present',
      )
  }
}

/**
 * The slot a member being replaced holds: it must be a member of this array, in a slot no device
 * given holds (it is left out of the devices: its bytes come from the others).
 */
export function slotOf(arr: MdArray, old: DeviceSource): number {
  const p = probeDevice(old)
  const bad = sbVerdict(p)
  if (bad) throw bad
  const sb = p.sb!
  // faulty in the set's table once a replace of it began (OLD itself is never written): its own table names its slot
  const listed = arr.sb.devRoles.at(sb.devNumber) ?? ROLE_SPARE
  const role = listed === ROLE_FAULTY ? (sb.devRoles.at(sb.devNumber) ?? ROLE_SPARE) : listed
  if (formatUuid(sb.setUuid) !== arr.uuid || role >= arr.sb.raidDisks)
    throw new RefusedError('the device to replace is not a member of this array', p.path, 'name a member as OLD; nothing was written', 'not-member')
  if (arr.members[role])
    throw new RefusedError(`slot ${role} has two devices: ${arr.members[role].path} and this one`, p.path, undefined, 'duplicate-device')
  return role
}

/**
 * Probe each target: large enough for the array's member area; carrying no superblock, or (with
 * --force) another array's, or (with --resume) this array's for its own slot. Everything else
 * of this array is a member of it and is refused.
 */
export function probeTargets(arr: MdArray, slots: number[], sources: DeviceSource[], opts: TargetOptions): Target[] {
  if (sources.length !== slots.length)
    throw new UsageError(`${slots.length} slot(s) to rebuild but ${sources.length} new device(s)`, 'name one new device per slot, first')
  const model = memberModel(arr)
  const need = Number(model.dataOffset + arr.sb.size) * 512
  return sources.map((source, i) => {
    const p = probeDevice(source)
    if (p.error) throw p.error
    if (p.size < need)
      throw new RefusedError(
        `new device too small: ${p.size} bytes, slot ${slots[i]} needs ${need} (data offset ${model.dataOffset} + ${arr.sb.size} sectors)`,
        p.path,
        'use a device at least as large as the members; nothing was written',
        'too-small',
      )
    const found = p.sb?.magic === SB_MAGIC ? p.sb : null
    const ours = found && formatUuid(found.setUuid) === arr.uuid ? found : null
    if (found && !ours && !opts.force)
      throw new RefusedError(
        `new device carries the superblock of another array (${formatUuid(found.setUuid)})`,
        p.path,
        'check the device; --force overwrites it; nothing was written',
        'would-overwrite',
      )
    if (ours) checkOwn(arr, ours, slots[i], p.path, opts)
    const t: Target = {
      slot: slots[i],
      path: p.path,
      source,
      size: p.size,
      found: ours,
      start: 0,
      restartReason: null,
      devNumber: ours?.devNumber ?? -1,
      deviceUuid: ours?.deviceUuid ?? new Uint8Array(randomBytes(16)),
      dataOffset: model.dataOffset,
      dataSize: BigInt(Math.floor(p.size / 512 / BLOCK_SECTORS) * BLOCK_SECTORS) - model.dataOffset,
      dev: null,
    }
    if (ours) resumePoint(arr, t, ours)
    return t
  })
}

/** This array's superblock on a target: only an interrupted rebuild of the same slot, and only with --resume. */
function checkOwn(arr: MdArray, sb: Superblock, slot: number, path: string, opts: TargetOptions): void {
  const role = sb.devRoles.at(sb.devNumber) ?? ROLE_SPARE
  const what =
    role === ROLE_JOURNAL ? 'the journal' : role < arr.sb.raidDisks ? `the member for slot ${role}` : `a device (role 0x${role.toString(16)})`
  const hint =
    role !== slot
      ? 'name a device that is not part of the array; nothing was written'
      : sb.featureMap & FEATURE_RECOVERY_OFFSET
        ? 'a rebuild of this slot onto it was interrupted: add --resume to go on; nothing was written'
        : 'it already holds this slot: name it among the devices (--resume only finishes an interrupted rebuild); nothing was written'
  if (!opts.resume || role !== slot) throw new RefusedError(`new device is ${what} of this array`, path, hint, 'is-member')
  const taken = arr.all().find(d => d.sb.devNumber === sb.devNumber)
  if (taken)
    throw new RefusedError(
      `new device has dev_number ${sb.devNumber}, as ${taken.path} has`,
      path,
      'the two cannot both be members; nothing was written',
      'is-member',
    )
}

/**
 * Where an interrupted rebuild goes on: its recovery_offset (down to a chunk row), when the target's
 * superblock is as fresh as the set or one event ahead (a later change of the array makes the copied
 * part stale) and its geometry is the array's; else from the start.
 */
function resumePoint(arr: MdArray, t: Target, sb: Superblock): void {
  const fresh = arr.all().reduce((m, d) => (d.sb.events > m ? d.sb.events : m), 0n)
  const same = sb.size === arr.sb.size && sb.chunkSize === arr.sb.chunkSize && sb.dataOffset === memberModel(arr).dataOffset
  if (!same) t.restartReason = 'its superblock describes another geometry'
  // one event ahead: this rebuild's own superblock update reached the target and not yet the set
  else if (sb.events !== fresh && sb.events !== fresh + 1n)
    t.restartReason = `the array changed since its checkpoint (events ${sb.events}, the set is at ${fresh})`
  else if (!(sb.featureMap & FEATURE_RECOVERY_OFFSET)) t.start = Number(arr.sb.size)
  else t.start = Math.min(Number(arr.sb.size), Math.floor(Number(sb.journalTail) / arr.sb.chunkSize) * arr.sb.chunkSize)
}

/**
 * Give each target without one a dev_number: the lowest entry of the roles table that no device
 * given uses and that names no active slot or journal (a free or faulty entry), else a new entry
 * past the end, as the kernel grows max_dev for a new device.
 */
export function assignDevNumbers(arr: MdArray, targets: Target[]): void {
  const roles = memberModel(arr).devRoles
  const used = new Set([...arr.all().map(d => d.sb.devNumber), ...targets.map(t => t.devNumber)])
  for (const t of targets) {
    if (t.devNumber >= 0) continue
    let k = 0
    while (used.has(k) || (k < roles.length && roles[k] !== ROLE_SPARE && roles[k] !== ROLE_FAULTY)) k++
    if (k >= SB_MAX_DEV) throw new RefusedError('the roles table has no free entry for a new device', t.path, undefined, 'no-dev-number')
    t.devNumber = k
    used.add(k)
  }
}

/**
 * The roles table once the targets are members: each target's entry its slot; an entry that named one
 * of those slots for a device not given becomes faulty, as the kernel marks a device that left.
 */
export function rolesWith(arr: MdArray, targets: Target[]): {roles: number[]; maxDev: number} {
  const model = memberModel(arr)
  const maxDev = Math.max(model.maxDev, ...targets.map(t => t.devNumber + 1))
  const roles = Array.from({length: maxDev}, (_, i) => model.devRoles.at(i) ?? ROLE_SPARE)
  const given = new Set(arr.all().map(d => d.sb.devNumber))
  const slots = new Set(targets.map(t => t.slot))
  for (let i = 0; i < maxDev; i++) if (slots.has(roles[i]) && !given.has(i)) roles[i] = ROLE_FAULTY
  for (const t of targets) roles[t.devNumber] = t.slot
  return {roles, maxDev}
}

/** A target's superblock: in recovery up to `recovered` sectors, or (null) in sync. */
export function targetSuperblock(
  arr: MdArray,
  t: Target,
  table: {roles: number[]; maxDev: number},
  events: bigint,
  utime: bigint,
  recovered: number | null,
): Superblock {
  const model = memberModel(arr)
  // no bad-block log: what the new device holds where a log would be is not one (super_1_load reads it)
  const base = model.featureMap & ~FEATURE_BAD_BLOCKS
  const features = recovered === null ? base & ~FEATURE_RECOVERY_OFFSET : base | FEATURE_RECOVERY_OFFSET
  return {
    ...model,
    featureMap: features,
    dataOffset: t.dataOffset,
    dataSize: t.dataSize,
    journalTail: BigInt(recovered ?? 0),
    devNumber: t.devNumber,
    cntCorrectedRead: 0,
    deviceUuid: t.deviceUuid,
    devflags: 0,
    bblogShift: 0,
    bblogSize: 0,
    bblogOffset: 0,
    events,
    utime,
    devRoles: table.roles,
    maxDev: table.maxDev,
  }
}

/** Open the targets for writing (or, for a dry run, reading). */
export function openTargets(targets: Target[], writable: boolean): void {
  for (const t of targets) t.dev = isDeviceRef(t.source) ? t.source.open({writable}) : t.source
}

/** Close what openTargets opened. */
export function closeTargets(targets: Target[]): void {
  for (const t of targets) if (t.dev && isDeviceRef(t.source)) t.dev.close()
}
