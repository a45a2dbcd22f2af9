/**
 * Who the journal is: the superblocks `r5ctl journal` writes. md keeps the journal as a feature bit
 * (0x200, MD_FEATURE_JOURNAL: the array has one) and a role (0xfffd in dev_roles at the journal's
 * dev_number); every device carries the same roles and the freshest superblock decides (md.c
 * super_1_validate). A journal that leaves keeps its superblock; its dev_number turns faulty
 * (0xfffe), as md's super_1_sync marks a device no longer in the array, so it can never come back
 * by accident. A new journal gets a dev_number no device has held.
 */
import {randomBytes} from 'node:crypto'
import type {DeviceInfo, MdArray} from '../array.js'
import {
  FEATURE_BAD_BLOCKS,
  FEATURE_JOURNAL,
  FEATURE_RECOVERY_OFFSET,
  ROLE_FAULTY,
  ROLE_JOURNAL,
  SB_MAX_DEV,
  type Superblock,
  mdTime,
} from '../format/superblock.js'
import {RefusedError} from '../errors.js'

/** sectors before a new journal's data area, as create and mdadm leave (1 MiB) */
export const JOURNAL_DATA_OFFSET = 2048n
/** resync_offset of an array md need not resync */
export const CLEAN = 0xffffffffffffffffn

/** What every superblock of the changed array shares. */
export interface Membership {
  /** with the journal feature or without */
  journal: boolean
  devRoles: number[]
  events: bigint
  utime: bigint
  resyncOffset: bigint
}

/**
 * The events count of the change: one past the set's, or the set's highest when an earlier change
 * was cut between superblock writes (then a cut of this one also leaves every device within the one
 * event md tolerates). The same rule as MdArray.writeSuperblocks.
 */
export function nextEvents(devs: DeviceInfo[]): bigint {
  const max = devs.reduce((m, d) => (d.sb.events > m ? d.sb.events : m), 0n)
  const min = devs.reduce((m, d) => (d.sb.events < m ? d.sb.events : m), max)
  return min < max ? max : max + 1n
}

/** The roles after the change: every journal entry faulty, and with `newJournal` one more entry, the journal's. */
export function rolesAfter(arr: MdArray, newJournal: boolean): {devRoles: number[]; journalDevNumber: number | null} {
  const devRoles = arr.sb.devRoles.map(r => (r === ROLE_JOURNAL ? ROLE_FAULTY : r))
  if (!newJournal) return {devRoles, journalDevNumber: null}
  // past every dev_number any device of the set has held: a spare or a gone device may still carry one
  const used = Math.max(arr.sb.maxDev, devRoles.length, ...arr.all().map(d => d.sb.devNumber + 1))
  if (used + 1 > SB_MAX_DEV)
    throw new RefusedError(`dev_roles is full (${used} of ${SB_MAX_DEV} entries): no room for a new journal`, undefined, undefined, 'roles-full')
  while (devRoles.length < used) devRoles.push(0xffff)
  devRoles.push(ROLE_JOURNAL)
  return {devRoles, journalDevNumber: used}
}

/** What every superblock of the changed array will share. */
export function membership(arr: MdArray, journal: boolean, devRoles: number[], resyncOffset: bigint): Membership {
  return {journal, devRoles, events: nextEvents(arr.all()), utime: mdTime(new Date()), resyncOffset}
}

/** A device's superblock under the new membership (its own fields kept). */
export function rewritten(sb: Superblock, m: Membership): Superblock {
  return {
    ...sb,
    featureMap: m.journal ? sb.featureMap | FEATURE_JOURNAL : sb.featureMap & ~FEATURE_JOURNAL,
    devRoles: m.devRoles,
    maxDev: m.devRoles.length,
    events: m.events,
    utime: m.utime,
    resyncOffset: m.resyncOffset,
  }
}

/** The superblock of a new journal of `sizeBytes`: the array's fields, its own dev_number, uuid and data area, journal_tail 0. */
export function newJournalSuperblock(model: Superblock, m: Membership, devNumber: number, sizeBytes: number): Superblock {
  return {
    ...rewritten(model, m),
    featureMap: (model.featureMap & ~(FEATURE_RECOVERY_OFFSET | FEATURE_BAD_BLOCKS)) | FEATURE_JOURNAL,
    dataOffset: JOURNAL_DATA_OFFSET,
    dataSize: BigInt(Math.floor(sizeBytes / 512)) - JOURNAL_DATA_OFFSET,
    journalTail: 0n,
    devNumber,
    deviceUuid: new Uint8Array(randomBytes(16)),
    cntCorrectedRead: 0,
    devflags: 0,
    bblogShift: 0,
    bblogSize: 0,
    bblogOffset: 0,
  }
}
