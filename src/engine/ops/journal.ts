/**
 * journal remove / add / replace: change an array's journal offline, as md would have it after
 * `consistency_policy=resync` (remove) or `--add-journal` (add). Plan first: every check, every
 * superblock and block to write is decided before the first write; then the new journal's log
 * area, its superblock, and the members' superblocks last, with a flush between: a cut leaves the
 * old set, the new one, or members split across one event, which md and openArray both take.
 *
 * A fresh journal gets what r5l_load_log would make of an unusable one: an empty meta block at ring
 * sector 0 with a random seq and journal_tail 0, plus a zeroed block after it, so nothing left on
 * the device can pass for the next meta block. replace copies a dirty live log to the new ring
 * from sector 0: pages as they are, meta blocks with their position field (and checksum)
 * rewritten, seqs kept; the kernel replays it at assembly as it would have replayed the old one.
 */
import {randomBytes} from 'node:crypto'
import type {EngineOptions} from '../compute.js'
import type {Crc} from '../checksum.js'
import {type DeviceSource, type MdArray, openArray, refuseDuplicateSources, refuseNewDeviceUnlessV12, sourceName} from '../array.js'
import {type BlockDevice, alignedBuffer, isDeviceRef} from '../device.js'
import {EXIT, R5Error, RefusedError, UsageError} from '../errors.js'
import {FEATURE_JOURNAL, SB_MAGIC, SB_OFFSET_BYTES, encodeSuperblock, describeRole} from '../format/superblock.js'
import {encodeMetaBlock} from '../format/meta.js'
import {formatUuid} from '../format/names.js'
import {planRecovery, type RecoveryPlan} from '../journal/plan.js'
import {BLOCK_SECTORS, PAGE, Ring} from '../journal/ring.js'
import {CLEAN, JOURNAL_DATA_OFFSET, membership, newJournalSuperblock, rewritten, rolesAfter, type Membership} from '../journal/membership.js'
import {probeDevice} from '../probe.js'
import {replayPlan, type RecoverResult} from './recover.js'
import type {Progress} from '../rows.js'

export interface JournalOptions extends EngineOptions {
  dryRun?: boolean
  /** go on over a missing journal (its records are lost), an unclean array, or a NEW device that carries a superblock */
  force?: boolean
  /** remove: replay a dirty journal first (as `recover` does) */
  recover?: boolean
  /** the replay of remove --recover, the log copy of replace */
  progress?: Progress
}

/** One write of the plan, as reported. */
export interface JournalWrite {
  device: string
  offsetBytes: number
  bytes: number
  what: 'superblock' | 'first meta block' | 'zeroed block' | 'copied log'
}

export interface JournalResult {
  action: 'remove' | 'add' | 'replace'
  arrayUuid: string
  dryRun: boolean
  /** the journal as found: present, missing (the array has one but it was not given, or it failed), none */
  journalBefore: 'present' | 'missing' | 'none'
  oldJournal: string | null
  newJournal: string | null
  journalDevNumber: number | null
  eventsBefore: string
  events: string
  /** the new journal's first seq: a fresh random one, or the copied log's tail seq */
  firstSeq: string | null
  copiedLogBytes: number
  /** stripes the copied log holds, which the kernel replays at assembly */
  stripesPending: number
  /** the journal was missing: records only in it are lost and any stripe may hold a torn write */
  journalLost: boolean
  /** the members are marked for a resync (resync_offset 0): remove --force over a missing journal */
  resync: boolean
  /** devices given but left out: journals the array no longer lists */
  leftOut: string[]
  recovery: RecoverResult | null
  writes: JournalWrite[]
}

interface Write {
  dev: BlockDevice
  report: JournalWrite
  bytes: Uint8Array
}

/** The live log to copy: `sectors` from `tail` of the old ring to sector 0 of the new one. */
interface LogCopy {
  from: Ring
  tail: number
  sectors: number
  unitStarts: number[]
  to: Ring
  seed: number
  crc: Crc
}

interface ChangePlan {
  /** the new journal's log area (after the copy, if any), flushed before its superblock */
  log: Write[]
  copy: LogCopy | null
  /** the new journal's superblock, flushed before the members are touched */
  journal: Write | null
  members: Write[]
}

