/**
 * The engine's front door: every command calls exactly one of these operations and renders what
 * it returns. Nothing here prints.
 */
import {
  type MdArray,
  type DeviceSource,
  openArray,
  refuseDuplicateSources,
  planCreate,
  applyCreate,
  probeDevice,
  type CreateOptions,
  type ProbeResult,
} from './array.js'
import {readArray, writeArray, syncParity, arraySizeBytes, type Progress, type Source, type WriteResult, type WriteOptions} from './io.js'
import {planRecovery, planWrites, type SkippedUnit, type WriteRun} from './journal/plan.js'
import {applyRecovery} from './journal/apply.js'
import {reclaimLog, type ReclaimResult} from './journal/reclaim.js'
import {CrashController} from './crash.js'
import {FileDevice, alignedBuffer} from './device.js'
import {journalState, type JournalState} from './journal/state.js'
import {scanLog, hex, verifyUnitPages, describeStop, type ScanStop, type PageVerdict, type LastUnit, type LogEnd} from './journal/scan.js'
import {BLOCK_SECTORS, PAGE, Ring} from './journal/ring.js'
import * as fs from 'node:fs'
import {ROLE_JOURNAL, ROLE_SPARE, ROLE_FAULTY, formatUuid, layoutName, mdTimeToDate} from './format/superblock.js'
import {PAYLOAD_DATA, PAYLOAD_FLUSH, PAYLOAD_PARITY, decodeMetaBlock, pagesOf, type MetaBlock} from './format/meta.js'
import {crcBackend} from './checksum.js'
import {R5Error, EXIT, UsageError, SimulatedCrash, CorruptError, RefusedError} from './errors.js'

export {refuseDeviceAsFile} from './identity.js'
export {
  openArray,
  type DeviceSource,
  type MdArray,
  type CreateOptions,
  type Progress,
  type Source,
  type WriteResult,
  type JournalState,
  arraySizeBytes,
}

export interface CreateResult {
  arrayUuid: string
  level: number
  /** null for RAID4, whose layout md ignores (mdadm prints none) */
  layout: string | null
  raidDevices: number
  chunkBytes: number
  memberDataSectors: number
  arraySizeBytes: number
  journal: string
  journalSizeBytes: number
  firstSeq: string
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
    journal: plan.paths[o.raidDevices],
    journalSizeBytes: arr.ring!.sizeBytes,
    firstSeq: plan.firstSeq.toString(),
    parity,
    devices: plan.paths.map((p, i) => ({device: p, role: i === o.raidDevices ? 'journal' : `active ${i}`})),
  }
  arr.close()
  return result
}

export interface WriteDataOptions extends WriteOptions {
  /** simulated power cut after this many device write requests (crash injection) */
  crashAfter?: number
  /** with crashAfter: apply a seeded random subset of each device's unflushed writes */
  crashSeed?: number
}

/**
 * With crashAfter: the power cut was not injected, because the write completed within its budget
 * of device writes. A crash sweep must learn this (its crash point is past the end), so the
 * result says so instead of looking like a plain successful write.
 */
export interface CrashReport {
  injected: false
  deviceWrites: number
}

/**
 * The most superblock updates a write of `length` bytes makes (writeArray): reclaiming cached stripes
 * first, opening the log, at most one checkpoint or reclaim per batch (every batch logs at least one
 * page of the write), closing the log.
 */
export function writeSuperblockUpdates(length: number): number {
  return 3 + Math.ceil(Math.max(0, length) / PAGE)
}

/**
 * Write through the journal. With crashAfter, every device is wrapped by the crash injector and
 * a SimulatedCrash (exit 75) ends the write; `acknowledged` tells how far the write got. A write
 * that needed no more than crashAfter device writes returns `crash` with their count. A `length`
 * of undefined means up to the end of the array (with endAtShortInput: up to the input's end).
 */
export function writeData(
  paths: DeviceSource[],
  offset: number,
  length: number | undefined,
  source: Source,
  opts: WriteDataOptions = {},
): WriteResult & {arrayUuid: string; crash?: CrashReport} {
  let sources = paths
  let ctl: CrashController | undefined
  if (opts.crashAfter !== undefined) {
    ctl = new CrashController(opts.crashAfter, opts.crashSeed)
    refuseDuplicateSources(paths)
    sources = paths.map(p => ctl!.wrap(typeof p === 'string' ? FileDevice.open(p, {writable: true}) : p))
  }
  let arr: MdArray
  try {
    arr = openArray(sources, {writable: true, superblockUpdates: a => writeSuperblockUpdates(length ?? Math.max(0, arraySizeBytes(a) - offset))})
  } catch (error) {
    if (ctl) for (const d of sources) if (typeof d !== 'string' && !paths.includes(d)) d.close()
    throw error
  }
  let acked = 0
  try {
    const len = length ?? Math.max(0, arraySizeBytes(arr) - offset)
    const res = writeArray(arr, offset, len, source, {
      ...opts,
      onAck: b => {
        acked = b
        opts.onAck?.(b)
      },
    })
    return {...res, arrayUuid: arr.uuid, ...(ctl ? {crash: {injected: false, deviceWrites: ctl.writes} as const} : {})}
  } catch (error) {
    if (error instanceof SimulatedCrash) error.acknowledged = acked
    throw error
  } finally {
    arr.close()
  }
}

