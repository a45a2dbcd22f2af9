/**
 * detect --write: md v1.2 superblocks for a candidate detect found (the first unless one is named),
 * so that the set assembles again, its journal replay included. Plan first: the candidate must be
 * one whose parity held as detect requires of what it finds, the array UUID known and agreeing with the journal's checksums, the log's
 * start known; then every superblock is encoded, and only then written.
 *
 * What each superblock says: the candidate's geometry, the device's slot (the journal's role for
 * the journal), a data size of all the device holds past the data offset, events one past the
 * highest surviving superblock of the array, a fresh creation time (it must win over any superblock
 * left at another version's place), the surviving name and device UUIDs where there are any, and on
 * the journal the surviving journal_tail, else the start of the chain that ends at the log's newest
 * meta block (find-tail.ts).
 */
import {randomBytes} from 'node:crypto'
import {uuidSeed} from '../checksum.js'
import type {EngineOptions} from '../compute.js'
import {type BlockDevice, type DeviceSource, isDeviceRef} from '../device.js'
import {RefusedError, UsageError} from '../errors.js'
import {formatUuid, parseLayout, parseUuid} from '../format/names.js'
import {ROLE_JOURNAL, SB_OFFSET_BYTES, type Superblock, encodeSuperblock, newArraySuperblock} from '../format/superblock.js'
import {findTail} from '../journal/find-tail.js'
import {BLOCK_SECTORS, Ring} from '../journal/ring.js'
import {detectOn, exactHolds, type DetectCandidate, type DetectResult} from './detect.js'

export interface DetectWriteOptions extends EngineOptions {
  /** the candidate's rank (default 1) */
  candidate?: number
  /** the array UUID, when no superblock keeps it; checked against the journal's checksum seed */
  uuid?: Uint8Array
  dryRun?: boolean
  /** write a candidate whose parity held on fewer of the stripes checked than detect requires */
  force?: boolean
}

export interface DetectWritten {
  device: string
  /** "active N" or "journal" */
  role: string
  events: string
}

export interface DetectWriteResult extends DetectResult {
  write: {
    dryRun: boolean
    candidate: number
    arrayUuid: string
    journalTailSector: number
    journalTailSource: 'superblock' | 'log'
    devices: DetectWritten[]
  }
}

interface Planned {
  dev: BlockDevice
  block: Buffer
  written: DetectWritten
}

export function writeDetected(sources: DeviceSource[], opts: DetectWriteOptions = {}): DetectWriteResult {
  const opened: BlockDevice[] = []
  try {
    const {result: found, intact} = detectOn(sources, opened, !opts.dryRun, opts)
    const named = new Map(sources.map((s, i) => [s.name, opened[i]]))
    const c = chosen(found, opts)
    const uuid = arrayUuid(found, opts, Number.parseInt(found.journal!.checksumSeed, 16))
    refuseStrangers(uuid, intact)
    refuseContradicted(c, uuid, intact)
    confirmed(c, opts)
    const plan = planSuperblocks(found, c, uuid, named, intact)
    if (!opts.dryRun) {
      for (const p of plan.planned) p.dev.write(p.block, SB_OFFSET_BYTES)
      for (const p of plan.planned) p.dev.flush()
    }
    const write = {dryRun: Boolean(opts.dryRun), candidate: c.rank, ...plan.summary, devices: plan.planned.map(p => p.written)}
    return {...found, write}
  } finally {
    opened.forEach((d, i) => {
      if (isDeviceRef(sources[i])) d.close()
    })
  }
}

/** The candidate to write: found, with its parity holding on every stripe checked unless forced. */
function chosen(r: DetectResult, opts: DetectWriteOptions): DetectCandidate {
  const rank = opts.candidate ?? 1
  if (!Number.isSafeInteger(rank) || rank < 1) throw new UsageError(`--candidate ${rank}: a rank is a whole number from 1`)
  const c = r.candidates.at(rank - 1)
  if (!c)
    throw new RefusedError(
      `no candidate ${rank} to write: detect ranked ${r.candidates.length}`,
      undefined,
      'run detect without --write to see them; nothing was written',
      'no-candidate',
    )
  if (!c.journal || !r.journal)
    throw new RefusedError(
      'no journal device found among the devices: a journaled array cannot be assembled without it',
      undefined,
      'name the journal device too; nothing was written',
      'missing-journal',
    )
  return c
}

/** The candidate's parity must hold as detect requires of what it finds, unless forced. */
function confirmed(c: DetectCandidate, opts: DetectWriteOptions): void {
  const e = c.evidence
  if (!opts.force && !exactHolds(e.exactChecked ?? 0, e.exactHeld ?? 0))
    throw new RefusedError(
      `candidate ${c.rank}'s parity held on too few of the stripes checked (${e.exactHeld ?? 0} of ${e.exactChecked ?? 0}; detect finds at 90%): its superblocks could describe the wrong array`,
      undefined,
      'check the candidates with detect; --force writes it anyway; nothing was written',
      'unconfirmed-candidate',
    )
}

/** A device given that keeps a whole superblock of another array is not this array's: writing would take it over. */
function refuseStrangers(uuid: Uint8Array, intact: Map<string, Superblock>): void {
  for (const [name, sb] of intact)
    if (Buffer.compare(sb.setUuid, uuid) !== 0)
      throw new RefusedError(
        `belongs to another array (uuid ${formatUuid(sb.setUuid)}, expected ${formatUuid(uuid)})`,
        name,
        'leave it out of the device list; nothing was written',
        'foreign-device',
      )
}

