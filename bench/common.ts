/**
 * What the benchmarks share: timed child processes with peak RSS, medians, aligned tables, the
 * machine description, whole-file hashes, and preallocated image files.
 *
 * Why preallocate: a freshly created image is sparse, and ext4 allocating blocks on the first write
 * into a hole costs ~20 ms per 8 MiB here (measured: 450 MB/s into holes against 9–12 GB/s over
 * written blocks). dd's targets are written once before they are timed, so r5ctl's images must be
 * too, or the comparison measures the file system's allocator instead of r5ctl (a block device
 * has no holes). `preallocate` writes zeros over the whole file once, untimed.
 */
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export const MiB = 1 << 20

export const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : null

export interface Timed {
  seconds: number
  rssKiB: number | null
  stdout: string
  stderr: string
  status: number
}

let hookPath: string | null = null
/** without GNU time: a module preloaded into node children that records process.resourceUsage().maxRSS */
function rssHookModule(): string {
  if (!hookPath) {
    hookPath = path.join(os.tmpdir(), `r5ctl-bench-rss-${process.pid}.mjs`)
    fs.writeFileSync(
      hookPath,
      `import * as fs from 'node:fs'
process.on('exit', () => { if (process.env.R5BENCH_RSS_FILE) fs.writeFileSync(process.env.R5BENCH_RSS_FILE, String(process.resourceUsage().maxRSS)) })
`,
    )
    process.on('exit', () => {
      if (hookPath) fs.rmSync(hookPath, {force: true})
    })
  }
  return hookPath
}

/**
 * Run a command, timed (wall clock around spawnSync), with its peak RSS when `rss` is set (GNU
 * time's %M, or the preloaded hook for node children). Throws when the exit status is not in `ok`.
 */
export function timed(cmd: string, args: string[], o: {env?: NodeJS.ProcessEnv; ok?: number[]; rss?: boolean} = {}): Timed {
  let file = cmd
  let list = args
  let hookFile: string | null = null
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', ...o.env}
  if (o.rss) {
    if (GNU_TIME) {
      file = GNU_TIME
      list = ['-f', 'R5BENCH_RSS %M', cmd, ...args]
    } else if (cmd === process.execPath) {
      hookFile = path.join(os.tmpdir(), `r5ctl-bench-rss-${process.pid}.txt`)
      fs.rmSync(hookFile, {force: true})
      env.R5BENCH_RSS_FILE = hookFile
      list = ['--import', rssHookModule(), ...args]
    }
  }
  const t0 = process.hrtime.bigint()
  const r = spawnSync(file, list, {env, encoding: 'utf8', maxBuffer: 256 * MiB})
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.error) throw r.error
  const status = r.status ?? -1
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync's stdout/stderr are null when the child could not be started
  const stderr = r.stderr ?? ''
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync's stdout/stderr are null when the child could not be started
  if (!(o.ok ?? [0]).includes(status)) throw new Error(`${cmd} ${args.join(' ')} exited with ${status}\n${stderr}${(r.stdout ?? '').slice(0, 4000)}`)
  let rssKiB: number | null = null
  const m = /R5BENCH_RSS (\d+)/.exec(stderr)
  if (m) rssKiB = Number(m[1])
  else if (hookFile && fs.existsSync(hookFile)) {
    rssKiB = Number(fs.readFileSync(hookFile, 'utf8').trim())
    fs.rmSync(hookFile, {force: true})
  }
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync's stdout/stderr are null when the child could not be started
  return {seconds, rssKiB, stdout: r.stdout ?? '', stderr, status}
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL')

/** A plain aligned table: first column left, the others right. */
export function fmtTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (r: (string | undefined)[]) =>
    r
      .map((c, i) => (i === 0 ? (c ?? '').padEnd(w[i]) : (c ?? '').padStart(w[i])))
      .join('  ')
      .trimEnd()
  return [line(head), line(w.map(n => '-'.repeat(n))), ...rows.map(line)].join('\n')
}

export function machine() {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync's stdout/stderr are null when the child could not be started
  const fsType = spawnSync('df', ['--output=fstype', os.tmpdir()], {encoding: 'utf8'}).stdout?.trim().split('\n').pop() || 'unknown'
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((os.freemem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
    tmpFs: fsType,
    loadAverage: os.loadavg().map(x => Math.round(x * 100) / 100),
  }
}

/** sha256 of a file's first `length` bytes (all of it when omitted) */
export function sha256File(file: string, length = Infinity): string {
  const h = createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.alloc(8 * MiB)
  let done = 0
  while (done < length) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, length - done), null)
    if (n === 0) break
    h.update(buf.subarray(0, n))
    done += n
  }
  fs.closeSync(fd)
  return h.digest('hex')
}

/** Create `file` of `size` bytes with every block written (zeros), as a disk has no holes. */
export function preallocate(file: string, size: number): void {
  const buf = Buffer.alloc(8 * MiB)
  const fd = fs.openSync(file, 'w')
  try {
    for (let done = 0; done < size;) done += fs.writeSync(fd, buf, 0, Math.min(buf.length, size - done), done)
  } finally {
    fs.closeSync(fd)
  }
}
