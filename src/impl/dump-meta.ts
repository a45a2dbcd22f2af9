import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRef, deviceRefs} from '../cli/open.js'
import {dumpMeta, copyJournal} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {renderDump} from '../render/journal.js'
import {parseInteger} from '../render/format.js'

export const spec = {
  summary: 'List every meta block of the live log with each payload and per-page checksum verdicts',
  description: `Walks the log from journal_tail (or --from) and prints each meta block (position, seq,
meta_size), its payloads (data: array sector; parity: stripe sector; flush: stripes) and for every logged page the
checksum with a verdict [match] or [MISMATCH]. Exit 4 when any page checksum mismatches, or when no valid meta block
is at journal_tail.`,
  examples: [
    '<%= config.bin %> dump-meta j.img',
    '<%= config.bin %> dump-meta --json j.img | jq ".blocks[].seq"',
    '<%= config.bin %> dump-meta --stripe 1024 j.img a.img b.img c.img d.img',
    '<%= config.bin %> dump-meta --all j.img     # also stale blocks past the head',
    '<%= config.bin %> dump-meta --copy saved-journal.img /dev/sdX   # copy the live log off a dying disk',
  ],
  strict: false,
  flags: {
    from: flag.string({description: 'start at this journal sector instead of journal_tail'}),
    stripe: flag.string({description: 'only records that logged the stripe at this member sector'}),
    all: flag.boolean({
      description: 'also list stale meta blocks beyond the head (marked stale; never replayed); with --copy: copy the whole journal',
    }),
    copy: flag.string({
      description: 'copy the superblock and the live log (the whole journal with --all) into a new sparse image FILE, usable in place of the journal',
    }),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  if (flags.copy) {
    const c = copyJournal(deviceRefs(devices, flags), deviceRef(flags.copy, flags), {...engineOptions(), all: flags.all})
    if (!ctx.jsonEnabled())
      ctx.log(
        `copied ${c.all ? 'the whole journal' : `the live log (sectors ${c.live.fromSector}..${c.live.toSector})`} and its superblock from ${c.journal} into ${c.output} (${c.bytesCopied} bytes; image size ${c.sizeBytes})`,
      )
    return c
  }
  const num = (f: string, v: string | undefined) => (v === undefined ? undefined : parseInteger(f, v))
  const r = dumpMeta(deviceRefs(devices, flags), {
    ...engineOptions(),
    from: num('--from', flags.from),
    stripe: num('--stripe', flags.stripe),
    all: flags.all,
  })
  if (r.mismatches > 0 || r.badTail) ctx.setExit(EXIT.CORRUPT)
  if (!ctx.jsonEnabled()) ctx.log(renderDump(r))
  return r
}
