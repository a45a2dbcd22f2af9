/**
 * Writing undo files (src/engine/undo/log.ts): old bytes durable before the write they guard, one
 * fdatasync per device write request, a failing undo file stops the run, no stub files, and the
 * seal records what the run left.
 */
import assert from 'node:assert/strict'
import fsDefault, * as fs from 'node:fs'
import {syncBuiltinESMExports} from 'node:module'
import * as os from 'node:os'
import * as path from 'node:path'
import {crc32c} from '../../../src/engine/checksum.js'
import {FileRef, MemDevice, type BlockDevice} from '../../../src/engine/device.js'
import {RecordFileRef} from '../../../src/engine/record-file.js'
import {IoError, RefusedError} from '../../../src/engine/errors.js'
import {withUndo} from '../../../src/engine/undo/log.js'
import {scanUndoFile} from '../../../src/engine/undo/restore.js'

/** Replace one fs function for the length of `fn` (node:fs namespace imports follow syncBuiltinESMExports). */
function patched<K extends 'fdatasyncSync' | 'writevSync', T>(name: K, impl: (typeof fsDefault)[K], fn: () => T): T {
  const orig = fsDefault[name]
  fsDefault[name] = impl
  syncBuiltinESMExports()
  try {
    return fn()
  } finally {
    fsDefault[name] = orig
    syncBuiltinESMExports()
  }
}

function filled(name: string, size: number, seed: number): MemDevice {
  const d = new MemDevice(name, size)
  for (let i = 0; i < size; i++) d.data[i] = (i * 31 + seed) & 0xff
  return d
}

