/**
 * Shared pieces of the kernel scenarios: gating (skip unless R5CTL_KERNEL=1 / R5CTL_REQUIRE_KERNEL=1),
 * running the r5ctl CLI, deterministic data patterns, md5s, fixture (de)compression, timings.
 */
import {spawn, spawnSync} from 'node:child_process'
import {createCipheriv, createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import {PrereqError, REPO_ROOT, prepareKernel, type BootResult, type KernelEnv} from './harness.js'

export const FIXTURES = path.join(REPO_ROOT, 'test', 'kernel', 'fixtures')
export const MiB = 1 << 20
export const KiB = 1024

export const kernelWanted = () => process.env.R5CTL_KERNEL === '1' || process.env.R5CTL_REQUIRE_KERNEL === '1'
export const kernelRequired = () => process.env.R5CTL_REQUIRE_KERNEL === '1'

/**
 * For a suite's before() hook: the kernel environment, or this.skip() (quickly, before anything is
 * touched) unless the suite was asked for. A missing prerequisite skips, or fails with
 * R5CTL_REQUIRE_KERNEL=1.
 */
export function kernelOrSkip(ctx: Mocha.Context): KernelEnv {
  if (!kernelWanted()) ctx.skip()
  ctx.timeout(900_000)
  try {
    return prepareKernel()
  } catch (e) {
    if (e instanceof PrereqError && !kernelRequired()) {
      process.stderr.write(`      [kernel] skipping: ${e.message}\n`)
      ctx.skip()
    }
    throw e
  }
}

/** Fixture checks need only r5ctl, but they sit with the kernel suite and are gated the same way. */
export function fixturesOrSkip(ctx: Mocha.Context): void {
  if (!kernelWanted()) ctx.skip()
  ctx.timeout(300_000)
}

// ---------------------------------------------------------------------------------------------
// r5ctl

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** The CLI under test: this checkout's bin/run.js, or R5CTL_KERNEL_BIN (another build's bin/run.js). */
export const R5CTL_BIN = process.env.R5CTL_KERNEL_BIN || path.join(REPO_ROOT, 'bin', 'run.js')

export function r5ctl(args: string[], opts: {input?: Buffer} = {}): CliResult {
  const r = spawnSync(process.execPath, [R5CTL_BIN, ...args], {
    input: opts.input,
    maxBuffer: 1 << 30,
    env: {...process.env, NO_COLOR: '1', FORCE_COLOR: '0'},
  })
  if (r.error) throw r.error
  return {code: r.status ?? -1, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8')}
}

/** r5ctl with --json: parsed stdout plus the exit code. */
export function r5ctlJson<T = any>(args: string[]): {code: number; json: T; stderr: string} {
  const r = r5ctl([...args, '--json'])
  let json: T
  try {
    json = JSON.parse(r.stdout)
  } catch {
    throw new Error(`r5ctl ${args.join(' ')} --json printed no JSON (exit ${r.code}): ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 500)}`)
  }
  return {code: r.code, json, stderr: r.stderr}
}

/** `r5ctl serve` on a socket; resolves once it says it is serving, with a stop() that SIGTERMs it */
export function startServe(socket: string, devs: string[]): Promise<{stop: () => Promise<{code: number | null; stderr: string}>}> {
  const child = spawn(process.execPath, [R5CTL_BIN, 'serve', '--socket', socket, ...devs], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  const exited = new Promise<number | null>(resolve => child.on('exit', resolve))
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (stderr.includes('serving '))
        resolve({
          stop: async () => {
            child.kill('SIGTERM')
            return {code: await exited, stderr}
          },
        })
    })
    void exited.then(code => reject(new Error(`serve exited ${code}: ${stderr}`)))
  })
}

/** md5 of the array's bytes as `r5ctl read` returns them (via a file: --output). */
export function r5ctlReadMd5(
  devs: string[],
  opts: {force?: boolean; noReplay?: boolean; length?: number; keep?: string} = {},
): {code: number; md5: string | null; bytes: number; stderr: string} {
  const out = opts.keep ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-read-')), 'array.bin')
  const args = [
    'read',
    '--output',
    out,
    ...(opts.force ? ['--force'] : []),
    ...(opts.noReplay ? ['--no-replay'] : []),
    ...(opts.length !== undefined ? ['--length', String(opts.length)] : []),
    ...devs,
  ]
  const r = r5ctl(args)
  try {
    if (r.code !== 0) return {code: r.code, md5: null, bytes: 0, stderr: r.stderr}
    return {code: 0, md5: md5File(out), bytes: fs.statSync(out).size, stderr: r.stderr}
  } finally {
    if (!opts.keep) fs.rmSync(path.dirname(out), {recursive: true, force: true})
  }
}

