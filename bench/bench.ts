/**
 * r5ctl benchmark: the CLI against `dd` moving the same device bytes through the page cache.
 *
 *   npm run bench             full run (256 MiB array, 3 runs each, median; then a 1 GiB array for RSS)
 *   npm run bench -- --quick  smoke test (64 MiB array, 1 run; 256 MiB for the RSS comparison)
 *   node dist/bench/bench.js --keep   keep the image files (the folder is printed)
 *   node dist/bench/bench.js --json   also print the results as JSON on stdout
 *
 * What is compared (all in the same run, in a fresh folder under /tmp):
 *   write  (a) dd if=/dev/zero bs=1M conv=notrunc of the journal bytes r5ctl writes, then of the member
 *              bytes (data + parity = 4/3 of the array data, split over 4 files), into pre-created files
 *          (b) r5ctl write of the same amount of random data (pre-generated input file) at offset 0
 *   read   (c) dd of every member's data area to /dev/null, four files
 *          (d) r5ctl read --output /dev/null of the same array data
 * r5ctl runs as a child process (node bin/run.js), exactly as a user runs it, so its time includes
 * node and oclif start-up (reported separately). Peak RSS comes from GNU time's %M when
 * /usr/bin/time exists, otherwise from a preloaded hook that records process.resourceUsage().maxRSS.
 *
 * dd never calls fsync here; r5ctl write does (fdatasync of the journal per batch, of the members and
 * superblocks at the end), as the write-through contract requires. Rows with dd conv=fdatasync and with
 * r5ctl write --no-flush (fdatasync skipped) are printed for context; the targets are against plain dd,
 * as specified.
 */
import {spawnSync} from 'node:child_process'
import {createHash, randomFillSync} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {crcBackend, crc32cRaw, crc32cRawReference} from '../src/engine/checksum.js'

const MiB = 1 << 20
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

// ---------------------------------------------------------------------------------------------
// child processes, timed, with peak RSS

const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null

interface Timed {seconds: number; rssKiB: number | null; stdout: string}

function sh(cmd: string, argv: string[], opts: {env?: NodeJS.ProcessEnv; rssHook?: string} = {}): Timed {
  let file = cmd
  let list = argv
  let hookFile: string | null = null
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', ...opts.env}
  if (opts.rssHook !== undefined) {
    if (GNU_TIME) {
      file = GNU_TIME
      list = ['-f', 'R5BENCH_RSS %M', cmd, ...argv]
    } else {
      hookFile = opts.rssHook
      fs.rmSync(hookFile, {force: true})
      env.R5BENCH_RSS_FILE = hookFile
      list = ['--import', rssHookModule(), ...argv]
    }
  }
  const t0 = process.hrtime.bigint()
  const r = spawnSync(file, list, {env, encoding: 'utf8', maxBuffer: 64 * MiB})
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.error) throw r.error
  const stderr = r.stderr ?? ''
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited with ${r.status}\n${stderr}${r.stdout ?? ''}`)
  let rssKiB: number | null = null
  const m = /R5BENCH_RSS (\d+)/.exec(stderr)
  if (m) rssKiB = Number(m[1])
  else if (hookFile && fs.existsSync(hookFile)) rssKiB = Number(fs.readFileSync(hookFile, 'utf8').trim())
  return {seconds, rssKiB, stdout: r.stdout ?? ''}
}

let hookPath: string | null = null
function rssHookModule(): string {
  if (!hookPath) {
    hookPath = path.join(os.tmpdir(), `r5ctl-bench-rss-${process.pid}.mjs`)
    fs.writeFileSync(hookPath, `import * as fs from 'node:fs'
