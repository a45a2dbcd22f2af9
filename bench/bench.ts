/**
 * r5ctl benchmark: the CLI against `dd` moving the same device bytes through the page cache.
 *
 *   npm run bench             full run (256 MiB array, 3 runs each, median; then a 1 GiB array for RSS)
 *   npm run bench -- --quick  smoke test (64 MiB array, 1 run; 256 MiB for the RSS comparison)
 *   node dist/bench/bench.js --keep   keep the image files (the folder is printed)
 *   node dist/bench/bench.js --json   also print the results as JSON on stdout
 *
 * What is compared (all in the same run, in a fresh folder under /tmp; every image file is
 * preallocated, so neither side pays ext4's block allocation, see bench/common.ts):
 *   write  (a) dd if=/dev/zero bs=1M conv=notrunc of the journal bytes r5ctl writes, then of the member
 *              bytes (data + parity = 4/3 of the array data, split over 4 files), into pre-written files
 *          (b) r5ctl write --no-flush of the same amount of random data (pre-generated input file) at offset 0
 *   read   (c) dd of every member's data area to /dev/null, four files
 *          (d) r5ctl read --output /dev/null of the same array data
 *   durable: dd conv=fdatasync against r5ctl write with its fdatasync barriers (journal per batch,
 *            members and superblocks at the end) — reported, not judged
 * r5ctl runs as a child process (node bin/run.js), exactly as a user runs it. Each invocation has a
 * fixed cost (node start-up ~55 ms, module loading, opening the devices, superblocks) about as long as
 * dd's whole job at this size, so the targets are judged on what r5ctl adds per byte: its time minus
 * the same command moving one page (measured in the same run); the ratio of the whole invocation is
 * printed beside. Peak RSS comes from GNU time's %M when /usr/bin/time exists,
 * otherwise from a preloaded hook that records process.resourceUsage().maxRSS.
 */
import {randomFillSync} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {crcBackend, crc32cPages, crc32cRaw, crc32cRawReference} from '../src/engine/checksum.js'
import {GNU_TIME, MiB, fmtTable, machine, median, preallocate, sha256File, timed, verdict} from './common.js'

const CHUNK = 512 * 1024
const MEMBERS = 4
const DATA_DISKS = MEMBERS - 1
const JOURNAL_BYTES = 512 * MiB
const TARGET_WRITE = 2.0
const TARGET_READ = 1.5
const TARGET_RSS_MIB = 128

const args = new Set(process.argv.slice(2))
const quick = args.has('--quick')
const keep = args.has('--keep')
const wantJson = args.has('--json')
for (const a of args) {
  if (!['--quick', '--keep', '--json'].includes(a)) {
    process.stderr.write(`bench: unknown argument ${a} (use --quick, --keep, --json)\n`)
    process.exit(2)
  }
}
const DATA_BYTES = (quick ? 64 : 256) * MiB
const LARGE_BYTES = 4 * DATA_BYTES
const RUNS = quick ? 1 : 3

const here = path.dirname(fileURLToPath(import.meta.url))
const RUN_JS = path.resolve(here, '../../bin/run.js')
const started = process.hrtime.bigint()
const say = (s: string) => process.stderr.write(s + '\n')

const r5 = (argv: string[], env?: NodeJS.ProcessEnv, rss = false) => timed(process.execPath, [RUN_JS, ...argv], {env, rss})

// ---------------------------------------------------------------------------------------------
// one array on image files

interface ArraySet {
  dir: string
  journal: string
  members: string[]
  devs: string[]
  dataOffsetBytes: number
  rows: number
  dataBytes: number
  input: string
}