describe('engine: undo log', () => {
  let dir: string
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-undo-log-'))
  })
  afterEach(() => fs.rmSync(dir, {recursive: true, force: true}))

  it('saves the old bytes, synced once per write request, before the device write', () => {
    const file = path.join(dir, 'u')
    const dev = filled('a', 64 << 10, 1)
    const before = Uint8Array.from(dev.data)
    let syncs = 0
    const seen: {syncs: number; ranges: number}[] = []
    const spy = Object.create(dev) as BlockDevice
    spy.writev = (bufs, offset) => {
      seen.push({syncs, ranges: scanUndoFile(new RecordFileRef(file)).ranges.length})
      dev.writev(bufs, offset)
    }
    const orig = fsDefault.fdatasyncSync
    patched(
      'fdatasyncSync',
      fd => {
        syncs++
        orig(fd)
      },
      () =>
        withUndo([spy], new RecordFileRef(file), ([s]) => {
          const d = s as BlockDevice
          d.write(new Uint8Array(4096).fill(7), 8192) // block 2
          const at = syncs
          d.write(new Uint8Array(5 * 4096).fill(8), 0) // blocks 0-4: two runs around the saved block 2
          assert.equal(syncs - at, 1, 'one fdatasync for the two records of one write')
        }),
    )
    assert.deepEqual(
      seen.map(s => s.ranges),
      [1, 3],
      'the records were on disk before each device write',
    )
    const u = scanUndoFile(new RecordFileRef(file))
    assert.equal(u.complete, true)
    assert.deepEqual(
      u.ranges.map(r => [r.offset, r.length]),
      [
        [8192, 4096],
        [0, 8192],
        [12288, 8192],
      ],
    )
    const saved = fs.readFileSync(file)
    for (const r of u.ranges) {
      assert.deepEqual(saved.subarray(r.dataPos, r.dataPos + r.length), Buffer.from(before.subarray(r.offset, r.offset + r.length)))
      assert.equal(r.after, crc32c(dev.data.subarray(r.offset, r.offset + r.length)) >>> 0, 'after-checksum of what the run left')
    }
  })

  it('a failing undo file write stops the run before the device write and names the file', () => {
    const file = path.join(dir, 'u')
    const dev = filled('a', 64 << 10, 2)
    const before = Uint8Array.from(dev.data)
    let writes = 0
    const orig = fsDefault.writevSync
    patched(
      'writevSync',
      ((fd: number, bufs: any, pos?: number) => {
        if (++writes > 2) throw Object.assign(new Error('ENOSPC: no space left on device'), {code: 'ENOSPC'})
        return orig(fd, bufs, pos)
      }) as typeof orig,
      () =>
        assert.throws(
          () =>
            withUndo([dev], new RecordFileRef(file), ([s]) => {
              const d = s as BlockDevice
              d.write(new Uint8Array(4096).fill(1), 0) // header was write 1, this record write 2
              try {
                d.write(new Uint8Array(4096).fill(2), 4096)
              } catch {
                /* an operation that swallows the error */
              }
              d.write(new Uint8Array(4096).fill(3), 4096 * 3)
            }),
          IoError,
        ),
    )
    assert.deepEqual(dev.data.subarray(4096), before.subarray(4096), 'a device write went ahead without its old bytes saved')
    const u = scanUndoFile(new RecordFileRef(file))
    assert.equal(u.complete, false)
    assert.deepEqual(
      u.ranges.map(r => r.offset),
      [0],
    )
  })

  it('names the undo file in the error', () => {
    const file = path.join(dir, 'u')
    const orig = fsDefault.writevSync
    let writes = 0
    try {
      patched(
        'writevSync',
        ((fd: number, bufs: any, pos?: number) => {
          if (++writes > 1) throw Object.assign(new Error('EFBIG: file too large'), {code: 'EFBIG'})
          return orig(fd, bufs, pos)
        }) as typeof orig,
        () => withUndo([filled('a', 8192, 3)], new RecordFileRef(file), ([s]) => (s as BlockDevice).write(new Uint8Array(4096), 0)),
      )
      assert.fail('no error')
    } catch (error) {
      assert.ok(error instanceof IoError)
      assert.equal(error.device, file)
      assert.match(error.message, /EFBIG/)
    }
  })

  it('a seal that cannot be written fails the run (exit 1) and leaves the file unsealed but usable', () => {
    const file = path.join(dir, 'u')
    const dev = filled('a', 64 << 10, 5)
    const orig = fsDefault.writevSync
    let writes = 0
    assert.throws(
      () =>
        patched(
          'writevSync',
          ((fd: number, bufs: any, pos?: number) => {
            if (++writes > 3) throw Object.assign(new Error('ENOSPC: no space left on device'), {code: 'ENOSPC'})
            return orig(fd, bufs, pos)
          }) as typeof orig,
          () =>
            withUndo([dev], new RecordFileRef(file), ([s]) => {
              ;(s as BlockDevice).write(new Uint8Array(4096).fill(1), 0)
              ;(s as BlockDevice).write(new Uint8Array(4096).fill(1), 8192)
            }),
        ),
      (e: IoError) => e instanceof IoError && e.device === file && /finished/.test(e.message),
    )
    const u = scanUndoFile(new RecordFileRef(file))
    assert.equal(u.complete, false)
    assert.deepEqual(
      u.ranges.map(r => r.offset),
      [0, 8192],
    )
  })

  it('a run that fails before any device write leaves no undo file; one that wrote keeps its records', () => {
    const file = path.join(dir, 'u')
    assert.throws(
      () =>
        withUndo([filled('a', 8192, 4)], new RecordFileRef(file), () => {
          throw new RefusedError('no')
        }),
      RefusedError,
    )
    assert.equal(fs.existsSync(file), false)
    assert.throws(
      () =>
        withUndo([filled('a', 8192, 4)], new RecordFileRef(file), ([s]) => {
          ;(s as BlockDevice).write(new Uint8Array(4096), 0)
          throw new RefusedError('no')
        }),
      RefusedError,
    )
    assert.equal(scanUndoFile(new RecordFileRef(file)).ranges.length, 1)
  })

  it('refuses an undo file that is one of the devices, and an existing file', () => {
    const img = path.join(dir, 'a.img')
    fs.writeFileSync(img, Buffer.alloc(8192))
    assert.throws(
      () => withUndo([new FileRef(img)], new RecordFileRef(path.join(dir, '.', 'a.img')), () => 0),
      (e: RefusedError) => e.code === 'undo-is-device',
    )
    assert.throws(
      () => withUndo([new FileRef(path.join(dir, 'b.img'))], new RecordFileRef(path.join(dir, 'b.img')), () => 0),
      (e: RefusedError) => e.code === 'undo-is-device',
    )
    assert.deepEqual(fs.readdirSync(dir), ['a.img'])
  })
})
