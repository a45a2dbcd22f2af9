import * as fs from 'node:fs'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRef, deviceRefs} from '../cli/open.js'
import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {readData, refuseDeviceAsFile, refuseMemberAsOutput, type ReadJournal} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {parseRange, humanBytes} from '../render/format.js'
import {ProgressBar} from '../render/progress.js'
import {writeStdout, writeViewsAt} from '../render/stdio.js'
import {err} from '../render/colour.js'

export const spec = {
  summary: "Read the array's logical bytes, reconstructing missing members from parity",
  description: `Reads to stdout, or to --output. Members may be left out: RAID4/5 rebuilds one missing member,
RAID6 two. A dirty journal (records not yet replayed) is replayed in memory, as Linux replays it at assemble:
the bytes are those the array holds after \`r5ctl recover\`, and nothing is written to any device (one line on
stderr says how many stripes came from the journal). --no-replay reads the members as they are; --force accepts
a set without its journal device (nothing to replay then: the members as they are).`,
  examples: [
    '<%= config.bin %> read --offset 0 --length 4M --output out.bin j.img a.img b.img c.img d.img',
    '<%= config.bin %> read --offset 0 --length 64K j.img a.img c.img d.img | xxd | head    # b.img left out',
    '<%= config.bin %> read --no-replay --output members.bin j.img a.img b.img c.img d.img    # dirty journal: the members as they are',
  ],
  strict: false,
  flags: {
    offset: flag.string({char: 'o', description: 'array byte offset (multiple of 4096)', default: '0'}),
    length: flag.string({description: 'bytes to read (default: to the end of the array)'}),
    output: flag.string({description: 'output file (default: stdout)'}),
    'no-replay': flag.boolean({description: 'read the members as they are, without laying a dirty journal over them'}),
    force: flag.boolean({char: 'f', description: 'accept a set without its journal device (the members are then read as they are)'}),
  },
} satisfies CommandSpec

/** An existing regular file or block device (a FIFO, /dev/null or a new path cannot be a member) */
function isImageOrDisk(file: string): boolean {
  const st = fs.statSync(file, {throwIfNoEntry: false})
  return st !== undefined && (st.isFile() || st.isBlockDevice())
}

/** One stderr line when the journal changes what is read: a dirty one replayed, or a corrupt one ignored (as the kernel would). */
function notice(j: ReadJournal): void {
  if (j.replayed)
    process.stderr.write(
      `${err.yellow('r5ctl:')} journal dirty: ${j.stripes} stripe${j.stripes === 1 ? '' : 's'} served from the journal; nothing written\n`,
    )
  else if (j.state === 'corrupt') process.stderr.write(`${err.yellow('r5ctl:')} journal corrupt: ${j.message}; reading the members as they are\n`)
}

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  const {offset, length} = parseRange(flags.offset, flags.length)
  if (!flags.output && ctx.jsonEnabled()) throw new UsageError('--json needs --output (stdout carries the JSON)')
  if (flags.output) {
    refuseDeviceAsFile(flags.output, '--output', devices)
    // a member left out of a degraded read is not among the devices, but it keeps its superblock
    if (isImageOrDisk(flags.output)) refuseMemberAsOutput(deviceRef(flags.output, flags))
  }
  // the output file is opened at the first byte, so a refused read leaves an existing file alone
  let fd = flags.output ? -1 : 1
  const out = () => {
    if (fd < 0) fd = fs.openSync(flags.output!, 'w')
    return fd
  }
  let pos = 0
  const bar = new ProgressBar('read', ctx.progressEnabled(flags.progress))
  try {
    const res = readData(
      deviceRefs(devices, flags),
      offset,
      length,
      views => {
        if (fd === 1) writeStdout(views)
        else pos += writeViewsAt(out(), views, pos)
      },
      {...engineOptions(), force: flags.force, replay: !flags['no-replay']},
      bar.update,
    )
    bar.done()
    if (flags.output) out()
    // after the bytes, so that a read that fails says one thing on stderr: its error
    notice(res.journal)
    if (flags.output && !ctx.jsonEnabled())
      ctx.log(
        `read ${humanBytes(res.bytes)} from offset ${offset} into ${flags.output}` +
          (res.missingMembers.length
            ? ` (rebuilt slot${res.missingMembers.length > 1 ? 's' : ''} ${res.missingMembers.join(', ')} from parity)`
            : ''),
      )
    return {...res, offset, output: flags.output ?? null}
  } finally {
    if (fd > 1) fs.closeSync(fd)
  }
}
