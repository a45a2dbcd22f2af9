/**
 * examine: every device's superblock as mdadm --examine shows it, and the journal summary
 * (journal/state.ts).
 */
import {type MdArray, type DeviceSource, openArray} from '../array.js'
import {probeDevice, type ProbeResult} from '../probe.js'
import {journalState} from '../journal/state.js'
import {hex, type LogEnd} from '../journal/scan.js'
import {FEATURE_RECOVERY_OFFSET, ROLE_JOURNAL, ROLE_SPARE, ROLE_FAULTY, mdTimeToDate} from '../format/superblock.js'
import {formatUuid, layoutName} from '../format/names.js'
import type {EngineOptions} from '../compute.js'

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
  /** a member in recovery (feature 0x2): in sync up to this sector (md's recovery_offset) */
  recoveryOffsetSector?: number | null
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
    version: p.version ?? `${sb.majorVersion}`,
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
    recoveryOffsetSector: role !== ROLE_JOURNAL && sb.featureMap & FEATURE_RECOVERY_OFFSET ? Number(sb.journalTail) : null,
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

export function openForJournal(paths: DeviceSource[], opts: EngineOptions = {}): MdArray {
  return openArray(paths, {writable: false, journalOnly: true, allowMissingMembers: true, compute: opts.compute})
}

export function examineJournal(paths: DeviceSource[], opts: EngineOptions = {}): JournalReport {
  const arr = openForJournal(paths, opts)
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
      crcBackend: arr.compute.crc.name,
    }
  } finally {
    arr.close()
  }
}
