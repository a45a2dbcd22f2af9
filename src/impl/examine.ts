import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs} from '../cli/open.js'
import {examineDevices, examineJournal} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {renderJournal} from '../render/journal.js'
import {renderExamine, exportLines, briefLines} from '../render/examine.js'

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
  const res = examineDevices(deviceRefs(devices, flags))
  // unreadable devices (missing file, I/O) are failures; damaged superblocks are corruption
  if (res.some(d => !d.ok && d.problems.some(p => p.code === 'io'))) ctx.setExit(EXIT.FAILED)
  else if (res.some(d => !d.ok)) ctx.setExit(EXIT.CORRUPT)
  if (ctx.jsonEnabled()) return {devices: res}
  if (flags.brief) ctx.log(briefLines(res).join('\n'))
  else if (flags.export) ctx.log(res.map(exportLines).join('\n\n'))
  else ctx.log(res.map(renderExamine).join('\n\n'))
  return {devices: res}
}

/** examine --journal and examine-journal. */
export function runJournal(ctx: Ctx, devices: string[], opts: {export?: boolean} = {}) {
  // read-only: the flush policy does not matter
  const r = examineJournal(deviceRefs(devices, {}), engineOptions())
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