/** `journal remove`: the members' superblocks lose the journal feature and role. */
export function removeJournal(sources: DeviceSource[], opts: JournalOptions = {}): JournalResult {
  const arr = openForChange(sources, opts)
  try {
    const before = journalBefore(arr)
    if (before === 'none' && settled(arr)) throw new RefusedError(`array ${arr.uuid} has no journal`, undefined, undefined, 'no-journal')
    if (before === 'missing' && !opts.force) throw lostJournal(arr, '`journal remove --force` removes it and marks the array for a resync')
    const log = before === 'present' ? planRecovery(arr) : null
    if (log && !opts.recover) refuseDirty(arr, log, 'remove it')
    // --recover: the replay, on the devices already open, is the first step of the change
    const recovery = log && !log.clean ? replayPlan(arr, log, {dryRun: opts.dryRun, progress: opts.progress}) : null
    const resync = before === 'missing' || (before === 'none' && arr.sb.resyncOffset !== CLEAN)
    const m = membership(arr, false, rolesAfter(arr, false).devRoles, resync ? 0n : CLEAN)
    // a dry run has not made the replay's superblock update, which the real run's comes after
    if (recovery && opts.dryRun) m.events += 1n
    const plan: ChangePlan = {log: [], copy: null, journal: null, members: memberWrites(arr, m)}
    if (!opts.dryRun) applyChange(plan)
    return result(arr, 'remove', opts, plan, m, {before, newJournal: null, devNumber: null, firstSeq: null, pending: 0, resync, recovery})
  } finally {
    arr.close()
  }
}

/** `journal add NEW`: a new, empty journal for an array without one, or whose journal is missing or failed. */
export function addJournal(target: DeviceSource, sources: DeviceSource[], opts: JournalOptions = {}): JournalResult {
  refuseDuplicateSources([target, ...sources])
  // NEW first: a member named as NEW is named as what it is, not as a member missing from the set
  const size = checkTarget(target, opts)
  const arr = openForChange(sources, opts)
  try {
    const before = journalBefore(arr)
    if (before === 'present')
      throw new RefusedError(
        `array ${arr.uuid} already has a journal`,
        arr.journal!.path,
        'change it with `r5ctl journal replace OLD NEW DEV...`',
        'has-journal',
      )
    if (before === 'missing' && !opts.force)
      throw lostJournal(arr, 'run `r5ctl repair --force` over the whole array first, then `journal add --force`')
    if (before === 'none' && arr.sb.resyncOffset !== CLEAN && !opts.force)
      throw new RefusedError(
        `array ${arr.uuid} was not shut down clean (resync_offset ${arr.sb.resyncOffset}): its parity may not match its data`,
        undefined,
        'run `r5ctl repair` over the whole array first, then `journal add --force`',
        'not-clean',
      )
    return changeJournal(arr, 'add', target, size, null, opts, before)
  } finally {
    arr.close()
  }
}

/** `journal replace OLD NEW`: remove + add in one change, copying OLD's live log when it holds records to replay. */
export function replaceJournal(old: DeviceSource, target: DeviceSource, sources: DeviceSource[], opts: JournalOptions = {}): JournalResult {
  refuseDuplicateSources([target, old, ...sources])
  const size = checkTarget(target, opts)
  const arr = openForChange([old, ...sources], opts)
  try {
    if (arr.journal?.path !== sourceName(old))
      throw new RefusedError(
        `is not the journal of array ${arr.uuid}`,
        sourceName(old),
        "name the array's journal as OLD; a journal that is lost is replaced with `journal add --force`",
        'not-journal',
      )
    const log = planRecovery(arr)
    return changeJournal(arr, 'replace', target, size, log.clean ? null : log, opts, 'present')
  } finally {
    arr.close()
  }
}