// ---------------------------------------------------------------------------------------------
// data

export function md5(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex')
}

export function md5File(p: string, offset = 0, length?: number): string {
  const h = createHash('md5')
  const fd = fs.openSync(p, 'r')
  try {
    const end = length === undefined ? fs.fstatSync(fd).size : offset + length
    const buf = Buffer.alloc(4 * MiB)
    for (let pos = offset; pos < end;) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos)
      if (n <= 0) throw new Error(`${p}: short read at ${pos}`)
      h.update(buf.subarray(0, n))
      pos += n
    }
  } finally {
    fs.closeSync(fd)
  }
  return h.digest('hex')
}

/**
 * Incompressible deterministic bytes: the AES-128-CTR keystream with key = first 16 bytes of
 * sha256(seed) and a zero IV.
 */
export function randomPattern(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length))
}

/**
 * Compressible deterministic bytes that still name every 4 KiB page: page p (from 0) is the
 * 64-byte record `<tag> page <p, 8 hex digits>` padded with '.', ending in '\n', repeated 64 times.
 * gzip shrinks it about 100-fold, so crash fixtures stay small.
 */
export function pagePattern(tag: string, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let p = 0; p * 4096 < length; p++) {
    const rec = Buffer.from(`${tag} page ${p.toString(16).padStart(8, '0')}`.padEnd(63, '.').slice(0, 63) + '\n')
    for (let o = p * 4096; o < Math.min(length, (p + 1) * 4096); o += 64) rec.copy(b, o, 0, Math.min(64, length - o))
  }
  return b
}

// ---------------------------------------------------------------------------------------------
// images and fixtures

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `r5ctl-kernel-${label}-`))
}

export function cleanup(dir: string): void {
  if (process.env.R5CTL_KEEP === '1') {
    process.stderr.write(`      [kernel] kept ${dir}\n`)
    return
  }
  fs.rmSync(dir, {recursive: true, force: true})
}

export function sparseFile(p: string, size: number): string {
  fs.rmSync(p, {force: true})
  fs.writeFileSync(p, '')
  fs.truncateSync(p, size)
  return p
}

/** gzip an image, keeping holes out of the way (zeros compress to almost nothing anyway). */
export function gzipFile(src: string, dst: string): void {
  fs.writeFileSync(dst, zlib.gzipSync(fs.readFileSync(src), {level: 9}))
}

/** gunzip a fixture into dir, skipping all-zero 64 KiB blocks so the copy is sparse. */
export function gunzipSparse(src: string, dst: string): void {
  const data = zlib.gunzipSync(fs.readFileSync(src))
  fs.rmSync(dst, {force: true})
  const fd = fs.openSync(dst, 'w')
  try {
    const B = 64 * KiB
    for (let o = 0; o < data.length; o += B) {
      const blk = data.subarray(o, Math.min(o + B, data.length))
      if (blk.some(x => x !== 0)) fs.writeSync(fd, blk, 0, blk.length, o)
    }
    fs.ftruncateSync(fd, data.length)
  } finally {
    fs.closeSync(fd)
  }
}

// ---------------------------------------------------------------------------------------------
// timings

export const timings: {scenario: string; bootSeconds: number; wallSeconds: number; powerCut: boolean}[] = []

export function recordBoot(scenario: string, r: BootResult): BootResult {
  timings.push({scenario, bootSeconds: r.bootSeconds, wallSeconds: r.wallSeconds, powerCut: r.powerCut})
  return r
}

/** Lines of the guest output that matter when an assertion fails. */
export function tail(r: BootResult, n = 40): string {
  return r.output.split('\n').slice(-n).join('\n')
}

if (typeof after === 'function') {
  after(function () {
    if (timings.length === 0) return
    process.stderr.write('\n  kernel boots (TCG):\n')
    for (const t of timings)
      process.stderr.write(
        `    ${t.scenario.padEnd(52)} boot ${t.bootSeconds.toFixed(1).padStart(5)} s   total ${t.wallSeconds.toFixed(1).padStart(6)} s${t.powerCut ? '   (power cut)' : ''}\n`,
      )
    const sum = timings.reduce((a, t) => a + t.wallSeconds, 0)
    process.stderr.write(`    ${'all boots'.padEnd(52)} ${' '.repeat(14)}total ${sum.toFixed(1).padStart(6)} s\n\n`)
  })
}

// ---------------------------------------------------------------------------------------------
// the kernel's recovery rule, applied to `r5ctl dump-meta --json`

