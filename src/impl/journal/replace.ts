import {flag, type CommandSpec, type Ctx, type FlagValues} from '../../cli/spec.js'
import {engineOptions} from '../../cli/engine-options.js'
import {deviceRefs, undoFile} from '../../cli/open.js'
import {replaceJournal, withUndo, type JournalResult} from '../../engine/index.js'
import {UsageError} from '../../engine/errors.js'
import {renderJournalChange} from '../../render/journal-change.js'
import {ProgressBar} from '../../render/progress.js'

export const spec = {
  summary: "Move the array's journal to a new device in one step",
  description: `Remove and add in one change: NEW becomes the journal (as journal add makes one) and OLD's
dev_number becomes faulty; OLD itself is not written. When OLD holds records to replay, its live log is copied
to NEW from ring sector 0 (pages as they are, each meta block's position rewritten, seqs kept), so the kernel
replays the copy at assembly as it would have replayed OLD; NEW's ring must hold the live log and one block
more. NEW carrying an md superblock is refused (exit 3) unless --force. A journal that is lost cannot be
replaced: use journal add --force. --dry-run lists the writes; --undo FILE saves what is overwritten.
See docs/journal.md.`,
  examples: [
    '<%= config.bin %> journal replace --dry-run j.img j2.img a.img b.img c.img d.img',
    '<%= config.bin %> journal replace --undo replace.undo j.img j2.img a.img b.img c.img d.img',
  ],
  strict: false,
  args: {
    old: {description: "the array's journal now", required: true},
    new: {description: 'the device to become the journal', required: true},
  },
  flags: {
    force: flag.boolean({char: 'f', description: 'overwrite an md superblock on NEW'}),
    'dry-run': flag.boolean({char: 'n', description: 'check and plan only; list the writes'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, argv: string[]): Promise<JournalResult> {
  const [old, target, ...devices] = argv
  if (devices.length === 0) throw new UsageError("name the array's members after OLD and NEW")
  const bar = new ProgressBar('log copy', ctx.progressEnabled(flags.progress))
  const r = withUndo(deviceRefs([old, target, ...devices], flags), undoFile(flags['dry-run'] ? undefined : flags.undo), ([o, t, ...devs]) =>
    replaceJournal(o, t, devs, {...engineOptions(), dryRun: flags['dry-run'], force: flags.force, progress: bar.update}),
  )
  bar.done()
  if (!ctx.jsonEnabled()) ctx.log(renderJournalChange(r))
  return r
}
