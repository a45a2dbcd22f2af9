import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {examineDevices, examineJournal, type ExamineDevice} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {keyValues} from '../render/table.js'
import {mdSize} from '../render/format.js'
import {out} from '../render/colour.js'
import {renderJournal} from '../render/journal.js'

export const spec = {
  summary: 'Print the md superblock of each device, like mdadm --examine (or the journal with --journal)',
  description: `Reports every field mdadm --examine shows, with the checksum verdict. Damaged superblocks are
still printed with their problems; the exit code is 4 when any device has a bad superblock. With --journal, prints
the summary of the live log instead (see examine-journal).`,
  examples: [
    '<%= config.bin %> examine a.img b.img j.img',
    '<%= config.bin %> examine --json a.img',
    '<%= config.bin %> examine --journal j.img',
    '<%= config.bin %> examine --export a.img        # MD_LEVEL=raid5 … for scripts',
    '<%= config.bin %> examine --brief a.img b.img   # mdadm.conf ARRAY line',
  ],
  strict: false,
  flags: {
    journal: flag.boolean({description: 'summarise the journal (live log) instead of the superblocks'}),
    export: flag.boolean({char: 'Y', description: "key=value lines with mdadm's names (MD_LEVEL, MD_UUID, …) plus MD_ROLE and MD_JOURNAL_* keys"}),
    brief: flag.boolean({char: 'b', description: 'one mdadm.conf ARRAY line per array'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  if (flags.journal) return runJournal(ctx, devices, {export: flags.export})
  if (devices.length === 0) ctx.error('no devices given', {exit: EXIT.USAGE})
  const res = examineDevices(devices)
  // unreadable devices (missing file, I/O) are failures; damaged superblocks are corruption
  if (res.some(d => !d.ok && d.problems.some(p => p.code === 'io'))) ctx.setExit(EXIT.FAILED)
  else if (res.some(d => !d.ok)) ctx.setExit(EXIT.CORRUPT)
  if (ctx.jsonEnabled()) return {devices: res}
  if (flags.brief) ctx.log(briefLines(res).join('\n'))
  else if (flags.export) ctx.log(res.map(exportLines).join('\n\n'))
  else ctx.log(res.map(render).join('\n\n'))
  return {devices: res}
}

/** examine --journal and examine-journal. */
export function runJournal(ctx: Ctx, devices: string[], opts: {export?: boolean} = {}) {
  const r = examineJournal(devices)
  if (r.state === 'dirty') ctx.setExit(EXIT.DIRTY)
  if (r.state === 'corrupt') ctx.setExit(EXIT.CORRUPT)
  if (ctx.jsonEnabled()) return r
  if (opts.export) {
    ctx.log(
      [
        `MD_UUID=${r.arrayUuid}`,
        `MD_JOURNAL_DEVICE=${r.journal}`,
        `MD_JOURNAL_STATE=${r.state}`,
        `MD_JOURNAL_TAIL=${r.journalTailSector}`,
        `MD_JOURNAL_TAIL_SEQ=${r.tailSeq ?? ''}`,
        `MD_JOURNAL_HEAD=${r.headSector}`,
        `MD_JOURNAL_SIZE=${r.sizeBytes}`,
        `MD_JOURNAL_USED=${r.usedBytes}`,
        `MD_JOURNAL_PENDING_DATA_PARITY=${r.stripesPending.dataParity}`,
        `MD_JOURNAL_PENDING_DATA_ONLY=${r.stripesPending.dataOnly}`,
        `MD_JOURNAL_STOP=${r.stop.reason}`,
      ].join('\n'),
    )
  } else ctx.log(renderJournal(r))
  return r
}

function render(d: ExamineDevice): string {
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
function exportLines(d: ExamineDevice): string {
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
function briefLines(res: ExamineDevice[]): string[] {
  const seen = new Map<string, ExamineDevice>()
  for (const d of res) if (d.arrayUuid && !seen.has(d.arrayUuid)) seen.set(d.arrayUuid, d)
  return [...seen.values()].map(d => {
    const short = (d.name ?? '').split(':').pop() || '0'
    return `ARRAY /dev/md/${short}  metadata=1.2 UUID=${d.arrayUuid} name=${d.name}`
  })
}
