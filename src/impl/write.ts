import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {writeData, withUndo, refuseDeviceAsFile} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {err} from '../render/colour.js'
import {parseRange, parseInteger, humanBytes, U32_MAX} from '../render/format.js'
import {ProgressBar} from '../render/progress.js'
import {openInput} from '../cli/input.js'

export const spec = {
  summary: 'Write data into the array through the journal (write-through or write-back)',
  description: `For each stripe touched, parity is computed (read-modify-write or reconstruct-write, whichever reads
less), a meta block with data and parity pages is appended to the journal ring with the kernel's checksums, the
journal is flushed, then the members are written. At the end an empty meta block closes the log and journal_tail
moves to it, so the array assembles clean under Linux. The offset must be a multiple of 4096. The input is a
regular file, or a pipe, FIFO or stdin read to its end (or --length bytes); directories, sockets and character
devices are refused before anything is written.`,
  examples: [
    '<%= config.bin %> write --offset 0 --input data.bin j.img a.img b.img c.img d.img',
    '<%= config.bin %> write --offset 64K --input data.bin --journal-mode write-back j.img a.img b.img c.img d.img',
    '<%= config.bin %> write --offset 0 --input data.bin --crash-after 7 --crash-seed 42 j.img a.img b.img c.img d.img   # exit 75',
    'head -c 1M /dev/urandom | <%= config.bin %> write --offset 1M --length 1M a.img b.img c.img d.img j.img',
    'gzip -dc data.gz | <%= config.bin %> write --offset 0 j.img a.img b.img c.img d.img   # to the end of the input',
  ],
  strict: false,
  flags: {
    offset: flag.string({char: 'o', description: 'array byte offset (multiple of 4096; K/M/G suffixes)', required: true}),
    input: flag.string({char: 'i', description: 'input: a file, a pipe or FIFO, or - for stdin', default: '-'}),
    length: flag.string({description: 'bytes to write (default: the whole input, to its end)'}),
    'journal-mode': flag.string({
      description:
        'write-through: data reaches the members before the write returns; write-back: acknowledged once in the log, stripes stay cached until `reclaim` or a full log',
      options: ['write-through', 'write-back'],
      default: 'write-through',
    }),
    'crash-after': flag.string({
      description: 'simulate a power cut after N device write requests (exit 75; exit 76 when the write needs no more than N)',
    }),
    'crash-seed': flag.string({
      description: 'with --crash-after: also apply a seeded random subset of the writes not yet flushed',
      dependsOn: ['crash-after'],
    }),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  const {offset, length} = parseRange(flags.offset, flags.length)
  const crashAfter = flags['crash-after'] === undefined ? undefined : parseInteger('--crash-after', flags['crash-after'])
  const crashSeed =
    flags['crash-seed'] === undefined ? undefined : parseInteger('--crash-seed', flags['crash-seed'], {max: U32_MAX, field: 'a 32-bit seed'})
  if (flags.input !== '-') refuseDeviceAsFile(flags.input, '--input', devices)
  const input = openInput(flags.input, length)
  const bar = new ProgressBar('write', ctx.progressEnabled(flags.progress))
  let res
  try {
    res = withUndo(deviceRefs(devices, flags), undoFile(flags.undo), devs =>
      writeData(devs, offset, input.length, input.source, {
        ...engineOptions(),
        progress: bar.update,
        mode: flags['journal-mode'] as 'write-through' | 'write-back',
        endAtShortInput: input.endAtShortInput,
        // no fdatasync to amortize: a batch that stays in cache (see WriteOptions.batchBytes)
        batchBytes: flags['no-flush'] ? 2 << 20 : undefined,
        crashAfter,
        crashSeed,
      }),
    )
    bar.done()
    input.check(res.bytes, offset)
  } finally {
    input.close()
  }
  const json = {...res, lastSeq: res.lastSeq.toString()}
  if (res.crash) {
    // a crash sweep raises N until this: the crash point is past the end of the write
    process.stderr.write(
      `${err.yellow('r5ctl:')} no power cut: the write completed after ${res.crash.deviceWrites} device writes (--crash-after ${crashAfter})\n`,
    )
    ctx.setExit(EXIT.NO_CRASH)
  }
  if (!ctx.jsonEnabled() && res.bytes === 0 && !res.crash) ctx.log(`nothing to write (0 bytes at offset ${offset}): no device was written`)
  else if (!ctx.jsonEnabled() && res.mode === 'write-back')
    ctx.log(
      `logged ${humanBytes(res.bytes)} at offset ${offset} (write-back): ${res.stripes} stripes in ${res.ioUnits} io units, ` +
        `${humanBytes(res.journalBytes)} of journal; the stripes stay cached in the journal until \`r5ctl reclaim\``,
    )
  else if (!ctx.jsonEnabled())
    ctx.log(
      `wrote ${humanBytes(res.bytes)} at offset ${offset}: ${res.stripes} stripes (${res.rcwStripes} reconstruct-write, ` +
        `${res.rmwStripes} read-modify-write) in ${res.ioUnits} io units, ${humanBytes(res.journalBytes)} of journal; log closed at seq ${res.lastSeq}`,
    )
  return json
}
