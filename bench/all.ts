/**
 * `npm run bench`: every operation (bench/ops.ts) at every size, r5ctl against its alternative and
 * its floor, paired runs (bench/timer.ts), peak RSS and fdatasync count from one probed run
 * (bench/probe.ts). Method and columns: docs/performance.md.
 *
 *   R5CTL_BENCH_SIZES=64M,256M   array sizes (default 256M,1G,4G)
 *   R5CTL_BENCH_REBUILD=4G       member sizes of the rebuild row (default: R5CTL_BENCH_SIZES)
 *   R5CTL_BENCH_JOURNAL_LOG=96M  data in the log journal replace copies (default 96M)
 *   R5CTL_BENCH_RUNS=3           paired rounds per row, after one warm-up of each side (default 5)
 *   R5CTL_BENCH_OPS=read,start   only the rows whose name contains one of these
 *   R5CTL_BENCH_JSON=1 or --json also print every measurement as JSON;  --keep  keep the files
 * Exit status 1 when examine takes more than 3 × `node -e 0`.
 */
import {execSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {table} from '../src/render/table.js'
import {PROBE_JS, floorStep, operations, startupOp, type Op} from './ops.js'
import {rebuildOp} from './rebuild.js'
import {JOURNAL_TARGET_SECONDS, journalOps} from './journal.js'
import {median, paired, run} from './timer.js'

const STARTUP_TARGET = 3
const env = process.env
const sizes = (env.R5CTL_BENCH_SIZES ?? '256M,1G,4G').split(',').filter(Boolean)
const rebuildSizes = (env.R5CTL_BENCH_REBUILD ?? sizes.join(',')).split(',').filter(Boolean)
const journalLog = env.R5CTL_BENCH_JOURNAL_LOG ?? '96M'
const RUNS = Number(env.R5CTL_BENCH_RUNS ?? 5)
const only = env.R5CTL_BENCH_OPS?.split(',')
const wantJson = process.argv.includes('--json') || env.R5CTL_BENCH_JSON === '1'
const keep = process.argv.includes('--keep')
const bytesOf = (s: string) => {
  const m = /^(\d+)([KMG])$/.exec(s)
  if (!m) throw new Error(`R5CTL_BENCH_SIZES: ${s} is not a size such as 64M or 1G`)
  return Number(m[1]) * 1024 ** ' KMG'.indexOf(m[2])
}
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('R5CTL_BENCH_RUNS: a positive integer')
const say = (s: string) => process.stderr.write(s + '\n')
const sh = (cmd: string) => execSync(cmd, {encoding: 'utf8'}).trim()

const machine = {
  date: new Date().toISOString(),
  commit: sh('git rev-parse --short HEAD') + (sh('git status --porcelain -- src bench') ? '+changes' : ''),
  cpus: `${os.availableParallelism()} × ${os.cpus()[0]?.model ?? '?'}`,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  kernel: os.release(),
  node: process.version,
  tmp: `${os.tmpdir()} (${sh(`df --output=fstype ${os.tmpdir()} | tail -1`)})`,
  loadStart: os.loadavg().map(x => x.toFixed(2)),
}

interface Row {
  op: string
  size: string
  alt: string
  /** seconds per timed run: r5ctl, alternative, floor */
  seconds: number[][]
  ratios: number[]
  syncs: Record<string, number>
  maxRssKiB: number
  /** the floor's shell script */
  floor?: string
}
const rows: Row[] = []

function measure(op: Op, size: string, dir: string): void {
  say(`${size} ${op.name}: setup`)
  op.setup()
  // A's warm-up is probed: peak RSS and fdatasync calls per file
  const probeFile = path.join(dir, 'probe.json')
  op.a.before?.()
  const report = JSON.parse(run(op.probeArgv ?? [op.a.argv[0], '--import', PROBE_JS, ...op.a.argv.slice(1)], {R5BENCH_PROBE: probeFile}).stdout)
  const probe = JSON.parse(fs.readFileSync(probeFile, 'utf8'))
  const {alt, moves} = op.baselines(report)
  const steps = moves ? [op.a, alt, floorStep(path.join(dir, 'floor'), moves, probe.syncs)] : [op.a, alt]
  say(`${size} ${op.name}: ${RUNS} paired rounds`)
  const p = paired(steps, op.name.includes('start-up') ? Math.max(RUNS, 10) : RUNS, false)
  op.check(report)
  const floor = steps[2]?.argv[2]
  rows.push({op: op.name, size, alt: op.altName, seconds: p.seconds, ratios: p.ratios, syncs: probe.syncs, maxRssKiB: probe.maxRssKiB, floor})
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-bench-'))
say(`r5ctl bench in ${root}: sizes ${sizes.join(' ')}, ${RUNS} paired rounds`)
try {
  const want = (op: Op) => !only || only.some(o => op.name.includes(o))
  for (const size of sizes) {
    const dir = path.join(root, size)
    fs.mkdirSync(dir)
    for (const op of operations(dir, bytesOf(size)).filter(want)) measure(op, size, dir)
    if (!keep) fs.rmSync(dir, {recursive: true, force: true})
  }
  for (const size of rebuildSizes) {
    const dir = path.join(root, `rebuild-${size}`)
    const op = rebuildOp(dir, bytesOf(size))
    if (want(op)) measure(op, size, dir)
    if (!keep) fs.rmSync(dir, {recursive: true, force: true})
  }
  const journalDir = path.join(root, 'journal')
  const jops = journalOps(journalDir, bytesOf(journalLog))
  // one chain of pre-states: each row's setup starts from the one before
  if (jops.some(want)) for (const op of jops) measure(op, `${journalLog} log`, journalDir)
  const start = startupOp(root)
  if (want(start)) measure(start, '—', root)
} finally {
  if (keep) say(`files kept in ${root}`)
  else fs.rmSync(root, {recursive: true, force: true})
}

const s = (x: number) => x.toFixed(3)
const x = (r: number | undefined) => (r === undefined ? '—' : `${r.toFixed(2)}×`)
const out = [
  `r5ctl bench ${machine.date}, commit ${machine.commit}: ${machine.cpus}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, node ${machine.node}, images in ${machine.tmp}`,
  `load average ${machine.loadStart.join(' ')} at the start, ${os
    .loadavg()
    .map(v => v.toFixed(2))
    .join(' ')} at the end; median of ${RUNS} paired rounds (start-up: ${Math.max(RUNS, 10)})`,
  '',
  table(
    ['operation', 'size', 'r5ctl s', 'min–max', 'alternative', '× alt', '× floor', 'fdatasync', 'peak RSS MiB'],
    rows.map(r => [
      r.op,
      r.size,
      s(median(r.seconds[0])),
      `${s(Math.min(...r.seconds[0]))}–${s(Math.max(...r.seconds[0]))}`,
      r.alt,
      x(r.ratios[0]),
      x(r.ratios[1]),
      Object.values(r.syncs).reduce((a, b) => a + b, 0),
      (r.maxRssKiB / 1024).toFixed(1),
    ]),
    ['left', 'right', 'right', 'right', 'left', 'right', 'right', 'right', 'right'],
  ),
]
for (const r of rows.filter(row => row.op.startsWith('journal '))) {
  const ok = median(r.seconds[0]) <= JOURNAL_TARGET_SECONDS
  out.push(`${r.op}: ${s(median(r.seconds[0]))} s (target ≤ ${JOURNAL_TARGET_SECONDS} s): ${ok ? 'PASS' : 'FAIL'}`)
}
const startup = rows.find(r => r.op.includes('start-up'))
if (startup) {
  const ok = startup.ratios[0] <= STARTUP_TARGET
  out.push('', `start-up: examine / node -e 0 = ${x(startup.ratios[0])} (target ≤ ${STARTUP_TARGET}×): ${ok ? 'PASS' : 'FAIL'}`)
  if (!ok) process.exitCode = 1
}
process.stdout.write(out.join('\n') + '\n')
if (wantJson) process.stdout.write(JSON.stringify({machine, runs: RUNS, rows}, null, 2) + '\n')
