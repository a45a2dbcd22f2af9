import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRef, deviceRefs} from '../cli/open.js'
import {copyJournal, dumpMetaTo, type DumpBlock, type DumpHeader, type DumpSummary} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {renderDumpBlock, renderDumpEnd, renderDumpHeader} from '../render/journal.js'
import {JsonObjectStream} from '../render/json-stream.js'
import {writeStdout} from '../render/stdio.js'
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
  const opts = {...engineOptions(), from: num('--from', flags.from), stripe: num('--stripe', flags.stripe), all: flags.all}
  // block by block as the log is walked: a log of any size is never held whole, as text or as JSON
  const sink = ctx.jsonEnabled() ? jsonSink() : textSink(ctx)
  const r = dumpMetaTo(deviceRefs(devices, flags), opts, sink)
  sink.end(r)
  if (r.mismatches > 0 || r.badTail) ctx.setExit(EXIT.CORRUPT)
  return undefined
}

/** stdout in pieces of about 64 KiB */
function batched(): {write: (text: string) => void; flush: () => void} {
  let parts: string[] = []
  let size = 0
  const flush = () => {
    if (parts.length) writeStdout(parts.join(''))
    parts = []
    size = 0
  }
  return {
    write: text => {
      parts.push(text)
      size += text.length
      if (size >= 1 << 16) flush()
    },
    flush,
  }
}

/** the report as `--json` prints any command's result (JSON.stringify(result, null, 2)), streamed */
function jsonSink() {
  const out = batched()
  const json = new JsonObjectStream(out.write)
  return {
    start: (h: DumpHeader) => {
      for (const [k, v] of Object.entries(h)) json.field(k, v)
      json.openArray('blocks')
    },
    block: (b: DumpBlock) => json.item(b),
    end: (r: DumpSummary) => {
      json.closeArray()
      for (const [k, v] of Object.entries(r)) json.field(k, v)
      json.end()
      out.flush()
    },
  }
}

function textSink(ctx: Ctx) {
  const listed = {live: 0, stale: 0}
  return {
    start: (h: DumpHeader) => ctx.log(renderDumpHeader(h)),
    block: (b: DumpBlock) => {
      listed[b.stale ? 'stale' : 'live']++
      ctx.log(renderDumpBlock(b))
    },
    end: (r: DumpSummary) => ctx.log(renderDumpEnd(r, listed)),
  }
}