// ---------------------------------------------------------------------------------------------
// recover / reclaim

export interface RecoverResult {
  arrayUuid: string
  dryRun: boolean
  state: 'clean' | 'replayed' | 'would-replay'
  journalTailSector: number
  tailSeq: string
  stopSector: number
  stopReason: string
  stopMessage: string
  newTailSector: number
  newSeq: string
  metaBlocks: number
  skippedUnits: SkippedUnit[]
  dataParityStripes: number
  dataOnlyStripes: number
  pagesWritten: number
  logBytesScanned: number
  writes: WriteRun[]
}

export function recoverArray(paths: DeviceSource[], opts: {dryRun?: boolean; untilSeq?: bigint; progress?: Progress}): RecoverResult {
  const arr = openArray(paths, {writable: !opts.dryRun})
  try {
    // the whole log is walked and verified, and every write planned, before anything is written;
    // --dry-run lists the writes of this very plan
    const plan = planRecovery(arr, {untilSeq: opts.untilSeq, progress: opts.progress})
    const writes = planWrites(arr, plan)
    let pages = 0
    for (const w of writes) pages += w.pages
    if (!opts.dryRun) pages = applyRecovery(arr, plan, opts.progress).pagesWritten
    return {
      arrayUuid: arr.uuid,
      dryRun: Boolean(opts.dryRun),
      state: plan.clean ? 'clean' : opts.dryRun ? 'would-replay' : 'replayed',
      journalTailSector: plan.tailSector,
      tailSeq: plan.tailSeq.toString(),
      stopSector: plan.stopSector,
      stopReason: plan.stop.code,
      stopMessage: plan.stop.message,
      newTailSector: plan.clean ? plan.tailSector : plan.stopSector,
      newSeq: (plan.clean ? plan.tailSeq : plan.newSeq).toString(),
      metaBlocks: plan.units,
      skippedUnits: plan.skipped,
      logBytesScanned: plan.logBytesScanned,
      dataParityStripes: plan.dataParityStripes,
      dataOnlyStripes: plan.dataOnlyStripes,
      pagesWritten: plan.clean ? 0 : pages,
      writes: opts.dryRun ? writes : [],
    }
  } finally {
    arr.close()
  }
}

export function reclaimArray(paths: DeviceSource[], progress?: Progress): ReclaimResult & {arrayUuid: string} {
  const arr = openArray(paths, {writable: true})
  try {
    return {...reclaimLog(arr, progress), arrayUuid: arr.uuid}
  } finally {
    arr.close()
  }
}

export function readData(
  paths: DeviceSource[],
  offset: number,
  length: number | undefined,
  sink: (v: Uint8Array[]) => void,
  opts: {force?: boolean},
  progress?: Progress,
): {bytes: number; missingMembers: number[]; arrayUuid: string} {
  const arr = openArray(paths, {writable: false, allowMissingMembers: true, allowMissingJournal: opts.force})
  try {
    if (arr.journal && !opts.force) {
      const js = journalState(arr)
      if (js.state === 'dirty') {
        throw new R5Error(
          `journal is dirty: ${js.stripesDataParity + js.stripesDataOnly} stripe(s) pending replay; the members may be stale`,
          EXIT.DIRTY,
          arr.journal.path,
          'replay it with `r5ctl recover`, or pass --force to read the members as they are',
          'dirty',
        )
      }
    }
    const len = length ?? arraySizeBytes(arr) - offset
    readArray(arr, offset, len, sink, progress)
    return {bytes: len, missingMembers: arr.missingMembers, arrayUuid: arr.uuid}
  } finally {
    arr.close()
  }
}

// ---------------------------------------------------------------------------------------------
// examine

