/**
 * The replayed view (journal/view.ts through readData): reading a dirty array presents, without
 * writing a byte, exactly what `recover` followed by `read` gives on a copy. Crashed arrays of every
 * kind: RAID5 and RAID6, write-through and write-back, power cuts (some with unflushed writes lost in
 * a random order, so the log can stop at a torn unit) spread over a workload that wraps the 256 KiB
 * ring; every view read with every member, with each member left out and (RAID6) every pair; and
 * the two power-cut fixtures the Linux 6.1 kernel made (test/kernel/fixtures), whose replay md5 the
 * kernel itself recorded.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import {createHash} from 'node:crypto'
import {dumpMeta, examineJournal, readData, recoverArray, writeData} from '../../../src/engine/index.js'
import {MemDevice} from '../../../src/engine/device.js'
import {
  type MemArray,
  type WriteOp,
  bufferSource,
  cloneDevs,
  combinations,
  createMemArray,
  deviceHashes,
  lsStripe,
  pseudoRandom,
  raid6Q,
  runWorkload,
  xorPages,
} from '../../helpers/model.js'
import {ROOT} from '../../helpers/cli.js'

const KiB = 1024

type Mode = WriteOp['mode']
type ReadResult = ReturnType<typeof readData>

/** the array's bytes as readData presents them (default options: a dirty journal is replayed in memory) */
function view(devs: MemDevice[], offset = 0, length?: number): {bytes: Buffer; res: ReadResult} {
  const parts: Buffer[] = []
  const res = readData(devs, offset, length, vs => vs.forEach(v => parts.push(Buffer.from(v))), {})
  return {bytes: Buffer.concat(parts), res}
}

/** recover on a copy, then read it: the reference the view must equal */
function recoveredBytes(devs: MemDevice[]): Buffer {
  const copy = cloneDevs(devs)
  recoverArray(copy, {})
  const got = view(copy)
  assert.equal(got.res.journal.state, 'clean', 'recover left the copy clean')
  return got.bytes
}

/** every device set the view must agree on: all members, each one left out, RAID6 every pair */
function subsets(devs: MemDevice[], level: number): {what: string; devs: MemDevice[]}[] {
  const members = devs.slice(1).map((_, i) => i)
  const out: {what: string; devs: MemDevice[]}[] = []
  for (let k = 0; k <= (level === 6 ? 2 : 1); k++) {
    for (const gone of combinations(members, k)) {
      out.push({
        what: k === 0 ? 'every member' : `without m${gone.join(', m')}`,
        devs: [devs[0], ...devs.slice(1).filter((_, i) => !gone.includes(i))],
      })
    }
  }
  return out
}

function baseArray(level: 4 | 5 | 6): MemArray {
  const base = createMemArray({
    level,
    raidDevices: level === 6 ? 5 : 4,
    chunkBytes: 16 * KiB,
    memberDataBytes: 128 * KiB,
    journalRingBytes: 256 * KiB,
  })
  const fill = pseudoRandom(base.sizeBytes, 91 + level)
  writeData(base.devs, 0, fill.length, bufferSource(fill), {mode: 'write-through'})
  return base
}

/** overlapping full-row and partial writes, together more than the ring holds */
function workload(mode: Mode, arrayBytes: number): WriteOp[] {
  const spec: [number, number][] = [
    [0, 96 * KiB],
    [20 * KiB, 40 * KiB],
    [144 * KiB, 192 * KiB],
    [56 * KiB, 10_000],
    [200 * KiB, 120 * KiB],
    [arrayBytes - 16 * KiB, 12 * KiB],
  ]
  return spec.map(([offset, length], k) => ({offset, data: pseudoRandom(length, 500 + k), mode}))
}

/**
 * The data-only stripes whose parity on the members does not match their data: a write hole. A
 * cached stripe goes to the members only after its parity is durable in the log (writeout.ts), so a
 * power cut anywhere leaves none: stripes whose write-out was cut are complete in the log. Were
 * there one, a degraded read would rebuild a missing member's page from that stale parity.
 */
