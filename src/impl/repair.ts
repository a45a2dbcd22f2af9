import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {repairArray, withUndo, type RepairResult} from '../engine/index.js'
import {ProgressBar} from '../render/progress.js'
import {parseNumber} from '../render/format.js'
import {renderRepair} from '../render/check.js'

export const spec = {
  summary: "Rewrite the stripes check finds, as md's repair sync action does",
  description: `Checks the range first (as r5ctl check does) and names every page it will write, then writes them:
on RAID4/5 the parity of each mismatched stripe from its data (which page is wrong cannot be known there, and the
kernel's repair rewrites parity too); on RAID6 the page the two syndromes locate (a data page rebuilt from P and the
other data, or P, or Q), or P and Q from the data when no single page is to blame. A dirty journal is refused (exit
5): replay it with r5ctl recover first; without the journal device it is refused (exit 3) unless --force. --dry-run
lists the pages and writes nothing; --undo FILE saves what is overwritten. Superblocks are not written.`,
  examples: [
    '<%= config.bin %> repair --dry-run j.img a.img b.img c.img d.img e.img',
    '<%= config.bin %> repair --undo repair.undo j.img a.img b.img c.img d.img e.img',
    '<%= config.bin %> repair --from 0 --to 1048576 --json j.img a.img b.img c.img d.img e.img',
  ],
  strict: false,
  flags: {
    from: flag.string({description: 'first member sector to repair (a multiple of 8)', default: '0'}),
    to: flag.string({description: 'member sector to stop before (default: the end of the members)'}),
    'dry-run': flag.boolean({char: 'n', description: 'check and plan only; list the pages that would be written'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
    force: flag.boolean({
      char: 'f',
      description: 'go on without the journal device (records only in it are lost; parity is made to match the data the members hold)',
    }),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<RepairResult> {
  const from = Number(parseNumber('--from', flags.from))
  const to = flags.to === undefined ? undefined : Number(parseNumber('--to', flags.to))
  const bar = new ProgressBar(flags['dry-run'] ? 'check' : 'repair', ctx.progressEnabled(flags.progress))
  const r = withUndo(deviceRefs(devices, flags), undoFile(flags['dry-run'] ? undefined : flags.undo), devs =>
    repairArray(devs, {...engineOptions(), from, to, dryRun: flags['dry-run'], force: flags.force, progress: bar.update}),
  )
  bar.done()
  if (!ctx.jsonEnabled()) ctx.log(renderRepair(r))
  return r
}
