import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {recoverArray, withUndo, type RecoverResult} from '../engine/index.js'
import {ProgressBar} from '../render/progress.js'
import {parseNumber, U64_MAX} from '../render/format.js'
import {renderRecover} from '../render/recover.js'

export const spec = {
  summary: 'Replay the journal offline, as the kernel does at array start',
  description: `Scans the live log from journal_tail with the kernel's rules, verifies every meta block and every
page checksum, and only then writes: complete stripes (data and parity) go to the members; data-only stripes
(write-back) get parity computed from the members, logged and flushed first, and are then written too (a power cut
anywhere leaves stripes that replay whole); parity-only stripes need nothing. Then an
empty meta block with seq + 10000 is written where the scan stopped, and journal_tail and events are updated in every
superblock, last. With a member missing (RAID6: up to two) the replay goes to the members present, as the
kernel's does at a degraded start; rebuild the missing one next. --dry-run prints exactly what would be written and
writes nothing. A clean journal is left alone.`,
  examples: [
    '<%= config.bin %> recover --dry-run j.img a.img b.img c.img d.img',
    '<%= config.bin %> recover j.img a.img b.img c.img d.img',
    '<%= config.bin %> recover --until-seq 123456 --json j.img a.img b.img c.img d.img',
    '<%= config.bin %> recover j.img a.img b.img d.img    # c.img died: replay onto the others, then rebuild',
  ],
  strict: false,
  flags: {
    'dry-run': flag.boolean({char: 'n', description: 'scan and plan only; print what would be written'}),
    'until-seq': flag.string({description: 'stop the scan after the meta block with this seq'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<RecoverResult> {
  const untilSeq =
    flags['until-seq'] === undefined
      ? undefined
      : parseNumber('--until-seq', flags['until-seq'], {max: U64_MAX, field: 'a meta block seq is 64 bits'})
  const bar = new ProgressBar(flags['dry-run'] ? 'scan' : 'recover', ctx.progressEnabled(flags.progress), 'fraction')
  const r = withUndo(deviceRefs(devices, flags), undoFile(flags['dry-run'] ? undefined : flags.undo), devs =>
    recoverArray(devs, {...engineOptions(), dryRun: flags['dry-run'], untilSeq, progress: bar.update}),
  )
  bar.done()
  if (!ctx.jsonEnabled()) ctx.log(renderRecover(r))
  return r
}
