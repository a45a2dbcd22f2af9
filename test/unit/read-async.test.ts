/**
 * Reads on the checksum addon's helper thread: readPagesAsync (checksum.ts, native readStart),
 * FileDevice.readPagesAsync, DeviceWrapper forwarding and Ring.readPagesAsync. The helper preads the
 * bytes and checksums each page as it arrives; wait(k) makes the first k pages' bytes and sums final.
 *
 * Every result is checked against independent references: the file's bytes through a plain
 * fs.readSync, and the pure-JS crc32cRawReference of each page -- never against the function itself.
 * The helper-only tests skip when the addon is not built (or is an old build without readStart); with
 * R5CTL_REQUIRE_NATIVE=1 (CI) that is a failure.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {createHash, randomFillSync} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import v8 from 'node:v8'
import vm from 'node:vm'
import {
  type PageSumsJob,
  type ReadFailure,
  crc32cPagesAsync,
  crc32cRawReference,
  crcBackend,
  readAsyncAvailable,
  readPagesAsync,
} from '../../src/engine/checksum.js'
import {CrashController} from '../../src/engine/crash.js'
import {type BlockDevice, DeviceWrapper, FileDevice, MemDevice} from '../../src/engine/device.js'
import {IoError} from '../../src/engine/errors.js'
import {Ring} from '../../src/engine/journal/ring.js'

const PAGE = 4096
const SENTINEL = 0xdeadbeef
const FILL = 0xa5
const here = path.dirname(fileURLToPath(import.meta.url)) // dist/test/unit
const ENGINE = path.resolve(here, '../../src/engine')
const requireNative = process.env.R5CTL_REQUIRE_NATIVE === '1'
const forcedOff = process.env.R5CTL_CRC === 'js' || process.env.R5CTL_CRC === 'node-rs'

/** The main test file: FILE_PAGES whole pages and a partial one. */
const FILE_PAGES = 1200
const FILE_SIZE = FILE_PAGES * PAGE + 777
const SIZES = [1, 3, 64, 1024]
/** byte positions for n pages: page-aligned, odd, sector-aligned, inside, and ending exactly at the end of the file */
const positions = (n: number): number[] => [0, 1, 512, 7 * PAGE + 100, FILE_SIZE - n * PAGE]

/** The reference: the file's bytes through a plain fs.readSync. */
function fileBytes(file: string, position: number, len: number): Buffer {
  const b = Buffer.alloc(len)
  const fd = fs.openSync(file, 'r')
  try {
    let done = 0
    while (done < len) {
      const k = fs.readSync(fd, b, done, len - done, position + done)
      if (k === 0) throw new Error(`reference read: end of file at ${position + done}`)
      done += k
    }
  } finally {
    fs.closeSync(fd)
  }
  return b
}

/** The reference checksum of every page (pure-JS crc-32). */
function refSums(seed: number, bytes: Uint8Array): Uint32Array {
  const want = new Uint32Array(bytes.length / PAGE)
  for (let i = 0; i < want.length; i++) want[i] = crc32cRawReference(seed, bytes.subarray(i * PAGE, (i + 1) * PAGE))
  return want
}

function assertSums(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} sums, want ${want.length}`)
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) assert.fail(`${what}: first sum difference at page ${i} (got ${got[i]}, want ${want[i]})`)
  }
}

function assertBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} bytes, want ${want.length}`)
  if (Buffer.compare(got, want) === 0) return
  let i = 0
  while (got[i] === want[i]) i++
  assert.fail(`${what}: first byte difference at ${i} (page ${Math.floor(i / PAGE)}): got ${got[i]}, want ${want[i]}`)
}

/** n pages at an odd byteOffset of a fresh ArrayBuffer, prefilled so that unread bytes show. */
function freshBuf(n: number): Uint8Array {
  return new Uint8Array(n * PAGE + 7).subarray(3, 3 + n * PAGE).fill(FILL)
}

/** The helper-only tests: skip, or fail under R5CTL_REQUIRE_NATIVE=1, when readStart is missing. */
function needHelper(ctx: Mocha.Context): void {
  if (readAsyncAvailable) return
  if (requireNative && !forcedOff) assert.fail(`R5CTL_REQUIRE_NATIVE=1 but readPagesAsync has no helper (backend ${crcBackend})`)
  console.log(`      (skipped: no helper-thread read; ${forcedOff ? `R5CTL_CRC=${process.env.R5CTL_CRC}` : `backend ${crcBackend}`})`)
  ctx.skip()
}

