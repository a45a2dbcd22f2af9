/**
 * crc32cPagesAsync: page checksums on the addon's helper thread (pagesStart/pagesWait in
 * native/crc32c_pages.c), or inline inside wait() without it. Every result is checked against the
 * pure-JS reference (crc32cRawReference, the crc-32 package), never against the function itself.
 *
 * The helper-only tests skip when the addon is not built or is an old build without the pair; with
 * R5CTL_REQUIRE_NATIVE=1 (CI) that is a failure.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {createRequire} from 'node:module'
import v8 from 'node:v8'
import vm from 'node:vm'
import {crc32cPages, crc32cPagesAsync, crc32cRawReference, crcAsyncBackend, crcBackend} from '../../src/engine/checksum.js'
import {refRaw, rng, u32} from '../helpers/reference.js'
import {ADDON_PATH, CHECKSUM_MODULE, type LooseAddon} from '../helpers/addon.js'

const PAGE = 4096
const SENTINEL = 0xdeadbeef

/** The addon loaded directly (independently of checksum.ts), or why it is not usable for these tests. */
function loadAddon(): {addon: LooseAddon | null; why: string} {
  try {
    const a = createRequire(import.meta.url)(ADDON_PATH) as Partial<LooseAddon>
    if (!a.sse42) return {addon: null, why: 'the addon reports no SSE4.2 on this CPU'}
    if (typeof a.pagesStart !== 'function' || typeof a.pagesWait !== 'function') {
      return {addon: null, why: 'the addon is an old build without pagesStart/pagesWait'}
    }
    return {addon: a as LooseAddon, why: ''}
  } catch (e) {
    return {addon: null, why: `${ADDON_PATH} did not load (${(e as Error).message.split('\n')[0]})`}
  }
}
const {addon, why} = loadAddon()
const requireNative = process.env.R5CTL_REQUIRE_NATIVE === '1'
const forcedOff = process.env.R5CTL_CRC === 'js' || process.env.R5CTL_CRC === 'node-rs'

/**
 * Deterministic pseudo-random bytes, fast enough for 64 MiB (xorshift32 per 32-bit word). Kept
 * self-contained: its source text is also shipped to the child processes.
 */
function fillPattern(b: Uint8Array, seed: number): void {
  let x = seed >>> 0 || 1
  const words = b.length >>> 2
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  for (let i = 0; i < words; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    dv.setUint32(i * 4, x >>> 0, true)
  }
  for (let i = words * 4; i < b.length; i++) b[i] = (i * 131) & 0xff
}

/** n pages of pattern at byte offset off into a fresh ArrayBuffer. */
function pagesAt(n: number, off: number, seed: number): Uint8Array {
  const b = new Uint8Array(n * PAGE + off + 3).subarray(off, off + n * PAGE)
  fillPattern(b, seed)
  return b
}

/** Expected raw checksum of every page, from the pure-JS reference. */
function refPages(seed: number, buf: Uint8Array): Uint32Array {
  const want = new Uint32Array(buf.length / PAGE)
  for (let i = 0; i < want.length; i++) want[i] = crc32cRawReference(seed, buf.subarray(i * PAGE, (i + 1) * PAGE))
  return want
}

/** First index where a and b differ, or -1; keeps failure messages short on big arrays. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length)
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i
  return -1
}
function assertSums(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  const i = firstDiff(got, want)
  assert.equal(i, -1, `${what}: first difference at page ${i} (got ${got[i]}, want ${want[i]})`)
}

/** out with outOff sentinels before and 2 after the n slots. */
function sentinelOut(outOff: number, n: number): Uint32Array {
  return new Uint32Array(outOff + n + 2).fill(SENTINEL)
}
function assertSentinels(out: Uint32Array, outOff: number, n: number): void {
  for (let i = 0; i < outOff; i++) assert.equal(out[i], SENTINEL, `wrote before outOff (index ${i})`)
  assert.deepEqual([...out.subarray(outOff + n)], [SENTINEL, SENTINEL], 'wrote past the end')
}

/** Run a module script in a fresh node with the given R5CTL_CRC; returns its stdout. */
function runChild(script: string, crcEnv: string | undefined, timeout = 120_000): string {
  const env = {...process.env}
  if (crcEnv === undefined) delete env.R5CTL_CRC
  else env.R5CTL_CRC = crcEnv
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {env, encoding: 'utf8', timeout})
  assert.equal(res.error, undefined, `child: ${res.error?.message}`)
  assert.equal(res.status, 0, `child exited ${res.status ?? res.signal}: ${res.stderr}`)
  return res.stdout
}

