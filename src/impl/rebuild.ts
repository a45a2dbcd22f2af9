import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {rebuildArray, withUndo, type RebuildResult} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {parseSize} from '../render/format.js'
import {SB_OFFSET_BYTES, SB_BLOCK_SIZE} from '../engine/format/superblock.js'
import {ProgressBar} from '../render/progress.js'
import {renderRebuild} from '../render/rebuild.js'

export const spec = {
  summary: 'Reconstruct missing members onto new devices, checkpointed in recovery_offset',
  description: `The first device named is the new device (with two slots, --slot 1,3: the first two, in that order);
the others are the array's present members and its journal, in any order. Each slot must be missing from them;
its bytes are rebuilt from the others (RAID4/5: one slot, RAID6: one or two) and written to the new device under
a v1.2 superblock for that slot. The journal must be clean (replay it first: exit 5). The new device first becomes
a member in recovery (feature 0x2, recovery_offset) in every superblock; recovery_offset is checkpointed as the copy
goes, so a rebuild stopped anywhere goes on from there with --resume (the kernel also resumes it); at the end every
superblock marks it in sync. --dry-run checks and plans and writes nothing; --undo FILE saves the superblocks the
run overwrites (not the bytes rebuilt onto the new device).`,
  examples: [
    '<%= config.bin %> rebuild --slot 2 --dry-run new.img j.img a.img b.img d.img',
    '<%= config.bin %> rebuild --slot 2 --undo rebuild.undo new.img j.img a.img b.img d.img',
    '<%= config.bin %> rebuild --slot 2 --resume new.img j.img a.img b.img d.img',
    '<%= config.bin %> rebuild --slot 1,3 --json new1.img new3.img j.img a.img c.img e.img f.img',
  ],
  strict: false,
  flags: {
    slot: flag.string({char: 's', description: 'the slot to rebuild (RAID6: two, comma-separated: 1,3)', required: true}),
    resume: flag.boolean({description: "go on with an interrupted rebuild from the new device's recovery_offset"}),
    force: flag.boolean({char: 'f', description: "overwrite a new device that carries another array's superblock"}),
    checkpoint: flag.string({description: 'bytes of each member copied between two checkpoints of recovery_offset', default: '256M'}),
    'dry-run': flag.boolean({char: 'n', description: 'check and plan only; write nothing'}),
    undo: flag.string({description: 'save the superblocks this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

/** `--slot 1,3` as slot numbers. */
export function parseSlots(text: string): number[] {
  const slots = text.split(',').map(s => s.trim())
  if (slots.some(s => !/^\d+$/.test(s))) throw new UsageError(`--slot ${text}: expected slot numbers, e.g. 2 or 1,3`)
  // before the arguments are split into new devices and the array's: a slot named twice would take one of the array's
  const twice = slots.find((s, i) => slots.indexOf(s) !== i)
  if (twice !== undefined) throw new UsageError(`--slot ${text}: slot ${Number(twice)} named twice`)
  return slots.map(Number)
}

/** The run over undo-wrapped devices: of the new devices only the superblock block is saved. */
export function runRebuild(
  ctx: Ctx,
  flags: {progress?: boolean; 'dry-run'?: boolean; undo?: string; 'no-flush'?: boolean},
  targets: string[],
  devices: string[],
  call: (
    devs: Parameters<typeof rebuildArray>[0],
    news: Parameters<typeof rebuildArray>[1],
    progress: (d: number, t: number) => void,
  ) => RebuildResult,
): RebuildResult {
  const bar = new ProgressBar(flags['dry-run'] ? 'plan' : 'rebuild', ctx.progressEnabled(flags.progress), 'fraction')
  const refs = deviceRefs([...devices, ...targets], flags)
  const n = devices.length
  const r = withUndo(
    refs,
    undoFile(flags['dry-run'] ? undefined : flags.undo),
    srcs => call(srcs.slice(0, n), srcs.slice(n), bar.update),
    i => (i >= n ? SB_OFFSET_BYTES + SB_BLOCK_SIZE : Infinity),
  )
  bar.done()
  if (!ctx.jsonEnabled()) ctx.log(renderRebuild(r))
  return r
}

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, argv: string[]): Promise<RebuildResult> {
  const slots = parseSlots(flags.slot)
  if (argv.length < slots.length + 1)
    throw new UsageError(`name ${slots.length} new device(s) and then the array's devices`, 'r5ctl rebuild --slot N NEW DEV...')
  return runRebuild(ctx, flags, argv.slice(0, slots.length), argv.slice(slots.length), (devs, news, progress) =>
    rebuildArray(devs, news, {
      ...engineOptions(),
      slots,
      resume: flags.resume,
      force: flags.force,
      dryRun: flags['dry-run'],
      checkpointBytes: parseSize('--checkpoint', flags.checkpoint),
      progress,
    }),
  )
}
