import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {createHash, randomBytes} from 'node:crypto'
import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {deviceRef, deviceRefs} from '../cli/open.js'
import {engineOptions} from '../cli/engine-options.js'
import {createArray, writeData, readData, examineJournal, dumpMeta, recoverArray} from '../engine/index.js'
import {CorruptError, SimulatedCrash, UsageError} from '../engine/errors.js'
import type {DeviceRef} from '../engine/device.js'
import {ProgressBar} from '../render/progress.js'
import {out} from '../render/colour.js'
import {renderJournal} from '../render/journal.js'
import {humanBytes} from '../render/format.js'

export const spec = {
  summary: 'The whole story on image files: create, write, crash mid-write, examine the dirty journal, recover, verify',
  description: `The embedded default: creates a 4-member RAID5 (64K chunk) with a write journal in a temporary
folder (or --dir), writes random data at assorted offsets (full stripes, partial stripes, a single page), then cuts
the power in the middle of a large write (crash injection), shows the dirty journal, replays it with recover, and
verifies every byte — with all members and with each member left out: acknowledged writes are all there, and
every page of the interrupted write is either its old or its new contents.`,
  examples: ['<%= config.bin %> demo', '<%= config.bin %> demo --dir /tmp/r5demo --keep'],
  // false, so that a surplus argument is our usage error (exit 2) rather than oclif's unknown command (127)
  strict: false,
  flags: {
    dir: flag.string({description: 'folder for the image files (default: a new temporary folder)'}),
    keep: flag.boolean({description: 'keep the image files afterwards'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, argv: string[]) {
  if (argv.length > 0) throw new UsageError(`demo takes no arguments (got ${argv.join(' ')})`, 'give the folder with --dir')
  const dir = flags.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-demo-'))
  fs.mkdirSync(dir, {recursive: true})
  const say = (s: string) => {
    if (!ctx.jsonEnabled()) ctx.log(s)
  }
  const members = ['a.img', 'b.img', 'c.img', 'd.img'].map(f => path.join(dir, f))
  const journal = path.join(dir, 'journal.img')
  for (const f of [...members, journal]) fs.rmSync(f, {force: true})
  const all = [journal, ...members]
  const allRefs = deviceRefs(all, flags)
  try {
    say(out.bold(`1. create: raid5, 4 members of 32 MiB, 64K chunk, 16 MiB journal in ${dir}`))
    const created = createArray({
      level: 5,
      raidDevices: 4,
      chunkBytes: 65536,
      sizeBytes: 32 << 20,
      journalSizeBytes: 16 << 20,
      members: deviceRefs(members, flags),
      journal: deviceRef(journal, flags),
      name: 'r5ctl:demo',
    })
    say(`   array ${created.arrayUuid}, ${humanBytes(created.arraySizeBytes)} usable`)
    const model = Buffer.alloc(created.arraySizeBytes)
    const writes: [number, number, string][] = [
      [0, 3 * 65536 * 4, 'four full stripe rows'],
      [5 << 20, 4096, 'a single page'],
      [(7 << 20) + 8192, 100 * 1024, 'partial stripes, not chunk-aligned'],
      [20 << 20, 3 << 20, '3 MiB run'],
    ]
    say(out.bold('2. write through the journal'))
    for (const [off, len, what] of writes) {
      const data = randomBytes(len)
      const r = writeData(allRefs, off, len, sourceOf(data), engineOptions())
      data.copy(model, off)
      say(
        `   ${humanBytes(len).padStart(10)} at ${String(off).padStart(9)} (${what}): ${r.stripes} stripes, ${r.ioUnits} io units, ${r.rcwStripes} rcw / ${r.rmwStripes} rmw`,
      )
    }
    say(out.bold('3. power cut in the middle of a 6 MiB write (crash injection after 14 device writes)'))
    const big = randomBytes(6 << 20)
    const bigOff = 40 << 20
    const before = Buffer.from(model.subarray(bigOff, bigOff + big.length))
    const acked = writeCut(allRefs, bigOff, big, say)
    say(out.bold('4. the journal after the crash (examine --journal)'))
    const j = examineJournal(allRefs, engineOptions())
    say(
      renderJournal(j)
        .split('\n')
        .map(l => '   ' + l)
        .join('\n'),
    )
    const d = dumpMeta(allRefs, engineOptions())
    say(`   dump-meta: ${d.blocks.length} meta block(s) in the live log, ${d.mismatches} checksum mismatches`)
    say(out.bold('5. recover: replay the journal offline'))
    const bar = new ProgressBar('   recover', ctx.progressEnabled(undefined), 'fraction')
    const rec = recoverArray(allRefs, {...engineOptions(), progress: bar.update})
    bar.done()
    say(
      `   replayed ${rec.dataParityStripes} data+parity and ${rec.dataOnlyStripes} data-only stripes, ${rec.pagesWritten} pages; new tail sector ${rec.newTailSector}, seq ${rec.newSeq}`,
    )
    const again = recoverArray(allRefs, engineOptions())
    say(`   a second recover finds the journal ${again.state}`)
    const newPages = checkInterrupted(allRefs, {offset: bigOff, before, after: big, acked, model, dir})
    say(`   interrupted write: ${newPages} of ${big.length / 4096} pages new, the rest old; every acknowledged page present`)
    say(out.bold('6. read back and verify, with every member and with each one left out'))
    const results = verifyReads(allRefs, members, model, say)
    if (!results.every(r => r.ok)) throw new CorruptError('read-back does not match what was written', dir)
    say(out.green(`verified: every byte of ${humanBytes(model.length)} matches, with all members and with any one left out`))
    return {dir, arrayUuid: created.arrayUuid, crash: {acknowledgedBytes: acked}, journal: j, recover: rec, reads: results, verified: true}
  } finally {
    if (!flags.keep && !flags.dir) fs.rmSync(dir, {recursive: true, force: true})
  }
}

/** A write source that hands out `data` in order. */
function sourceOf(data: Buffer): (buf: Uint8Array) => number {
  let p = 0
  return buf => {
    const n = Math.min(buf.length, data.length - p)
    data.copy(buf, 0, p, p + n)
    p += n
    return n
  }
}

/**
 * What the array must hold after recover: each page of the interrupted write old or new, every
 * acknowledged page new. Puts what it holds into `model`; returns how many pages are new.
 */
function checkInterrupted(refs: DeviceRef[], w: {offset: number; before: Buffer; after: Buffer; acked: number; model: Buffer; dir: string}): number {
  const now = Buffer.alloc(w.after.length)
  let o = 0
  readData(
    refs,
    w.offset,
    w.after.length,
    views => {
      for (const v of views) {
        Buffer.from(v).copy(now, o)
        o += v.length
      }
    },
    {},
  )
  let newPages = 0
  for (let p = 0; p < w.after.length; p += 4096) {
    const got = now.subarray(p, p + 4096)
    const isNew = got.equals(w.after.subarray(p, p + 4096))
    if (!isNew && !got.equals(w.before.subarray(p, p + 4096)))
      throw new CorruptError(`page at ${w.offset + p} is neither old nor new after recover`, w.dir)
    if (!isNew && p < w.acked) throw new CorruptError(`acknowledged page at ${w.offset + p} lost`, w.dir)
    if (isNew) newPages++
  }
  now.copy(w.model, w.offset)
  return newPages
}

/** Read the whole array with every member and with each one left out; each read's sha256 against the model's. */
function verifyReads(
  refs: DeviceRef[],
  members: string[],
  model: Buffer,
  say: (s: string) => void,
): {members: string; sha256: string; ok: boolean}[] {
  const want = createHash('sha256').update(model).digest('hex')
  const results: {members: string; sha256: string; ok: boolean}[] = []
  for (const leftOut of [null, ...members]) {
    const h = createHash('sha256')
    readData(
      refs.filter(x => x.name !== leftOut),
      0,
      undefined,
      views => {
        for (const v of views) h.update(v)
      },
      engineOptions(),
    )
    const got = h.digest('hex')
    const ok = got === want
    const who = leftOut ? `without ${path.basename(leftOut)}` : 'all members'
    results.push({members: who, sha256: got, ok})
    say(`   ${who.padEnd(16)} sha256 ${got.slice(0, 16)}…  ${ok ? out.green('OK') : out.red('MISMATCH')}`)
  }
  return results
}

/** Write `data` with a power cut after 14 device writes; the bytes acknowledged before it. */
function writeCut(refs: DeviceRef[], offset: number, data: Buffer, say: (s: string) => void): number {
  try {
    writeData(refs, offset, data.length, sourceOf(data), {...engineOptions(), crashAfter: 14})
    return data.length
  } catch (error) {
    if (!(error instanceof SimulatedCrash)) throw error
    say(`   ${out.yellow('power cut')} after ${error.writesDone} device writes; ${humanBytes(error.acknowledged)} of the write had been acknowledged`)
    return error.acknowledged
  }
}
