import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs} from '../cli/open.js'
import {checkArray, type CheckResult} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {ProgressBar} from '../render/progress.js'
import {parseNumber} from '../render/format.js'
import {renderCheck} from '../render/check.js'

export const spec = {
  summary: "Check every stripe's parity against its data, as md's check sync action does; writes nothing",
  description: `Reads every member, recomputes P (and Q) of each stripe from its data and compares. A mismatch is
listed with its stripe (member sector), array sector and kind: P (RAID4/5: parity and data disagree; RAID6: P is
wrong), Q, data (RAID6: the one data page located from the two syndromes, as mdadm's raid6check does), or
unlocated. A dirty journal is laid over the members as read lays it (the stripes Linux would replay are checked as
replayed; data-only ones are not judged, their parity is computed by the replay); --no-replay checks the members as
they are. --from/--to take member sectors (multiples of 8); the report's end sector resumes a later check. Exit 0
when every stripe holds, 4 when any does not. Every member is needed.`,
  examples: [
    '<%= config.bin %> check j.img a.img b.img c.img d.img',
    '<%= config.bin %> check --from 0 --to 1048576 --progress j.img a.img b.img c.img d.img',
    '<%= config.bin %> check --json j.img a.img b.img c.img d.img | jq .mismatchCount',
  ],
  strict: false,
  flags: {
    from: flag.string({description: 'first member sector to check (a multiple of 8)', default: '0'}),
    to: flag.string({description: 'member sector to stop before (default: the end of the members)'}),
    'no-replay': flag.boolean({description: 'check the members as they are, without laying a dirty journal over them'}),
    force: flag.boolean({char: 'f', description: 'check without the journal device (the members as they are), as read --force reads'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<CheckResult> {
  const from = Number(parseNumber('--from', flags.from))
  const to = flags.to === undefined ? undefined : Number(parseNumber('--to', flags.to))
  let at = from
  const bar = new ProgressBar('check', ctx.progressEnabled(flags.progress), 'bytes', () => `checked to sector ${at} (--from ${at} resumes)`)
  const position = (s: number) => (at = s)
  const r = checkArray(deviceRefs(devices, flags), {
    ...engineOptions(),
    from,
    to,
    replay: !flags['no-replay'],
    force: flags.force,
    progress: bar.update,
    position,
  })
  bar.done()
  if (!ctx.jsonEnabled()) ctx.log(renderCheck(r))
  if (r.mismatchCount > 0) ctx.setExit(EXIT.CORRUPT)
  return r
}
