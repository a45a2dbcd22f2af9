/** What `r5ctl examine` prints in text mode (the --json output is the engine's result as is). */
import {type ExamineDevice} from '../engine/index.js'
import {keyValues} from './table.js'
import {mdSize} from './format.js'
import {out} from './colour.js'

export function renderExamine(d: ExamineDevice): string {
  if (d.magic === undefined) return `${d.device}:\n${out.red('  ' + d.problems.map(p => p.message).join('; '))}`
  // mdadm prints the checksum with %x (no leading zeros); so do we in text (JSON keeps 8 digits)
  const x = (h: string) => parseInt(h, 16).toString(16)
  const csum = d.checksumOk ? `${x(d.checksum!)} - ${out.green('correct')}` : `${x(d.checksum!)} - ${out.red(`expected ${x(d.checksumExpected!)}`)}`
  const pairs: [string, string][] = [
    ['Magic', d.magic],
    ['Version', d.version!],
    ['Feature Map', d.featureMap!],
    ['Array UUID', d.arrayUuid!],
    ['Name', d.name!],
    ['Creation Time', new Date(d.creationTime!).toUTCString()],
    ['Raid Level', d.raidLevel!],
    ['Raid Devices', String(d.raidDevices)],
    ['', ''],
    ['Avail Dev Size', `${d.availDevSizeSectors} sectors ${mdSize(d.availDevSizeSectors! * 512)}`],
    ['Array Size', `${d.arraySizeBytes! / 1024} KiB ${mdSize(d.arraySizeBytes!)}`],
    ['Used Dev Size', `${d.usedDevSizeSectors} sectors ${mdSize(d.usedDevSizeSectors! * 512)}`],
    ['Data Offset', `${d.dataOffsetSector} sectors`],
    ['Super Offset', `${d.superOffsetSector} sectors`],
    ...(d.journalTailSector !== null ? [['Journal Tail', `${d.journalTailSector} sectors`] as [string, string]] : []),
    ...(typeof d.recoveryOffsetSector === 'number' ? [['Recovery Offset', `${d.recoveryOffsetSector} sectors`] as [string, string]] : []),
    ['State', d.state!],
    ['Device UUID', d.deviceUuid!],
    ['', ''],
    ['Update Time', new Date(d.updateTime!).toUTCString()],
    ['Checksum', csum],
    ['Events', d.events!],
    ['', ''],
    ...(d.layout ? [['Layout', d.layout] as [string, string]] : []),
    ['Chunk Size', `${d.chunkBytes! / 1024}K`],
    ['', ''],
    ['Device Role', d.deviceRole!],
    ['Array State', `${d.arrayState} ('A' == active, '.' == missing, 'R' == replacing)`],
  ]
  const problems = d.problems.length ? '\n' + d.problems.map(p => out.red(`  problem: ${p.message}`)).join('\n') : ''
  return `${d.device}:\n${keyValues(pairs)}${problems}`
}

/** mdadm --examine --export names, one block per device; a journal says MD_ROLE=journal (mdadm: spare). */
export function exportLines(d: ExamineDevice): string {
  if (d.magic === undefined) return [`MD_DEVICE=${d.device}`, `MD_PROBLEM=${d.problems.map(p => p.code).join(',')}`].join('\n')
  const role = d.deviceRole === 'Journal' ? 'journal' : d.deviceRole?.startsWith('Active device ') ? d.deviceRole.slice(14) : 'spare'
  const lines = [
    `MD_DEVICE=${d.device}`,
    `MD_LEVEL=${d.raidLevel}`,
    `MD_DEVICES=${d.raidDevices}`,
    `MD_NAME=${d.name}`,
    `MD_UUID=${d.arrayUuid}`,
    `MD_UPDATE_TIME=${Math.floor(new Date(d.updateTime!).getTime() / 1000)}`,
    `MD_DEV_UUID=${d.deviceUuid}`,
    `MD_EVENTS=${d.events}`,
    `MD_ROLE=${role}`,
    `MD_CHECKSUM_OK=${d.checksumOk ? 1 : 0}`,
  ]
  if (d.journalTailSector !== null && d.journalTailSector !== undefined) lines.push(`MD_JOURNAL_TAIL=${d.journalTailSector}`)
  return lines.join('\n')
}

/** mdadm --examine --brief: one ARRAY line per array seen among the devices. */
export function briefLines(res: ExamineDevice[]): string[] {
  const seen = new Map<string, ExamineDevice>()
  for (const d of res) if (d.arrayUuid && !seen.has(d.arrayUuid)) seen.set(d.arrayUuid, d)
  return [...seen.values()].map(d => {
    const short = (d.name ?? '').split(':').pop() || '0'
    return `ARRAY /dev/md/${short}  metadata=1.2 UUID=${d.arrayUuid} name=${d.name}`
  })
}
