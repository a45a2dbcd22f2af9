import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {assembleArray, withUndo, type AssembleResult} from '../engine/index.js'
import {ProgressBar} from '../render/progress.js'
import {renderAssemble} from '../render/assemble.js'

export const spec = {
  summary: 'Identify the array from its devices, replay a dirty journal, and report like mdadm --detail',
  description: `Devices may be given in any order; each is identified by its superblock. Foreign, stale or
duplicate devices are named. mdadm's journal rule applies: without the journal, or with a stale one, the array is
refused (exit 3) because what the journal holds would be lost; --force then assembles read-only without replay.
A dirty journal is replayed as the kernel does at array start, unless --readonly or --no-recover. Nothing is
assembled in the kernel: this is the offline check-and-replay step before handing the images to Linux.`,
  examples: [
    '<%= config.bin %> assemble d.img a.img j.img c.img b.img',
    '<%= config.bin %> assemble --readonly j.img a.img b.img c.img d.img',
    '<%= config.bin %> assemble --force a.img b.img c.img d.img    # no journal: read-only, no replay',
  ],
  strict: false,
  flags: {
    force: flag.boolean({char: 'f', description: 'assemble without a usable journal: read-only, no replay'}),
    readonly: flag.boolean({char: 'o', description: 'change nothing: report only', aliases: ['read-only']}),
    'no-recover': flag.boolean({description: 'do not replay a dirty journal'}),
    export: flag.boolean({char: 'Y', description: "key=value lines with mdadm's names (MD_LEVEL, MD_DEVICES, MD_UUID, …) plus MD_JOURNAL_* keys"}),
    brief: flag.boolean({char: 'b', description: 'the mdadm.conf ARRAY line'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<AssembleResult> {
  const bar = new ProgressBar('replay', ctx.progressEnabled(flags.progress), 'fraction')
  const r = withUndo(deviceRefs(devices, flags), undoFile(flags.readonly ? undefined : flags.undo), devs =>
    assembleArray(devs, {...engineOptions(), force: flags.force, readonly: flags.readonly, noRecover: flags['no-recover'], progress: bar.update}),
  )
  bar.done()
  if (ctx.jsonEnabled()) {
    /* printed by the caller */
  } else if (flags.brief) ctx.log(`ARRAY /dev/md/${r.name.split(':').pop() || '0'}  metadata=1.2 UUID=${r.arrayUuid} name=${r.name}`)
  else if (flags.export)
    ctx.log(
      [
        `MD_LEVEL=${r.raidLevel}`,
        `MD_DEVICES=${r.raidDevices}`,
        `MD_METADATA=1.2`,
        `MD_UUID=${r.arrayUuid}`,
        `MD_NAME=${r.name}`,
        `MD_DEVNAME=${r.name.split(':').pop() || '0'}`,
        `MD_EVENTS=${r.events}`,
        `MD_STATE=${r.state.replace(/ /g, '')}`,
        ...r.devices.map(d => `MD_DEVICE_${d.raidDevice ?? 'journal'}_DEV=${d.device}`),
        `MD_JOURNAL_DEVICE=${r.journal.device ?? ''}`,
        `MD_JOURNAL_STATE=${r.journal.state}`,
        `MD_JOURNAL_PENDING=${r.journal.stripesPending}`,
      ].join('\n'),
    )
  else ctx.log(renderAssemble(r))
  if (r.journal.state === 'dirty') ctx.setExit(5)
  if (r.journal.state === 'corrupt') ctx.setExit(4)
  return r
}
