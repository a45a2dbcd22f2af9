/**
 * The copy-on-write overlay (serve/overlay.ts): reads show the writes over the base, partial blocks
 * are completed from the base, writes survive a reopen, a file of another array or size or format is
 * refused untouched, and the base is only ever read. A plain Buffer model says what every byte must be.
 */
import assert from 'node:assert/strict'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {R5Error, RefusedError, UsageError} from '../../src/engine/errors.js'
import type {ExportSource} from '../../src/serve/export.js'
import {BLOCK, decodeOverlayHeader, OVERLAY_MAGIC, openOverlay, overlayLayout} from '../../src/serve/overlay.js'

const MiB = 1024 * 1024
const ID = {arrayUuid: '8c4a2f1e:33b0d9aa:5e7c1f02:9d61ab47', view: 'members' as const}

/** a base whose bytes come from its offsets; it has nothing but size and read, and counts reads */
function patternBase(size: number): ExportSource & {reads: number} {
  const base = {
    size,
    reads: 0,
    read(offset: number, length: number): Uint8Array {
      base.reads++
      assert.ok(offset >= 0 && length >= 0 && offset + length <= size, `base read [${offset}, +${length}) out of range`)
      return pattern(offset, length)
    },
  }
  return Object.seal(base)
}

function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) {
    const x = offset + i
    b[i] = (x * 7 + Math.floor(x / 4096) * 13) & 0xff
  }
  return b
}

