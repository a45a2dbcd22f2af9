import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {undoRestore, type UndoResult} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {table} from '../render/table.js'
import {humanBytes} from '../render/format.js'

export const spec = {
  summary: 'Restore the blocks an earlier run saved with --undo, bit for bit',
  description: `Verifies the whole undo file first (every checksum, read in a 1 MiB window), matches its recorded
devices to the ones given (by device UUID, or by path and size), checks that every saved range still holds what
the run left, and only then writes the saved blocks back. Refuses (exit 3) when a range changed since (a later
write would be undone), a recorded device is missing, or the file is incomplete (the run that wrote it did not
finish), unless --force; a damaged file is exit 4. --dry-run checks everything and lists the ranges. See docs/undo.md.`,
  examples: [
    '<%= config.bin %> recover --undo recover.undo j.img a.img b.img c.img d.img',
    '<%= config.bin %> undo --dry-run recover.undo j.img a.img b.img c.img d.img',
    '<%= config.bin %> undo recover.undo j.img a.img b.img c.img d.img',
  ],
  strict: false,
  args: {file: {description: 'the undo file', required: true}},
  flags: {
    'dry-run': flag.boolean({char: 'n', description: 'list what would be restored; write nothing'}),
    force: flag.boolean({char: 'f', description: 'restore from an incomplete file, over ranges changed since, or only the devices found'}),
  },
} satisfies CommandSpec

export async function run(
  ctx: Ctx,
  flags: FlagValues<typeof spec.flags>,
  argv: string[],
  args: Record<string, string | undefined>,
): Promise<UndoResult> {
  const file = args.file!
  // the first argument is the undo file; named again among the devices, it is refused as one (undoRestore)
  const devices = argv.slice(1)
  if (devices.length === 0) throw new UsageError('name the devices to restore after the undo file')
  const r = undoRestore(undoFile(file), deviceRefs(devices, flags), {dryRun: flags['dry-run'], force: flags.force})
  if (!ctx.jsonEnabled()) {
    ctx.log(
      table(
        ['recorded device', 'restored to', 'blocks', 'bytes'],
        r.devices.map(d => [d.recorded, d.device ?? '(not given)', d.blocks, humanBytes(d.bytes)]),
      ),
    )
    if (r.changedRanges > 0)
      ctx.log(`${r.changedRanges} range(s) changed since the run; --force ${r.dryRun ? 'would restore' : 'restored'} over them`)
    ctx.log(
      r.dryRun
        ? `dry run: ${r.ranges.length} range(s) verified, nothing written`
        : `restored ${humanBytes(r.bytesRestored)} from ${r.file} (recorded ${r.created}${r.complete ? '' : ', INCOMPLETE'})`,
    )
  }
  return r
}
