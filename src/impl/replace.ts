import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRef} from '../cli/open.js'
import {rebuildArray, type RebuildResult} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {parseSize} from '../render/format.js'
import {runRebuild} from './rebuild.js'

export const spec = {
  summary: "Move a member's slot onto a new device, rebuilt from the other members",
  description: `OLD is a member of the array and NEW the device to take its slot; the others are the array's other
members and its journal, in any order. The slot's bytes are rebuilt from the others (OLD is neither read nor
written; its entry in the other superblocks becomes faulty) exactly as r5ctl rebuild does, with the same
checkpoints, --resume, --dry-run and --undo.`,
  examples: [
    '<%= config.bin %> replace --dry-run c.img new.img j.img a.img b.img d.img',
    '<%= config.bin %> replace c.img new.img j.img a.img b.img d.img',
  ],
  strict: false,
  flags: {
    resume: flag.boolean({description: "go on with an interrupted replace from the new device's recovery_offset"}),
    force: flag.boolean({char: 'f', description: "overwrite a new device that carries another array's superblock"}),
    checkpoint: flag.string({description: 'bytes of each member copied between two checkpoints of recovery_offset', default: '256M'}),
    'dry-run': flag.boolean({char: 'n', description: 'check and plan only; write nothing'}),
    undo: flag.string({description: 'save the superblocks this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, argv: string[]): Promise<RebuildResult> {
  if (argv.length < 3) throw new UsageError("name OLD, NEW and then the array's other devices", 'r5ctl replace OLD NEW DEV...')
  const [old, target, ...devices] = argv
  const replacing = deviceRef(old, flags)
  return runRebuild(ctx, flags, [target], devices, (devs, news, progress) =>
    rebuildArray(devs, news, {
      ...engineOptions(),
      slots: [],
      replacing,
      resume: flags.resume,
      force: flags.force,
      dryRun: flags['dry-run'],
      checkpointBytes: parseSize('--checkpoint', flags.checkpoint),
      progress,
    }),
  )
}