/** Counts the calls of one device object's readPagesAsync (it must have one). */
function spyReadPagesAsync(dev: FileDevice): {calls: number} {
  const counter = {calls: 0}
  const orig = dev.readPagesAsync.bind(dev)
  dev.readPagesAsync = (buf, offset, seed, sums) => {
    counter.calls++
    return orig(buf, offset, seed, sums)
  }
  return counter
}

/** Records writes and flushes (like the write-path tracers); reads are not its business. */
class WriteTracer extends DeviceWrapper {
  writes = 0
  override writev(bufs: Uint8Array[], offset: number): void {
    this.writes++
    this.inner.writev(bufs, offset)
  }
}

/** A wrapper that does look at reads: it must not get the inner device's async path. */
class ReadCounter extends DeviceWrapper {
  reads = 0
  override read(buf: Uint8Array, offset: number): void {
    this.reads++
    this.inner.read(buf, offset)
  }
}

describe(`readPagesAsync: reads and page sums on the helper thread (${readAsyncAvailable ? 'helper thread' : 'synchronous fallback'}; ${crcBackend})`, () => {
  let dir = ''
  let file = ''
  const opened: FileDevice[] = []
  const open = (f: string): FileDevice => {
    const d = FileDevice.open(f, {writable: false})
    opened.push(d)
    return d
  }

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-readasync-'))
    file = path.join(dir, 'data.bin')
    fs.writeFileSync(file, randomFillSync(Buffer.alloc(FILE_SIZE)))
  })
  afterEach(() => {
    for (const d of opened.splice(0)) d.close()
  })
  after(() => {
    if (dir) fs.rmSync(dir, {recursive: true, force: true})
  })

  it('the helper is in use whenever the full addon is', () => {
    if (forcedOff) assert.equal(readAsyncAvailable, false)
    if (requireNative && !forcedOff) assert.equal(readAsyncAvailable, true, `R5CTL_REQUIRE_NATIVE=1, backend ${crcBackend}`)
  })

  it('checksum.readPagesAsync: bytes equal fs.readSync, sums the reference, for 1, 3, 64, 1024 pages at several positions, outOff > 0', function () {
    needHelper(this)
    const fd = fs.openSync(file, 'r')
    try {
      let k = 0
      for (const n of SIZES) {
        for (const pos of positions(n)) {
          const seed = [0x9e3779b9, 0, 0xffffffff][k++ % 3]
          const outOff = 1 + (k % 3)
          const buf = freshBuf(n)
          const out = new Uint32Array(outOff + n + 2).fill(SENTINEL)
          const job = readPagesAsync(fd, pos, buf, seed, out, outOff) as PageSumsJob
          assert.ok(job, 'a job with the helper')
          assert.equal(job.pages, n)
          job.wait(n)
          const want = fileBytes(file, pos, n * PAGE)
          assertBytes(buf, want, `n ${n} at ${pos}`)
          assertSums(out.subarray(outOff, outOff + n), refSums(seed, want), `n ${n} at ${pos}`)
          for (let i = 0; i < outOff; i++) assert.equal(out[i], SENTINEL, 'wrote before outOff')
          assert.deepEqual([...out.subarray(outOff + n)], [SENTINEL, SENTINEL], 'wrote past the sums')
          job.wait(n) // complete: no-ops
          job.wait(Infinity)
        }
      }
    } finally {
      fs.closeSync(fd)
    }
  })

  it('checksum.readPagesAsync: argument checks (RangeError), whatever the backend; an empty read is a no-op', () => {
    const fd = fs.openSync(file, 'r')
    try {
      const out = new Uint32Array(2)
      assert.throws(() => readPagesAsync(fd, 0, new Uint8Array(4095), 0, out), RangeError)
      assert.throws(() => readPagesAsync(fd, 0, new Uint8Array(3 * PAGE), 0, out), RangeError)
      assert.throws(() => readPagesAsync(fd, 0, new Uint8Array(PAGE), 0, out, 2), RangeError)
      assert.throws(() => readPagesAsync(fd, 0, new Uint8Array(PAGE), 0, out, 0.5), RangeError)
      assert.throws(() => readPagesAsync(fd, 0, new Uint8Array(PAGE), 0, out, -1), RangeError)
      assert.throws(() => readPagesAsync(-1, 0, new Uint8Array(PAGE), 0, out), RangeError)
      assert.throws(() => readPagesAsync(1.5, 0, new Uint8Array(PAGE), 0, out), RangeError)
      assert.throws(() => readPagesAsync(fd, -4096, new Uint8Array(PAGE), 0, out), RangeError)
      assert.throws(() => readPagesAsync(fd, 0.5, new Uint8Array(PAGE), 0, out), RangeError)
      assert.throws(() => readPagesAsync(fd, 2 ** 53, new Uint8Array(PAGE), 0, out), RangeError)
      assert.throws(() => readPagesAsync(fd, NaN, new Uint8Array(PAGE), 0, out), RangeError)
      assert.deepEqual([...out], [0, 0])
      const empty = readPagesAsync(fd, 0, new Uint8Array(0), 0, new Uint32Array(0))
      if (readAsyncAvailable) {
        assert.ok(empty)
        assert.equal(empty.pages, 0)
        empty.wait(1)
      } else assert.equal(empty, null)
    } finally {
      fs.closeSync(fd)
    }
  })

  it('FileDevice.readPagesAsync: bytes and sums for 1, 3, 64, 1024 pages at several offsets; stats count one read', () => {
    const dev = open(file)
    let k = 0
    for (const n of SIZES) {
      for (const pos of positions(n)) {
        const seed = [0x12345678, 0xffffffff, 7][k++ % 3]
        const buf = freshBuf(n)
        const sums = new Uint32Array(n + 1).fill(SENTINEL)
        const reads = dev.stats.reads
        const bytesRead = dev.stats.bytesRead
        const job = dev.readPagesAsync(buf, pos, seed, sums)
        assert.equal(job.pages, n)
        job.wait(n)
        const want = fileBytes(file, pos, n * PAGE)
        assertBytes(buf, want, `n ${n} at ${pos}`)
        assertSums(sums.subarray(0, n), refSums(seed, want), `n ${n} at ${pos}`)
        assert.equal(sums[n], SENTINEL, 'wrote past the sums')
        assert.equal(dev.stats.reads, reads + 1)
        assert.equal(dev.stats.bytesRead, bytesRead + n * PAGE)
      }
    }
    // the bounds check of read(): an IoError naming the device, at once
    for (const [n, pos] of [
      [1, FILE_SIZE - PAGE + 1],
      [2, FILE_SIZE - PAGE],
      [1, -512],
    ]) {
      assert.throws(
        () => dev.readPagesAsync(freshBuf(n), pos, 0, new Uint32Array(n)),
        (e: unknown) => e instanceof IoError && e.device === file && /beyond end of device/.test(e.message),
      )
    }
  })

  it('partial waits in increasing order see final bytes and sums for their prefix', () => {
    const dev = open(file)
    const n = 1024
    const pos = 10 * PAGE + 512
    const seed = 0xc0ffee11
    const buf = freshBuf(n)
    const sums = new Uint32Array(n).fill(SENTINEL)
    const job = dev.readPagesAsync(buf, pos, seed, sums)
    // Snapshot each prefix right after its wait (the helper may still be writing further on), compare afterwards.
    const steps = [0, 1, 2, 3, 11, 12, 13, 24, 60, 63, 64, 65, 100, 128, 129, 500, 1000, 1023, 1024, 5000]
    const snaps: Array<{k: number; bytes: Uint8Array; sums: Uint32Array}> = []
    for (const k of steps) {
      job.wait(k)
      const m = Math.min(k, n)
      snaps.push({k, bytes: buf.slice(0, m * PAGE), sums: sums.slice(0, m)})
    }
    const want = fileBytes(file, pos, n * PAGE)
    const wantSums = refSums(seed, want)
    for (const s of snaps) {
      const m = Math.min(s.k, n)
      assertBytes(s.bytes, want.subarray(0, m * PAGE), `bytes after wait(${s.k})`)
      assertSums(s.sums, wantSums.subarray(0, m), `sums after wait(${s.k})`)
    }
  })

  it('a read past the end of a file truncated after open: wait throws an IoError naming the file; waits before the failure succeed', () => {
    const short = path.join(dir, 'truncated.bin')
    fs.writeFileSync(short, randomFillSync(Buffer.alloc(64 * PAGE)))
    const dev = open(short)
    assert.equal(dev.size, 64 * PAGE)
    const cut = 40 * PAGE + 100 // mid-page: pages 16..39 of the file can be read, page 40 only partly
    fs.truncateSync(short, cut)
    const want = fileBytes(short, 16 * PAGE, 24 * PAGE)
    const seed = 0xabcdef01
    const isFailure = (e: unknown): boolean => {
      assert.ok(e instanceof IoError, `not an IoError: ${String(e)}`)
      assert.equal(e.device, short)
      if (readAsyncAvailable) {
        assert.equal(e.message, `read failed at offset ${cut}: short read (end of file)`)
        assert.equal((e.cause as ReadFailure).code, 'ESHORT')
      } else assert.match(e.message, /short read at offset/)
      return true
    }
    if (!readAsyncAvailable) {
      // the synchronous fallback (read() then checksums) fails at once, like read()
      assert.throws(() => dev.readPagesAsync(freshBuf(32), 16 * PAGE, seed, new Uint32Array(32)), isFailure)
      return
    }
    // a wait for everything at once
    const j1 = dev.readPagesAsync(freshBuf(32), 16 * PAGE, seed, new Uint32Array(32))
    assert.throws(() => j1.wait(32), isFailure)
    assert.throws(() => j1.wait(25), isFailure, 'the failure stays')
    j1.wait(24) // pages before the failure point are fine
    j1.wait(0)
    // partial waits first
    const buf = freshBuf(32)
    const sums = new Uint32Array(32).fill(SENTINEL)
    const j2 = dev.readPagesAsync(buf, 16 * PAGE, seed, sums)
    j2.wait(10)
    j2.wait(24)
    assertBytes(buf.subarray(0, 24 * PAGE), want, 'pages before the end of the file')
    assertSums(sums.subarray(0, 24), refSums(seed, want), 'pages before the end of the file')
    assert.throws(() => j2.wait(24.5), isFailure)
    assert.throws(() => j2.wait(Infinity), isFailure)
    assertSums(sums.subarray(24), new Uint32Array(8).fill(SENTINEL), 'no sums for pages not read')
    // the device still works: a read inside the remaining file
    const b3 = freshBuf(8)
    const s3 = new Uint32Array(8)
    dev.readPagesAsync(b3, 32 * PAGE, seed, s3).wait(8)
    assertBytes(b3, fileBytes(short, 32 * PAGE, 8 * PAGE), 'a read after the failure')
    assertSums(s3, refSums(seed, b3), 'a read after the failure')
  })

  it('a closed fd: wait throws EBADF (checksum.readPagesAsync raw error, FileDevice IoError)', function () {
    needHelper(this)
    const fd = fs.openSync(file, 'r')
    fs.closeSync(fd)
    const job = readPagesAsync(fd, 3 * PAGE, freshBuf(4), 1, new Uint32Array(4)) as PageSumsJob
    job.wait(0) // progress only: no error yet
    assert.throws(
      () => job.wait(1),
      (e: unknown) => {
        const f = e as ReadFailure
        assert.ok(f instanceof Error)
        assert.equal(f.code, 'EBADF')
        assert.equal(f.offset, 3 * PAGE)
        assert.equal(f.pages, 0)
        assert.match(f.message, new RegExp(`^read failed at offset ${3 * PAGE}: ${f.reason}$`))
        assert.match(f.reason, /bad file descriptor/i)
        return true
      },
    )
    // the same through a FileDevice whose fd was closed behind its back
    const dev = FileDevice.open(file, {writable: false})
    const priv = dev as unknown as {fd: number}
    fs.closeSync(priv.fd)
    try {
      const j = dev.readPagesAsync(freshBuf(2), PAGE, 1, new Uint32Array(2))
      assert.throws(
        () => j.wait(2),
        (e: unknown) =>
          e instanceof IoError &&
          e.device === file &&
          /^read failed at offset 4096: bad file descriptor$/i.test(e.message) &&
          (e.cause as ReadFailure).code === 'EBADF',
      )
    } finally {
      priv.fd = -1
      dev.close()
    }
  })

  it('starting another job completes a read job; a failed read keeps its error for its own wait', function () {
    needHelper(this)
    const fd = fs.openSync(file, 'r')
    try {
      const seed = 99
      const buf = freshBuf(1024)
      const sums = new Uint32Array(1024)
      const readJob = readPagesAsync(fd, PAGE, buf, seed, sums) as PageSumsJob
      const other = freshBuf(5).fill(1)
      const otherSums = new Uint32Array(5)
      const crcJob = crc32cPagesAsync(seed, other, otherSums)
      // the read job is complete now, without a wait on it
      const snapBytes = buf.slice()
      const snapSums = sums.slice()
      const want = fileBytes(file, PAGE, 1024 * PAGE)
      assertBytes(snapBytes, want, 'superseded read')
      assertSums(snapSums, refSums(seed, want), 'superseded read')
      readJob.wait(1024)
      crcJob.wait(5)
      assertSums(otherSums, refSums(seed, other), 'the checksum job after it')
      // a read that fails (a closed fd), superseded by a read and a checksum job before anyone waits
      const closed = fs.openSync(file, 'r')
      fs.closeSync(closed)
      const bad = readPagesAsync(closed, 0, freshBuf(3), seed, new Uint32Array(3)) as PageSumsJob
      const b2 = freshBuf(3)
      const s2 = new Uint32Array(3)
      const good = readPagesAsync(fd, 0, b2, seed, s2) as PageSumsJob
      crc32cPagesAsync(seed, other, new Uint32Array(5))
      good.wait(3)
      assertBytes(b2, fileBytes(file, 0, 3 * PAGE), 'read after a failed one')
      assertSums(s2, refSums(seed, b2), 'read after a failed one')
      bad.wait(0)
      assert.throws(
        () => bad.wait(1),
        (e: unknown) => (e as ReadFailure).code === 'EBADF',
      )
    } finally {
      fs.closeSync(fd)
    }
  })

  it('keeps buf and sums alive while the helper fills them, even when only the job references them', function () {
    needHelper(this)
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const fd = fs.openSync(file, 'r')
    try {
      const n = 1024
      const sums = new Uint32Array(n)
      const job = readPagesAsync(fd, 0, new Uint8Array(n * PAGE), 5, sums) as PageSumsJob // buf: only the job's
      for (let i = 0; i < 3; i++) {
        gc()
        new Uint8Array(n * PAGE).fill(0x5a) // garbage of the same size, for the allocator to reuse
      }
      job.wait(n)
      assertSums(sums, refSums(5, fileBytes(file, 0, n * PAGE)), 'sums of a buffer only the job referenced')
    } finally {
      fs.closeSync(fd)
    }
  })

  it('Ring.readPagesAsync: a FileDevice and a MemDevice with the same bytes give the reference, wrapping or not', () => {
    const fdev = open(file)
    const mdev = new MemDevice('mem', FILE_SIZE, new Uint8Array(fileBytes(file, 0, FILE_SIZE)))
    const spy = spyReadPagesAsync(fdev)
    const base = 17 * 512
    const sizeSectors = 1000 * 8
    const fring = new Ring(fdev, base, sizeSectors)
    const mring = new Ring(mdev, base, sizeSectors)
    const cases: Array<[pos: number, n: number]> = [
      [0, 1],
      [8, 3],
      [16, 64],
      [sizeSectors - 64 * 8, 64], // ends exactly at the ring's end: no wrap
      [sizeSectors - 10 * 8, 64], // wraps
      [sizeSectors - 8, 1000], // the whole ring, wrapping after one page
      [24, 999], // up to the page before pos
    ]
    for (const [pos, n] of cases) {
      const seed = 0x51ed2700 + pos
      // reference: page i is at ring position (pos + 8 i) mod size
      const want = Buffer.alloc(n * PAGE)
      for (let i = 0; i < n; i++) {
        const p = (pos + 8 * i) % sizeSectors
        fileBytes(file, base + p * 512, PAGE).copy(want, i * PAGE)
      }
      const wraps = n * 8 > sizeSectors - pos
      const calls = spy.calls
      const results = [fring, mring].map(ring => {
        const buf = freshBuf(n)
        const sums = new Uint32Array(n).fill(SENTINEL)
        const job = ring.readPagesAsync(buf, pos, seed, sums)
        assert.equal(job.pages, n)
        job.wait(n)
        return {buf, sums}
      })
      assert.equal(spy.calls, calls + (wraps ? 0 : 1), `pos ${pos} n ${n}: FileDevice.readPagesAsync used iff the range does not wrap`)
      for (const [r, what] of [
        [results[0], 'file'],
        [results[1], 'mem'],
      ] as const) {
        assertBytes(r.buf, want, `${what} ring, pos ${pos} n ${n}`)
        assertSums(r.sums, refSums(seed, want), `${what} ring, pos ${pos} n ${n}`)
      }
      assertBytes(results[0].buf, results[1].buf, 'file vs mem')
      assertSums(results[0].sums, results[1].sums, 'file vs mem')
    }
  })

  it('wrapped devices: DeviceWrapper subclasses that leave reads alone forward to the inner async path', () => {
    const fdev = open(file)
    const spy = spyReadPagesAsync(fdev)
    const tracer = new WriteTracer(fdev)
    const crash = new CrashController(1_000_000, 5).wrap(new WriteTracer(fdev)) // two levels
    const seed = 0x600df00d
    for (const [dev, what] of [
      [tracer, 'tracer'],
      [crash, 'crash device over a tracer'],
    ] as const) {
      assert.equal(typeof dev.readPagesAsync, 'function', `${what} has readPagesAsync`)
      for (const [n, pos] of [
        [3, 512],
        [64, 5 * PAGE],
      ]) {
        const calls = spy.calls
        const reads = fdev.stats.reads
        const buf = freshBuf(n)
        const sums = new Uint32Array(n)
        dev.readPagesAsync!(buf, pos, seed, sums).wait(n)
        assert.equal(spy.calls, calls + 1, `${what}: the inner device's readPagesAsync`)
        assert.equal(dev.stats.reads, reads + 1, `${what}: one read counted`)
        const want = fileBytes(file, pos, n * PAGE)
        assertBytes(buf, want, what)
        assertSums(sums, refSums(seed, want), what)
      }
      // and a ring over the wrapper takes the async path too
      const calls = spy.calls
      const buf = freshBuf(16)
      const sums = new Uint32Array(16)
      new Ring(dev, PAGE, 100 * 8).readPagesAsync(buf, 8, seed, sums).wait(16)
      assert.equal(spy.calls, calls + 1, `${what}: ring over the wrapper`)
      const want = fileBytes(file, 2 * PAGE, 16 * PAGE)
      assertBytes(buf, want, `${what}: ring`)
      assertSums(sums, refSums(seed, want), `${what}: ring`)
    }
    assert.equal(tracer.writes, 0)
    // a wrapper that overrides read() sees every read: no async path, the ring reads through it
    const counter = new ReadCounter(fdev)
    assert.equal(counter.readPagesAsync, undefined)
    const calls = spy.calls
    const buf = freshBuf(4)
    const sums = new Uint32Array(4)
    new Ring(counter, 0, 100 * 8).readPagesAsync(buf, 16, seed, sums).wait(4)
    assert.equal(counter.reads, 1)
    assert.equal(spy.calls, calls)
    assertBytes(buf, fileBytes(file, 2 * PAGE, 4 * PAGE), 'ring over a read-counting wrapper')
    assertSums(sums, refSums(seed, buf), 'ring over a read-counting wrapper')
    // over a MemDevice (no readPagesAsync) a wrapper has none either
    const mem: BlockDevice = new WriteTracer(new MemDevice('m', 8 * PAGE))
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only checks the method is absent
    assert.equal(mem.readPagesAsync, undefined)
  })

  it('R5CTL_CRC=js (no helper) in a child process: the same bytes and sums through FileDevice and Ring', function () {
    this.timeout(120_000)
    const short = path.join(dir, 'child-truncated.bin')
    fs.writeFileSync(short, randomFillSync(Buffer.alloc(16 * PAGE)))
    const cases: Array<[n: number, pos: number]> = [
      [1, 0],
      [3, 1],
      [64, 512],
      [1024, FILE_SIZE - 1024 * PAGE],
    ]
    const ringCases: Array<[pos: number, n: number]> = [
      [8, 64],
      [1000 * 8 - 16, 8],
    ] // straight, wrapping
    const script = `
      import fs from 'node:fs';
      import { createHash } from 'node:crypto';
      const c = await import(${JSON.stringify(path.join(ENGINE, 'checksum.js'))});
      const d = await import(${JSON.stringify(path.join(ENGINE, 'device.js'))});
      const r = await import(${JSON.stringify(path.join(ENGINE, 'journal/ring.js'))});
      const sha = (b) => createHash('sha256').update(b).digest('hex');
      const res = { backend: c.crcBackend, readAsync: c.readAsyncAvailable, cases: [], ring: [], error: null };
      const fd = fs.openSync(${JSON.stringify(file)}, 'r');
      res.nullJob = c.readPagesAsync(fd, 0, new Uint8Array(4096), 1, new Uint32Array(1)) === null;
      fs.closeSync(fd);
      const dev = d.FileDevice.open(${JSON.stringify(file)}, { writable: false });
      for (const [n, pos] of ${JSON.stringify(cases)}) {
        const buf = new Uint8Array(n * 4096), sums = new Uint32Array(n);
        const job = dev.readPagesAsync(buf, pos, 0x9e3779b9, sums);
        job.wait(1); job.wait(n);
        res.cases.push({ sha: sha(buf), sums: Array.from(sums) });
      }
      const ring = new r.Ring(dev, 17 * 512, 1000 * 8);
      for (const [pos, n] of ${JSON.stringify(ringCases)}) {
        const buf = new Uint8Array(n * 4096), sums = new Uint32Array(n);
        ring.readPagesAsync(buf, pos, 7, sums).wait(n);
        res.ring.push({ sha: sha(buf), sums: Array.from(sums) });
      }
      dev.close();
      const sdev = d.FileDevice.open(${JSON.stringify(short)}, { writable: false });
      fs.truncateSync(${JSON.stringify(short)}, 10 * 4096 + 5);
      try { sdev.readPagesAsync(new Uint8Array(16 * 4096), 0, 1, new Uint32Array(16)).wait(16); }
      catch (e) { res.error = { name: e.constructor.name, device: e.device, message: e.message }; }
      sdev.close();
      process.stdout.write(JSON.stringify(res));
    `
    const env = {...process.env, R5CTL_CRC: 'js'}
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {env, encoding: 'utf8', timeout: 120_000})
    assert.equal(child.error, undefined, `child: ${child.error?.message}`)
    assert.equal(child.status, 0, `child exited ${child.status ?? child.signal}: ${child.stderr}`)
    const got = JSON.parse(child.stdout) as {
      backend: string
      readAsync: boolean
      nullJob: boolean
      cases: Array<{sha: string; sums: number[]}>
      ring: Array<{sha: string; sums: number[]}>
      error: {name: string; device: string; message: string} | null
    }
    assert.equal(got.backend, 'crc-32 (js)')
    assert.equal(got.readAsync, false)
    assert.equal(got.nullJob, true, 'checksum.readPagesAsync returns null without the helper')
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
    cases.forEach(([n, pos], i) => {
      const want = fileBytes(file, pos, n * PAGE)
      assert.equal(got.cases[i].sha, sha(want), `child bytes, n ${n} at ${pos}`)
      assertSums(got.cases[i].sums, refSums(0x9e3779b9, want), `child sums, n ${n} at ${pos}`)
    })
    ringCases.forEach(([pos, n], i) => {
      const want = Buffer.alloc(n * PAGE)
      for (let k = 0; k < n; k++) fileBytes(file, 17 * 512 + ((pos + 8 * k) % 8000) * 512, PAGE).copy(want, k * PAGE)
      assert.equal(got.ring[i].sha, sha(want), `child ring bytes, pos ${pos}`)
      assertSums(got.ring[i].sums, refSums(7, want), `child ring sums, pos ${pos}`)
    })
    assert.ok(got.error, 'the truncated file did not fail')
    assert.equal(got.error.name, 'IoError')
    assert.equal(got.error.device, short)
    assert.equal(got.error.message, `short read at offset ${10 * PAGE + 5}`)
  })
})