function makeArray(dir: string, dataBytes: number): ArraySet {
  fs.mkdirSync(dir, {recursive: true})
  const rows = Math.ceil(dataBytes / (DATA_DISKS * CHUNK))
  const journal = path.join(dir, 'journal.img')
  const members = Array.from({length: MEMBERS}, (_, i) => path.join(dir, `m${i}.img`))
  // members are created with room for the data offset (mdadm's 1 MiB for this size) plus `rows` chunks
  const offsetGuess = MiB
  const memberSize = offsetGuess + rows * CHUNK
  // every block written once, as dd's targets are (see preallocate in common.ts)
  preallocate(journal, JOURNAL_BYTES)
  for (const m of members) preallocate(m, memberSize)
  const created = JSON.parse(
    r5([
      'create',
      '--json',
      '--level',
      '5',
      '--raid-devices',
      String(MEMBERS),
      '--chunk',
      '512K',
      '--size',
      String(memberSize),
      '--journal-size',
      String(JOURNAL_BYTES),
      '--name',
      'r5ctl:bench',
      '--write-journal',
      journal,
      ...members,
    ]).stdout,
  )
  if (created.arraySizeBytes < dataBytes) throw new Error(`array is ${created.arraySizeBytes} bytes, need ${dataBytes}`)
  const ex = JSON.parse(r5(['examine', '--json', members[0]]).stdout)
  const dataOffsetBytes = ex.devices[0].dataOffsetSector * 512
  const input = path.join(dir, 'input.bin')
  const buf = Buffer.alloc(8 * MiB)
  const fd = fs.openSync(input, 'w')
  for (let done = 0; done < dataBytes; done += buf.length) {
    randomFillSync(buf)
    fs.writeSync(fd, buf, 0, Math.min(buf.length, dataBytes - done))
  }
  fs.closeSync(fd)
  return {dir, journal, members, devs: [journal, ...members], dataOffsetBytes, rows, dataBytes, input}
}

function r5write(a: ArraySet, env?: NodeJS.ProcessEnv, extra: string[] = []) {
  const t = r5(['write', '--json', '--offset', '0', '--input', a.input, ...extra, ...a.devs], env, true)
  return {...t, result: JSON.parse(t.stdout) as {journalBytes: number; checkpoints: number; ioUnits: number; stripes: number}}
}

function r5read(a: ArraySet, output = '/dev/null') {
  return r5(['read', '--offset', '0', '--length', String(a.dataBytes), '--output', output, ...a.devs], undefined, true)
}

// ---------------------------------------------------------------------------------------------
// dd baselines

function ddWriteSet(targets: {file: string; bytes: number}[], sync: boolean): number {
  let s = 0
  for (const t of targets)
    s += timed('dd', [
      'if=/dev/zero',
      `of=${t.file}`,
      'bs=1M',
      `count=${t.bytes}`,
      'iflag=count_bytes',
      `conv=notrunc${sync ? ',fdatasync' : ''}`,
      'status=none',
    ]).seconds
  return s
}

function ddReadMembers(a: ArraySet): number {
  let s = 0
  for (const m of a.members)
    s += timed('dd', [
      `if=${m}`,
      'of=/dev/null',
      'bs=1M',
      `skip=${a.dataOffsetBytes}`,
      `count=${a.rows * CHUNK}`,
      'iflag=skip_bytes,count_bytes',
      'status=none',
    ]).seconds
  return s
}

// ---------------------------------------------------------------------------------------------
// CRC micro-benchmark

function crcBench(): {backend: string; batch: number; native: number; reference: number; agree: boolean} {
  const buf = Buffer.alloc(64 * MiB)
  randomFillSync(buf)
  const seed = 0x12345678
  const pass = (f: (seed: number, b: Uint8Array) => number) => {
    let x = 0
    const t0 = process.hrtime.bigint()
    for (let o = 0; o < buf.length; o += 4096) x ^= f(seed, buf.subarray(o, o + 4096))
    return {s: Number(process.hrtime.bigint() - t0) / 1e9, x}
  }
  const runs = quick ? 1 : 3
  const a: number[] = []
  const b: number[] = []
  let xa = 0
  let xb = 0
  for (let i = 0; i < runs; i++) {
    const p = pass(crc32cRaw)
    a.push(p.s)
    xa = p.x
    const q = pass(crc32cRawReference)
    b.push(q.s)
    xb = q.x
  }
  // one crc32cPages call over the whole buffer (how the engine checksums a batch)
  const sums = new Uint32Array(buf.length / 4096)
  const c: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint()
    crc32cPages(seed, buf, sums, 0)
    c.push(Number(process.hrtime.bigint() - t0) / 1e9)
  }
  let xc = 0
  for (const v of sums) xc ^= v
  return {
    backend: crcBackend,
    batch: buf.length / median(c) / 1e9,
    native: buf.length / median(a) / 1e9,
    reference: buf.length / median(b) / 1e9,
    agree: xa === xb && xc === xb,
  }
}

// ---------------------------------------------------------------------------------------------

