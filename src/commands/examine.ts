import {Flags} from '@oclif/core'
import {R5Command} from '../base-command.js'
import {examineDevices, examineJournal, type ExamineDevice} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {keyValues} from '../render/table.js'
import {mdSize} from '../render/format.js'
import {out} from '../render/colour.js'
import {renderJournal} from '../render/journal.js'

export default class Examine extends R5Command {
  static summary = 'Print the md superblock of each device, like mdadm --examine (or the journal with --journal)'
  static description = `Reports every field mdadm --examine shows, with the checksum verdict. Damaged superblocks are
still printed with their problems; the exit code is 4 when any device has a bad superblock. With --journal, prints
the summary of the live log instead (see examine-journal).`
  static examples = [
    '<%= config.bin %> examine a.img b.img j.img',
    '<%= config.bin %> examine --json a.img',
    '<%= config.bin %> examine --journal j.img',
  ]
  static strict = false
  static flags = {
    journal: Flags.boolean({description: 'summarise the journal (live log) instead of the superblocks'}),
  }

  async run() {
    const {flags, argv} = await this.parse(Examine)
    const devices = argv.map(String)
    if (flags.journal) return runJournal(this, devices)
    if (devices.length === 0) this.error('no devices given', {exit: EXIT.USAGE})
    const res = examineDevices(devices)
    // unreadable devices (missing file, I/O) are failures; damaged superblocks are corruption
    if (res.some(d => !d.ok && d.problems.some(p => p.code === 'io'))) this.setExit(EXIT.FAILED)
    else if (res.some(d => !d.ok)) this.setExit(EXIT.CORRUPT)
    if (!this.jsonEnabled()) this.log(res.map(render).join('\n\n'))
    return {devices: res}
  }
}

export function runJournal(cmd: R5Command & {log: (s: string) => void}, devices: string[]) {
  const r = examineJournal(devices)
  if (r.state === 'dirty') (cmd as any).setExit(EXIT.DIRTY)
  if (r.state === 'corrupt') (cmd as any).setExit(EXIT.CORRUPT)
  if (!(cmd as any).jsonEnabled()) cmd.log(renderJournal(r))
  return r
}

function render(d: ExamineDevice): string {
  if (d.magic === undefined) return `${d.device}:\n${out.red('  ' + d.problems.map(p => p.message).join('; '))}`
  // mdadm prints the checksum with %x (no leading zeros); so do we in text (JSON keeps 8 digits)
  const x = (h: string) => parseInt(h, 16).toString(16)
  const csum = d.checksumOk ? `${x(d.checksum!)} - ${out.green('correct')}` : `${x(d.checksum!)} - ${out.red(`expected ${x(d.checksumExpected!)}`)}`
  const pairs: [string, string][] = [
    ['Magic', d.magic!],
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
