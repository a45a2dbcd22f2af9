/**
 * Machinery for the argument fuzzer (test/e2e/arg-fuzz.test.ts): a seeded generator, the CLI spawned
 * asynchronously with a hard timeout, a small promise pool, shell quoting for reproducible command lines,
 * and a watch over a folder of fixture files that says which of them a command changed and puts the
 * pristine ones back.
 */
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {BIN, childEnv, sha256File} from './cli.js'

/** mulberry32: a tiny seeded generator, so a failing case list can be regenerated from its seed */
export class Rng {
  private s: number
  constructor(seed: number) {
    this.s = seed >>> 0
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]
  }
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[xs[i], xs[j]] = [xs[j], xs[i]]
    }
    return xs
  }
}

export interface Spawned {
  status: number | null
  signal: NodeJS.Signals | null
  /** killed after the timeout */
  timedOut: boolean
  /** the first bytes of stdout (the rest is drained and counted) */
  stdout: string
  stdoutBytes: number
  stderr: string
  ms: number
}

const KEEP = 64 * 1024

/**
 * `node bin/run.js ARGS` in `cwd`, stdin fed with `input` and closed, killed (SIGKILL) when still
 * running after `timeoutMs` and asleep without using CPU (or after four times `timeoutMs` in any case). Never rejects for the child's sake: a hang is a result, not a suite failure.
 */
export function spawnR5ctl(
  args: string[],
  opts: {cwd: string; env?: Record<string, string | undefined>; input?: Buffer; timeoutMs: number},
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const child = spawn(process.execPath, [BIN, ...args], {cwd: opts.cwd, env: childEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe']})
    const out: Buffer[] = []
    const err: Buffer[] = []
    let outBytes = 0
    let errBytes = 0
    let timedOut = false
    // at the deadline a child still using CPU (or in disk wait) is slow, not hung: on a loaded machine
    // it gets more time, up to four deadlines; one asleep without using any CPU for a second is killed
    const deadline = t0 + 4 * opts.timeoutMs
    let timer: NodeJS.Timeout
    const expire = (lastTicks: number | undefined) => {
      const now = cpuState(child.pid)
      const busy = now !== undefined && (lastTicks === undefined || now.ticks > lastTicks || now.state === 'R' || now.state === 'D')
      if (busy && Date.now() < deadline) {
        timer = setTimeout(() => expire(now.ticks), 1000)
        return
      }
      timedOut = true
      child.kill('SIGKILL')
    }
    timer = setTimeout(() => expire(undefined), opts.timeoutMs)
    child.stdout.on('data', (b: Buffer) => {
      if (outBytes < KEEP) out.push(b)
      outBytes += b.length
    })
    child.stderr.on('data', (b: Buffer) => {
      if (errBytes < KEEP) err.push(b)
      errBytes += b.length
    })
    child.stdin.on('error', () => {
      /* the child may exit without reading its stdin */
    })
    child.stdin.end(opts.input ?? Buffer.alloc(0))
    child.on('error', error => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({
        status,
        signal,
        timedOut,
        stdoutBytes: outBytes,
        ms: Date.now() - t0,
        stdout: Buffer.concat(out).subarray(0, KEEP).toString('utf8'),
        stderr: Buffer.concat(err).subarray(0, KEEP).toString('utf8'),
      })
    })
  })
}

/** A process's state letter and CPU ticks (utime + stime) from /proc, or undefined where there is none. */
function cpuState(pid: number | undefined): {state: string; ticks: number} | undefined {
  if (pid === undefined) return undefined
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return {state: f[0], ticks: Number(f[11]) + Number(f[12])}
  } catch {
    return undefined
  }
}

/** Run `fn` over `items` with at most `workers` at a time; worker i always gets slot i (its own files). */
export async function pool<T>(items: readonly T[], workers: number, fn: (item: T, slot: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({length: Math.min(workers, items.length)}, async (_, slot) => {
      while (next < items.length) await fn(items[next++], slot)
    }),
  )
}

/** A command line a shell reads back as the same argv. */
export function shellLine(argv: readonly string[]): string {
  return argv.map(a => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

interface Seen {
  kind: 'file' | 'dir' | 'symlink' | 'fifo' | 'missing' | 'other'
  /** size, mtime, ctime, inode: a file whose stamp is unchanged has not been written */
  stamp: string
}

function look(p: string): Seen {
  let st: fs.BigIntStats
  try {
    st = fs.lstatSync(p, {bigint: true})
  } catch {
    return {kind: 'missing', stamp: ''}
  }
  const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'other'
  const stamp = kind === 'file' ? `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}` : kind === 'symlink' ? fs.readlinkSync(p) : ''
  return {kind, stamp}
}

/**
 * The fixture files of one worker folder, their sha256 when pristine, and what a command did to them.
 * Hashing only files whose stamp moved keeps thousands of cases cheap: writing a file moves its mtime
 * and ctime, and a case starts at least one process spawn after the previous stamp was taken.
 */
export class FixtureWatch {
  private seen = new Map<string, Seen>()
  private readonly hashes = new Map<string, string>()

  /** `names`: the fixture entries relative to `dir`; `pristine`: the template folder they came from */
  constructor(
    readonly dir: string,
    readonly names: readonly string[],
    readonly pristine: string,
    hashes: ReadonlyMap<string, string>,
  ) {
    for (const n of names) {
      this.seen.set(n, look(path.join(dir, n)))
      const h = hashes.get(n)
      if (h !== undefined) this.hashes.set(n, h)
    }
  }

  /** The fixture entries that differ from their pristine state (content, kind, or link target). */
  changed(): string[] {
    const out: string[] = []
    for (const n of this.names) {
      const before = this.seen.get(n)!
      const now = look(path.join(this.dir, n))
      if (now.kind === before.kind && now.stamp === before.stamp) continue
      if (now.kind !== before.kind || now.kind !== 'file') {
        out.push(n)
        continue
      }
      const h = this.hashes.get(n)
      if (h !== undefined && sha256File(path.join(this.dir, n)) !== h) out.push(n)
      else this.seen.set(n, now) // rewritten with the same bytes
    }
    return out
  }

  /** Put changed fixture files back from the template and forget entries that are not fixtures. */
  restore(changed: readonly string[]): void {
    for (const n of changed) {
      const p = path.join(this.dir, n)
      const src = path.join(this.pristine, n)
      const kind = look(src).kind
      if (kind === 'file') {
        const now = look(p).kind
        if (now !== 'file' && now !== 'missing') fs.rmSync(p, {recursive: true, force: true})
        fs.copyFileSync(src, p)
      } else if (kind === 'symlink') {
        fs.rmSync(p, {recursive: true, force: true})
        fs.symlinkSync(fs.readlinkSync(src), p)
      } else if (kind === 'dir') {
        fs.rmSync(p, {recursive: true, force: true})
        fs.mkdirSync(p)
      } else {
        throw new Error(`cannot restore fixture ${n} (${kind})`)
      }
      this.seen.set(n, look(p))
    }
  }

  /** Remove whatever a case created in the folder (outputs, new images, undo files); their names. */
  sweep(): string[] {
    const keep = new Set(this.names)
    const extra: string[] = []
    const walk = (rel: string) => {
      for (const e of fs.readdirSync(path.join(this.dir, rel), {withFileTypes: true})) {
        const r = rel ? `${rel}/${e.name}` : e.name
        if (keep.has(r)) {
          if (e.isDirectory()) walk(r)
          continue
        }
        extra.push(r)
        fs.rmSync(path.join(this.dir, r), {recursive: true, force: true})
      }
    }
    walk('')
    return extra
  }
}
