import {flag, type CommandSpec, type Ctx, type FlagValues} from '../../cli/spec.js'
import {engineOptions} from '../../cli/engine-options.js'
import {deviceRefs, undoFile} from '../../cli/open.js'
import {addJournal, withUndo, type JournalResult} from '../../engine/index.js'
import {UsageError} from '../../engine/errors.js'
import {renderJournalChange} from '../../render/journal-change.js'

export const spec = {
  summary: 'Give an array without a journal (or whose journal is missing or failed) a new one',
  description: `NEW gets a journal superblock (data offset 1 MiB, a dev_number no device has held, role journal)
and an empty log: one meta block at ring sector 0 with a random seq, the block after it zeroed, journal_tail 0.
The members gain the journal feature and role, and the events count moves on; the kernel assembles the array
with the journal (write-through). Refused (exit 3): an array that has a journal (use journal replace), NEW
carrying an md superblock (--force overwrites it), an array that was not shut down clean or whose journal is
missing (records only in it are lost: run r5ctl repair over the whole array first, then add with --force).
--dry-run lists the writes; --undo FILE saves what is overwritten. See docs/journal.md.`,
  examples: [
    '<%= config.bin %> journal add --dry-run j2.img a.img b.img c.img d.img',
    '<%= config.bin %> journal add --undo add.undo j2.img a.img b.img c.img d.img',
    '<%= config.bin %> journal add --force --json j2.img a.img b.img c.img d.img',
  ],
  strict: false,
  args: {new: {description: 'the device to become the journal', required: true}},
  flags: {
    force: flag.boolean({
      char: 'f',
      description: 'add over a missing journal or an unclean array (after r5ctl repair), or overwrite a superblock on NEW',
    }),
    'dry-run': flag.boolean({char: 'n', description: 'check and plan only; list the writes'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, argv: string[]): Promise<JournalResult> {
  const [target, ...devices] = argv
  if (devices.length === 0) throw new UsageError("name the array's members after NEW")
  const r = withUndo(deviceRefs([target, ...devices], flags), undoFile(flags['dry-run'] ? undefined : flags.undo), ([t, ...devs]) =>
    addJournal(t, devs, {...engineOptions(), dryRun: flags['dry-run'], force: flags.force}),
  )
  if (!ctx.jsonEnabled()) ctx.log(renderJournalChange(r))
  return r
}
