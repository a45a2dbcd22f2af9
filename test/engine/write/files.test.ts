/**
 * writeArray on plain files (FileDevice) against the same writes on in-memory twins of the array:
 * byte-identical members and journal over workloads with full, reconstruct-write and
 * read-modify-write stripes in many small batches, RAID4/5/6, every member page through writev; and
 * a member whose write fails is named in the IoError.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {FileDevice, MemDevice, alignedBuffer} from '../../../src/engine/device.js'
import {IoError} from '../../../src/engine/errors.js'
import {createArray, writeData} from '../../../src/engine/index.js'
import {rng} from '../../helpers/reference.js'

const PAGE = 4096

describe('engine write: writeArray on image files', function () {
  this.timeout(120000)
  let dir: string
  before(() => {
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

  /** the same array twice: in memory and as files */
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
    it(`${name}: writeArray on files gives the bytes of the in-memory path (full, rcw and rmw stripes, 64 KiB batches)`, () => {
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
      assert.ok(writevs > 0, 'member pages go through writev')
      // byte for byte, except the superblocks' update times
      mem.forEach((d, i) => {
        const got = fs.readFileSync(files[i])
        assert.ok(got.subarray(0, 4096).equals(Buffer.from(d.data.subarray(0, 4096))), `${files[i]}: before the superblock`)
        assert.ok(got.subarray(8192).equals(Buffer.from(d.data.subarray(8192))), `${files[i]}: after the superblock`)
      })
    })
  }

  it('names the member whose write fails', () => {
    const {files} = twins('fail', 5, 4, undefined)
    const fdevs = files.map(f => FileDevice.open(f, {writable: true, flush: false}))
    const ro = fs.openSync(files[3], 'r')
    fdevs[3].writev = (bufs, off) => void fs.writevSync(ro, bufs, off) // a descriptor the write is refused on (EBADF)
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
