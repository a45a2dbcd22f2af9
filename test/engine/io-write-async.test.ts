/**
 * Member writes on the CRC addon's helper thread (checksum.ts writeRunsAsync, native writeStart) and
 * the write path that uses them (writeArray on plain files, write-through): every run's pages land
 * where a page-by-page model puts them; bad runs are refused before anything is written; a failed
 * run reports its errno, offset and the runs written before it; writeArray on files gives exactly the
 * bytes of the synchronous path (in-memory twins of the same array) over workloads with full,
 * reconstruct-write and read-modify-write stripes in many small batches, RAID4/5/6; and a member whose
 * write fails is named in the IoError.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {spawnSync} from 'node:child_process'
import {createRequire} from 'node:module'
import {writeAsyncAvailable, writeRunsAsync} from '../../src/engine/checksum.js'
import {FileDevice, MemDevice, alignedBuffer} from '../../src/engine/device.js'
import {IoError} from '../../src/engine/errors.js'
import {createArray, writeData} from '../../src/engine/index.js'
import {rng} from '../helpers/reference.js'
import {ADDON_PATH, CHECKSUM_MODULE, type LooseAddon, skipWithoutNative} from '../helpers/addon.js'

const PAGE = 4096

describe('member writes on the helper thread (writeRunsAsync, writeArray on files)', function () {
  this.timeout(120000)
  let dir: string
  before(function () {
    skipWithoutNative(this, writeAsyncAvailable, 'writeStart')
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-wasync-'))
  })
  after(() => {
    if (dir) fs.rmSync(dir, {recursive: true, force: true})
  })

  function filled(pages: number, seed: number): Uint8Array {
    const b = alignedBuffer(pages * PAGE)
    const r = rng(seed)
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256)
    return b
  }

  it('writes each run where a page-by-page model puts it (several files, pages out of order and repeated, a run of 1025 pages)', () => {
    const buf = filled(1100, 1)
    const files = [0, 1, 2].map(i => path.join(dir, `f${i}.img`))
    for (const f of files) fs.writeFileSync(f, Buffer.alloc(1200 * PAGE, 0x5a))
    const fds = files.map(f => fs.openSync(f, 'r+'))
    const runs: {file: number; at: number; pages: number[]}[] = [
      {file: 0, at: 3, pages: [5, 1, 1, 7]},
      {file: 1, at: 0, pages: Array.from({length: 1025}, (_, k) => (k * 7) % 1100)},
      {file: 2, at: 100, pages: [1099]},
      {file: 0, at: 50, pages: [0, 2, 4, 6, 8]},
    ]
    const pages = new Int32Array(runs.reduce((a, r) => a + r.pages.length, 0))
    const desc = new Float64Array(4 * runs.length)
    let k = 0
    runs.forEach((r, i) => {
      pages.set(r.pages, k)
      desc.set([fds[r.file], r.at * PAGE, k, r.pages.length], 4 * i)
      k += r.pages.length
    })
    try {
      const job = writeRunsAsync(buf, pages, desc, runs.length)!
      job.wait(1)
      job.wait(runs.length)
    } finally {
      for (const fd of fds) fs.closeSync(fd)
    }
    const model = files.map(() => Buffer.alloc(1200 * PAGE, 0x5a))
    for (const r of runs) r.pages.forEach((p, j) => model[r.file].set(buf.subarray(p * PAGE, (p + 1) * PAGE), (r.at + j) * PAGE))
    files.forEach((f, i) => assert.ok(fs.readFileSync(f).equals(model[i]), `file ${i}`))
  })

  it('refuses bad runs with a RangeError before writing anything', () => {
    const f = path.join(dir, 'bad.img')
    fs.writeFileSync(f, Buffer.alloc(8 * PAGE, 1))
    const fd = fs.openSync(f, 'r+')
    const buf = filled(4, 2)
    try {
      const run = (desc: number[], pages: number[], n = desc.length / 4) => writeRunsAsync(buf, Int32Array.from(pages), Float64Array.from(desc), n)
      // the first run is fine, the second is not: nothing of either is written
      assert.throws(() => run([fd, 0, 0, 1, fd, PAGE, 1, 1], [0, 4]), RangeError, 'a page outside buf')
      assert.throws(() => run([fd, 0, 0, 1, fd, PAGE, 1, 2], [0, 1]), RangeError, 'a page range past the list')
      assert.throws(() => run([fd, 0, 0, 1, -1, 0, 0, 1], [0]), RangeError, 'a negative fd')
      assert.throws(() => run([fd, 0.5, 0, 1], [0]), RangeError, 'a fractional offset')
      assert.throws(() => run([fd, 0, 0, 1], [0], 2), RangeError, 'more runs than described')
    } finally {
      fs.closeSync(fd)
    }
    assert.ok(fs.readFileSync(f).equals(Buffer.alloc(8 * PAGE, 1)))
  })

  it('reports a failed run with its errno, offset and the runs written before it', () => {
    const f = path.join(dir, 'ro.img')
    fs.writeFileSync(f, Buffer.alloc(8 * PAGE))
    const rw = fs.openSync(f, 'r+')
    const ro = fs.openSync(f, 'r')
    const buf = filled(2, 3)
    try {
      const job = writeRunsAsync(buf, Int32Array.from([0, 1]), Float64Array.from([rw, 0, 0, 1, ro, 3 * PAGE, 1, 1, rw, PAGE, 0, 1]), 3)!
      assert.throws(
        () => job.wait(3),
        (e: any) => e.code === 'EBADF' && e.pages === 1 && e.offset === 3 * PAGE && /^write failed at offset 12288/.test(e.message),
      )
    } finally {
      fs.closeSync(rw)
      fs.closeSync(ro)
    }
    const got = fs.readFileSync(f)
    assert.ok(got.subarray(0, PAGE).equals(Buffer.from(buf.subarray(0, PAGE))), 'the run before the failure is written')
    assert.ok(got.subarray(PAGE).equals(Buffer.alloc(7 * PAGE)), 'nothing from the failed run or after it')
  })

  it('keeps a failure: later waits past it throw the same error, waits before it return; the next job is unaffected', () => {
    const f = path.join(dir, 'keep.img')
    fs.writeFileSync(f, Buffer.alloc(8 * PAGE))
    const rw = fs.openSync(f, 'r+')
    const ro = fs.openSync(f, 'r')
    const buf = filled(3, 4)
    try {
      const job = writeRunsAsync(buf, Int32Array.from([0, 1, 2]), Float64Array.from([rw, 0, 0, 1, rw, PAGE, 1, 1, ro, 2 * PAGE, 2, 1]), 3)!
      job.wait(2) // the first two runs: no error yet
      let first: unknown
      assert.throws(
        () => job.wait(3),
        (e: unknown) => {
          first = e
          return true
        },
      )
      assert.throws(
        () => job.wait(3),
        (e: unknown) => e === first,
        'the same error again',
      )
      job.wait(1) // before the failure: fine
      // a job started without waiting for a failed one: the failure stays with the first job
      const bad = writeRunsAsync(buf, Int32Array.from([0]), Float64Array.from([ro, 0, 0, 1]), 1)!
      const good = writeRunsAsync(buf, Int32Array.from([2, 1]), Float64Array.from([rw, 4 * PAGE, 0, 2]), 1)!
      good.wait(1)
      assert.throws(
        () => bad.wait(1),
        (e: any) => e.code === 'EBADF' && e.pages === 0,
      )
      // no runs: a job that is complete at once
      writeRunsAsync(buf, new Int32Array(0), new Float64Array(0), 0)!.wait(0)
    } finally {
      fs.closeSync(rw)
      fs.closeSync(ro)
    }
    const got = fs.readFileSync(f)
    assert.ok(got.subarray(0, 2 * PAGE).equals(Buffer.from(buf.subarray(0, 2 * PAGE))))
    assert.ok(got.subarray(2 * PAGE, 4 * PAGE).equals(Buffer.alloc(2 * PAGE)))
    assert.ok(got.subarray(4 * PAGE, 5 * PAGE).equals(Buffer.from(buf.subarray(2 * PAGE, 3 * PAGE))))
    assert.ok(got.subarray(5 * PAGE, 6 * PAGE).equals(Buffer.from(buf.subarray(PAGE, 2 * PAGE))))
  })

  it('the addon directly: argument types, a wait with no job, the errno of a failed run', () => {
    const a = createRequire(import.meta.url)(ADDON_PATH) as LooseAddon
    const buf = filled(1, 5)
    assert.throws(() => a.writeStart(buf, Int32Array.from([0]), Float64Array.from([0, 0, 0, 1])), TypeError, 'nRuns missing')
    assert.throws(() => a.writeStart([0], Int32Array.from([0]), Float64Array.from([0, 0, 0, 1]), 1), TypeError)
    assert.throws(() => a.writeStart(buf, Uint32Array.from([0]), Float64Array.from([0, 0, 0, 1]), 1), TypeError)
    assert.throws(() => a.writeStart(buf, Int32Array.from([0]), [0, 0, 0, 1], 1), TypeError)
    assert.throws(
      () => a.writeStart(filled(1, 5).subarray(1), Int32Array.from([0]), Float64Array.from([0, 0, 0, 1]), 1),
      RangeError,
      'not whole pages',
    )
    assert.throws(() => a.writeWait(), TypeError)
    assert.throws(() => a.writeWait('1'), TypeError)
    assert.equal(a.writeWait(1), 0, 'no job')
    const f = path.join(dir, 'direct.img')
    fs.writeFileSync(f, Buffer.alloc(PAGE))
    const ro = fs.openSync(f, 'r')
    try {
      a.writeStart(buf, Int32Array.from([0]), Float64Array.from([ro, 0, 0, 1]), 1)
      assert.throws(
        () => a.writeWait(1),
        (e: any) => e.errno === -9 && e.code === undefined && e.offset === 0 && e.pages === 0 && /^write failed at offset 0: /.test(e.message),
      )
      assert.equal(a.writeWait(1), 0, 'a failed job is over once thrown')
    } finally {
      fs.closeSync(ro)
    }
  })

  it('a process with write jobs still running in the main thread and in a worker_thread exits cleanly', () => {
    // Each thread starts 64 MiB of writes to its own file and ends without waiting: the env cleanup
    // hooks must stop and join both helpers (a hang hits the timeout, a crash shows as a signal).
    const job = (file: string) => `
      const fs = require('node:fs');
      const a = require(${JSON.stringify(ADDON_PATH)});
      const fd = fs.openSync(${JSON.stringify(file)}, 'w');
      const n = 16384, buf = new Uint8Array(4096 * 16), pages = new Int32Array(n).map((_, i) => i % 16);
      const runs = new Float64Array(4 * 64);
      for (let r = 0; r < 64; r++) runs.set([fd, r * 256 * 4096, r * 256, 256], 4 * r);
      a.writeStart(buf, pages, runs, 64);
    `
    const script = `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(${JSON.stringify(job(path.join(dir, 'exit-worker.img')) + "require('node:worker_threads').parentPort.postMessage('started');")}, { eval: true });
      w.on('message', (m) => {
        ${job(path.join(dir, 'exit-main.img'))}
        process.stdout.write(m + ' main');
      });
    `
    const res = spawnSync(process.execPath, ['-e', script], {encoding: 'utf8', timeout: 60_000})
    assert.equal(res.signal, null, res.stderr)
    assert.equal(res.status, 0, res.stderr)
    assert.equal(res.stdout, 'started main')
    // and checksum.ts loads in a worker, where it has a helper of its own
    const viaModule = spawnSync(
      process.execPath,
      [
        '-e',
        `const { Worker } = require('node:worker_threads');
         new Worker(${JSON.stringify(`import(${JSON.stringify(CHECKSUM_MODULE)}).then(m => require('node:worker_threads').parentPort.postMessage(String(m.writeAsyncAvailable)))`)}, { eval: true })
           .on('message', (m) => process.stdout.write(m));`,
      ],
      {encoding: 'utf8', timeout: 60_000},
    )
    assert.equal(viaModule.stdout, 'true', viaModule.stderr)
  })

  /** the same array twice: in memory (synchronous member writes) and as files (on the helper) */
  function twins(name: string, level: 4 | 5 | 6, n: number, layout: number | undefined) {
    const memberBytes = 6 << 20
    const journalBytes = 3 << 20
    const mem = [new MemDevice('journal', journalBytes), ...Array.from({length: n}, (_, i) => new MemDevice(`m${i}`, memberBytes))]
    createArray({level, raidDevices: n, chunkBytes: 64 * 1024, layout, members: mem.slice(1), journal: mem[0]})
    const files = mem.map((d, i) => {
      const f = path.join(dir, `${name}-${i}.img`)
      fs.writeFileSync(f, d.data)
      return f
    })
    return {mem, files}
  }

  const configs: {level: 4 | 5 | 6; n: number; layout?: number}[] = [
    {level: 4, n: 4},
    {level: 5, n: 4},
    {level: 5, n: 6, layout: 0},
    {level: 6, n: 5},
    {level: 6, n: 6, layout: 1},
  ]
  for (const c of configs) {
    const name = `raid${c.level}-${c.n}${c.layout === undefined ? '' : `-l${c.layout}`}`
    it(`${name}: writeArray on files gives the bytes of the synchronous path (full, rcw and rmw stripes, 64 KiB batches)`, () => {
      const {mem, files} = twins(name, c.level, c.n, c.layout)
      let writevs = 0
      // writeData closes what it opened, devices given to it too: open the files for each write
      const open = () =>
        files.map((f, i) => {
          const d = FileDevice.open(f, {writable: true, flush: false})
          if (i > 0) {
            const orig = d.writev.bind(d)
            d.writev = (bufs, off) => {
              writevs++
              orig(bufs, off)
            }
          }
          return d
        })
      const r = rng(c.level * 100 + c.n)
      for (let w = 0; w < 12; w++) {
        const offset = Math.floor(r() * 600) * PAGE
        const length = w % 4 === 0 ? 1 + Math.floor(r() * 3 * 1024 * 1024) : 1 + Math.floor(r() * 200 * 1024)
        const data = Buffer.from(filled(Math.ceil(length / PAGE), w + 7).subarray(0, length))
        const src = () => {
          let p = 0
          return (buf: Uint8Array) => {
            const k = Math.min(buf.length, data.length - p)
            buf.set(data.subarray(p, p + k))
            p += k
            return k
          }
        }
        const a = writeData(mem, offset, length, src(), {batchBytes: 64 * 1024})
        const b = writeData(open(), offset, length, src(), {batchBytes: 64 * 1024})
        assert.equal(b.stripes, a.stripes)
        assert.equal(b.journalBytes, a.journalBytes)
        assert.ok(a.rcwStripes + a.rmwStripes > 0 || w % 4 === 0, 'partial stripes too')
      }
      assert.equal(writevs, 0, 'member pages went through writev: the helper path was not taken')
      // byte for byte, except the superblocks' update times
      mem.forEach((d, i) => {
        const got = fs.readFileSync(files[i])
        assert.ok(got.subarray(0, 4096).equals(Buffer.from(d.data.subarray(0, 4096))), `${files[i]}: before the superblock`)
        assert.ok(got.subarray(8192).equals(Buffer.from(d.data.subarray(8192))), `${files[i]}: after the superblock`)
      })
    })
  }

  it('names the member whose write fails, and leaves nothing running', () => {
    const {files} = twins('fail', 5, 4, undefined)
    const fdevs = files.map(f => FileDevice.open(f, {writable: true, flush: false}))
    const ro = fs.openSync(files[3], 'r')
    fdevs[3].writeFd = () => ro // a descriptor the write is refused on (EBADF)
    try {
      assert.throws(
        () =>
          writeData(
            fdevs,
            0,
            1 << 20,
            buf => {
              buf.fill(9)
              return buf.length
            },
            {batchBytes: 64 * 1024},
          ),
        (e: unknown) => e instanceof IoError && e.device === files[3] && /write failed/.test(e.message),
      )
    } finally {
      for (const d of fdevs) d.close()
      fs.closeSync(ro)
    }
  })
})