/** The shared part of add and replace: the new journal checked, its bytes and every superblock planned, then written. */
function changeJournal(
  arr: MdArray,
  action: 'add' | 'replace',
  target: DeviceSource,
  size: number,
  log: RecoveryPlan | null,
  opts: JournalOptions,
  before: JournalResult['journalBefore'],
): JournalResult {
  refuseNewDeviceUnlessV12(arr, `journal ${action}`)
  const {devRoles, journalDevNumber} = rolesAfter(arr, true)
  const m = membership(arr, true, devRoles, CLEAN)
  const jsb = newJournalSuperblock(arr.sb, m, journalDevNumber!, size)
  const dev = isDeviceRef(target) ? target.open({writable: !opts.dryRun}) : target
  try {
    const name = sourceName(target)
    const base = Number(JOURNAL_DATA_OFFSET) * 512
    const ring = new Ring(dev, base, Math.floor(Number(jsb.dataSize) / BLOCK_SECTORS) * BLOCK_SECTORS)
    const firstSeq = log ? log.tailSeq : BigInt(randomBytes(4).readUInt32LE(0))
    const copy = log ? logCopy(arr, log, ring, name) : null
    const end = copy ? copy.sectors : 0
    const at = (what: JournalWrite['what'], bytes: Uint8Array, offsetBytes: number) => ({
      dev,
      bytes,
      report: {device: name, offsetBytes, bytes: bytes.length, what},
    })
    const area: Write[] = []
    if (!copy) area.push(at('first meta block', encodeMetaBlock({seq: firstSeq, position: 0n, payloads: []}, arr.seed), base))
    area.push(at('zeroed block', alignedBuffer(PAGE), base + (copy ? end : BLOCK_SECTORS) * 512))
    const plan: ChangePlan = {log: area, copy, journal: at('superblock', encodeSuperblock(jsb), SB_OFFSET_BYTES), members: memberWrites(arr, m)}
    if (!opts.dryRun) applyChange(plan, opts.progress)
    return result(arr, action, opts, plan, m, {
      before,
      newJournal: name,
      devNumber: journalDevNumber,
      firstSeq,
      pending: log ? log.dataParityStripes + log.dataOnlyStripes : 0,
      resync: false,
      recovery: null,
    })
  } finally {
    if (dev !== target) dev.close()
  }
}

/**
 * NEW: big enough for a journal, and (unless --force) carrying no md superblock. A member of the
 * array cannot be NEW: the set opened complete, and no device was given twice. Returns its size.
 */
function checkTarget(target: DeviceSource, opts: JournalOptions): number {
  const p = probeDevice(target)
  if (p.error) throw p.error
  const need = (Number(JOURNAL_DATA_OFFSET) + 64 * BLOCK_SECTORS) * 512
  if (p.size < need) throw new UsageError(`journal too small: needs at least ${need} bytes, has ${p.size}`, undefined, p.path)
  if (p.sb?.magic !== SB_MAGIC) return p.size
  if (!opts.force)
    throw new RefusedError(
      `already carries an md superblock (${describeRole(p.sb)} of array ${formatUuid(p.sb.setUuid)})`,
      p.path,
      'use --force to overwrite it',
      'would-overwrite',
    )
  return p.size
}

function logCopy(arr: MdArray, log: RecoveryPlan, to: Ring, device: string): LogCopy {
  if (log.liveSectors + BLOCK_SECTORS > to.sizeSectors)
    throw new UsageError(
      `journal too small: the live log takes ${log.liveSectors * 512} bytes, the new ring holds ${to.sizeBytes} (it needs one block more than the log)`,
      'choose a bigger device, or replay the log first with `r5ctl recover`',
      device,
    )
  return {from: arr.ring!, tail: log.tailSector, sectors: log.liveSectors, unitStarts: log.unitStarts, to, seed: arr.seed, crc: arr.compute.crc}
}

function openForChange(sources: DeviceSource[], opts: JournalOptions): MdArray {
  return openArray(sources, {
    writable: !opts.dryRun,
    journalless: true,
    allowMissingJournal: true,
    superblockUpdates: 1,
    compute: opts.compute,
  })
}

function journalBefore(arr: MdArray): JournalResult['journalBefore'] {
  return arr.journal ? 'present' : arr.hasJournalFeature ? 'missing' : 'none'
}

/** Every device given already carries the freshest superblock's feature and events: nothing half-done to finish. */
function settled(arr: MdArray): boolean {
  return arr.all().every(d => d.sb.events === arr.sb.events && ((d.sb.featureMap ^ arr.sb.featureMap) & FEATURE_JOURNAL) === 0)
}

function refuseDirty(arr: MdArray, log: RecoveryPlan, what: string): void {
  if (log.clean) return
  throw new R5Error(
    `journal is dirty: ${log.dataParityStripes + log.dataOnlyStripes} stripe(s) wait for replay, and would be lost if you ${what} now`,
    EXIT.DIRTY,
    arr.journal!.path,
    'replay it first: `r5ctl journal remove --recover`, or `r5ctl recover`; nothing was written',
    'dirty',
  )
}