export interface ExamineDevice {
  device: string
  ok: boolean
  problems: {code: string; message: string}[]
  magic?: string
  version?: string
  featureMap?: string
  arrayUuid?: string
  name?: string
  creationTime?: string
  raidLevel?: string
  raidDevices?: number
  availDevSizeSectors?: number
  arraySizeBytes?: number
  usedDevSizeSectors?: number
  dataOffsetSector?: number
  superOffsetSector?: number
  journalTailSector?: number | null
  state?: string
  deviceUuid?: string
  updateTime?: string
  checksum?: string
  checksumExpected?: string
  checksumOk?: boolean
  events?: string
  layout?: string | null
  chunkBytes?: number
  deviceRole?: string
  devNumber?: number
  arrayState?: string
}

function roleName(role: number | undefined): string {
  if (role === undefined || role === ROLE_SPARE) return 'spare'
  if (role === ROLE_JOURNAL) return 'Journal'
  if (role === ROLE_FAULTY) return 'faulty'
  return `Active device ${role}`
}

export function examineDevices(paths: DeviceSource[]): ExamineDevice[] {
  return paths.map(path => describe(probeDevice(path)))
}

function describe(p: ProbeResult): ExamineDevice {
  if (p.error) return {device: p.path, ok: false, problems: [{code: p.error.code, message: p.error.message}]}
  const sb = p.sb
  if (!sb || p.problems.some(x => x.code === 'bad-magic' || x.code === 'short'))
    return {device: p.path, ok: false, problems: p.problems.length ? p.problems : [{code: 'unreadable', message: 'no superblock'}]}
  const dataDisks = sb.level === 6 ? sb.raidDisks - 2 : sb.raidDisks - 1
  const role = sb.devRoles[sb.devNumber]
  const need = Number(sb.dataOffset + sb.dataSize) * 512
  if (need > p.size)
    p.problems.push({code: 'truncated', message: `device is truncated: superblock says data ends at byte ${need}, device has ${p.size}`})
  const active = sb.devRoles.filter(r => r < sb.raidDisks)
  let state = ''
  for (let i = 0; i < sb.raidDisks; i++) state += active.includes(i) ? 'A' : '.'
  return {
    device: p.path,
    ok: p.problems.length === 0,
    problems: p.problems,
    magic: hex(sb.magic),
    version: `${sb.majorVersion}.2`,
    featureMap: `0x${sb.featureMap.toString(16)}`,
    arrayUuid: formatUuid(sb.setUuid),
    name: sb.setName,
    creationTime: mdTimeToDate(sb.ctime).toISOString(),
    raidLevel: `raid${sb.level}`,
    raidDevices: sb.raidDisks,
    availDevSizeSectors: Number(sb.dataSize),
    arraySizeBytes: Number(sb.size) * dataDisks * 512,
    usedDevSizeSectors: Number(sb.size),
    dataOffsetSector: Number(sb.dataOffset),
    superOffsetSector: Number(sb.superOffset),
    journalTailSector: role === ROLE_JOURNAL ? Number(sb.journalTail) : null,
    state: sb.resyncOffset === 0xffffffffffffffffn ? 'clean' : 'active',
    deviceUuid: formatUuid(sb.deviceUuid),
    updateTime: mdTimeToDate(sb.utime).toISOString(),
    checksum: hex(sb.sbCsum),
    checksumExpected: hex(p.computedCsum),
    checksumOk: sb.sbCsum >>> 0 === p.computedCsum >>> 0,
    events: sb.events.toString(),
    layout: sb.level === 4 ? null : layoutName(sb.level, sb.layout),
    chunkBytes: sb.chunkSize * 512,
    deviceRole: roleName(role),
    devNumber: sb.devNumber,
    arrayState: state,
  }
}

// ---------------------------------------------------------------------------------------------
// journal views

export interface JournalReport {
  journal: string
  arrayUuid: string
  sizeBytes: number
  state: 'clean' | 'dirty' | 'corrupt'
  journalTailSector: number
  tailSeq: string | null
  headSector: number
  nextSeq: string | null
  usedBytes: number
  metaBlocks: number
  dataPages: number
  parityPages: number
  flushPayloads: number
  /** io units with a bad page checksum, which replay drops (kernel rule) */
  droppedUnits: number
  stripesPending: {dataParity: number; dataOnly: number}
  /** reason `end-of-log` (with the scanner's reason as `cause`) where the log simply ends */
  stop: LogEnd
  crcBackend: string
}

function openForJournal(paths: DeviceSource[]): MdArray {
  return openArray(paths, {writable: false, journalOnly: true, allowMissingMembers: true})
}

