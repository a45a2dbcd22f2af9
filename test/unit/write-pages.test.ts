/**
 * FileDevice.writePages (the replay's scattered-page write: native pwritev over page numbers) against
 * an independent model: the expected file is built with plain byte copies, page by page. Runs of 1,
 * 1024, 1025 and 3000 pages (the addon splits at 1024 iovecs), pages out of order and repeated, a run
 * past the end of the device (refused, nothing written), and the same bytes without the addon
 * (R5CTL_CRC=js in a child process: writev of views).
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {DeviceWrapper, FileDevice, alignedBuffer} from '../../src/engine/device.js'
import {IoError} from '../../src/engine/errors.js'
import {nativeWritePages} from '../../src/engine/checksum.js'
import {rng} from '../helpers/reference.js'

const PAGE = 4096
const here = path.dirname(fileURLToPath(import.meta.url))

/** write `runs` with writePages into a fresh file of `filePages` pages; returns the file's bytes */
function viaDevice(dir: string, bufPages: number, filePages: number, seed: number, runs: {pages: number[]; at: number}[]): Buffer {
  const file = path.join(dir, `f${seed}.img`)
  fs.writeFileSync(file, Buffer.alloc(filePages * PAGE, 0x5a))
  const buf = alignedBuffer(bufPages * PAGE)
  const r = rng(seed)
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256)
  const dev = FileDevice.open(file, {writable: true})
  try {
    for (const run of runs) dev.writePages(buf, Int32Array.from(run.pages), 0, run.pages.length, run.at * PAGE)
  } finally {
    dev.close()
  }
  return fs.readFileSync(file)
}

/** the same, modelled: byte copies page by page */
function model(bufPages: number, filePages: number, seed: number, runs: {pages: number[]; at: number}[]): Buffer {
  const out = Buffer.alloc(filePages * PAGE, 0x5a)
  const buf = Buffer.alloc(bufPages * PAGE)
  const r = rng(seed)
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256)
  for (const run of runs) run.pages.forEach((p, j) => buf.copy(out, (run.at + j) * PAGE, p * PAGE, (p + 1) * PAGE))
  return out
}

function randomRuns(seed: number, bufPages: number, filePages: number): {pages: number[]; at: number}[] {
  const r = rng(seed)
  const runs: {pages: number[]; at: number}[] = []
  for (const len of [1, 1024, 1025, 3000, 7, 64]) {
    const at = Math.floor(r() * (filePages - len))
    runs.push({at, pages: Array.from({length: len}, () => Math.floor(r() * bufPages))})
  }
  return runs
}

describe('FileDevice.writePages', () => {
  let dir: string
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-writepages-'))
  })
  after(() => fs.rmSync(dir, {recursive: true, force: true}))

  it('writes what page-by-page copies give (runs across the 1024-iovec split, pages out of order and repeated)', () => {
    for (const seed of [1, 2, 3]) {
      const runs = randomRuns(seed, 300, 8000)
      assert.ok(viaDevice(dir, 300, 8000, seed, runs).equals(model(300, 8000, seed, runs)), `seed ${seed}`)
    }
  })

  it('refuses a run past the end of the device before writing anything', () => {
    const file = path.join(dir, 'short.img')
    fs.writeFileSync(file, Buffer.alloc(10 * PAGE, 7))
    const dev = FileDevice.open(file, {writable: true})
    try {
      assert.throws(() => dev.writePages(alignedBuffer(4 * PAGE), Int32Array.from([0, 1, 2]), 0, 3, 8 * PAGE), IoError)
    } finally {
      dev.close()
    }
    assert.ok(fs.readFileSync(file).equals(Buffer.alloc(10 * PAGE, 7)))
  })

  it('refuses page numbers outside the buffer (native path)', function () {
    if (!nativeWritePages) this.skip()
    const file = path.join(dir, 'bad.img')
    fs.writeFileSync(file, Buffer.alloc(10 * PAGE))
    const dev = FileDevice.open(file, {writable: true})
    try {
      assert.throws(() => dev.writePages(alignedBuffer(4 * PAGE), Int32Array.from([0, 4]), 0, 2, 0), RangeError)
    } finally {
      dev.close()
    }
  })

  it('refuses arguments of the wrong type with a TypeError, writing nothing (native path)', function () {
    if (!nativeWritePages) this.skip()
    const file = path.join(dir, 'types.img')
    fs.writeFileSync(file, Buffer.alloc(4 * PAGE, 7))
    const fd = fs.openSync(file, 'r+')
    try {
      const call = nativeWritePages as unknown as (...a: unknown[]) => number
      assert.throws(() => call(fd, 0, [1, 2, 3], Int32Array.from([0]), 0, 1), TypeError)
      assert.throws(() => call(fd, 0, new Float64Array(PAGE), Int32Array.from([0]), 0, 1), TypeError)
      assert.throws(() => call(fd, 0, alignedBuffer(PAGE), [0], 0, 1), TypeError)
      assert.throws(() => call(fd, 0, alignedBuffer(PAGE), new Uint32Array(1), 0, 1), TypeError)
    } finally {
      fs.closeSync(fd)
    }
    assert.deepEqual(fs.readFileSync(file), Buffer.alloc(4 * PAGE, 7))
  })

  it('is not offered by wrappers, whose writev must see every write', () => {
    const file = path.join(dir, 'wrap.img')
    fs.writeFileSync(file, Buffer.alloc(PAGE))
    const dev = FileDevice.open(file, {writable: true})
    class Pass extends DeviceWrapper {}
    const w = new Pass(dev)
    assert.equal((w as {writePages?: unknown}).writePages, undefined)
    dev.close()
  })

  it('gives the same bytes without the addon (R5CTL_CRC=js: writev of views)', () => {
    const runs = randomRuns(9, 300, 8000)
    const script = `
      const {FileDevice, alignedBuffer} = await import(${JSON.stringify(path.resolve(here, '../../src/engine/device.js'))})
      const {nativeWritePages} = await import(${JSON.stringify(path.resolve(here, '../../src/engine/checksum.js'))})
      if (nativeWritePages) throw new Error('the addon is in use')
      const {rng} = await import(${JSON.stringify(path.resolve(here, '../helpers/reference.js'))})
      const fs = await import('node:fs')
      const file = ${JSON.stringify(path.join(dir, 'js.img'))}
      fs.writeFileSync(file, Buffer.alloc(8000 * 4096, 0x5a))
      const buf = alignedBuffer(300 * 4096)
      const r = rng(9)
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256)
      const dev = FileDevice.open(file, {writable: true})
      for (const run of ${JSON.stringify(runs)}) dev.writePages(buf, Int32Array.from(run.pages), 0, run.pages.length, run.at * 4096)
      dev.close()
    `
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {env: {...process.env, R5CTL_CRC: 'js'}, encoding: 'utf8'})
    assert.equal(res.status, 0, res.stderr)
    assert.ok(fs.readFileSync(path.join(dir, 'js.img')).equals(model(300, 8000, 9, runs)))
  })
})