function lostJournal(arr: MdArray, next: string): RefusedError {
  return new RefusedError(
    `journal of array ${arr.uuid} is missing: records only in it are lost, and any stripe may hold a torn write`,
    undefined,
    `${next} (docs/runbooks/journal-died.md); nothing was written`,
    'missing-journal',
  )
}

function memberWrites(arr: MdArray, m: Membership): Write[] {
  return arr.members
    .filter(d => d !== null)
    .map(d => {
      const bytes = encodeSuperblock(rewritten(d.sb, m))
      // where the superblock was found: super_offset says so (checked when probed)
      const offsetBytes = Number(d.sb.superOffset) * 512
      return {dev: d.dev, bytes, report: {device: d.path, offsetBytes, bytes: bytes.length, what: 'superblock' as const}}
    })
}

/**
 * Write the plan, each step flushed before the next: the new journal's log (a superblock must never
 * point at a log still in flight), its superblock, then the members'.
 */
function applyChange(plan: ChangePlan, progress?: Progress): void {
  if (plan.copy) copyLog(plan.copy, progress)
  for (const w of plan.log) w.dev.write(w.bytes, w.report.offsetBytes)
  if (plan.journal) {
    plan.journal.dev.flush()
    plan.journal.dev.write(plan.journal.bytes, plan.journal.report.offsetBytes)
    plan.journal.dev.flush()
  }
  for (const w of plan.members) w.dev.write(w.bytes, w.report.offsetBytes)
  for (const w of plan.members) w.dev.flush()
}

/** Copy the live log window by window; each meta block gets its new position and checksum (a block is never split by a window). */
function copyLog(c: LogCopy, progress?: Progress): void {
  const window = 4 << 20
  const buf = alignedBuffer(Math.min(window, c.sectors * 512))
  let next = 0
  for (let done = 0; done < c.sectors;) {
    const sectors = Math.min(buf.length / 512, c.sectors - done)
    const part = buf.subarray(0, sectors * 512)
    c.from.read(part, c.from.add(c.tail, done))
    for (; next < c.unitStarts.length && c.unitStarts[next] < done + sectors; next++) {
      const at = c.unitStarts[next]
      const block = part.subarray((at - done) * 512, (at - done) * 512 + PAGE)
      const view = Buffer.from(block.buffer, block.byteOffset, PAGE)
      view.writeBigUInt64LE(BigInt(at), 24)
      view.writeUInt32LE(0, 4)
      view.writeUInt32LE(c.crc.raw(c.seed, view), 4)
    }
    c.to.write(part, done)
    done += sectors
    progress?.(done * 512, c.sectors * 512)
  }
}

function result(
  arr: MdArray,
  action: JournalResult['action'],
  opts: JournalOptions,
  plan: ChangePlan,
  m: Membership,
  o: {
    before: JournalResult['journalBefore']
    newJournal: string | null
    devNumber: number | null
    firstSeq: bigint | null
    pending: number
    resync: boolean
    recovery: RecoverResult | null
  },
): JournalResult {
  const copied = plan.copy ? plan.copy.sectors * 512 : 0
  const copyWrite: JournalWrite[] = plan.copy
    ? [{device: o.newJournal!, offsetBytes: Number(JOURNAL_DATA_OFFSET) * 512, bytes: copied, what: 'copied log'}]
    : []
  return {
    action,
    arrayUuid: arr.uuid,
    dryRun: Boolean(opts.dryRun),
    journalBefore: o.before,
    oldJournal: arr.journal?.path ?? null,
    newJournal: o.newJournal,
    journalDevNumber: o.devNumber,
    eventsBefore: arr
      .all()
      .reduce((e, d) => (d.sb.events > e ? d.sb.events : e), 0n)
      .toString(),
    events: m.events.toString(),
    firstSeq: o.firstSeq?.toString() ?? null,
    copiedLogBytes: copied,
    stripesPending: o.pending,
    journalLost: o.before === 'missing',
    resync: o.resync,
    leftOut: arr.leftOut,
    recovery: o.recovery,
    writes: [...copyWrite, ...plan.log.map(w => w.report), ...(plan.journal ? [plan.journal.report] : []), ...plan.members.map(w => w.report)],
  }
}