export interface ReplayModel {
  /** what dmesg's "recovering N data-only stripes and M data-parity stripes" counts */
  dmesgDataOnly: number
  dmesgDataParity: number
  /** distinct stripes whose logged data+parity is not yet on the members (no stripe-cache limit) */
  distinctDataParity: number
  /** distinct stripes left data-only at the end of the scan (loaded into the cache, rewritten to the log) */
  distinctDataOnly: number
}

/** raid5.c NR_STRIPES (the default stripe_cache_size) and NR_STRIPE_HASH_LOCKS */
const NR_STRIPES = 256
const HASH_LOCKS = 8

/**
 * r5c_recovery_flush_log() of Linux 6.1 over the meta blocks r5ctl decoded:
 * - a data payload puts the stripe in the caching (data-only) state, a parity payload takes it out;
 * - a data payload for a stripe that already holds parity first replays it
 *   (r5c_recovery_analyze_meta_block → r5l_recovery_replay_one_stripe, which counts only when the
 *   stripe has data pages) and resets it;
 * - a flush payload drops the stripe from the list without writing it;
 * - a new stripe comes from the stripe cache: NR_STRIPES stripes spread round-robin over 8 hash
 *   lists, taken from list (sector >> 3) & 7 (raid5_get_active_stripe, noblock). When that list is
 *   empty every non-caching stripe is replayed and released first (r5c_recovery_replay_stripes), and
 *   if that frees nothing the cache doubles (raid5_set_cache_size). A stripe replayed that way
 *   before its flush payload is seen is counted although it was already on the members;
 * - at the end every non-caching stripe is replayed and every caching one counted as data-only.
 * dmesg counts replays, so a stripe logged with parity twice counts twice; the distinct counts
 * (without the cache limit) are what is actually pending.
 */
export function kernelReplayModel(dump: {blocks: {payloads: any[]}[]}, stripeCache = NR_STRIPES): ReplayModel {
  const run = (limit: boolean) => {
    const list = new Map<number, {caching: boolean; parity: boolean; data: number}>()
    const perHash = new Array<number>(HASH_LOCKS).fill(0)
    const hash = (s: number) => Math.floor(s / 8) % HASH_LOCKS
    let size = stripeCache
    let dp = 0
    const dpStripes = new Set<number>()
    const replayOne = (s: number, st: {caching: boolean; parity: boolean; data: number}) => {
      if (st.data > 0) {
        dp++
        dpStripes.add(s)
      }
      st.caching = false
      st.parity = false
      st.data = 0
    }
    const release = (s: number) => {
      if (list.delete(s)) perHash[hash(s)]--
    }
    for (const b of dump.blocks) {
      for (const p of b.payloads) {
        if (p.type === 'flush') {
          for (const x of p.stripeSectors) release(Number(x))
          continue
        }
        const s = Number(p.stripeSector)
        let st = list.get(s)
        if (!st) {
          if (limit && perHash[hash(s)] >= size / HASH_LOCKS) {
            for (const [t, tst] of [...list])
              if (!tst.caching) {
                replayOne(t, tst)
                release(t)
              }
            if (perHash[hash(s)] >= size / HASH_LOCKS) size *= 2
          }
          st = {caching: false, parity: false, data: 0}
          list.set(s, st)
          perHash[hash(s)]++
        }
        if (p.type === 'data') {
          if (!st.caching && st.parity) {
            replayOne(s, st)
            list.delete(s) // list_move_tail
            list.set(s, st)
          }
          st.data += p.sizeSectors / 8
          st.caching = true
        } else {
          st.parity = true
          st.caching = false
        }
      }
    }
    let dataOnly = 0
    for (const [s, st] of list) {
      if (st.caching) dataOnly++
      else replayOne(s, st)
    }
    return {dp, dpDistinct: dpStripes.size, dataOnly}
  }
  const k = run(true)
  const d = run(false)
  return {dmesgDataOnly: k.dataOnly, dmesgDataParity: k.dp, distinctDataParity: d.dpDistinct, distinctDataOnly: d.dataOnly}
}

/** `md/raid:md0: recovering 16 data-only stripes and 0 data-parity stripes` → numbers (clean shutdown → zeros). */
export function parseRecovering(line: string | undefined): {dataOnly: number; dataParity: number} | null {
  if (!line) return null
  if (/starting from clean shutdown/.test(line)) return {dataOnly: 0, dataParity: 0}
  const m = /recovering (\d+) data-only stripes and (\d+) data-parity stripes/.exec(line)
  return m ? {dataOnly: Number(m[1]), dataParity: Number(m[2])} : null
}
