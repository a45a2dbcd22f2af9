/**
 * assemble: check a device set as mdadm --assemble would, and bring members one event behind up to
 * date.
 */
import {recoverArray, type RecoverResult} from './recover.js'
import {examineJournal} from './examine.js'
import {type MdArray, type DeviceSource, openArray, probeDevice} from '../array.js'
import {arraySizeBytes, type Progress} from '../rows.js'
import {journalState} from '../journal/state.js'
import {ROLE_JOURNAL, mdTimeToDate} from '../format/superblock.js'
import {layoutName} from '../format/names.js'
import {R5Error, EXIT, CorruptError, RefusedError} from '../errors.js'

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
  opts: {force?: boolean; readonly?: boolean; noRecover?: boolean; progress?: Progress},
): AssembleResult {
  // a stale journal: count what it holds, then refuse (or go read-only with --force)
  const probes = paths.map(p => probeDevice(p))
  const maxEvents = probes.reduce((m, p) => (p.sb && p.problems.length === 0 && p.sb.events > m ? p.sb.events : m), 0n)
  const staleJournal = probes.find(
    p => p.sb && p.problems.length === 0 && p.sb.devRoles[p.sb.devNumber] === ROLE_JOURNAL && p.sb.events + 1n < maxEvents,
  )
  let usable = paths
  if (staleJournal) {
    let pending = 'an unknown number of'
    try {
      const js = examineJournal([paths[probes.indexOf(staleJournal)]])
      pending = String(js.stripesPending.dataParity + js.stripesPending.dataOnly)
    } catch {
      /* unreadable: keep "unknown" */
    }
    if (!opts.force)
      throw new R5Error(
        `journal is stale (events ${staleJournal.sb!.events}, the set is at ${maxEvents}); ${pending} stripe(s) it holds would be lost`,
        EXIT.REFUSED,
        staleJournal.path,
        'find the current journal, or use --force to assemble read-only without it',
        'stale-journal',
      )
    usable = paths.filter((_, i) => probes[i] !== staleJournal)
  }
  const readOnly = Boolean(
    opts.readonly || (opts.force && (staleJournal !== undefined || !probes.some(p => p.sb?.devRoles[p.sb.devNumber] === ROLE_JOURNAL))),
  )
  let arr: MdArray
  try {
    arr = openArray(usable, {writable: !readOnly, allowMissingMembers: true, allowMissingJournal: readOnly && Boolean(opts.force)})
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
  try {
    let jstate: AssembleResult['journal']['state'] = 'missing'
    let pending = 0
    let recovery: RecoverResult | null = null
    if (arr.journal) {
      const js = journalState(arr)
      jstate = js.state
      pending = js.stripesDataParity + js.stripesDataOnly
      if (js.state === 'corrupt' && !readOnly)
        throw new CorruptError(
          `no valid meta block at the journal tail (sector ${js.tailSector}): ${js.stop.message}`,
          arr.journal.path,
          'the kernel would discard the whole log; inspect with `r5ctl dump-meta`, or assemble --readonly',
          'bad-tail',
        )
      if (js.state === 'dirty' && !readOnly && !opts.noRecover) {
        if (arr.missingMembers.length > 0)
          throw new RefusedError(
            `journal holds ${pending} stripe(s) to replay but member slot(s) ${arr.missingMembers.join(', ')} are missing`,
            arr.journal.path,
            'name every member, or assemble --readonly',
            'degraded-replay',
          )
        arr.close()
        recovery = recoverArray(usable, {progress: opts.progress})
        arr = openArray(usable, {writable: false, allowMissingMembers: true})
        jstate = 'clean'
      }
    }
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
    const states = [missing.length === 0 ? 'clean' : 'clean, degraded']
    if (readOnly) states.push('read-only')
    if (jstate === 'dirty') states.push('journal pending replay')
    if (jstate === 'missing') states.push('journal missing')
    if (jstate === 'corrupt') states.push('journal corrupt (no valid meta block at the tail)')
    return {
      arrayUuid: arr.uuid,
      name: sb.setName,
      version: '1.2',
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
      journal: {device: arr.journal?.path ?? null, state: jstate, stripesPending: jstate === 'clean' ? 0 : pending},
      readOnly,
      recovery,
      devices,
    }
  } finally {
    arr.close()
  }
}