export function examineJournal(paths: DeviceSource[]): JournalReport {
  const arr = openForJournal(paths)
  try {
    const js = journalState(arr)
    return {
      journal: arr.journal!.path,
      arrayUuid: arr.uuid,
      sizeBytes: js.sizeBytes,
      state: js.state,
      journalTailSector: js.tailSector,
      tailSeq: js.tailSeq?.toString() ?? null,
      headSector: js.headSector,
      nextSeq: js.nextSeq?.toString() ?? null,
      usedBytes: js.usedBytes,
      metaBlocks: js.metaBlocks,
      dataPages: js.dataPages,
      parityPages: js.parityPages,
      flushPayloads: js.flushPayloads,
      droppedUnits: js.droppedUnits,
      stripesPending: {dataParity: js.stripesDataParity, dataOnly: js.stripesDataOnly},
      stop: js.end,
      crcBackend,
    }
  } finally {
    arr.close()
  }
}

export interface DumpPage {
  positionSector: number
  checksum: string
  actual: string
  verdict: 'match' | 'MISMATCH'
}
export type DumpPayload =
  | {type: 'data' | 'parity'; flags: number; locationSector: string; stripeSector: number; sizeSectors: number; pages: DumpPage[]}
  | {type: 'flush'; flags: number; stripeSectors: string[]}
export interface DumpBlock {
  positionSector: number
  seq: string
  metaSize: number
  checksum: string
  pages: number
  payloads: DumpPayload[]
  stale?: boolean
}
export interface DumpReport {
  journal: string
  arrayUuid: string
  journalTailSector: number
  fromSector: number
  blocks: DumpBlock[]
  /** meta blocks the walk passed (before the `stripe` filter; stale ones not counted) */
  walkedBlocks: number
  mismatches: number
  /** the walk started at journal_tail and found no valid meta block there: the kernel would discard the whole log */
  badTail: boolean
  stop: LogEnd
}

export function dumpMeta(paths: DeviceSource[], opts: {from?: number; stripe?: number; all?: boolean}): DumpReport {
  const arr = openForJournal(paths)
  try {
    const ring = arr.ring!
    const from = opts.from ?? arr.journalTail
    if (from % BLOCK_SECTORS !== 0 || from >= ring.sizeSectors)
      throw new UsageError(`--from ${from} is not a 4 KiB-aligned sector inside the journal (size ${ring.sizeSectors} sectors)`)
    let stop: ScanStop | undefined
    const blocks: DumpBlock[] = []
    let mismatches = 0
    let walked = 0
    const describeUnit = (position: number, meta: MetaBlock, pages: number, verdicts: PageVerdict[], stale: boolean) => {
      const payloads: DumpPayload[] = []
      meta.payloads.forEach((p, pi) => {
        if (p.type === PAYLOAD_FLUSH) {
          payloads.push({type: 'flush', flags: p.flags, stripeSectors: p.stripes.map(String)})
          return
        }
        const stripeSector = p.type === PAYLOAD_DATA ? Number(arr.geometry.mapSector(p.location).memberSector) : Number(p.location)
        const pgs: DumpPage[] = verdicts
          .filter(v => v.payload === pi)
          .map(v => {
            if (!v.ok && !stale) mismatches++
            return {positionSector: v.position, checksum: hex(v.expected), actual: hex(v.actual), verdict: v.ok ? 'match' : 'MISMATCH'}
          })
        payloads.push({
          type: p.type === PAYLOAD_PARITY ? 'parity' : 'data',
          flags: p.flags,
          locationSector: p.location.toString(),
          stripeSector,
          sizeSectors: p.sizeSectors,
          pages: pgs,
        })
      })
      const shown =
        opts.stripe === undefined
          ? payloads
          : payloads.filter(p => (p.type === 'flush' ? p.stripeSectors.includes(String(opts.stripe)) : p.stripeSector === opts.stripe))
      if (opts.stripe !== undefined && shown.length === 0) return
      const b: DumpBlock = {
        positionSector: position,
        seq: meta.seq.toString(),
        metaSize: meta.metaSize,
        checksum: hex(meta.checksum),
        pages,
        payloads: shown,
      }
      if (stale) b.stale = true
      blocks.push(b)
    }
    let last: LastUnit | null = null
    for (const u of scanLog(ring, arr.seed, from, {continueOnDataMismatch: true, onStop: s => (stop = s)})) {
      last = {position: u.position, seq: u.seq, empty: u.meta.payloads.length === 0}
      walked++
      describeUnit(u.position, u.meta, u.pages, u.verdicts, false)
    }
    if (opts.all) {
      // Stale blocks: beyond the head, every 4 KiB block that is a well-formed meta block for its
      // own position (magic, version, checksum, position) whatever its seq; the scan from
      // journal_tail can never reach them.
      const head = stop!.position
      let left = ring.sizeSectors - ring.distance(from, head)
      let pos = head
      let skipUntil = 0 // sectors from the head to skip (pages of a stale unit just listed)
      const win = alignedBuffer(Math.min(8 << 20, ring.sizeBytes))
      while (left > 0) {
        const len = Math.min(win.length / 512, left, ring.sizeSectors - pos)
        const w = win.subarray(0, len * 512)
        ring.read(w, pos)
        for (let k = 0; k < len; k += BLOCK_SECTORS) {
          const p = pos + k
          const fromHead = ring.distance(head, p)
          if (fromHead < skipUntil) continue
          const blk = w.subarray(k * 512, k * 512 + PAGE)
          if (blk.readUInt32LE(0) !== 0x6433c509) continue
          const {meta, problems} = decodeMetaBlock(blk, arr.seed, {position: BigInt(p)})
          if (!meta || problems.length > 0) continue
          const pages = pagesOf(meta)
          if ((pages + 1) * BLOCK_SECTORS > ring.sizeSectors) continue
          const data = alignedBuffer(Math.max(pages, 1) * PAGE).subarray(0, pages * PAGE)
          if (pages > 0) ring.read(data, ring.add(p, BLOCK_SECTORS))
          let verdicts: PageVerdict[]
          try {
            verdicts = verifyUnitPages(meta, data, arr.seed, ring, p)
          } catch (error) {
            // a stale block whose payloads point outside the array is junk, not part of any log
            if (error instanceof R5Error && error.code === 'bad-payload-location') continue
            throw error
          }
          describeUnit(p, meta, pages, verdicts, true)
          skipUntil = fromHead + (pages + 1) * BLOCK_SECTORS
        }
        left -= len
        pos = ring.add(pos, len)
      }
    }
    const end = describeStop(stop!, last)
    return {
      journal: arr.journal!.path,
      arrayUuid: arr.uuid,
      journalTailSector: arr.journalTail,
      fromSector: from,
      blocks,
      walkedBlocks: walked,
      mismatches,
      badTail: walked === 0 && from === arr.journalTail,
      stop: end,
    }
  } finally {
    arr.close()
  }
}