describe(`crc32cPagesAsync (${crcAsyncBackend}; sync backend ${crcBackend})`, () => {
  it('names its backend: the helper thread whenever a full addon is in use', () => {
    assert.ok(['helper thread', 'inline'].includes(crcAsyncBackend), crcAsyncBackend)
    if (addon && !forcedOff) assert.equal(crcAsyncBackend, 'helper thread')
    if (forcedOff) assert.equal(crcAsyncBackend, 'inline')
    if (requireNative && !forcedOff) assert.ok(addon, `R5CTL_REQUIRE_NATIVE=1 but ${why}`)
  })

  it('equals crc32cPages and the pure-JS reference for 1, 2, 3, 4, 1000, 2048 pages at odd byte offsets, outOff > 0', () => {
    const r = rng(21)
    const cases: Array<[number, number, number]> = [
      [1, 1, 1],
      [2, 3, 2],
      [3, 5, 3],
      [4, 7, 1],
      [1000, 13, 5],
      [2048, 1, 7],
    ]
    for (const [n, off, outOff] of cases) {
      for (const seed of [u32(r), 0xffffffff, 0]) {
        const buf = pagesAt(n, off, u32(r))
        const want = refPages(seed, buf)
        const out = sentinelOut(outOff, n)
        const job = crc32cPagesAsync(seed, buf, out, outOff)
        assert.equal(job.pages, n)
        job.wait(n)
        assertSums(out.subarray(outOff, outOff + n), want, `n ${n} off ${off} outOff ${outOff} seed ${seed}`)
        assertSentinels(out, outOff, n)
        const sync = new Uint32Array(n)
        crc32cPages(seed, buf, sync, 0)
        assertSums(sync, out.subarray(outOff, outOff + n), `crc32cPages vs async, n ${n}`)
        job.wait(n) // a second wait on a complete job is a no-op
        job.wait(Infinity)
      }
    }
    // and the bitwise definition on a couple of pages, so the reference itself is pinned
    const buf = pagesAt(2, 3, 99)
    const out = new Uint32Array(2)
    crc32cPagesAsync(0x12345678, buf, out).wait(2)
    assert.deepEqual([...out], [refRaw(0x12345678, buf.subarray(0, PAGE)), refRaw(0x12345678, buf.subarray(PAGE))])
  })

  it('partial waits in increasing order each see final values for their prefix', () => {
    const n = 2048
    const seed = 0x9e3779b9
    const outOff = 3
    const buf = pagesAt(n, 5, 7)
    const out = sentinelOut(outOff, n)
    const job = crc32cPagesAsync(seed, buf, out, outOff)
    // Snapshot each prefix right after its wait (the helper may still be writing further on), and
    // compare the snapshots with the reference afterwards.
    const steps = [0, 1, 2, 3, 4, 5, 11, 12, 13, 24, 25, 36, 100, 999, 1000, 2047, 2048, 5000]
    const snaps: Uint32Array[] = []
    for (const k of steps) {
      job.wait(k)
      snaps.push(out.slice(outOff, outOff + Math.min(k, n)))
    }
    const want = refPages(seed, buf)
    steps.forEach((k, i) => assertSums(snaps[i], want.subarray(0, Math.min(k, n)), `prefix of ${k}`))
    assertSentinels(out, outOff, n)
  })

  it('a partial wait on a 64 MiB buffer returns its prefix final; the whole buffer matches the reference', function () {
    this.timeout(300_000)
    const n = (64 << 20) / PAGE
    const seed = 0xc0ffee11
    const buf = pagesAt(n, 1, 64)
    const out = sentinelOut(2, n)
    const job = crc32cPagesAsync(seed, buf, out, 2)
    job.wait(1)
    const first = out.slice(2, 3)
    job.wait(n / 2)
    const half = out.slice(2, 2 + n / 2)
    job.wait(n)
    const want = refPages(seed, buf)
    assertSums(first, want.subarray(0, 1), 'page 0 after wait(1)')
    assertSums(half, want.subarray(0, n / 2), 'first half after wait(n/2)')
    assertSums(out.subarray(2, 2 + n), want, '64 MiB')
    assertSentinels(out, 2, n)
  })

  it('starting a second job completes the first, which then reads correctly without waiting', () => {
    const r = rng(22)
    const seed1 = u32(r)
    const seed2 = u32(r)
    const buf1 = pagesAt(1000, 3, 1)
    const buf2 = pagesAt(37, 1, 2)
    const out1 = sentinelOut(1, 1000)
    const out2 = sentinelOut(4, 37)
    const job1 = crc32cPagesAsync(seed1, buf1, out1, 1)
    job1.wait(1) // partly consumed, then superseded
    const job2 = crc32cPagesAsync(seed2, buf2, out2, 4)
    // job1 must be complete now, with no wait on it
    const got1 = out1.slice(1, 1001)
    assertSums(got1, refPages(seed1, buf1), 'first job, completed by the start of the second')
    assertSentinels(out1, 1, 1000)
    job1.wait(1000) // superseded: returns at once, must not disturb job2
    job2.wait(10)
    job1.wait(Infinity)
    job2.wait(37)
    assertSums(out2.subarray(4, 41), refPages(seed2, buf2), 'second job')
    assertSentinels(out2, 4, 37)
    // a third job after a never-waited second one
    const buf3 = pagesAt(5, 0, 3)
    const out3 = new Uint32Array(5)
    crc32cPagesAsync(seed1, buf2, out2, 4)
    crc32cPagesAsync(seed2, buf3, out3).wait(5)
    assertSums(out2.subarray(4, 41), refPages(seed1, buf2), 'never-waited job')
    assertSums(out3, refPages(seed2, buf3), 'third job')
  })

  it('waits with no outstanding job return at once: empty jobs, complete jobs, NaN / 0 / negative upTo', () => {
    const empty = crc32cPagesAsync(5, new Uint8Array(0), new Uint32Array(0))
    assert.equal(empty.pages, 0)
    empty.wait(10)
    empty.wait(0)
    const out = new Uint32Array(3).fill(SENTINEL)
    const job = crc32cPagesAsync(5, new Uint8Array(0), out, 3) // outOff = out.length is fine when empty
    job.wait(1)
    assert.deepEqual([...out], [SENTINEL, SENTINEL, SENTINEL])
    const buf = pagesAt(3, 1, 9)
    const j = crc32cPagesAsync(5, buf, out)
    j.wait(NaN)
    j.wait(0)
    j.wait(-4)
    j.wait(3)
    assertSums(out, refPages(5, buf), 'after NaN/0/negative waits')
    j.wait(3)
  })

  it('rejects partial pages, no room and a fractional outOff like crc32cPages, without disturbing the current job', () => {
    const buf = pagesAt(200, 1, 10)
    const out = new Uint32Array(200)
    const job = crc32cPagesAsync(1, buf, out)
    assert.throws(() => crc32cPagesAsync(0, new Uint8Array(4095), new Uint32Array(1)), RangeError)
    assert.throws(() => crc32cPagesAsync(0, new Uint8Array(2 * PAGE), new Uint32Array(1)), RangeError)
    assert.throws(() => crc32cPagesAsync(0, new Uint8Array(PAGE), new Uint32Array(1), 1), RangeError)
    assert.throws(() => crc32cPagesAsync(0, new Uint8Array(PAGE), new Uint32Array(2), -1), RangeError)
    assert.throws(() => crc32cPagesAsync(0, new Uint8Array(PAGE), new Uint32Array(2), 0.5), RangeError)
    job.wait(200)
    assertSums(out, refPages(1, buf), 'job outstanding while other starts were rejected')
  })

  it('keeps buf alive while the helper reads it, even when nothing else references it', function () {
    // --expose-gc after start-up: the documented v8 flag plus a fresh context to pick up gc().
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const n = 4096 // 16 MiB
    const out = new Uint32Array(n)
    const job = crc32cPagesAsync(77, pagesAt(n, 1, 123), out) // the only reference is the job's
    for (let i = 0; i < 3; i++) {
      gc()
      new Uint8Array(n * PAGE).fill(0x5a) // garbage of the same size, for the allocator to reuse
    }
    job.wait(n)
    assertSums(out, refPages(77, pagesAt(n, 1, 123)), 'pages of a buffer only the job referenced')
  })

  describe('the addon pair directly', function () {
    before(function () {
      if (addon && !forcedOff) return
      if (requireNative && !forcedOff) assert.fail(`R5CTL_REQUIRE_NATIVE=1 but ${why}`)
      console.log(`      (skipped: ${forcedOff ? `R5CTL_CRC=${process.env.R5CTL_CRC}` : why})`)
      this.skip()
    })
    const A = (): LooseAddon => addon as LooseAddon

    it('pagesWait with no job returns 0; with a job it returns the pages done (>= upTo) and 0 again once consumed', () => {
      const a = A()
      crc32cPagesAsync(0, new Uint8Array(0), new Uint32Array(0)) // completes whatever checksum.ts left running
      assert.equal(a.pagesWait(1), 0)
      assert.equal(a.pagesWait(0), 0)
      const buf = pagesAt(300, 2, 5)
      const out = new Uint32Array(301)
      a.pagesStart(3, buf, out, 1)
      const d = a.pagesWait(50)
      assert.ok(d >= 50 && d <= 300, `pagesWait(50) said ${d}`)
      if (d < 300) {
        // still running: progress only, then the rest
        const p = a.pagesWait(0)
        assert.ok(p >= d && p <= 300, `pagesWait(0) said ${p}`)
        if (p < 300) assert.equal(a.pagesWait(1e9), 300)
      }
      assert.equal(a.pagesWait(1), 0, 'the complete job was released')
      assertSums(out.subarray(1), refPages(3, buf), 'direct pagesStart')
    })

    it('pagesStart validates like pages(): RangeError / TypeError, nothing written, the running job unaffected', () => {
      const a = A()
      const buf = pagesAt(100, 0, 6)
      const sums = new Uint32Array(100)
      a.pagesStart(8, buf, sums, 0)
      const out = new Uint32Array(2)
      for (const len of [1, 4095, 4097]) assert.throws(() => a.pagesStart(0, new Uint8Array(len), out, 0), RangeError, `len ${len}`)
      assert.throws(() => a.pagesStart(0, new Uint8Array(3 * PAGE), out, 0), RangeError)
      assert.throws(() => a.pagesStart(0, new Uint8Array(PAGE), out, 2), RangeError)
      assert.throws(() => a.pagesStart(0, new Uint8Array(PAGE), out, -1), RangeError)
      assert.throws(() => a.pagesStart(0, new Uint8Array(PAGE), out, 0.5), RangeError)
      assert.throws(() => a.pagesStart(0, new Uint8Array(PAGE), out, NaN), RangeError)
      assert.throws(() => a.pagesStart(0, new Uint16Array(PAGE / 2), out, 0), TypeError)
      assert.throws(() => a.pagesStart(0, new Uint8Array(PAGE), new Int32Array(2), 0), TypeError)
      assert.throws(() => a.pagesStart('0', new Uint8Array(PAGE), out, 0), TypeError)
      assert.throws(() => a.pagesStart(0, new Uint8Array(PAGE), out), TypeError)
      assert.throws(() => a.pagesWait('1'), TypeError)
      assert.throws(() => a.pagesWait(), TypeError)
      assert.deepEqual([...out], [0, 0], 'a rejected call must not write')
      assert.equal(a.pagesWait(100), 100, 'the job started before the rejected calls is still the current one')
      assertSums(sums, refPages(8, buf), 'job across rejected calls')
    })

    it('a process with jobs still running in the main thread and in worker_threads exits cleanly', function () {
      this.timeout(120_000)
      // The worker checksums 16 MiB, checks it against pages(), starts another job and exits without
      // waiting; the main thread starts 64 MiB and lets the process end. The env cleanup hooks must
      // stop and join both helpers: a hang would hit the timeout, a crash a signal.
      const script = `
        import { Worker } from 'node:worker_threads';
        import { createRequire } from 'node:module';
        const workerCode = ${JSON.stringify(`
          const { parentPort } = require('node:worker_threads');
          import(${JSON.stringify(CHECKSUM_MODULE)}).then((m) => {
            const a = require(${JSON.stringify(ADDON_PATH)});
            const buf = new Uint8Array(4096 * 4096).map((_, i) => (i * 7 + (i >>> 12)) & 0xff);
            const out = new Uint32Array(4096), want = new Uint32Array(4096);
            const job = m.crc32cPagesAsync(11, buf, out);
            a.pages(11, buf, want, 0);
            job.wait(4096);
            let same = true;
            for (let i = 0; i < 4096; i++) if (out[i] !== want[i]) same = false;
            m.crc32cPagesAsync(12, buf, new Uint32Array(4096)); // left running
            parentPort.postMessage(m.crcAsyncBackend + ' ' + same);
          });
        `)};
        const w = new Worker(workerCode, { eval: true, execArgv: [] }); // CommonJS eval, not --input-type=module
        const msg = await new Promise((res, rej) => { w.on('message', res); w.on('error', rej); });
        await new Promise((res) => w.on('exit', res));
        const m = await import(${JSON.stringify(CHECKSUM_MODULE)});
        m.crc32cPagesAsync(13, new Uint8Array(64 << 20), new Uint32Array(16384)); // left running
        process.stdout.write(msg + ' main ' + m.crcAsyncBackend);
      `
      assert.equal(runChild(script, undefined, 60_000), 'helper thread true main helper thread')
    })
  })

  describe('inline fallback in a child process', () => {
    /** The child computes the same jobs as the parent and prints backend names and all sums. */
    function childSums(crcEnv: string): {backend: string; asyncBackend: string; sums: number[][]} {
      const script = `
        const m = await import(${JSON.stringify(CHECKSUM_MODULE)});
        ${fillPattern.toString()}
        const PAGE = 4096;
        const mk = (n, off, seed) => { const b = new Uint8Array(n * PAGE + off + 3).subarray(off, off + n * PAGE); fillPattern(b, seed); return b; };
        const sums = [];
        // 1) partial waits, outOff 2, odd offset
        {
          const out = new Uint32Array(2 + 100);
          const job = m.crc32cPagesAsync(0x9e3779b9, mk(100, 3, 1), out, 2);
          const snaps = [];
          for (const k of [1, 4, 13, 60, 100]) { job.wait(k); snaps.push(Array.from(out.subarray(2, 2 + k))); }
          for (const s of snaps) sums.push(s);
        }
        // 2) a job superseded before it was waited, then the next one
        {
          const outA = new Uint32Array(50), outB = new Uint32Array(3);
          m.crc32cPagesAsync(7, mk(50, 1, 2), outA, 0);
          const jb = m.crc32cPagesAsync(8, mk(3, 5, 3), outB, 0);
          sums.push(Array.from(outA));
          jb.wait(3);
          sums.push(Array.from(outB));
        }
        process.stdout.write(JSON.stringify({ backend: m.crcBackend, asyncBackend: m.crcAsyncBackend, sums }));
      `
      return JSON.parse(runChild(script, crcEnv)) as {backend: string; asyncBackend: string; sums: number[][]}
    }
    function expected(): number[][] {
      const want: number[][] = []
      const a = refPages(0x9e3779b9, pagesAt(100, 3, 1))
      for (const k of [1, 4, 13, 60, 100]) want.push([...a.subarray(0, k)])
      want.push([...refPages(7, pagesAt(50, 1, 2))])
      want.push([...refPages(8, pagesAt(3, 5, 3))])
      return want
    }

    it('R5CTL_CRC=js: inline, crc-32 (js), the same numbers as the reference', function () {
      this.timeout(120_000)
      const got = childSums('js')
      assert.equal(got.backend, 'crc-32 (js)')
      assert.equal(got.asyncBackend, 'inline')
      assert.deepEqual(got.sums, expected())
    })

    it('R5CTL_CRC=node-rs: inline, the same numbers as the reference', function () {
      this.timeout(120_000)
      const got = childSums('node-rs')
      assert.equal(got.asyncBackend, 'inline')
      assert.deepEqual(got.sums, expected())
    })

    it('in this process (whatever the backend), the same numbers', () => {
      const mk = (n: number, off: number, seed: number): Uint8Array => pagesAt(n, off, seed)
      const sums: number[][] = []
      const out = new Uint32Array(102)
      const job = crc32cPagesAsync(0x9e3779b9, mk(100, 3, 1), out, 2)
      for (const k of [1, 4, 13, 60, 100]) {
        job.wait(k)
        sums.push([...out.subarray(2, 2 + k)])
      }
      const outA = new Uint32Array(50)
      const outB = new Uint32Array(3)
      crc32cPagesAsync(7, mk(50, 1, 2), outA, 0)
      const jb = crc32cPagesAsync(8, mk(3, 5, 3), outB, 0)
      sums.push([...outA])
      jb.wait(3)
      sums.push([...outB])
      assert.deepEqual(sums, expected())
    })
  })
})
