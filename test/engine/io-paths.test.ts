/**
 * The write-through and read paths on in-memory devices, checked against an independent model of
 * the array's bytes and against the journal's own records.
 */
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {MemDevice, type BlockDevice} from '../../src/engine/device.js'
import {createArray, writeData, readData, examineJournal, dumpMeta, openArray, arraySizeBytes, reclaimArray} from '../../src/engine/index.js'
import {scanLog} from '../../src/engine/journal/scan.js'
import {PAYLOAD_DATA, PAYLOAD_PARITY} from '../../src/engine/format/meta.js'
import {computeP} from '../../src/engine/parity.js'

interface Rig {
  devs: MemDevice[]
  members: MemDevice[]
  journal: MemDevice
  size: number
  model: Buffer
}

function rig(level: 4 | 5 | 6, n: number, chunk: number, memberBytes: number, journalBytes: number, layout?: number): Rig {
  const members = Array.from({length: n}, (_, i) => new MemDevice(`m${i}`, memberBytes))
  const journal = new MemDevice('journal', journalBytes)
  const res = createArray({level, raidDevices: n, chunkBytes: chunk, layout, members, journal})
  return {devs: [journal, ...members], members, journal, size: res.arraySizeBytes, model: Buffer.alloc(res.arraySizeBytes)}
}

function write(r: Rig, offset: number, data: Buffer, devs: BlockDevice[] = r.devs) {
  let p = 0
  const res = writeData(devs, offset, data.length, buf => {
    const k = Math.min(buf.length, data.length - p)
    data.copy(buf, 0, p, p + k)
    p += k
    return k
  })
  data.copy(r.model, offset)
  return res
}

function readAll(r: Rig, devs: BlockDevice[] = r.devs, offset = 0, length?: number): Buffer {
  const parts: Buffer[] = []
  readData(
    devs,
    offset,
    length,
    views => {
      for (const v of views) parts.push(Buffer.from(v))
    },
    {},
  )
  return Buffer.concat(parts)
}

function pairs(n: number): number[][] {
  const out: number[][] = []
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push([i, j])
  return out
}

const configs: {level: 4 | 5 | 6; n: number; layout?: number; name: string}[] = [
  {level: 4, n: 3, name: 'raid4 3 disks'},
  {level: 5, n: 4, name: 'raid5 left-symmetric 4 disks'},
  {level: 5, n: 5, layout: 0, name: 'raid5 left-asymmetric 5 disks'},
  {level: 5, n: 4, layout: 1, name: 'raid5 right-asymmetric 4 disks'},
  {level: 5, n: 4, layout: 3, name: 'raid5 right-symmetric 4 disks'},
  {level: 5, n: 4, layout: 4, name: 'raid5 parity-first 4 disks'},
  {level: 5, n: 8, name: 'raid5 left-symmetric 8 disks (rmw)'},
  {level: 6, n: 5, name: 'raid6 left-symmetric 5 disks'},
  {level: 6, n: 6, layout: 1, name: 'raid6 right-asymmetric 6 disks'},
  {level: 6, n: 6, layout: 8, name: 'raid6 ddf-zero-restart 6 disks'},
  {level: 6, n: 5, layout: 18, name: 'raid6 left-symmetric-6 5 disks'},
]

