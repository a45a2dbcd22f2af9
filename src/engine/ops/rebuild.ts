/**
 * rebuild: a missing member's bytes reconstructed from the others (io.ts rebuildMembers) onto a new
 * device, which becomes the member of its slot. Plan first: the set, the journal (clean), every
 * target and its superblock are checked and decided before the first write. Then, as the kernel's
 * recovery leaves things: one superblock update makes each target a member in recovery (feature
 * 0x2, recovery_offset) and names it in every roles table; the copy checkpoints recovery_offset on
 * the targets (flushed data first), so an interrupted rebuild goes on from there (--resume) and the
 * kernel would too; a last update marks the targets in sync on every device.
 */
import type {EngineOptions} from '../compute.js'
import {type DeviceSource, type MdArray, nextEvents, openArray, refuseDuplicateSources, refuseNewDeviceUnlessV12} from '../array.js'
import {EXIT, R5Error} from '../errors.js'
import {SB_OFFSET_BYTES, type Superblock, encodeSuperblock, mdTime} from '../format/superblock.js'
import {planRecovery} from '../journal/plan.js'
import {rebuildMembers} from '../io.js'
import type {Progress} from '../rows.js'
import {formatUuid} from '../format/names.js'
import {
  type Target,
  assignDevNumbers,
  checkSlots,
  closeTargets,
  openTargets,
  probeTargets,
  rolesWith,
  slotOf,
  targetSuperblock,
} from '../rebuild/target.js'

/** bytes of each member copied between two checkpoints of recovery_offset */
export const CHECKPOINT_BYTES = 256 << 20

export interface RebuildOptions extends EngineOptions {
  /** the slots to rebuild, one per target, in the targets' order (replace: taken from `replacing`) */
  slots: number[]
  /** replace: the member whose slot is rebuilt; it is neither read nor written */
  replacing?: DeviceSource
  /** a target may carry this array's superblock for its slot: the copy goes on from its recovery_offset */
  resume?: boolean
  /** a target may carry another array's superblock */
  force?: boolean
  dryRun?: boolean
  /** bytes between checkpoints (default CHECKPOINT_BYTES; a multiple of the chunk is used) */
  checkpointBytes?: number
  progress?: Progress
}

export interface RebuildTarget {
  slot: number
  device: string
  devNumber: number
  deviceUuid: string
  /** member sector the copy started from (an interrupted rebuild's checkpoint, else 0) */
  startSector: number
  /** why a target of this array's was copied from the start, or null */
  restartReason: string | null
}

export interface RebuildResult {
  arrayUuid: string
  dryRun: boolean
  level: number
  raidDevices: number
  /** sectors of each member the array uses */
  memberSectors: number
  targets: RebuildTarget[]
  /** bytes written to the targets' data areas (dry run: to be written) */
  bytesWritten: number
  /** recovery_offset checkpoints written during the copy */
  checkpoints: number
  /** the events count the set ends at (dry run: the current one) */
  events: string
}

/**
 * Rebuild `opts.slots` of the array on `devices` (its present members and journal, any order) onto
 * `targets`, one per slot.
 */
export function rebuildArray(devices: DeviceSource[], targets: DeviceSource[], opts: RebuildOptions): RebuildResult {
  refuseDuplicateSources([...devices, ...targets, ...(opts.replacing ? [opts.replacing] : [])])
  const arr = openArray(devices, {writable: !opts.dryRun, allowMissingMembers: true, compute: opts.compute, superblockUpdates: 2})
  let ts: Target[] = []
  try {
    const slots = opts.replacing ? [slotOf(arr, opts.replacing)] : opts.slots
    checkSlots(arr, slots)
    refuseNewDeviceUnlessV12(arr, opts.replacing ? 'replace' : 'rebuild')
    refuseDirty(arr)
    ts = probeTargets(arr, slots, targets, opts)
    assignDevNumbers(arr, ts)
    const table = rolesWith(arr, ts)
    const size = Number(arr.sb.size)
    const from = Math.min(...ts.map(t => t.start))
    openTargets(ts, !opts.dryRun)
    const done = opts.dryRun ? {checkpoints: 0, events: arr.sb.events} : applyRebuild(arr, ts, table, from, opts)
    opts.progress?.(1, 1)
    return {
      arrayUuid: arr.uuid,
      dryRun: Boolean(opts.dryRun),
      level: arr.sb.level,
      raidDevices: arr.sb.raidDisks,
      memberSectors: size,
      targets: ts.map(t => ({
        slot: t.slot,
        device: t.path,
        devNumber: t.devNumber,
        deviceUuid: formatUuid(t.deviceUuid),
        startSector: t.start,
        restartReason: t.restartReason,
      })),
      bytesWritten: (size - from) * 512 * ts.length,
      checkpoints: done.checkpoints,
      events: done.events.toString(),
    }
  } finally {
    closeTargets(ts)
    arr.close()
  }
}

