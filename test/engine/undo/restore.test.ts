/**
 * Reading undo files (src/engine/undo/restore.ts): any flipped bit in the header or a record head
 * is refused, never followed; only an unsealed file's torn last record is left out; files of
 * another format version are refused by name.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {MemDevice, type BlockDevice} from '../../../src/engine/device.js'
import {RecordFileRef} from '../../../src/engine/record-file.js'
import {CorruptError, R5Error, RefusedError} from '../../../src/engine/errors.js'
import {HEADER_BYTES, HEAD_BYTES} from '../../../src/engine/undo/format.js'
import {withUndo} from '../../../src/engine/undo/log.js'
import {scanUndoFile} from '../../../src/engine/undo/restore.js'

describe('engine: undo file reader', () => {
  let dir: string
  let good: Buffer
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-undo-read-'))
    const file = path.join(dir, 'good')
    withUndo([new MemDevice('a', 1 << 20), new MemDevice('b', 1 << 20)], new RecordFileRef(file), devs => {
      ;(devs[0] as BlockDevice).write(new Uint8Array(8192).fill(1), 4096)
      ;(devs[1] as BlockDevice).write(new Uint8Array(4096).fill(2), 65536)
    })
    good = fs.readFileSync(file)
  })
  after(() => fs.rmSync(dir, {recursive: true, force: true}))

  const scanOf = (b: Uint8Array) => {
    const f = path.join(dir, 'x')
    fs.writeFileSync(f, b)
    return scanUndoFile(new RecordFileRef(f))
  }

  it('reads the sealed file: two ranges, both with after-checksums', () => {
    const u = scanOf(good)
    assert.equal(u.complete, true)
    assert.deepEqual(
      u.ranges.map(r => [r.device, r.offset, r.length, r.after !== null]),
      [
        [0, 4096, 8192, true],
        [1, 65536, 4096, true],
      ],
    )
    assert.deepEqual(
      u.header.devices.map(d => [d.name, d.size]),
      [
        ['a', 1 << 20],
        ['b', 1 << 20],
      ],
    )
  })

  it('refuses every single-bit flip in the header and in every record head', () => {
    const heads: number[] = []
    for (let pos = HEADER_BYTES; pos < good.length;) {
      heads.push(pos)
      const kind = good.readUInt32LE(pos)
      pos += HEAD_BYTES + (kind === 0x4f444e55 ? good.readUInt32LE(pos + 16) : kind === 0x41444e55 ? 4 : 0)
    }
    assert.equal(heads.length, 5) // two old, two after, one end
    const spots = [...Array.from({length: 64}, (_, i) => i), ...heads.flatMap(h => Array.from({length: HEAD_BYTES}, (_, i) => h + i))]
    for (const at of spots)
      for (let bit = 0; bit < 8; bit++) {
        const b = Buffer.from(good)
        b[at] ^= 1 << bit
        assert.throws(
          () => {
            const u = scanOf(b)
            // only the end record may go missing, which leaves the file incomplete: refused without --force
            if (!u.complete && u.ranges.length === 2) throw new RefusedError('incomplete')
          },
          (e: unknown) => e instanceof CorruptError || e instanceof RefusedError,
          `bit ${bit} of byte ${at} was accepted`,
        )
      }
  })

  it('leaves out the torn last record of an unsealed file, but refuses damage before it', () => {
    const oldEnd = HEADER_BYTES + 2 * HEAD_BYTES + 8192 + 4096
    const torn = good.subarray(0, oldEnd - 100)
    const u = scanOf(torn)
    assert.equal(u.complete, false)
    assert.deepEqual(
      u.ranges.map(r => r.offset),
      [4096],
    )
    const zeroTail = scanOf(Buffer.concat([good.subarray(0, oldEnd - 4096 - HEAD_BYTES), Buffer.alloc(8192)]))
    assert.deepEqual([zeroTail.complete, zeroTail.ranges.map(r => r.offset)], [false, [4096]], 'a zero tail is what a host crash leaves')
    const damaged = Buffer.from(good.subarray(0, oldEnd))
    damaged[HEADER_BYTES + HEAD_BYTES + 10] ^= 1 // the first record's old bytes
    assert.throws(() => scanOf(damaged), CorruptError)
  })

  it('refuses a version 1 file by its version', () => {
    const b = Buffer.from(good)
    b.writeUInt32LE(1, 8)
    assert.throws(
      () => scanOf(b),
      (e: R5Error) => e instanceof RefusedError && /version 1/.test(e.message),
    )
  })
})