function seeded(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('serve overlay: copy-on-write file over a read-only export', function () {
  this.timeout(120_000)
  let dir = ''
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-overlay-'))))
  afterEach(() => fs.rmSync(dir, {recursive: true, force: true}))

  it('a new overlay reads as the base; its header names the array and size; the file is sparse and 0600', function () {
    const base = patternBase(4 * MiB)
    const file = path.join(dir, 'o.ovl')
    const o = openOverlay(file, base, ID)
    assert.deepEqual(Buffer.from(o.read(0, 4 * MiB)), pattern(0, 4 * MiB))
    o.close()
    const st = fs.statSync(file)
    assert.equal(st.mode & 0o777, 0o600)
    assert.equal(st.size, overlayLayout(4 * MiB).dataOffset + 4 * MiB)
    assert.ok(st.blocks * 512 < 64 * 1024, `allocated ${st.blocks * 512} bytes for an empty overlay`)
    const h = decodeOverlayHeader(fs.readFileSync(file).subarray(0, BLOCK))
    if (typeof h === 'string') assert.fail(h)
    assert.equal(h.arrayUuid, ID.arrayUuid)
    assert.equal(h.size, 4 * MiB)
    assert.equal(h.blockSize, 4096)
  })

  it('partial-block, block-spanning and whole-block writes read back over the base; untouched bytes stay the base', function () {
    const size = 2 * MiB
    const base = patternBase(size)
    const model = pattern(0, size)
    const o = openOverlay(path.join(dir, 'o.ovl'), base, ID)
    const writes: [number, number][] = [
      [100, 10], // inside one block
      [4000, 9000], // partial head, a whole block, partial tail
      [8192, 8192], // two whole blocks
      [size - 5, 5], // the last bytes of the export
      [0, 1], // the first byte
      [4095, 2], // across one boundary
    ]
    writes.forEach(([off, len], i) => {
      const data = Buffer.alloc(len, 0xa0 + i)
      o.write(off, data)
      data.copy(model, off)
      assert.deepEqual(Buffer.from(o.read(0, size)), model, `after write ${i} at ${off}+${len}`)
    })
    // reads that start and end inside blocks see the same
    assert.deepEqual(Buffer.from(o.read(4090, 20_000)), model.subarray(4090, 24_090))
    assert.deepEqual(Buffer.from(o.read(size - 3, 3)), model.subarray(size - 3))
    assert.equal(o.read(12, 0).length, 0)
    o.close()
  })

  it('writes survive close and reopen; without a flush the bitmap is not on disk (data before bitmap)', function () {
    const size = 1 * MiB
    const file = path.join(dir, 'o.ovl')
    const o = openOverlay(file, patternBase(size), ID)
    o.write(5000, Buffer.alloc(4000, 0xab))
    const bitmapAt = overlayLayout(size).bitmapOffset
    const onDisk = () => fs.readFileSync(file).subarray(bitmapAt, bitmapAt + 8)
    assert.equal(onDisk().readUInt8(0), 0, 'a bitmap bit reached the file before a flush')
    o.flush()
    assert.equal(onDisk().readUInt8(0), 0b0110, 'blocks 1 and 2 are held after the flush')
    o.close()
    const again = openOverlay(file, patternBase(size), ID)
    const want = pattern(0, size)
    want.fill(0xab, 5000, 9000)
    assert.deepEqual(Buffer.from(again.read(0, size)), want)
    assert.equal(again.heldBlocks(), 2)
    again.close()
  })

  it('a second open of the same overlay is refused while the first holds it', function () {
    const file = path.join(dir, 'o.ovl')
    const o = openOverlay(file, patternBase(MiB), ID)
    assert.throws(() => openOverlay(file, patternBase(MiB), ID), RefusedError)
    o.close()
    openOverlay(file, patternBase(MiB), ID).close()
  })

  it('an overlay of another array, of this array before it changed, another size, another format, or a file that is not one is refused and left as it was', function () {
    const file = path.join(dir, 'o.ovl')
    const o = openOverlay(file, patternBase(MiB), ID)
    o.write(0, Buffer.alloc(4096, 1))
    o.close()
    const before = fs.readFileSync(file)
    assert.throws(
      () => openOverlay(file, patternBase(MiB), {...ID, arrayUuid: 'ffffffff:ffffffff:ffffffff:ffffffff'}),
      (e: unknown) => {
        assert.ok(e instanceof UsageError)
        assert.match(e.message, /holds writes to array 8c4a2f1e.*not to array ffffffff/)
        return true
      },
    )
    assert.throws(() => openOverlay(file, patternBase(2 * MiB), ID), /made for an export of 1048576 bytes; this export has 2097152/)
    assert.throws(() => openOverlay(file, patternBase(MiB), {...ID, events: 7n}), /at events 0; the array is at events 7 now/)
    const bumped = Buffer.from(before)
    bumped.writeUInt32LE(9, 8)
    const other = path.join(dir, 'v9.ovl')
    fs.writeFileSync(other, bumped)
    assert.throws(() => openOverlay(other, patternBase(MiB), ID), UsageError)
    const junk = path.join(dir, 'junk.img')
    fs.writeFileSync(junk, crypto.randomBytes(8192))
    const junkBefore = fs.readFileSync(junk)
    assert.throws(() => openOverlay(junk, patternBase(MiB), ID), new RegExp(`not an r5ctl overlay file \\(no ${OVERLAY_MAGIC} magic\\)`))
    assert.deepEqual(fs.readFileSync(junk), junkBefore)
    const cut = path.join(dir, 'cut.ovl')
    fs.writeFileSync(cut, before.subarray(0, 3 * BLOCK))
    assert.throws(() => openOverlay(cut, patternBase(MiB), ID), /shorter than its header says/)
    assert.equal(fs.statSync(cut).size, 3 * BLOCK)
    assert.deepEqual(fs.readFileSync(file), before)
  })

  it('an overlay made over the replayed view is refused over the members as they are, and the other way round (its partial blocks were completed from the other bytes)', function () {
    const file = path.join(dir, 'o.ovl')
    const o = openOverlay(file, patternBase(MiB), {...ID, view: 'replayed'})
    o.write(10, Buffer.alloc(20, 7))
    o.close()
    const before = fs.readFileSync(file)
    assert.throws(
      () => openOverlay(file, patternBase(MiB), {...ID, view: 'members'}),
      /made over the replayed view.*served now are the members as they are/,
    )
    assert.deepEqual(fs.readFileSync(file), before)
    openOverlay(file, patternBase(MiB), {...ID, view: 'replayed'}).close()
    const m = path.join(dir, 'm.ovl')
    openOverlay(m, patternBase(MiB), {...ID, view: 'members'}).close()
    assert.throws(
      () => openOverlay(m, patternBase(MiB), {...ID, view: 'replayed'}),
      /made over the members as they are.*served now is the replayed view/,
    )
  })

  it('an overlay that cannot be made as large as the export leaves the file as it was (no stub refused later as cut), and says which file', function () {
    // past what any file system lets a file grow to: ftruncate fails after the header is written
    const huge = patternBase(2 ** 52)
    const fresh = path.join(dir, 'fresh.ovl')
    assert.throws(
      () => openOverlay(fresh, huge, ID),
      (e: unknown) => e instanceof R5Error && e.device === fresh,
    )
    assert.equal(fs.existsSync(fresh), false, 'a file that was not there is not left behind')
    const empty = path.join(dir, 'was-empty.ovl')
    fs.writeFileSync(empty, '')
    assert.throws(() => openOverlay(empty, huge, ID), R5Error)
    assert.equal(fs.statSync(empty).size, 0, 'an empty file stays empty')
  })

  it('an existing empty file becomes a new overlay, made 0600 like a new one; out-of-range access throws', function () {
    const file = path.join(dir, 'empty.ovl')
    fs.writeFileSync(file, '')
    fs.chmodSync(file, 0o666)
    const o = openOverlay(file, patternBase(MiB), ID)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.throws(() => o.read(MiB - 4095, 4096), RangeError)
    assert.throws(() => o.write(MiB, Buffer.alloc(1)), RangeError)
    assert.throws(() => o.write(-1, Buffer.alloc(1)), RangeError)
    o.close()
    assert.ok(typeof decodeOverlayHeader(fs.readFileSync(file).subarray(0, BLOCK)) !== 'string')
  })

  it('random writes over a 40 GiB export (more bitmap pages than are kept in memory) match a model, before and after reopen', function () {
    const size = 40 * 1024 * MiB
    const file = path.join(dir, 'big.ovl')
    const rnd = seeded(2026)
    const base = patternBase(size)
    let o = openOverlay(file, base, ID)
    const model = new Map<number, Buffer>() // block -> bytes
    const blockOf = (b: number) => model.get(b) ?? pattern(b * BLOCK, BLOCK)
    for (let i = 0; i < 600; i++) {
      // spread over 320 bitmap pages, so pages are evicted and more than 256 become dirty
      const off = Math.floor(rnd() * (size - 3 * BLOCK))
      const len = 1 + Math.floor(rnd() * 2 * BLOCK)
      const data = crypto.randomBytes(len)
      o.write(off, data)
      for (let b = Math.floor(off / BLOCK); b * BLOCK < off + len; b++) {
        const blk = Buffer.from(blockOf(b))
        const from = Math.max(off, b * BLOCK)
        const to = Math.min(off + len, (b + 1) * BLOCK)
        data.copy(blk, from - b * BLOCK, from - off, to - off)
        model.set(b, blk)
      }
    }
    const verify = () => {
      for (const [b, want] of model) assert.deepEqual(Buffer.from(o.read(b * BLOCK, BLOCK)), want, `block ${b}`)
      assert.deepEqual(Buffer.from(o.read(size - 8192, 8192)), Buffer.concat([blockOf(size / BLOCK - 2), blockOf(size / BLOCK - 1)]))
    }
    verify()
    // counted with bitmap pages changed since the last flush still only in memory
    assert.equal(o.heldBlocks(), model.size)
    o.close()
    o = openOverlay(file, base, ID)
    verify()
    assert.equal(o.heldBlocks(), model.size)
    o.close()
    assert.ok(fs.statSync(file).blocks * 512 < 64 * MiB, 'the overlay file stays sparse')
  })
})