/**
 * A whole superblock of this array that survives says what the geometry is; a candidate that says
 * otherwise (as any layout does over an all-zero device, whose parity always holds) is refused,
 * --force or not.
 */
function refuseContradicted(c: DetectCandidate, uuid: Uint8Array, intact: Map<string, Superblock>): void {
  const level = c.level
  const layout = level === 4 ? 0 : parseLayout(level, c.layout)
  for (const [name, sb] of intact) {
    if (Buffer.compare(sb.setUuid, uuid) !== 0) continue
    const kept = `raid${sb.level}, ${sb.raidDisks} members, chunk ${(sb.chunkSize * 512) / 1024}K, layout ${sb.level === 4 ? 0 : sb.layout}`
    const says = `raid${level}, ${c.members.length} members, chunk ${c.chunkBytes / 1024}K, layout ${layout}`
    if (kept !== says)
      throw new RefusedError(
        `candidate ${c.rank} (${says}) contradicts this array's surviving superblock (${kept})`,
        name,
        'run detect to see the candidates and name the one that agrees with --candidate, or leave out devices not of the array; nothing was written',
        'geometry-mismatch',
      )
  }
}

/** The array UUID: --uuid, else the surviving superblock's; either must be the one the journal's checksums were made with. */
function arrayUuid(r: DetectResult, opts: DetectWriteOptions, seed: number): Uint8Array {
  const uuid = opts.uuid ?? (r.arrayUuid ? parseUuid(r.arrayUuid) : null)
  if (!uuid)
    throw new RefusedError(
      "the array UUID is lost: no superblock keeps it, and the journal's records are checksummed with it",
      undefined,
      'give it with --uuid (it is checked against the journal); nothing was written',
      'uuid-unknown',
    )
  if (uuidSeed(uuid) !== seed)
    throw new RefusedError(
      `array UUID ${formatUuid(uuid)} is not the one the journal's checksums were made with (seed ${seed.toString(16).padStart(8, '0')})`,
      r.journal!.device,
      'give the right one with --uuid; nothing was written',
      'uuid-mismatch',
    )
  return uuid
}

function planSuperblocks(
  r: DetectResult,
  c: DetectCandidate,
  uuid: Uint8Array,
  named: Map<string, BlockDevice>,
  intact: Map<string, Superblock>,
): {planned: Planned[]; summary: {arrayUuid: string; journalTailSector: number; journalTailSource: 'superblock' | 'log'}} {
  const j = r.journal!
  const seed = Number.parseInt(j.checksumSeed, 16)
  const devices = [...c.members, c.journal!]
  // the whole superblocks of this array that survive, by device
  const old = new Map(
    devices.flatMap(name => {
      const sb = intact.get(name)
      return sb && Buffer.compare(sb.setUuid, uuid) === 0 ? [[name, sb] as const] : []
    }),
  )
  const events = [...old.values()].reduce((m, sb) => (sb.events > m ? sb.events : m), 0n) + 1n
  const journalDev = named.get(c.journal!)!
  const tail = journalTail(old.get(c.journal!), journalDev, j.dataOffsetSector, seed)
  const base = newArraySuperblock({
    setUuid: uuid,
    setName: [...old.values()].at(0)?.setName ?? 'r5ctl:detected',
    level: c.level,
    layout: c.level === 4 ? 0 : parseLayout(c.level, c.layout),
    size: BigInt(c.memberDataSectors),
    chunkSize: c.chunkBytes / 512,
    raidDisks: c.members.length,
    journal: true,
    events,
  })
  const planned = devices.map((name, i): Planned => {
    const dev = named.get(name)!
    const isJournal = i === c.members.length
    const offset = isJournal ? j.dataOffsetSector : c.dataOffsetSector
    const prior = old.get(name)
    const sb: Superblock = {
      ...base,
      devNumber: i,
      dataOffset: BigInt(offset),
      dataSize: BigInt(Math.floor(dev.size / 512) - offset),
      deviceUuid: prior ? prior.deviceUuid : new Uint8Array(randomBytes(16)),
      journalTail: isJournal ? BigInt(tail.sector) : 0n,
    }
    if (offset < 16) throw new UsageError(`data offset ${offset} overlaps the v1.2 superblock`, name)
    if (!isJournal && sb.dataSize < sb.size)
      throw new UsageError(`holds ${sb.dataSize} sectors past the data offset, the array needs ${sb.size}`, name)
    return {dev, block: encodeSuperblock(sb), written: {device: name, role: isJournal ? 'journal' : `active ${i}`, events: events.toString()}}
  })
  return {planned, summary: {arrayUuid: formatUuid(uuid), journalTailSector: tail.sector, journalTailSource: tail.source}}
}

/** journal_tail: the surviving (whole, same array) journal superblock's, else where the log's newest chain begins. */
function journalTail(
  prior: Superblock | undefined,
  dev: BlockDevice,
  dataOffset: number,
  seed: number,
): {sector: number; source: 'superblock' | 'log'} {
  if (prior && prior.devRoles.at(prior.devNumber) === ROLE_JOURNAL) return {sector: Number(prior.journalTail), source: 'superblock'}
  const sectors = Math.floor((Math.floor(dev.size / 512) - dataOffset) / BLOCK_SECTORS) * BLOCK_SECTORS
  const tail = findTail(new Ring(dev, dataOffset * 512, sectors), seed)
  if (tail === null) throw new RefusedError('the journal holds no meta block checksummed for this array', undefined, 'nothing was written', 'no-log')
  return {sector: tail, source: 'log'}
}
