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
import {writeAsyncAvailable, writeRunsAsync} from '../../src/engine/checksum.js'
import {FileDevice, MemDevice, alignedBuffer} from '../../src/engine/device.js'
import {IoError} from '../../src/engine/errors.js'
import {createArray, writeData} from '../../src/engine/index.js'
import {rng} from '../helpers/reference.js'
import {skipWithoutNative} from '../helpers/addon.js'

const PAGE = 4096

describe('member writes on the helper thread (writeRunsAsync, writeArray on files)', function () {
  this.timeout(120000)
  let dir: string
  let syncOnFlush: boolean
  before(function () {
    skipWithoutNative(this, writeAsyncAvailable, 'writeStart')
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-wasync-'))
    syncOnFlush = FileDevice.syncOnFlush
    FileDevice.syncOnFlush = false
  })
  after(() => {
    if (dir) fs.rmSync(dir, {recursive: true, force: true})
    FileDevice.syncOnFlush = syncOnFlush
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
          const d = FileDevice.open(f, {writable: true})
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
    const fdevs = files.map(f => FileDevice.open(f, {writable: true}))
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
