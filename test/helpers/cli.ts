/**
 * End-to-end helpers: run the built CLI in a child process exactly as a user would, temporary
 * folders per suite, file hashes, and a gate for the external tools the interop tests compare with.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'

/** The repository root: this file runs as dist/test/helpers/cli.js. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
export const BIN = path.join(ROOT, 'bin', 'run.js')

export interface RunResult {
  /** exit status (null when killed by a signal) */
  status: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
  /** the command line, for assertion messages */
  cmd: string
}

export interface RunOptions {
  /** bytes fed to stdin (default: an empty, closed stdin) */
  input?: Buffer | string
  cwd?: string
  env?: Record<string, string | undefined>
  /** kill the child after this many ms (its status is then null) */
  timeout?: number
  /** run as this user and group (needs root) */
  uid?: number
  gid?: number
}

const MAX_BUFFER = 1 << 30

/** The environment every spawned CLI gets: no colours, no debug stack traces. */
export function childEnv(extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1'}
  delete env.FORCE_COLOR
  delete env.R5CTL_DEBUG
  for (const [k, v] of Object.entries(extra ?? {})) {
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- an environment variable is unset by deleting it
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}

/** Run any program; stdout is kept as bytes, stderr as text. */
export function run(program: string, args: string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(program, args, {
    cwd: opts.cwd,
    env: childEnv(opts.env),
    input: opts.input ?? '',
    maxBuffer: MAX_BUFFER,
    timeout: opts.timeout,
    uid: opts.uid,
    gid: opts.gid,
  })
  // a child killed for running past opts.timeout is reported as status null, not thrown
  if (r.error && !(opts.timeout && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT')) throw r.error
  return {status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr.toString('utf8'), cmd: [program, ...args].join(' ')}
}

/** Run `r5ctl ARGS...` (node bin/run.js) in a child process. */
export function r5ctl(args: string[], opts: RunOptions = {}): RunResult {
  const r = run(process.execPath, [BIN, ...args], opts)
  return {...r, cmd: ['r5ctl', ...args].join(' ')}
}

/** A one-line description of a result for assertion messages. */
/** `create` of a journaled array on image files: RAID `level` (default 5) over `devs`, the journal first, 64K chunks unless named */
export function createImages(devs: string[], o: {size: string; journalSize: string; level?: number; chunk?: string; name?: string}): RunResult {
  const name = o.name === undefined ? [] : ['--name', o.name]
  const geometry = ['--level', String(o.level ?? 5), '--raid-devices', String(devs.length - 1), '--chunk', o.chunk ?? '64K']
  return r5ctl(['create', ...geometry, '--size', o.size, '--journal-size', o.journalSize, ...name, '--write-journal', ...devs])
}

export function describeRun(r: RunResult): string {
  const out = r.stdout.length > 2000 ? `${r.stdout.length} bytes` : JSON.stringify(r.stdout.toString('utf8'))
  return `\`${r.cmd}\` exited ${r.status ?? r.signal}\n  stderr: ${JSON.stringify(r.stderr)}\n  stdout: ${out}`
}

/** Assert the exit status and return the result. */
export function expectExit(r: RunResult, status: number): RunResult {
  assert.equal(r.status, status, `expected exit ${status}: ${describeRun(r)}`)
  return r
}

/** Assert success (exit 0) and return the result. */
export function ok(r: RunResult): RunResult {
  return expectExit(r, 0)
}

/** Parse stdout as JSON. */
export function jsonOf<T = any>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout.toString('utf8')) as T
  } catch (error) {
    throw new assert.AssertionError({message: `stdout is not JSON (${(error as Error).message}): ${describeRun(r)}`})
  }
}

/** Lines that look like a JavaScript stack trace. */
export function stackLines(text: string): string[] {
  return text.split('\n').filter(l => /^\s*at\s+\S/.test(l) || /node:internal|\.[cm]?js:\d+:\d+/.test(l))
}

/**
 * The CLI error contract for text mode: stderr is exactly one line `r5ctl: <what> (<device>)`,
 * optionally followed by one `hint: ...` line, and no stack trace. Returns the error line.
 * `device` (when given) must be the parenthesised device at the end of the line.
 */
export function expectErrorLine(r: RunResult, opts: {device?: string | RegExp} = {}): string {
  assert.deepEqual(stackLines(r.stderr), [], `stack trace on stderr: ${describeRun(r)}`)
  const lines = r.stderr.replace(/\n$/, '').split('\n')
  assert.ok(
    lines.length === 1 || (lines.length === 2 && lines[1].startsWith('hint: ')),
    `expected one "r5ctl: ..." line (and at most one "hint:" line) on stderr: ${describeRun(r)}`,
  )
  const line = lines[0]
  assert.match(line, /^r5ctl: \S/, `error line must start with "r5ctl: ": ${describeRun(r)}`)
  if (opts.device !== undefined) {
    const m = /\(([^()]+)\)$/.exec(line)
    assert.ok(m, `error line does not end with "(<device>)": ${JSON.stringify(line)}`)
    if (typeof opts.device === 'string') assert.equal(m[1], opts.device, `error names the wrong device: ${JSON.stringify(line)}`)
    else assert.match(m[1], opts.device, `error names the wrong device: ${JSON.stringify(line)}`)
  }
  return line
}