function writeHoles(devs: MemDevice[], level: 5 | 6, dataOnly: number[]): Set<number> {
  const members = devs.slice(1)
  const page = (m: number, s: number) => members[m].data.subarray((1 << 20) + s * 512, (1 << 20) + s * 512 + 4096)
  const holes = new Set<number>()
  for (const s of dataOnly) {
    const st = lsStripe(level, members.length, 32, s)
    const data = st.dataMembers.map(m => page(m, s))
    const pOk = xorPages(data).equals(page(st.pd, s))
    const qOk = level === 5 || raid6Q(data).equals(page(st.qd, s))
    if (!pOk || !qOk) holes.add(s)
  }
  return holes
}

/** the data-only stripes of a plan: the stripes whose parity recover --dry-run lists as computed */
function dataOnlyStripes(dry: ReturnType<typeof recoverArray>): number[] {
  const out = new Set<number>()
  for (const w of dry.writes) if (w.source === 'computed') for (let k = 0; k < w.pages; k++) out.add(w.offsetSector + k * 8)
  return [...out]
}

interface Tally {
  holes: number
  dirty: number
  wrapped: number
  torn: number
  dataOnly: number
  dataParity: number
}

/** one crashed array: the view against recover-then-read, for every device subset and a partial range */
function checkCase(devs: MemDevice[], level: 5 | 6, where: string, tally: Tally): void {
  const j = examineJournal(devs)
  if (j.state !== 'dirty') return
  tally.dirty++
  if (j.headSector < j.journalTailSector) tally.wrapped++
  const dry = recoverArray(devs, {dryRun: true})
  if (dry.stopReason === 'data-checksum' || dry.skippedUnits.length > 0) tally.torn++
  if (dry.dataOnlyStripes > 0) tally.dataOnly++
  if (dry.dataParityStripes > 0) tally.dataParity++
  const holes = writeHoles(devs, level, dataOnlyStripes(dry))
  if (holes.size > 0) tally.holes++
  const hashes = deviceHashes(devs)
  const ref = recoveredBytes(devs)
  assert.deepEqual([...holes], [], `${where}: data-only stripes with stale parity on the members`)
  for (const s of subsets(devs, level)) {
    const got = view(s.devs)
    assert.ok(got.bytes.equals(ref), `${where}, ${s.what}: the view differs from recover + read`)
    assert.equal(got.res.journal.state, 'dirty', `${where}, ${s.what}`)
    assert.equal(got.res.journal.replayed, true, `${where}, ${s.what}`)
  }
  // a range that starts mid-chunk and ends mid-row
  const off = 20 * KiB
  const len = Math.min(ref.length - off, 100 * KiB + 4 * KiB)
  assert.ok(view(devs, off, len).bytes.equals(ref.subarray(off, off + len)), `${where}: a partial range`)
  assert.deepEqual(deviceHashes(devs), hashes, `${where}: the view changed a device`)
}

