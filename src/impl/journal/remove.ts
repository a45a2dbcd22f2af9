import {flag, type CommandSpec, type Ctx, type FlagValues} from '../../cli/spec.js'
import {engineOptions} from '../../cli/engine-options.js'
import {deviceRefs, undoFile} from '../../cli/open.js'
import {removeJournal, withUndo, type JournalResult} from '../../engine/index.js'
import {renderJournalChange} from '../../render/journal-change.js'
import {ProgressBar} from '../../render/progress.js'

export const spec = {
  summary: 'Turn the array into one without a journal',
  description: `The members' superblocks lose the journal feature (0x200) and the journal's role (its dev_number
becomes faulty), and the events count moves on; the journal device itself is not written. The kernel then
assembles the members without a journal, with no resync, and reads the same bytes. A journal with records
to replay is refused (exit 5) unless --recover replays it first. A missing journal is refused (exit 3):
records only in it are lost, and --force removes it anyway and marks the array for a resync. --dry-run lists
the writes; --undo FILE saves what is overwritten. See docs/journal.md.`,
  examples: [
    '<%= config.bin %> journal remove --dry-run j.img a.img b.img c.img d.img',
    '<%= config.bin %> journal remove --recover --undo remove.undo j.img a.img b.img c.img d.img',
    '<%= config.bin %> journal remove --json j.img a.img b.img c.img d.img',
  ],
  strict: false,
  flags: {
    recover: flag.boolean({description: 'replay a dirty journal first, as `r5ctl recover` does'}),
    force: flag.boolean({char: 'f', description: 'remove a journal that is missing (its records are lost) and mark the array for a resync'}),
    'dry-run': flag.boolean({char: 'n', description: 'check and plan only; list the writes'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<JournalResult> {
  const bar = new ProgressBar('replay', ctx.progressEnabled(flags.progress), 'fraction')
  const r = withUndo(deviceRefs(devices, flags), undoFile(flags['dry-run'] ? undefined : flags.undo), devs =>
    removeJournal(devs, {...engineOptions(), dryRun: flags['dry-run'], force: flags.force, progress: bar.update, recover: flags.recover}),
  )
  bar.done()
  if (!ctx.jsonEnabled()) ctx.log(renderJournalChange(r))
  return r
}