function main() {
  const facts = machine()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-bench-'))
  say(
    `r5ctl bench${quick ? ' --quick' : ''}: ${facts.date}, ${facts.nproc} CPUs (${facts.cpu}), ${facts.memoryGiB} GiB RAM, ` +
      `kernel ${facts.kernel}, node ${facts.node}, ${os.tmpdir()} on ${facts.tmpFs}; folder ${root}`,
  )
  say(`RSS measured with ${GNU_TIME ? 'GNU time (%M)' : 'a preloaded process.resourceUsage().maxRSS hook'}`)
  try {
    // --- the main array
    say(
      `setting up: raid5, ${MEMBERS} members, 512K chunk, ${DATA_BYTES / MiB} MiB of data, ${JOURNAL_BYTES / MiB} MiB journal (images preallocated)`,
    )
    const a = makeArray(path.join(root, 'main'), DATA_BYTES)
    const memberWriteBytes = Math.round((DATA_BYTES * MEMBERS) / DATA_DISKS / MEMBERS) // per member: data + parity share
    // fixed cost of one invocation, measured in this run: node start-up, module loading, opening the
    // devices, superblocks; the same commands moving one page
    const startups: number[] = []
    const fixedW: number[] = []
    const fixedR: number[] = []
    const startup = () => {
      startups.push(r5(['--version']).seconds)
      fixedW.push(r5(['write', '--no-flush', '--offset', '0', '--length', '4096', '--input', a.input, ...a.devs]).seconds)
      fixedR.push(r5(['read', '--offset', '0', '--length', '4096', '--output', '/dev/null', ...a.devs]).seconds)
    }
    startup()

    // warm-up (untimed): tells how many journal bytes a write moves
    const warm = r5write(a, undefined, ['--no-flush'])
    const J = warm.result.journalBytes
    const ddTargets = [
      {file: path.join(root, 'dd-journal'), bytes: J},
      ...Array.from({length: MEMBERS}, (_, i) => ({file: path.join(root, `dd-member${i}`), bytes: memberWriteBytes})),
    ]
    ddWriteSet(ddTargets, false) // creates (allocates) the dd target files
    const deviceBytes = J + MEMBERS * memberWriteBytes

    // page cache: r5ctl write --no-flush against plain dd; durable: r5ctl write against dd conv=fdatasync
    const ddW: number[] = []
    const ddWs: number[] = []
    const rW: number[] = []
    const rWd: number[] = []
    const rWrss: number[] = []
    let writeInfo = warm.result
    for (let i = 0; i < RUNS; i++) {
      ddW.push(ddWriteSet(ddTargets, false))
      const w = r5write(a, undefined, ['--no-flush'])
      rW.push(w.seconds)
      if (w.rssKiB) rWrss.push(w.rssKiB)
      writeInfo = w.result
      ddWs.push(ddWriteSet(ddTargets, true))
      const d = r5write(a)
      rWd.push(d.seconds)
      if (d.rssKiB) rWrss.push(d.rssKiB)
      startup()
    }
    // the pure-JS CRC fallback, for context
    const jsW = median(Array.from({length: RUNS}, () => r5write(a, {R5CTL_CRC: 'js'}, ['--no-flush']).seconds))

    // verify what was written (untimed), and that the log is clean
    const back = path.join(root, 'readback.bin')
    r5read(a, back)
    const verified = sha256File(back) === sha256File(a.input)
    fs.rmSync(back)
    const ej = JSON.parse(r5(['examine', '--journal', '--json', ...a.devs]).stdout)

    const ddR: number[] = []
    const rR: number[] = []
    const rRrss: number[] = []
    ddReadMembers(a) // warm
    for (let i = 0; i < RUNS; i++) {
      ddR.push(ddReadMembers(a))
      const r = r5read(a)
      rR.push(r.seconds)
      if (r.rssKiB) rRrss.push(r.rssKiB)
      startup()
    }

    // --- 4x larger array, for RSS
    say(`setting up: the same array at ${LARGE_BYTES / MiB} MiB of data for the RSS comparison`)
    fs.rmSync(path.join(root, 'main'), {recursive: true, force: true})
    for (const t of ddTargets) fs.rmSync(t.file, {force: true})
    const L = makeArray(path.join(root, 'large'), LARGE_BYTES)
    const lw0 = r5write(L, undefined, ['--no-flush'])
    const lw = r5write(L)
    const lr = r5read(L)
    const ddRL = ddReadMembers(L)
    const ddRL2 = ddReadMembers(L)

    const crc = crcBench()

    // --- report
    const D = DATA_BYTES
    const st = median(startups)
    const fw = median(fixedW)
    const fr = median(fixedR)
    const mb = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(0)
    const ddwMed = median(ddW)
    const ddwsMed = median(ddWs)
    const ddrMed = median(ddR)
    const wMed = median(rW)
    const wdMed = median(rWd)
    const rMed = median(rR)
    // judged: the engine's time (r5ctl's wall time minus the start-up median of the same run) against dd;
    // the ratio including start-up is printed beside it
    // judged: what r5ctl adds per byte, i.e. its time minus the same command's fixed cost (one page),
    // against dd; the ratio of the whole invocation is printed beside
    const ratios = (t: number, base: number, fixed: number) => ({incl: t / base, excl: (t - fixed) / base})
    const wR = ratios(wMed, ddwMed, fw)
    const wdR = ratios(wdMed, ddwsMed, fw)
    const rR_ = ratios(rMed, ddrMed, fr)
    const row = (what: string, t: number, base: number | null, fixed = 0, target?: number): string[] => {
      if (base === null) return [what, t.toFixed(3), mb(D, t), '1.00', '1.00', '', '']
      const r = ratios(t, base, fixed)
      return [
        what,
        t.toFixed(3),
        mb(D, t),
        r.incl.toFixed(2),
        r.excl.toFixed(2),
        target === undefined ? '' : `<= ${target.toFixed(1)}x`,
        target === undefined ? '' : verdict(r.excl <= target),
      ]
    }
    const rssMiB = (k: number | null | undefined) => (k ? k / 1024 : NaN)
    const maxRss = (xs: number[]) => (xs.length ? Math.max(...xs) : null)
    const wRss = maxRss(rWrss)
    const rRss = maxRss(rRrss)
    const lwRss = Math.max(lw0.rssKiB ?? 0, lw.rssKiB ?? 0) || null
    const lrRss = lr.rssKiB
    const rows: string[][] = [
      row(`(a) dd write: journal ${(J / MiB).toFixed(1)} MiB + members 4 x ${(memberWriteBytes / MiB).toFixed(1)} MiB`, ddwMed, null),
      row(`(b) r5ctl write ${D / MiB} MiB --no-flush`, wMed, ddwMed, fw, TARGET_WRITE),
      row(`(c) dd read: members 4 x ${((a.rows * CHUNK) / MiB).toFixed(1)} MiB`, ddrMed, null),
      row(`(d) r5ctl read ${D / MiB} MiB --output /dev/null`, rMed, ddrMed, fr, TARGET_READ),
      row('durable: dd write as (a) with conv=fdatasync', ddwsMed, null),
      row('durable: r5ctl write (fdatasync at every barrier)', wdMed, ddwsMed, fw),
      row('context: r5ctl write --no-flush, R5CTL_CRC=js (pure-JS crc-32)', jsW, ddwMed, fw),
      ['fixed cost: r5ctl write --no-flush of one page, median', fw.toFixed(3), '', '', '', '', ''],
      ['fixed cost: r5ctl read of one page, median', fr.toFixed(3), '', '', '', '', ''],
      ['context: r5ctl --version (node start-up + CLI), median', st.toFixed(3), '', '', '', '', ''],
    ]
    const rssRows: string[][] = [
      [`r5ctl write ${D / MiB} MiB`, rssMiB(wRss).toFixed(1), `<= ${TARGET_RSS_MIB}`, verdict(rssMiB(wRss) <= TARGET_RSS_MIB)],
      [
        `r5ctl write ${LARGE_BYTES / MiB} MiB (${lw.result.checkpoints} checkpoints; ${lw.seconds.toFixed(2)} s, ${mb(LARGE_BYTES, lw.seconds)} MB/s)`,
        rssMiB(lwRss).toFixed(1),
        `<= ${TARGET_RSS_MIB}`,
        verdict(rssMiB(lwRss) <= TARGET_RSS_MIB),
      ],
      [`r5ctl read ${D / MiB} MiB`, rssMiB(rRss).toFixed(1), `<= ${TARGET_RSS_MIB}`, verdict(rssMiB(rRss) <= TARGET_RSS_MIB)],
      [
        `r5ctl read ${LARGE_BYTES / MiB} MiB (${lr.seconds.toFixed(2)} s, ${mb(LARGE_BYTES, lr.seconds)} MB/s; dd ${mb(LARGE_BYTES, Math.min(ddRL, ddRL2))} MB/s)`,
        rssMiB(lrRss).toFixed(1),
        `<= ${TARGET_RSS_MIB}`,
        verdict(rssMiB(lrRss) <= TARGET_RSS_MIB),
      ],
    ]
    const flatW = wRss !== null && lwRss !== null && lwRss <= wRss * 1.1
    const flatR = rRss !== null && lrRss !== null && lrRss <= rRss * 1.1
    const total = Number(process.hrtime.bigint() - started) / 1e9
    const out: string[] = []
    out.push(`r5ctl bench${quick ? ' --quick' : ''} — ${facts.date}`)
    out.push(
      `machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memoryGiB} GiB RAM, kernel ${facts.kernel}, node ${facts.node}, images on ${facts.tmpFs} (${os.tmpdir()}); ` +
        `load average ${facts.loadAverage.join(' ')} at the start, ${os
          .loadavg()
          .map(x => x.toFixed(2))
          .join(' ')} at the end`,
    )
    out.push(
      `array: raid5, ${MEMBERS} members, 512K chunk, ${a.rows} chunk rows (${((a.rows * CHUNK * DATA_DISKS) / MiB).toFixed(1)} MiB usable), journal ${JOURNAL_BYTES / MiB} MiB, ` +
        `image files preallocated; ${RUNS} run(s) each, median; MB/s = ${D / MiB} MiB of array data / seconds`,
    )
    out.push(
      `r5ctl write moved ${(J / MiB).toFixed(1)} MiB of journal (${writeInfo.ioUnits} io units, ${writeInfo.stripes} stripes, ${writeInfo.checkpoints} checkpoints) ` +
        `+ ${((MEMBERS * memberWriteBytes) / MiB).toFixed(1)} MiB to members = ${(deviceBytes / MiB).toFixed(1)} MiB of device writes; read-back ${verified ? 'verified (sha256)' : 'MISMATCH'}; journal after: ${ej.state}`,
    )
    out.push(
      "judged: r5ctl time minus the same command's fixed cost (moving one page; measured in this run) against dd; the ratio of the whole invocation is printed too",
    )
    out.push('')
    out.push(fmtTable(['operation', 'seconds', 'MB/s', 'ratio', 'ratio minus fixed cost', 'target', 'result'], rows))
    out.push('')
    out.push(fmtTable(['peak RSS', 'MiB', 'target', 'result'], rssRows))
    out.push(`RSS flat (the ${LARGE_BYTES / MiB} MiB runs within 10 % of the ${D / MiB} MiB ones): write ${verdict(flatW)}, read ${verdict(flatR)}`)
    out.push('')
    out.push(
      `CRC32C backend in use: ${crc.backend}; over 64 MiB in 4 KiB pages: crc32cPages (one call) ${crc.batch.toFixed(2)} GB/s, ` +
        `crc32cRaw per page ${crc.native.toFixed(2)} GB/s, crc32cRawReference (pure-JS crc-32) ${crc.reference.toFixed(2)} GB/s; results ${crc.agree ? 'agree' : 'DISAGREE'}`,
    )
    out.push(`total bench time ${total.toFixed(1)} s`)
    process.stdout.write(out.join('\n') + '\n')
    if (wantJson) {
      process.stdout.write(
        JSON.stringify(
          {
            machine: facts,
            quick,
            runs: RUNS,
            dataBytes: D,
            journalSizeBytes: JOURNAL_BYTES,
            journalBytesWritten: J,
            memberBytesWritten: MEMBERS * memberWriteBytes,
            seconds: {
              ddWrite: ddW,
              r5ctlWriteNoFlush: rW,
              ddWriteFdatasync: ddWs,
              r5ctlWriteDurable: rWd,
              ddRead: ddR,
              r5ctlRead: rR,
              r5ctlWriteJsCrc: jsW,
              startup: startups,
              fixedWrite: fixedW,
              fixedRead: fixedR,
            },
            ratios: {write: wR, writeDurable: wdR, read: rR_},
            rssKiB: {write: wRss, read: rRss, writeLarge: lwRss, readLarge: lrRss},
            rssFlat: {write: flatW, read: flatR},
            largeBytes: LARGE_BYTES,
            largeCheckpoints: lw.result.checkpoints,
            crc,
            verified,
            journalStateAfter: ej.state,
            totalSeconds: total,
          },
          null,
          2,
        ) + '\n',
      )
    }
    if (!verified) process.exitCode = 1
  } finally {
    if (!keep) fs.rmSync(root, {recursive: true, force: true})
    else say(`kept ${root}`)
  }
}

main()