describe('replayed view: read of a dirty journal = recover + read, nothing written', function () {
  this.timeout(300_000)

  for (const level of [5, 6] as const) {
    for (const mode of ['write-through', 'write-back'] as const) {
      it(`raid${level} ${mode}: crashes over a workload that wraps the ring; every member, each left out${level === 6 ? ', every pair' : ''}`, function () {
        const base = baseArray(level)
        const ops = workload(mode, base.sizeBytes)
        const W = runWorkload(cloneDevs(base.devs), ops).writes
        const tally: Tally = {holes: 0, dirty: 0, wrapped: 0, torn: 0, dataOnly: 0, dataParity: 0}
        const points = 24
        for (let i = 0; i <= points; i++) {
          const N = Math.floor((i * W) / points)
          for (const seed of [undefined, 31 * N + 7]) {
            const devs = cloneDevs(base.devs)
            runWorkload(devs, ops, {crashAfter: N, crashSeed: seed})
            checkCase(devs, level, `crash after ${N} of ${W} writes${seed === undefined ? '' : `, seed ${seed}`}`, tally)
          }
        }
        assert.ok(tally.dirty >= 10, `only ${tally.dirty} crash points left a dirty journal`)
        assert.ok(tally.wrapped > 0, `no dirty case had a live log across the end of the ring: ${JSON.stringify(tally)}`)
        if (mode === 'write-back') assert.ok(tally.dataOnly > 0, `no data-only stripes: ${JSON.stringify(tally)}`)
        assert.ok(tally.dataParity > 0, `no data+parity stripes: ${JSON.stringify(tally)}`)
        assert.equal(tally.holes, 0)
      })
    }
  }

  it('raid4: write-through crashes and write-back data, every member and each left out', function () {
    const base = baseArray(4)
    const ops: WriteOp[] = [
      {offset: 0, data: pseudoRandom(96 * KiB, 41), mode: 'write-through'},
      {offset: 20 * KiB, data: pseudoRandom(40 * KiB, 42), mode: 'write-back'},
      {offset: 56 * KiB, data: pseudoRandom(10_000, 43), mode: 'write-back'},
    ]
    const W = runWorkload(cloneDevs(base.devs), ops).writes
    let dirty = 0
    for (let N = 0; N <= W; N += 2) {
      const devs = cloneDevs(base.devs)
      runWorkload(devs, ops, {crashAfter: N})
      if (examineJournal(devs).state !== 'dirty') continue
      dirty++
      const hashes = deviceHashes(devs)
      const ref = recoveredBytes(devs)
      for (const s of subsets(devs, 4)) assert.ok(view(s.devs).bytes.equals(ref), `crash after ${N} of ${W} writes, ${s.what}`)
      assert.deepEqual(deviceHashes(devs), hashes)
    }
    assert.ok(dirty >= 5, `${dirty} dirty cases`)
  })

  it('a log that stops at a torn unit (a page that does not match its checksum) is replayed up to the tear', function () {
    const base = baseArray(5)
    const devs = base.devs
    // two write-back units, then a page of the second one damaged: recover drops that unit
    writeData(devs, 0, 48 * KiB, bufferSource(pseudoRandom(48 * KiB, 1)), {mode: 'write-back'})
    writeData(devs, 96 * KiB, 48 * KiB, bufferSource(pseudoRandom(48 * KiB, 2)), {mode: 'write-back'})
    const blocks = dumpMeta(devs, {}).blocks.filter(b => b.payloads.length > 0)
    const last = blocks[blocks.length - 1].positionSector
    const ringOffset = 1 << 20
    const pageAt = ringOffset + (last + 8) * 512
    base.journal.data[pageAt + 100] ^= 0xff
    const dry = recoverArray(devs, {dryRun: true})
    assert.equal(dry.skippedUnits.length, 1, JSON.stringify(dry.skippedUnits))
    const hashes = deviceHashes(devs)
    const ref = recoveredBytes(devs)
    for (const s of subsets(devs, 5)) assert.ok(view(s.devs).bytes.equals(ref), s.what)
    assert.ok(ref.subarray(0, 48 * KiB).equals(pseudoRandom(48 * KiB, 1)), 'the unit before the tear is served')
    assert.ok(!ref.subarray(96 * KiB, 144 * KiB).equals(pseudoRandom(48 * KiB, 2)), 'the torn unit is not')
    assert.deepEqual(deviceHashes(devs), hashes)
  })

  it("a member whose pages the log replaces whole is not read (the log's pages are what is served)", function () {
    const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 16 * KiB, memberDataBytes: 128 * KiB, journalRingBytes: 1024 * KiB})
    const data = pseudoRandom(a.sizeBytes, 12)
    // the whole array through the log, cut before the closing block: every stripe complete in the log
    const W = runWorkload(cloneDevs(a.devs), [{offset: 0, data, mode: 'write-through'}]).writes
    runWorkload(a.devs, [{offset: 0, data, mode: 'write-through'}], {crashAfter: W - 1 - a.devs.length})
    assert.equal(recoverArray(cloneDevs(a.devs), {dryRun: true}).dataParityStripes, (128 * KiB) / 4096)
    const before = a.members.map(m => m.stats.bytesRead)
    const got = view(a.devs)
    assert.ok(got.bytes.equals(data), 'the view is what was written')
    const read = a.members.map((m, i) => m.stats.bytesRead - before[i])
    // opening the set reads the three places a v1 superblock may be (3 × 4 KiB); nothing of the data area
    assert.ok(
      read.every(r => r <= 3 * 4 * KiB),
      `member bytes read: ${read.join(', ')}`,
    )
  })

  it('progress covers the walk of the log before the first byte, and never goes back', function () {
    const base = baseArray(5)
    writeData(base.devs, 0, 96 * KiB, bufferSource(pseudoRandom(96 * KiB, 5)), {mode: 'write-back'})
    const seen: number[] = []
    let beforeBytes = 0
    readData(
      base.devs,
      0,
      undefined,
      () => {
        if (beforeBytes === 0) beforeBytes = seen.length
      },
      {},
      (done, total) => seen.push(done / total),
    )
    assert.ok(beforeBytes > 0, 'the walk reported progress before the first bytes were handed out')
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress went from ${seen[i - 1]} back to ${seen[i]}`)
    assert.equal(seen[seen.length - 1], 1)
  })

  it('a clean journal: the view is the members, and says so', function () {
    const base = baseArray(6)
    const got = view(base.devs)
    assert.equal(got.res.journal.state, 'clean')
    assert.equal(got.res.journal.replayed, false)
    assert.equal(got.res.journal.stripes, 0)
  })

  it('replay: false reads the members as they are (--no-replay)', function () {
    const base = baseArray(5)
    const members = view(base.devs).bytes
    writeData(base.devs, 0, 48 * KiB, bufferSource(pseudoRandom(48 * KiB, 3)), {mode: 'write-back'})
    const parts: Buffer[] = []
    const res = readData(base.devs, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {replay: false})
    assert.ok(Buffer.concat(parts).equals(members))
    assert.equal(res.journal.replayed, false)
    assert.ok(
      view(base.devs)
        .bytes.subarray(0, 48 * KiB)
        .equals(pseudoRandom(48 * KiB, 3)),
    )
  })
})

describe('replayed view: the Linux 6.1 power-cut fixtures (test/kernel/fixtures)', function () {
  this.timeout(300_000)
  const dir = path.join(ROOT, 'test', 'kernel', 'fixtures')
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
    fixtures: Record<string, {files: {journal: string; members: string[]}; kernelReplay: {md5: string}; membersAsIsMd5: string}>
  }
  const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex')

  for (const [name, f] of Object.entries(manifest.fixtures)) {
    it(`${name}: the view's md5 is the kernel's replay md5, with every member and each left out; no byte written`, function () {
      const dev = (file: string) => {
        const b = zlib.gunzipSync(fs.readFileSync(path.join(dir, name, file)))
        return new MemDevice(file.replace(/\.gz$/, ''), b.length, new Uint8Array(b.buffer, b.byteOffset, b.length))
      }
      const devs = [dev(f.files.journal), ...f.files.members.map(dev)]
      const hashes = deviceHashes(devs)
      for (const s of subsets(devs, 5)) {
        const got = view(s.devs)
        assert.equal(md5(got.bytes), f.kernelReplay.md5, s.what)
        assert.equal(got.res.journal.replayed, true)
      }
      const parts: Buffer[] = []
      readData(devs, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {replay: false})
      assert.equal(md5(Buffer.concat(parts)), f.membersAsIsMd5, 'replay: false gives the members as they are')
      assert.deepEqual(deviceHashes(devs), hashes)
    })
  }
})