export interface JsonError {
  error: {code: string; message: string; device: string | null; hint: string | null; exitCode: number}
}

/** The CLI error contract for --json: a JSON error object on stdout, no stack trace anywhere. */
export function expectJsonError(r: RunResult, status: number, opts: {device?: string | RegExp} = {}): JsonError['error'] {
  expectExit(r, status)
  assert.deepEqual(stackLines(r.stderr), [], `stack trace on stderr: ${describeRun(r)}`)
  const j = jsonOf<Partial<JsonError> | null>(r)
  assert.ok(j && typeof j.error === 'object', `no "error" object in the JSON: ${describeRun(r)}`)
  assert.equal(j.error.exitCode, status, `error.exitCode: ${describeRun(r)}`)
  assert.equal(typeof j.error.message, 'string')
  assert.ok(!/\n\s+at /.test(j.error.message), `stack trace in error.message: ${describeRun(r)}`)
  if (typeof opts.device === 'string') assert.equal(j.error.device, opts.device, `error.device: ${describeRun(r)}`)
  else if (opts.device) assert.match(String(j.error.device), opts.device, `error.device: ${describeRun(r)}`)
  return j.error
}

// ---------------------------------------------------------------------------------------------
// files

/**
 * A fresh temporary folder for the calling `describe` block: created before its tests, removed
 * after them (kept when R5CTL_KEEP_TMP=1, for debugging). Call inside describe().
 */
export function suiteTempDir(prefix = 'r5ctl-e2e-'): {readonly path: string; file(...parts: string[]): string} {
  let dir = ''
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  })
  after(() => {
    if (!dir) return
    if (process.env.R5CTL_KEEP_TMP === '1') console.log(`    (kept ${dir})`)
    else fs.rmSync(dir, {recursive: true, force: true})
  })
  return {
    get path() {
      assert.ok(dir, 'suiteTempDir used outside a test or hook')
      return dir
    },
    file(...parts: string[]) {
      return path.join(this.path, ...parts)
    },
  }
}

export function sha256File(file: string): string {
  const h = createHash('sha256')
  const fd = fs.openSync(file, 'r')
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
    }
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}

/** sha256 and size of each file, keyed by path. */
export function fingerprint(files: string[]): Record<string, string> {
  return Object.fromEntries(files.map(f => [f, `${fs.statSync(f).size}:${sha256File(f)}`]))
}

/** Every regular file under a folder (recursively), sorted. */
export function filesUnder(dir: string): string[] {
  return (
    fs
      .readdirSync(dir, {recursive: true, withFileTypes: true})
      .filter(e => e.isFile())
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- parentPath is new in Node 20.12; older 20.x have only path
      .map(e => path.join(e.parentPath ?? (e as any).path, e.name))
      .sort()
  )
}

/** Deterministic pseudo-random bytes (xorshift32), so a failing run can be reproduced. */
export function pseudoRandom(length: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4))
  let x = seed >>> 0 || 0x9e3779b9
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    words[i] = x
  }
  return Buffer.from(words.buffer, 0, length)
}

/** Compare two buffers and, on a difference, say where the first one is (not 50 MB of hex). */
export function assertSameBytes(got: Buffer, want: Buffer, what: string): void {
  if (got.length === want.length && got.equals(want)) return
  const n = Math.min(got.length, want.length)
  let i = 0
  while (i < n && got[i] === want[i]) i++
  const diffs = (() => {
    let c = 0
    for (let k = i; k < n; k++) if (got[k] !== want[k]) c++
    return c
  })()
  assert.fail(
    `${what}: got ${got.length} bytes, want ${want.length}; first difference at byte ${i}` +
      (i < n
        ? ` (page ${Math.floor(i / 4096)}, got 0x${got[i].toString(16)} want 0x${want[i].toString(16)}), ${diffs} differing bytes in the common length`
        : ''),
  )
}

// ---------------------------------------------------------------------------------------------
// external tools

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin']

/** Absolute path of an executable on PATH (or in the sbin folders, which users' PATH may lack). */
export function which(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SBIN]
  for (const d of dirs) {
    const p = path.join(d, name)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      if (fs.statSync(p).isFile()) return p
    } catch {
      // not here
    }
  }
  return null
}

/**
 * For interop tests: the path of `name`, or skip the test when it is not installed. With
 * R5CTL_REQUIRE_INTEROP=1 (set by CI) a missing tool is an error, so interop tests never skip
 * silently in CI. Call from a test or hook with its mocha context.
 */
export function requireTool(ctx: Mocha.Context, name: string): string {
  const p = which(name)
  if (p) return p
  if (process.env.R5CTL_REQUIRE_INTEROP === '1')
    throw new Error(
      `${name} is not installed, and R5CTL_REQUIRE_INTEROP=1 says interop tests must run (install it: apt-get install ${name === 'grub-fstest' ? 'grub-common' : name})`,
    )
  ctx.skip()
  throw new Error('unreachable')
}