/** A journal with records pending replay is refused: the members are not yet what the array holds. */
function refuseDirty(arr: MdArray): void {
  if (!arr.journal || planRecovery(arr).clean) return
  throw new R5Error(
    'journal is dirty: the members do not hold the array until it is replayed, so a member rebuilt from them would not either',
    EXIT.DIRTY,
    arr.journal.path,
    'replay it onto the members present first: `r5ctl recover` with the same devices, the new one left out; nothing was written',
    'dirty',
  )
}

type Table = {roles: number[]; maxDev: number}

/**
 * The writes of a planned rebuild: members in recovery, the copy with checkpoints, members in sync.
 * Returns the checkpoints written and the events count the set ends at.
 */
function applyRebuild(arr: MdArray, ts: Target[], table: Table, from: number, opts: RebuildOptions): {checkpoints: number; events: bigint} {
  const size = Number(arr.sb.size)
  const chunk = arr.sb.chunkSize
  const every = Math.max(chunk, Math.floor((opts.checkpointBytes ?? CHECKPOINT_BYTES) / 512 / chunk) * chunk)
  let checkpoints = 0
  if (from < size) {
    const events = updateSet(arr, ts, table, from)
    let next = from + every
    const sink = (sector: number, bytes: Uint8Array[]) => {
      for (const [i, t] of ts.entries()) t.dev!.write(bytes[i], Number(t.dataOffset + BigInt(sector)) * 512)
      const done = sector + bytes[0].length / 512
      if (done >= next && done < size) {
        checkpoint(arr, ts, table, events, done)
        checkpoints++
        next = done + every
      }
    }
    rebuildMembers(
      arr,
      from,
      size,
      ts.map(t => t.slot),
      sink,
      {progress: opts.progress, maxRows: every / chunk},
    )
  }
  return {checkpoints, events: updateSet(arr, ts, table, null)}
}

/** The targets' data flushed, then their superblocks say how far it reaches (`recovered` sectors; null: in sync). */
function checkpoint(arr: MdArray, ts: Target[], table: Table, events: bigint, recovered: number | null, now = mdTime(new Date())): void {
  for (const t of ts) t.dev!.flush()
  for (const t of ts) {
    const sb = targetSuperblock(arr, t, table, events, now, recovered)
    t.dev!.write(encodeSuperblock(sb), SB_OFFSET_BYTES)
    t.found = sb
  }
  for (const t of ts) t.dev!.flush()
}

/**
 * One superblock update of the whole set, targets first: each target in recovery up to `recovered`
 * sectors (null: in sync), every device of the array with the new roles table. Returns the events
 * count written.
 */
function updateSet(arr: MdArray, ts: Target[], table: Table, recovered: number | null): bigint {
  const found = ts.flatMap(t => (t.found ? [t.found] : []))
  const events = nextEvents([...arr.all().map(d => d.sb), ...found])
  const now = mdTime(new Date())
  checkpoint(arr, ts, table, events, recovered, now)
  const bufs = arr.all().map(d => {
    const sb: Superblock = {...d.sb, events, utime: now, devRoles: table.roles, maxDev: table.maxDev}
    d.sb = sb
    return encodeSuperblock(sb)
  })
  for (const [i, d] of arr.all().entries()) d.dev.write(bufs[i], Number(d.sb.superOffset) * 512)
  for (const d of arr.all()) d.dev.flush()
  return events
}