// ---------------------------------------------------------------------------------------------
// assemble

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

// ---------------------------------------------------------------------------------------------
// copy the journal off a dying device

export interface CopyJournalResult {
  journal: string
  output: string
  bytesCopied: number
  sizeBytes: number
  live: {fromSector: number; toSector: number}
  all: boolean
}

/**
 * Copy the journal's superblock area and its live log (or, with `all`, its whole data area) into a
 * sparse image of the same size, which every command accepts in place of the journal device.
 * Reads only; the output must not exist yet (nothing is ever overwritten).
 */
export function copyJournal(paths: DeviceSource[], output: string, opts: {all?: boolean}): CopyJournalResult {
  const arr = openForJournal(paths)
  try {
    const j = arr.journal!
    if (fs.existsSync(output))
      throw new RefusedError('output already exists; r5ctl never overwrites it', output, 'choose a new file name', 'would-overwrite')
    const js = journalState(arr)
    const ring = arr.ring!
    FileDevice.createSparse(output, j.dev.size)
    const out = FileDevice.open(output, {writable: true})
    let copied = 0
    try {
      const head = alignedBuffer(ring.baseBytes)
      j.dev.read(head, 0)
      out.write(head, 0)
      copied += head.length
      const from = opts.all ? 0 : js.tailSector
      const sectors = opts.all ? ring.sizeSectors : ring.distance(js.tailSector, js.stop.position) + BLOCK_SECTORS
      const win = alignedBuffer(Math.min(8 << 20, ring.sizeBytes))
      let done = 0
      while (done < sectors) {
        const len = Math.min(win.length / 512, sectors - done)
        const pos = ring.add(from, done)
        const w = win.subarray(0, len * 512)
        ring.read(w, pos)
        const outRing = new Ring(out, ring.baseBytes, ring.sizeSectors)
        outRing.write(w, pos)
        copied += w.length
        done += len
      }
      out.flush()
    } finally {
      out.close()
    }
    return {
      journal: j.path,
      output,
      bytesCopied: copied,
      sizeBytes: j.dev.size,
      live: {fromSector: js.tailSector, toSector: js.stop.position},
      all: Boolean(opts.all),
    }
  } finally {
    arr.close()
  }
}

// ---------------------------------------------------------------------------------------------
// undo files: written around any operation (undo/log.ts), verified and restored (undo/restore.ts)

export {withUndo} from './undo/log.js'
export {undoRestore, type UndoResult} from './undo/restore.js'
