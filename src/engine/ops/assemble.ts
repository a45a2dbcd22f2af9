/**
 * assemble: check a device set as mdadm --assemble would, and bring members one event behind up to
 * date.
 */
import type {EngineOptions} from '../compute.js'
import {replayPlan, walkProgress, type RecoverResult} from './recover.js'
import {examineJournal} from './examine.js'
import {type MdArray, type DeviceSource, openArray} from '../array.js'
import {probeDevice} from '../probe.js'
import {arraySizeBytes, type Progress} from '../rows.js'
import {planOrCorrupt} from '../journal/plan.js'
import {ROLE_JOURNAL, mdTimeToDate, versionAt} from '../format/superblock.js'
import {layoutName} from '../format/names.js'
import {R5Error, EXIT, CorruptError} from '../errors.js'

export interface AssembleDevice {
  number: number
  raidDevice: number | null
  state: string
  device: string
  events: string
}
export interface AssembleResult {
  arrayUuid: string
  name: string
  version: string
  creationTime: string
  updateTime: string
  raidLevel: string
  layout: string | null
  chunkBytes: number
  arraySizeBytes: number
  usedDevSizeSectors: number
  raidDevices: number
  totalDevices: number
  activeDevices: number
  missingSlots: number[]
  state: string
  consistencyPolicy: 'journal'
  events: string
  journal: {device: string | null; state: 'clean' | 'dirty' | 'corrupt' | 'missing'; stripesPending: number}
  readOnly: boolean
  recovery: RecoverResult | null
  devices: AssembleDevice[]
}

/**
 * Identify the set and apply mdadm's journal rule: without the journal (or with a stale one) the
 * array is refused, because whatever the journal holds would be lost; --force then means
 * read-only and no replay. A dirty journal is replayed like the kernel does at array start,
 * unless readonly / noRecover.
 */
export function assembleArray(
  paths: DeviceSource[],
  opts: EngineOptions & {force?: boolean; readonly?: boolean; noRecover?: boolean; progress?: Progress},
): AssembleResult {
  const {usable, staleJournal, hasJournal} = withoutStaleJournal(paths, opts)
  const readOnly = Boolean(opts.readonly || (opts.force && (staleJournal || !hasJournal)))
  const arr = openForAssemble(usable, readOnly, opts)
  try {
    const replay = !readOnly && !opts.noRecover
    const journal: JournalOutcome = arr.journal
      ? journalOutcome(arr, readOnly, replay, opts.progress)
      : {state: 'missing', pending: 0, recovery: null}
    return describeAssembled(arr, journal, readOnly)
  } finally {
    arr.close()
  }
}

/** A stale journal: count what it holds, then refuse (or, with --force, leave it out). */
function withoutStaleJournal(
  paths: DeviceSource[],
  opts: EngineOptions & {force?: boolean},
): {usable: DeviceSource[]; staleJournal: boolean; hasJournal: boolean} {
  const probes = paths.map(p => probeDevice(p))
  const hasJournal = probes.some(p => p.sb?.devRoles[p.sb.devNumber] === ROLE_JOURNAL)
  const maxEvents = probes.reduce((m, p) => (p.sb && p.problems.length === 0 && p.sb.events > m ? p.sb.events : m), 0n)
  const stale = probes.find(p => p.sb && p.problems.length === 0 && p.sb.devRoles[p.sb.devNumber] === ROLE_JOURNAL && p.sb.events + 1n < maxEvents)
  if (!stale) return {usable: paths, staleJournal: false, hasJournal}
  let pending = 'an unknown number of'
  try {
    const js = examineJournal([paths[probes.indexOf(stale)]], opts)
    pending = String(js.stripesPending.dataParity + js.stripesPending.dataOnly)
  } catch {
    /* unreadable: keep "unknown" */
  }
  if (!opts.force)
    throw new R5Error(
      `journal is stale (events ${stale.sb!.events}, the set is at ${maxEvents}); ${pending} stripe(s) it holds would be lost`,
      EXIT.REFUSED,
      stale.path,
      'find the current journal, or use --force to assemble read-only without it',
      'stale-journal',
    )
  return {usable: paths.filter((_, i) => probes[i] !== stale), staleJournal: true, hasJournal}
}

