import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {detectArray, withUndo, writeDetected, type DetectResult} from '../engine/index.js'
import {EXIT, UsageError} from '../engine/errors.js'
import {parseUuid} from '../engine/format/names.js'
import {parseNumber} from '../render/format.js'
import {renderDetect} from '../render/detect.js'

export const spec = {
  summary: "Find an array's lost geometry from its members' content (superblocks zeroed or overwritten); writes nothing",
  description: `Given the devices of one array in any order, finds its journal by the r5l meta blocks on it (their
positions give its data offset, their checksums the seed the array UUID gives), and from a bounded sample of the
members' stripes the level, chunk size, layout, member order and data offset: the hypotheses whose parity holds
(RAID4/5: every stripe XORs to zero; RAID6: P and Q), whose parity pages are never empty beside data, that the
journal's records agree with, and that lay the written data out most contiguously. A surviving superblock supplies
what it states (and the array UUID, which the journal's checksums confirm or not). The candidates are ranked with
the evidence for each, and what the content cannot decide is said. Every device is opened read-only. Exit 0 when
the first candidate's parity held on every stripe checked, 4 when no candidate fits.

With --write, it then writes md v1.2 superblocks for the first candidate (or --candidate N) so the set
assembles again: only a candidate whose parity held as detect requires of what it finds (--force for another), and only
with the array UUID known (a surviving superblock, or --uuid) and agreeing with the journal's checksums, so
the journal still replays. The journal keeps its surviving journal_tail, else the log is replayed from the
start of its newest chain. --dry-run shows what would be written; --undo FILE saves what is overwritten.`,
  examples: [
    '<%= config.bin %> detect d.img b.img j.img a.img c.img',
    '<%= config.bin %> detect --json /dev/sd[b-f] | jq .candidates[0]',
    '<%= config.bin %> detect --write --dry-run d.img b.img j.img a.img c.img',
    '<%= config.bin %> detect --write --undo detect.undo --uuid 0f7c3a52:9d1e4b60:a1b2c3d4:e5f60718 d.img b.img j.img a.img c.img',
  ],
  strict: false,
  flags: {
    write: flag.boolean({description: 'write superblocks for the chosen candidate so the set assembles again'}),
    candidate: flag.string({description: 'with --write: the rank of the candidate to write (default 1)'}),
    uuid: flag.string({description: 'with --write: the array UUID when no superblock keeps it (checked against the journal)'}),
    force: flag.boolean({
      char: 'f',
      description: 'with --write: write a candidate whose parity held on fewer of the stripes checked than detect requires (90%)',
    }),
    'dry-run': flag.boolean({char: 'n', description: 'with --write: show what would be written, write nothing'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<DetectResult> {
  const writing = ['candidate', 'uuid', 'force', 'dry-run', 'undo'].find(
    f => flags[f as keyof typeof flags] !== undefined && flags[f as keyof typeof flags] !== false,
  )
  if (writing && !flags.write) throw new UsageError(`--${writing} goes with --write`, 'add --write, or leave it out to only detect')
  const r = flags.write
    ? withUndo(deviceRefs(devices, flags), undoFile(flags['dry-run'] ? undefined : flags.undo), devs =>
        writeDetected(devs, {
          ...engineOptions(),
          candidate: flags.candidate === undefined ? undefined : Number(parseNumber('--candidate', flags.candidate)),
          uuid: flags.uuid === undefined ? undefined : uuidFlag(flags.uuid),
          force: flags.force,
          dryRun: flags['dry-run'],
        }),
      )
    : detectArray(deviceRefs(devices, flags), engineOptions())
  if (!ctx.jsonEnabled()) ctx.log(renderDetect(r))
  if (!r.found) ctx.setExit(EXIT.CORRUPT)
  return r
}

function uuidFlag(text: string): Uint8Array {
  try {
    return parseUuid(text)
  } catch (e) {
    throw new UsageError(`--uuid: ${(e as Error).message}`)
  }
}
