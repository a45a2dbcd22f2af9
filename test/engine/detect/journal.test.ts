/**
 * detect/journal.ts and detect/sample.ts on their own: the checksum seed solved back from a meta
 * block (checked against the crc-32 package's CRC32C, not the engine's), a journal found by its meta
 * blocks with its data offset, the records' agreement with a chunk size, and the sample's bound.
 */
import assert from 'node:assert/strict'
import {createRequire} from 'node:module'
import {MemDevice} from '../../../src/engine/device.js'
import {findJournal, journalAgreement, solveSeed} from '../../../src/engine/detect/journal.js'
import {readSample, sampleWindows} from '../../../src/engine/detect/sample.js'
import {pseudoRandom} from '../../helpers/model.js'

const CRC32C = createRequire(import.meta.url)('crc-32/crc32c') as {buf: (b: Uint8Array, seed?: number) => number}
/** the kernel's crc32c_le(seed, buf): no inversion in or out, from the standard CRC32C */
const crcRaw = (seed: number, buf: Uint8Array) => ~CRC32C.buf(buf, ~seed) >>> 0

/** A meta block by hand (struct r5l_meta_block): magic, version 1, meta_size 32, seq, position, checksum with `seed`. */
function metaBlock(seed: number, seq: number, position: number): Buffer {
  const b = Buffer.alloc(4096)
  b.writeUInt32LE(0x6433c509, 0)
  b.writeUInt8(1, 8)
  b.writeUInt32LE(32, 12)
  b.writeBigUInt64LE(BigInt(seq), 16)
  b.writeBigUInt64LE(BigInt(position), 24)
  b.writeUInt32LE(crcRaw(seed, b), 4)
  return b
}

describe('detect: journal meta blocks and the sample', function () {
  it('solveSeed gives back the seed a page was checksummed with', function () {
    for (const seed of [0, 1, 0xffffffff, 0x731b8c7e, 0x80000000, 0x12345678]) {
      const page = pseudoRandom(4096, seed % 1000)
      assert.equal(solveSeed(page, crcRaw(seed, page)), seed)
    }
  })

  it('findJournal: the data offset from where blocks sit and what position they state, the seed most blocks agree on', function () {
    const dev = new MemDevice('j', 8 << 20)
    const seed = 0xc0ffee11
    // a log whose data area starts at sector 4096 (2 MiB), blocks at log sectors 0, 8, 1000 and one of another array
    for (const [pos, s] of [
      [0, seed],
      [8, seed],
      [1000, seed],
      [2000, 0x1234],
    ] as const)
      dev.data.set(metaBlock(s, 7 + pos, pos), (4096 + pos) * 512)
    // a magic at a place whose position cannot be (the log would start before sector 16): not counted
    dev.data.set(metaBlock(seed, 1, 4096), 4096 * 4)
    const f = findJournal(dev)
    assert.ok(f)
    assert.equal(f.metaBlocks, 4)
    assert.equal(f.dataOffsetSector, 4096)
    assert.equal(f.seed, seed)
    assert.equal(f.seedAgreeing, 3)
    assert.equal(findJournal(new MemDevice('m', 4 << 20, pseudoRandom(4 << 20, 3))), null)
  })

  it("journalAgreement: a data record's stripe is among its block's parity records only under the right chunk and data disks", function () {
    // chunk 128 sectors, 3 data disks: array sector 1000 is chunk 7, row 2, offset 104 -> stripe sector 360
    const records = [{data: [1000, 1008], parity: [360, 368]}]
    assert.deepEqual(journalAgreement(records, 128, 3), [2, 2])
    assert.deepEqual(journalAgreement(records, 256, 3), [0, 2])
    assert.deepEqual(journalAgreement(records, 128, 4), [0, 2])
  })

  it('the sample stays within its memory bound whatever the size and member count', function () {
    for (const [pages, n] of [
      [1e9, 4],
      [1e9, 16],
      [1000, 3],
      [5e6, 32],
    ]) {
      const w = sampleWindows(pages, n)
      assert.ok(w.length <= 16)
      for (const [first, k] of w) {
        assert.ok(first >= 0 && first + k <= pages)
        assert.ok(k * 4096 * n <= 24 << 20, `${k} pages × ${n} members`)
      }
    }
    assert.deepEqual(sampleWindows(1000, 3), [[0, 1000]])
  })

  it('a member too small for one page gives an empty sample, not an error', function () {
    const s = readSample([new MemDevice('a', 0), new MemDevice('b', 4096)], 0)
    assert.equal(s.stripes, 0)
  })
})