function openForAssemble(usable: DeviceSource[], readOnly: boolean, opts: EngineOptions & {force?: boolean}): MdArray {
  try {
    return openArray(usable, {writable: !readOnly, allowMissingMembers: true, allowMissingJournal: readOnly && opts.force, compute: opts.compute})
  } catch (error) {
    if (error instanceof R5Error && error.code === 'missing-journal')
      throw new R5Error(
        `${error.message.replace(/: pending.*$/, '')}: the stripes it may hold would be lost and cannot be counted without it`,
        EXIT.REFUSED,
        error.device,
        'name the journal device; --force assembles read-only without replay (mdadm --force would too)',
        'missing-journal',
      )
    throw error
  }
}

interface JournalOutcome {
  state: AssembleResult['journal']['state']
  pending: number
  recovery: RecoverResult | null
}

/**
 * The journal's state from one plan of its log, replayed on the devices already open when `replay`
 * (recover's own apply); a refusal when it cannot be replayed (a corrupt tail). With members missing
 * it replays onto those present, as the kernel's does.
 */
function journalOutcome(arr: MdArray, readOnly: boolean, replay: boolean, progress?: Progress): JournalOutcome {
  const plan = planOrCorrupt(arr, replay ? walkProgress(progress) : undefined)
  if (plan instanceof CorruptError) {
    if (!readOnly)
      throw new CorruptError(plan.message, plan.device, 'inspect it with `r5ctl dump-meta`, or assemble --readonly; nothing was written', 'bad-tail')
    return {state: 'corrupt', pending: 0, recovery: null}
  }
  const pending = plan.dataParityStripes + plan.dataOnlyStripes
  if (pending === 0 && plan.skipped.length === 0) return {state: 'clean', pending, recovery: null}
  if (!replay) return {state: 'dirty', pending, recovery: null}
  return {state: 'clean', pending, recovery: replayPlan(arr, plan, {progress})}
}

/** The assembled array as mdadm --detail describes it. */
function describeAssembled(arr: MdArray, journal: JournalOutcome, readOnly: boolean): AssembleResult {
  const sb = arr.all().reduce((a, d) => (d.sb.events > a.events ? d.sb : a), arr.all()[0].sb)
  const devices: AssembleDevice[] = arr
    .all()
    .map(d => ({
      number: d.sb.devNumber,
      raidDevice: d.role === ROLE_JOURNAL ? null : d.role,
      state: d.role === ROLE_JOURNAL ? 'journal' : 'active sync',
      device: d.path,
      events: d.sb.events.toString(),
    }))
    .sort((a, b) => a.number - b.number)
  const missing = arr.missingMembers
  // without the journal nothing says the stripes are whole: records only in it are lost, and any
  // stripe it covered may hold a torn write (docs/runbooks/journal-died.md)
  const consistency = journal.state === 'missing' ? 'not known to be clean' : 'clean'
  const states = [missing.length === 0 ? consistency : `${consistency}, degraded`]
  if (readOnly) states.push('read-only')
  if (journal.state === 'dirty') states.push('journal pending replay')
  if (journal.state === 'missing') states.push('journal missing: records only in it are lost, any stripe may hold a torn write')
  if (journal.state === 'corrupt') states.push('journal corrupt (no valid meta block at the tail)')
  return {
    arrayUuid: arr.uuid,
    name: sb.setName,
    version: versionAt(sb.superOffset),
    creationTime: mdTimeToDate(sb.ctime).toISOString(),
    updateTime: mdTimeToDate(sb.utime).toISOString(),
    raidLevel: `raid${sb.level}`,
    layout: sb.level === 4 ? null : layoutName(sb.level, sb.layout),
    chunkBytes: sb.chunkSize * 512,
    arraySizeBytes: arraySizeBytes(arr),
    usedDevSizeSectors: Number(sb.size),
    raidDevices: sb.raidDisks,
    totalDevices: arr.all().length,
    activeDevices: sb.raidDisks - missing.length,
    missingSlots: missing,
    state: states.join(', '),
    consistencyPolicy: 'journal',
    events: sb.events.toString(),
    journal: {device: arr.journal?.path ?? null, state: journal.state, stripesPending: journal.state === 'clean' ? 0 : journal.pending},
    readOnly,
    recovery: journal.recovery,
    devices,
  }
}
