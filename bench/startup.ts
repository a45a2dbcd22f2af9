/**
 * r5ctl start-up benchmark: wall time of `r5ctl examine DEV` (one member of a small RAID5, plus its
 * journal) against `node -e 0`, each the median of N runs (default 10), interleaved so that both see
 * the same machine state. Target: examine ≤ 3 × node -e 0. Also timed (reported, not judged):
 * `r5ctl --version`, a 64 KiB read and write (the fixed cost of short commands), `r5ctl --help` (oclif),
 * and examine with R5CTL_NO_FAST_START=1, i.e. through oclif as before bin/run.js's fast path
 * (src/cli/fast.ts).
 *
 *   npm run bench:startup                      r5ctl = node bin/run.js of this checkout (built by the script)
 *   node dist/bench/startup.js --runs 20       more runs per row
 *   node dist/bench/startup.js --bin PATH      time an installed r5ctl instead (e.g. $prefix/bin/r5ctl)
 *   --json    also print every measurement as JSON       --keep    keep the image files (the folder is printed)
 *
 * The image set (create --size 16M --journal-size 8M, no flush) is made once, untimed, and two
 * untimed warm-up runs of each command fill the page cache. Exit status 1 when the target is missed.
 */
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'

const TARGET = 3
const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..', '..')

let runs = 10
let bin: string | undefined
let wantJson = false
let keep = false
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (a === '--runs') runs = Number(argv[++i])
  else if (a === '--bin') bin = argv[++i]
  else if (a === '--json') wantJson = true
  else if (a === '--keep') keep = true
  else {
    process.stderr.write(`bench/startup: unknown argument ${a} (use --runs N, --bin PATH, --json, --keep)\n`)
    process.exit(2)
  }
}
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write('bench/startup: --runs needs a positive integer\n')
  process.exit(2)
}

// r5ctl as a user runs it: the installed bin (a shell-less exec of its shebang) or node bin/run.js
const r5cmd: [string, string[]] = bin ? [bin, []] : [process.execPath, [path.join(repo, 'bin', 'run.js')]]

function run(cmd: string, args: string[], cwd: string, env?: Record<string, string>): {ms: number; stdout: string} {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, args, {cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: env && {...process.env, ...env}})
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return {ms, stdout: r.stdout}
}
const r5 = (args: string[], cwd: string, env?: Record<string, string>) => run(r5cmd[0], [...r5cmd[1], ...args], cwd, env)
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-startup-'))
try {
  r5(
    [
      'create',
      '--level',
      '5',
      '--raid-devices',
      '4',
      '--chunk',
      '64K',
      '--size',
      '16M',
      '--journal-size',
      '8M',
      '--no-flush',
      '--write-journal',
      'j.img',
      'a.img',
      'b.img',
      'c.img',
      'd.img',
    ],
    dir,
  )
  fs.writeFileSync(path.join(dir, 'in.bin'), Buffer.alloc(65536, 0x5a))
  const devs = ['j.img', 'a.img', 'b.img', 'c.img', 'd.img']

  const rows: {name: string; cmd: () => {ms: number}; times: number[]}[] = [
    {name: 'node -e 0', cmd: () => run(process.execPath, ['-e', '0'], dir), times: []},
    {name: 'r5ctl examine a.img j.img', cmd: () => r5(['examine', 'a.img', 'j.img'], dir), times: []},
    {name: 'r5ctl --version', cmd: () => r5(['--version'], dir), times: []},
    {name: 'r5ctl read 64K', cmd: () => r5(['read', '--length', '64K', '--output', '/dev/null', ...devs], dir), times: []},
    {name: 'r5ctl write 64K --no-flush', cmd: () => r5(['write', '--offset', '0', '--input', 'in.bin', '--no-flush', ...devs], dir), times: []},
    {name: 'r5ctl --help', cmd: () => r5(['--help'], dir), times: []},
    {name: 'examine through oclif', cmd: () => r5(['examine', 'a.img', 'j.img'], dir, {R5CTL_NO_FAST_START: '1'}), times: []},
  ]
  for (const row of rows) for (let i = 0; i < 2; i++) row.cmd() // warm-up, untimed
  for (let i = 0; i < runs; i++) for (const row of rows) row.times.push(row.cmd().ms)

  const base = median(rows[0].times)
  const result = rows.map(r => ({name: r.name, medianMs: median(r.times), ratio: median(r.times) / base, timesMs: r.times}))
  const examine = result[1]
  const pass = examine.ratio <= TARGET

  const who = bin ? bin : 'node bin/run.js'
  process.stdout.write(
    `r5ctl start-up bench (${who}): node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), median of ${runs}\n\n`,
  )
  process.stdout.write(`${'command'.padEnd(28)} ${'median'.padStart(9)}  ${'× node -e 0'.padStart(11)}\n`)
  for (const r of result) {
    process.stdout.write(`${r.name.padEnd(28)} ${(r.medianMs.toFixed(1) + ' ms').padStart(9)}  ${(r.ratio.toFixed(2) + '×').padStart(11)}\n`)
  }
  process.stdout.write(`\nexamine / node -e 0 = ${examine.ratio.toFixed(2)}× (target ≤ ${TARGET}×): ${pass ? 'PASS' : 'FAIL'}\n`)
  if (wantJson) process.stdout.write(JSON.stringify({runs, bin: who, node: process.version, target: TARGET, pass, rows: result}, null, 2) + '\n')
  if (!pass) process.exitCode = 1
} finally {
  if (keep) process.stdout.write(`images kept in ${dir}\n`)
  else fs.rmSync(dir, {recursive: true, force: true})
}