describe('write-through and read paths (in-memory devices)', () => {
  for (const c of configs) {
    it(`${c.name}: reads return what was written, with members left out too`, () => {
      const r = rig(c.level, c.n, 16384, 3 << 20, 2 << 20, c.layout)
      const D = c.level === 6 ? c.n - 2 : c.n - 1
      const row = D * 16384
      // full rows, a single page, partial stripes, an unaligned run, an overwrite, a non-page tail
      write(r, 0, randomBytes(2 * row))
      write(r, row * 3 + 4096, randomBytes(4096))
      write(r, row * 5 + 8192, randomBytes(row + 12288))
      write(r, 4096, randomBytes(8192))
      write(r, row * 9, randomBytes(5000))
      write(r, r.size - 3 * 4096, randomBytes(3 * 4096))
      assert.ok(readAll(r).equals(r.model), 'full read')
      for (let m = 0; m < c.n; m++) {
        const devs = r.devs.filter(d => d !== r.members[m])
        assert.ok(readAll(r, devs).equals(r.model), `read without member ${m}`)
      }
      if (c.level === 6) {
        for (const [a, b] of pairs(c.n)) {
          const devs = r.devs.filter(d => d !== r.members[a] && d !== r.members[b])
          assert.ok(readAll(r, devs).equals(r.model), `read without members ${a},${b}`)
        }
      }
      const j = examineJournal(r.devs)
      assert.equal(j.state, 'clean')
      assert.equal(j.metaBlocks, 1)
    })
  }

  it('read of a sub-range returns that slice of the model', () => {
    const r = rig(5, 4, 65536, 4 << 20, 2 << 20)
    write(r, 0, randomBytes(3 << 20))
    for (const [o, l] of [
      [0, 1],
      [4096, 100000],
      [65536 * 3 - 4096, 8192],
      [1 << 20, 1 << 20],
    ]) {
      assert.ok(readAll(r, r.devs, o, l).equals(r.model.subarray(o, o + l)), `${o}+${l}`)
    }
  })

  it('picks read-modify-write when it reads less, reconstruct-write otherwise, and both give the same parity', () => {
    const r = rig(5, 8, 16384, 2 << 20, 2 << 20)
    write(r, 0, randomBytes(7 * 16384))
    const one = write(r, 4096 * 5, randomBytes(4096)) // 1 page of 7: rmw reads 2, rcw reads 6
    assert.equal(one.rmwStripes, 1)
    assert.equal(one.rcwStripes, 0)
    const six = write(r, 16384 * 7, randomBytes(6 * 16384)) // 6 pages of 7 per stripe: rcw reads 1
    assert.equal(six.rcwStripes, 4)
    assert.equal(six.rmwStripes, 0)
    for (let m = 0; m < 8; m++)
      assert.ok(
        readAll(
          r,
          r.devs.filter(d => d !== r.members[m]),
        ).equals(r.model),
        `without ${m}`,
      )
  })

  it('every logged page is the data or parity the members received, at the location the payload names', () => {
    const r = rig(5, 4, 16384, 2 << 20, 4 << 20)
    const before = examineJournal(r.devs)
    write(r, 0, randomBytes(300 * 1024))
    const arr = openArray(r.devs, {writable: false})
    try {
      let units = 0
      let lastSeq: bigint | null = null
      for (const u of scanLog(arr.ring!, arr, before.headSector, {onStop: () => {}})) {
        if (lastSeq !== null) assert.equal(u.seq, lastSeq + 1n)
        lastSeq = u.seq
        assert.ok(u.allPagesOk)
        let k = 0
        const dataPages: Buffer[] = []
        for (const p of u.meta.payloads) {
          if (p.type === PAYLOAD_DATA) {
            const page = Buffer.from(u.data.subarray(k * 4096, (k + 1) * 4096))
            const off = Number(p.location) * 512
            assert.ok(page.equals(r.model.subarray(off, off + 4096)), `data page for array sector ${p.location}`)
            dataPages.push(page)
            k++
          } else if (p.type === PAYLOAD_PARITY) {
            const parity = u.data.subarray(k * 4096, (k + 1) * 4096)
            // the stripe is full here (300K = whole rows and a partial one); parity = xor of the
            // member pages at the stripe sector except the parity member itself
            const sector = Number(p.location)
            const pages = r.members.map(m => m.data.subarray(2048 * 512 + sector * 512, 2048 * 512 + sector * 512 + 4096))
            const pm = pages.findIndex(pg => Buffer.from(pg).equals(Buffer.from(parity)))
            assert.ok(pm >= 0, 'logged parity is on a member')
            const xor = new Uint8Array(4096)
            computeP(
              pages.filter((_, i) => i !== pm),
              xor,
            )
            assert.ok(Buffer.from(xor).equals(Buffer.from(parity)), 'logged parity is the xor of the data')
            k++
            dataPages.length = 0
          }
        }
        units++
      }
      assert.ok(units >= 2)
    } finally {
      arr.close()
    }
  })

  it('a write larger than the journal checkpoints, wraps the ring and leaves a clean log', () => {
    const r = rig(6, 5, 16384, 4 << 20, 2 << 20) // journal data area of 1 MiB
    const j0 = examineJournal(r.devs)
    const res = write(r, 0, randomBytes(3 << 20))
    assert.ok(res.checkpoints >= 2, `checkpoints ${res.checkpoints}`)
    assert.ok(res.journalBytes > j0.sizeBytes, 'wrote more log than the ring holds')
    const j = examineJournal(r.devs)
    assert.equal(j.state, 'clean')
    assert.equal(BigInt(j.tailSeq!), res.lastSeq)
    assert.ok(readAll(r).equals(r.model))
    for (const [a, b] of pairs(5))
      assert.ok(
        readAll(
          r,
          r.devs.filter(d => d !== r.members[a] && d !== r.members[b]),
        ).equals(r.model),
      )
    // consecutive writes continue the seq and keep the log valid
    const res2 = write(r, 1 << 20, randomBytes(512 * 1024))
    assert.ok(res2.lastSeq > res.lastSeq)
    assert.equal(examineJournal(r.devs).state, 'clean')
    assert.equal(dumpMeta(r.devs, {}).mismatches, 0)
  })

  it('refuses out-of-range and unaligned writes before touching any device', () => {
    const r = rig(5, 4, 16384, 2 << 20, 2 << 20)
    const snap = r.devs.map(d => Buffer.from(d.data))
    assert.throws(() => write(r, 4095, randomBytes(4096)), /multiple of 4096/)
    assert.throws(() => write(r, r.size - 4096, randomBytes(8192)), /beyond the end/)
    r.devs.forEach((d, i) => assert.ok(Buffer.from(d.data).equals(snap[i])))
  })

  it('array size follows the member data size and level', () => {
    const r = rig(6, 6, 65536, 8 << 20, 2 << 20)
    const arr = openArray(r.devs, {writable: false})
    // (8 MiB - 1 MiB data offset) rounded down to 64K chunks, times 4 data disks
    assert.equal(arraySizeBytes(arr), Math.floor(((8 << 20) - (1 << 20)) / 65536) * 65536 * 4)
    arr.close()
  })

  for (const mode of ['write-through', 'write-back'] as const) {
    it(`${mode} with endAtShortInput ends where the input ends, inside a row and a page, keeping the bytes after it`, () => {
      for (const c of [configs[1], configs[7]]) {
        const r = rig(c.level, c.n, 16384, 3 << 20, 2 << 20, c.layout)
        const D = c.level === 6 ? c.n - 2 : c.n - 1
        write(r, 0, randomBytes(r.size)) // a background that must survive after the input's end
        for (const [offset, bytes] of [
          [4096, D * 16384 * 3 + 5000],
          [8192, 0],
          [D * 16384 * 5, 4096 * 3],
          [12288, 100],
        ]) {
          const data = randomBytes(bytes)
          let p = 0
          const res = writeData(
            r.devs,
            offset,
            undefined,
            buf => {
              const k = Math.min(buf.length, data.length - p)
              data.copy(buf, 0, p, p + k)
              p += k
              return k
            },
            {mode, endAtShortInput: true},
          )
          assert.equal(res.bytes, bytes, `${c.name}: bytes written at ${offset}`)
          data.copy(r.model, offset)
          if (mode === 'write-back') reclaimArray(r.devs)
          assert.equal(examineJournal(r.devs).state, 'clean')
          assert.ok(readAll(r).equals(r.model), `${c.name}: the array after ${bytes} bytes at ${offset}`)
        }
      }
    })
  }
})