process.on('exit', () => { if (process.env.R5BENCH_RSS_FILE) fs.writeFileSync(process.env.R5BENCH_RSS_FILE, String(process.resourceUsage().maxRSS)) })
`)
  }
  return hookPath
}

const r5 = (argv: string[], env?: NodeJS.ProcessEnv, rssFile?: string) => sh(process.execPath, [RUN_JS, ...argv], {env, rssHook: rssFile})

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

// ---------------------------------------------------------------------------------------------
// one array on image files

interface ArraySet {dir: string; journal: string; members: string[]; devs: string[]; dataOffsetBytes: number; rows: number; dataBytes: number; input: string}

function makeArray(dir: string, dataBytes: number): ArraySet {
  fs.mkdirSync(dir, {recursive: true})
  const rows = Math.ceil(dataBytes / (DATA_DISKS * CHUNK))
  const journal = path.join(dir, 'journal.img')
  const members = Array.from({length: MEMBERS}, (_, i) => path.join(dir, `m${i}.img`))
  // members are created with room for the data offset (mdadm's 1 MiB for this size) plus `rows` chunks
  const offsetGuess = MiB
  const memberSize = offsetGuess + rows * CHUNK
  const created = JSON.parse(r5(['create', '--json', '--level', '5', '--raid-devices', String(MEMBERS), '--chunk', '512K',
    '--size', String(memberSize), '--journal-size', String(JOURNAL_BYTES), '--name', 'r5ctl:bench', '--write-journal', journal, ...members]).stdout)
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

function r5write(a: ArraySet, rssFile: string, env?: NodeJS.ProcessEnv, extra: string[] = []) {
  const t = r5(['write', '--json', '--offset', '0', '--input', a.input, ...extra, ...a.devs], env, rssFile)
  return {...t, result: JSON.parse(t.stdout) as {journalBytes: number; checkpoints: number; ioUnits: number; stripes: number}}
}

function r5read(a: ArraySet, rssFile: string, output = '/dev/null') {
  return r5(['read', '--offset', '0', '--length', String(a.dataBytes), '--output', output, ...a.devs], undefined, rssFile)
}

function sha256File(file: string): string {
  const h = createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.alloc(8 * MiB)
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null)
    if (n === 0) break
    h.update(buf.subarray(0, n))
  }
  fs.closeSync(fd)
  return h.digest('hex')
}

// ---------------------------------------------------------------------------------------------
// dd baselines

function ddWriteSet(targets: {file: string; bytes: number}[], sync: boolean): number {
  let s = 0
  for (const t of targets)
    s += sh('dd', ['if=/dev/zero', `of=${t.file}`, 'bs=1M', `count=${t.bytes}`, 'iflag=count_bytes', `conv=notrunc${sync ? ',fdatasync' : ''}`, 'status=none']).seconds
  return s
}

function ddReadMembers(a: ArraySet): number {
  let s = 0
  for (const m of a.members)
    s += sh('dd', [`if=${m}`, 'of=/dev/null', 'bs=1M', `skip=${a.dataOffsetBytes}`, `count=${a.rows * CHUNK}`, 'iflag=skip_bytes,count_bytes', 'status=none']).seconds
  return s
}

// ---------------------------------------------------------------------------------------------
// CRC micro-benchmark

function crcBench(): {backend: string; native: number; reference: number; agree: boolean} {
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
  return {backend: crcBackend, native: buf.length / median(a) / 1e9, reference: buf.length / median(b) / 1e9, agree: xa === xb}
}

// ---------------------------------------------------------------------------------------------

function fmtTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd()
  return [line(head), line(w.map(n => '-'.repeat(n))), ...rows.map(line)].join('\n')
}

function machine() {
  const fsType = spawnSync('df', ['--output=fstype', os.tmpdir()], {encoding: 'utf8'}).stdout?.trim().split('\n').pop() || 'unknown'
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    kernel: os.release(),
    node: process.version,
    tmpFs: fsType,
    loadAverage: os.loadavg().map(x => Math.round(x * 100) / 100),
  }
}

function main() {
  const facts = machine()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-bench-'))
  const rss = path.join(root, 'rss.txt')
  say(`r5ctl bench${quick ? ' --quick' : ''}: ${facts.date}, ${facts.nproc} CPUs (${facts.cpu}), ${facts.memoryGiB} GiB RAM, ` +
    `kernel ${facts.kernel}, node ${facts.node}, ${os.tmpdir()} on ${facts.tmpFs}; folder ${root}`)
  say(`RSS measured with ${GNU_TIME ? 'GNU time (%M)' : 'a preloaded process.resourceUsage().maxRSS hook'}`)
  try {
    // --- the main array
    say(`setting up: raid5, ${MEMBERS} members, 512K chunk, ${DATA_BYTES / MiB} MiB of data, ${JOURNAL_BYTES / MiB} MiB journal`)
    const a = makeArray(path.join(root, 'main'), DATA_BYTES)
    const memberWriteBytes = Math.round(DATA_BYTES * MEMBERS / DATA_DISKS / MEMBERS) // per member: data + parity share
    const startup = median(Array.from({length: quick ? 1 : 3}, () => r5(['--version']).seconds))

    // warm-up (untimed): r5ctl allocates the sparse images and tells how many journal bytes it writes
    const warm = r5write(a, rss)
    const J = warm.result.journalBytes
    const ddTargets = [{file: path.join(root, 'dd-journal'), bytes: J},
      ...Array.from({length: MEMBERS}, (_, i) => ({file: path.join(root, `dd-member${i}`), bytes: memberWriteBytes}))]
    ddWriteSet(ddTargets, false) // creates (allocates) the dd target files
    const deviceBytes = J + MEMBERS * memberWriteBytes

    const ddW: number[] = []
    const ddWs: number[] = []
    const rW: number[] = []
    const rWrss: number[] = []
    let writeInfo = warm.result
    for (let i = 0; i < RUNS; i++) {
      ddW.push(ddWriteSet(ddTargets, false))
      const w = r5write(a, rss)
      rW.push(w.seconds)
      if (w.rssKiB) rWrss.push(w.rssKiB)
      writeInfo = w.result
      ddWs.push(ddWriteSet(ddTargets, true))
    }
    // the pure-JS CRC fallback, and writing without fdatasync, for context (medians when RUNS > 1)
    const jsW = {seconds: median(Array.from({length: RUNS}, () => r5write(a, rss, {R5CTL_CRC: 'js'}).seconds))}
    const noFlushW = {seconds: median(Array.from({length: RUNS}, () => r5write(a, rss, undefined, ['--no-flush']).seconds))}

    // verify what was written (untimed), and that the log is clean
    const back = path.join(root, 'readback.bin')
    r5read(a, rss, back)
    const verified = sha256File(back) === sha256File(a.input)
    fs.rmSync(back)
    const ej = JSON.parse(r5(['examine', '--journal', '--json', ...a.devs]).stdout)

    const ddR: number[] = []
    const rR: number[] = []
    const rRrss: number[] = []
    ddReadMembers(a) // warm
    for (let i = 0; i < RUNS; i++) {
      ddR.push(ddReadMembers(a))
      const r = r5read(a, rss)
      rR.push(r.seconds)
      if (r.rssKiB) rRrss.push(r.rssKiB)
    }

    // --- 4x larger array, for RSS
    say(`setting up: the same array at ${LARGE_BYTES / MiB} MiB of data for the RSS comparison`)
    fs.rmSync(path.join(root, 'main'), {recursive: true, force: true})
    for (const t of ddTargets) fs.rmSync(t.file, {force: true})
    const L = makeArray(path.join(root, 'large'), LARGE_BYTES)
    const lw0 = r5write(L, rss) // allocates
    const lw = r5write(L, rss)
    const lr = r5read(L, rss)
    const ddRL = ddReadMembers(L)
    const ddRL2 = ddReadMembers(L)

    const crc = crcBench()

    // --- report
    const mb = (bytes: number, s: number) => (bytes / 1e6 / s).toFixed(0)
    const wMed = median(rW)
    const ddwMed = median(ddW)
    const rMed = median(rR)
    const ddrMed = median(ddR)
    const wRatio = wMed / ddwMed
    const rRatio = rMed / ddrMed
    const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL')
    // the engine's share: total minus the start-up median; below ~10 ms it is lost in the noise
    const minusStartup = (what: string, t: number, dd: number): string[] => {
      const e = t - startup
      return e > 0.01 ? [what, e.toFixed(3), mb(D, e), (e / dd).toFixed(2), '', ''] : [what, '< 0.010', '', '', '', '']
    }
    const rssMiB = (k: number | null | undefined) => (k ? k / 1024 : NaN)
    const maxRss = (xs: number[]) => (xs.length ? Math.max(...xs) : null)
    const wRss = maxRss(rWrss)
    const rRss = maxRss(rRrss)
    const lwRss = Math.max(lw0.rssKiB ?? 0, lw.rssKiB ?? 0) || null
    const lrRss = lr.rssKiB
    const D = DATA_BYTES
    const rows: string[][] = [
      [`(a) dd write: journal ${(J / MiB).toFixed(1)} MiB + members 4 x ${(memberWriteBytes / MiB).toFixed(1)} MiB`, ddwMed.toFixed(3), mb(D, ddwMed), '1.00', '', ''],
      [`(b) r5ctl write ${D / MiB} MiB`, wMed.toFixed(3), mb(D, wMed), wRatio.toFixed(2), `<= ${TARGET_WRITE.toFixed(1)}x`, verdict(wRatio <= TARGET_WRITE)],
      [`(c) dd read: members 4 x ${(a.rows * CHUNK / MiB).toFixed(1)} MiB`, ddrMed.toFixed(3), mb(D, ddrMed), '1.00', '', ''],
      [`(d) r5ctl read ${D / MiB} MiB --output /dev/null`, rMed.toFixed(3), mb(D, rMed), rRatio.toFixed(2), `<= ${TARGET_READ.toFixed(1)}x`, verdict(rRatio <= TARGET_READ)],
      minusStartup('context: (b) minus start-up', wMed, ddwMed),
      minusStartup('context: (d) minus start-up', rMed, ddrMed),
      ['context: dd write as (a) with conv=fdatasync', median(ddWs).toFixed(3), mb(D, median(ddWs)), (median(ddWs) / ddwMed).toFixed(2), '', ''],
      ['context: r5ctl write, R5CTL_CRC=js (pure-JS crc-32)', jsW.seconds.toFixed(3), mb(D, jsW.seconds), (jsW.seconds / ddwMed).toFixed(2), '', ''],
      ['context: r5ctl write --no-flush (no fdatasync, like dd)', noFlushW.seconds.toFixed(3), mb(D, noFlushW.seconds), (noFlushW.seconds / ddwMed).toFixed(2), '', ''],
      ['context: r5ctl --version (node + oclif start-up)', startup.toFixed(3), '', '', '', ''],
    ]
    const rssRows: string[][] = [
      [`r5ctl write ${D / MiB} MiB`, rssMiB(wRss).toFixed(1), `<= ${TARGET_RSS_MIB}`, verdict(rssMiB(wRss) <= TARGET_RSS_MIB)],
      [`r5ctl write ${LARGE_BYTES / MiB} MiB (${lw.result.checkpoints} checkpoints; ${lw.seconds.toFixed(2)} s, ${mb(LARGE_BYTES, lw.seconds)} MB/s)`, rssMiB(lwRss).toFixed(1), `<= ${TARGET_RSS_MIB}`, verdict(rssMiB(lwRss) <= TARGET_RSS_MIB)],
      [`r5ctl read ${D / MiB} MiB`, rssMiB(rRss).toFixed(1), `<= ${TARGET_RSS_MIB}`, verdict(rssMiB(rRss) <= TARGET_RSS_MIB)],
      [`r5ctl read ${LARGE_BYTES / MiB} MiB (${lr.seconds.toFixed(2)} s, ${mb(LARGE_BYTES, lr.seconds)} MB/s; dd ${mb(LARGE_BYTES, Math.min(ddRL, ddRL2))} MB/s)`, rssMiB(lrRss).toFixed(1), `<= ${TARGET_RSS_MIB}`, verdict(rssMiB(lrRss) <= TARGET_RSS_MIB)],
    ]
    const total = Number(process.hrtime.bigint() - started) / 1e9
    const out: string[] = []
    out.push(`r5ctl bench${quick ? ' --quick' : ''} — ${facts.date}`)
    out.push(`machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memoryGiB} GiB RAM, kernel ${facts.kernel}, node ${facts.node}, images on ${facts.tmpFs} (${os.tmpdir()}); ` +
      `load average ${facts.loadAverage.join(' ')} at the start, ${os.loadavg().map(x => x.toFixed(2)).join(' ')} at the end`)
    out.push(`array: raid5, ${MEMBERS} members, 512K chunk, ${a.rows} chunk rows (${(a.rows * CHUNK * DATA_DISKS / MiB).toFixed(1)} MiB usable), journal ${JOURNAL_BYTES / MiB} MiB; ` +
      `${RUNS} run(s) each, median; MB/s = ${D / MiB} MiB of array data / seconds`)
    out.push(`r5ctl write moved ${(J / MiB).toFixed(1)} MiB of journal (${writeInfo.ioUnits} io units, ${writeInfo.stripes} stripes, ${writeInfo.checkpoints} checkpoints) ` +
      `+ ${(MEMBERS * memberWriteBytes / MiB).toFixed(1)} MiB to members = ${(deviceBytes / MiB).toFixed(1)} MiB of device writes; read-back ${verified ? 'verified (sha256)' : 'MISMATCH'}; journal after: ${ej.state}`)
    out.push('')
    out.push(fmtTable(['operation', 'seconds', 'MB/s', 'ratio to dd', 'target', 'result'], rows))
    out.push('')
    out.push(fmtTable(['peak RSS', 'MiB', 'target', 'result'], rssRows))
    out.push('')
    out.push(`CRC32C backend in use: ${crc.backend}; crc32cRaw over 64 MiB in 4 KiB pages: ${crc.native.toFixed(2)} GB/s; ` +
      `crc32cRawReference (pure-JS crc-32): ${crc.reference.toFixed(2)} GB/s; results ${crc.agree ? 'agree' : 'DISAGREE'}`)
    out.push(`total bench time ${total.toFixed(1)} s`)
    process.stdout.write(out.join('\n') + '\n')
    if (wantJson) {
      process.stdout.write(JSON.stringify({
        machine: facts, quick, runs: RUNS, dataBytes: D, journalSizeBytes: JOURNAL_BYTES, journalBytesWritten: J, memberBytesWritten: MEMBERS * memberWriteBytes,
        seconds: {ddWrite: ddW, r5ctlWrite: rW, ddWriteFdatasync: ddWs, ddRead: ddR, r5ctlRead: rR, r5ctlWriteJsCrc: jsW.seconds, r5ctlWriteNoFlush: noFlushW.seconds, startup},
        ratios: {write: wRatio, read: rRatio},
        rssKiB: {write: wRss, read: rRss, writeLarge: lwRss, readLarge: lrRss}, largeBytes: LARGE_BYTES, largeCheckpoints: lw.result.checkpoints,
        crc, verified, journalStateAfter: ej.state, totalSeconds: total,
      }, null, 2) + '\n')
    }
    if (!verified) process.exitCode = 1
  } finally {
    if (hookPath) fs.rmSync(hookPath, {force: true})
    if (!keep) fs.rmSync(root, {recursive: true, force: true})
    else say(`kept ${root}`)
  }
}

main()
