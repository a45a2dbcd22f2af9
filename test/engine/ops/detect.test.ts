/**
 * detect (ops/detect.ts): arrays made with r5ctl's own create and written with random extents, every
 * superblock zeroed (and in some cases the journal's kept, or all of them overwritten by a create over
 * the wrong geometry), the devices given shuffled. The first candidate must be the array the test made
 * — level, layout, chunk, members by slot, data offset, journal — or, for the fixed-parity layouts that
 * lay out the same bytes under another name, the same placement of P, Q and data, which the test works
 * out from its own table. Nothing may be written.
 */
import assert from 'node:assert/strict'
import {createRequire} from 'node:module'
import {createArray, detectArray, writeData, type DetectCandidate, type DetectResult} from '../../../src/engine/index.js'
import type {MemDevice} from '../../../src/engine/device.js'
import {bufferSource, changedSince, pseudoRandom, runWorkload, snapshot, totalWrites} from '../../helpers/model.js'
import {KiB, LAYOUT_NAMES, makeArray, shuffled, zeroSuperblocks, type Made} from '../detect/fixtures.js'

const CRC32C = createRequire(import.meta.url)('crc-32/crc32c') as {buf: (b: Uint8Array, seed?: number) => number}
const DATA_OFFSET_SECTORS = 2048

/** slot roles of the fixed-parity layouts, as md places them (raid5.c), by name: P, Q and data in order */
function fixedRoles(level: number, layout: string, n: number): {p: number; q: number; data: number[]} | null {
  const range = (a: number, b: number) => Array.from({length: b - a}, (_, i) => a + i)
  if (level === 4 || (level === 5 && layout === 'parity-last')) return {p: n - 1, q: -1, data: range(0, n - 1)}
  if (level === 5 && layout === 'parity-first') return {p: 0, q: -1, data: range(1, n)}
  if (level === 6 && layout === 'parity-first') return {p: 0, q: 1, data: range(2, n)}
  if (level === 6 && layout === 'parity-last') return {p: n - 2, q: n - 1, data: range(0, n - 2)}
  if (level === 6 && layout === 'parity-first-6') return {p: 0, q: n - 1, data: range(1, n - 1)}
  return null
}

/** device names holding P, Q and the data in order under a fixed-parity candidate */
function placement(level: number, layout: string, members: string[]): string[] | null {
  const r = fixedRoles(level, layout, members.length)
  return r && [members[r.p], r.q >= 0 ? members[r.q] : '-', ...r.data.map(i => members[i])]
}

/** `broken`: stripes the test itself damaged, which may fail the exact check */
function expectMade(r: DetectResult, m: Made, names: string[], broken = 0): void {
  const c: DetectCandidate | undefined = r.candidates.at(0)
  assert.ok(c, 'no candidate')
  assert.ok(r.found, `not found: ${r.notes.join('; ')}`)
  const want = {level: m.level, layout: m.level === 4 ? 'parity-last' : LAYOUT_NAMES[m.layout], members: names}
  const wantPlace = placement(want.level, want.layout, names)
  const got = `raid${c.level} ${c.layout} ${c.members.join(' ')}`
  if (wantPlace) assert.deepEqual(placement(c.level, c.layout, c.members), wantPlace, `first candidate ${got}`)
  else assert.deepEqual({level: c.level, layout: c.layout, members: c.members}, want, `first candidate ${got}; undecided: ${r.undecided.join(' | ')}`)
  assert.equal(c.chunkBytes, m.chunkBytes)
  assert.equal(c.dataOffsetSector, DATA_OFFSET_SECTORS)
  assert.equal(c.journal, 'j')
  assert.equal(r.journal?.device, 'j')
  assert.equal(r.journal.dataOffsetSector, DATA_OFFSET_SECTORS)
  assert.ok(c.evidence.exactChecked! > 10 && c.evidence.exactHeld! >= c.evidence.exactChecked! - broken, JSON.stringify(c.evidence))
}

/** The array UUID as the journal's superblock holds it (set_uuid: 16 bytes at offset 16 of the block at 4 KiB). */
function uuidOf(j: MemDevice): Uint8Array {
  return Uint8Array.from(j.data.subarray(4096 + 16, 4096 + 32))
}

/** crc32c_le(~0, uuid) from the crc-32 package's standard CRC32C (= ~raw), not from the engine */
const seedOf = (uuid: Uint8Array) => ((~CRC32C.buf(uuid) >>> 0) >>> 0).toString(16).padStart(8, '0')

function run(m: Made, keepJournalSb: boolean, seed: number): DetectResult {
  const devs = m.a.devs
  zeroSuperblocks(keepJournalSb ? m.a.members : devs)
  const snap = snapshot(devs)
  const writes = totalWrites(devs)
  const r = detectArray(shuffled(devs, seed))
  assert.deepEqual(changedSince(devs, snap), [])
  assert.equal(totalWrites(devs), writes)
  return r
}

const names = (n: number) => Array.from({length: n}, (_, i) => `m${i}`)

describe('detect: geometry from content, superblocks zeroed', function () {
  this.timeout(300_000)

  const cases: [4 | 5 | 6, number, number, number][] = [
    [4, 3, 0, 64],
    [4, 5, 0, 16],
    ...[0, 1, 2, 3, 4, 5].map(l => [5, 4, l, 64] as [5, number, number, number]),
    [5, 5, 2, 32],
    [5, 6, 1, 128],
    ...[0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 18, 19, 20].map(l => [6, 5, l, 64] as [6, number, number, number]),
    [6, 6, 2, 32],
  ]
  cases.forEach(([level, n, layout, chunkK], i) => {
    const what = `raid${level} ${level === 4 ? '' : LAYOUT_NAMES[layout] + ' '}${n} members chunk ${chunkK}K`
    it(`${what}: every superblock zeroed, devices shuffled`, function () {
      const m = makeArray(level, n, layout, chunkK * KiB, 10 + i)
      const uuid = uuidOf(m.a.journal)
      const r = run(m, false, i)
      expectMade(r, m, names(n))
      assert.equal(r.arrayUuid, null)
      assert.equal(r.journal?.checksumSeed, seedOf(uuid))
      assert.equal(r.journal.uuidConfirmed, null)
      assert.equal(r.journal.parityPagesPerStripe, level === 6 ? 2 : 1)
    })
  })

  for (const [level, n, layout] of [
    [5, 4, 3],
    [6, 5, 1],
  ] as const) {
    it(`raid${level} ${LAYOUT_NAMES[layout]}: the journal's superblock kept gives the UUID, which its meta blocks confirm`, function () {
      const m = makeArray(level, n, layout, 64 * KiB, 77)
      const uuid = uuidOf(m.a.journal)
      const r = run(m, true, 3)
      expectMade(r, m, names(n))
      assert.equal(
        r.arrayUuid,
        Buffer.from(uuid)
          .toString('hex')
          .replace(/(.{8})(?!$)/g, '$1:'),
      )
      assert.equal(r.uuidSource, 'j')
      assert.equal(r.journal?.uuidConfirmed, true)
      assert.ok(r.candidates[0].evidence.superblockAgrees.includes('layout'))
      // the size comes from the superblock: the 2 MiB of member data the test made
      assert.deepEqual([r.candidates[0].memberDataSectors, r.candidates[0].sizeSource], [4096, 'superblock'])
    })
  }

  for (const [level, n, layout] of [
    [5, 4, 2],
    [5, 5, 1],
    [6, 5, 3],
  ] as const) {
    it(`raid${level} ${LAYOUT_NAMES[layout]} without its journal device: parity and continuity alone`, function () {
      const m = makeArray(level, n, layout, 64 * KiB, 33)
      zeroSuperblocks(m.a.devs)
      const r = detectArray(shuffled(m.a.members, 2))
      assert.equal(r.journal, null)
      const c = r.candidates[0]
      assert.ok(r.found)
      assert.deepEqual(
        {level: c.level, layout: c.layout, chunkBytes: c.chunkBytes, members: c.members, dataOffsetSector: c.dataOffsetSector, journal: c.journal},
        {level, layout: LAYOUT_NAMES[layout], chunkBytes: 64 * KiB, members: names(n), dataOffsetSector: DATA_OFFSET_SECTORS, journal: null},
        `undecided: ${r.undecided.join(' | ')}`,
      )
      assert.ok(r.notes.some(x => /no journal device found/.test(x)))
    })
  }

  it('raid5 whose every stripe holds data, without its journal: parity holds, and the report says what it cannot decide', function () {
    const a = makeArray(5, 4, 3, 64 * KiB, 44, 0).a
    const data = pseudoRandom(a.sizeBytes, 9)
    writeData(a.devs, 0, data.length, bufferSource(data), {mode: 'write-through'})
    zeroSuperblocks(a.devs)
    const r = detectArray(a.members)
    assert.ok(r.found)
    // with no stripe only partly written, nothing tells parity from data in RAID5: rotation, order and chunk stay open
    assert.ok(
      r.undecided.some(u => u.startsWith('layout:')),
      r.undecided.join(' | '),
    )
    assert.ok(
      r.undecided.some(u => u.startsWith('member order:')),
      r.undecided.join(' | '),
    )
  })

  it("the same set with its members' superblocks surviving: they settle what the content leaves open", function () {
    const a = makeArray(5, 4, 3, 64 * KiB, 44, 0).a
    const data = pseudoRandom(a.sizeBytes, 9)
    writeData(a.devs, 0, data.length, bufferSource(data), {mode: 'write-through'})
    zeroSuperblocks([a.journal])
    const r = detectArray(shuffled(a.members, 4))
    const c = r.candidates[0]
    assert.deepEqual([c.level, c.layout, c.chunkBytes, c.members], [5, 'right-symmetric', 64 * KiB, names(4)])
    assert.ok(c.evidence.superblockAgrees.includes('member slots'))
    assert.equal(r.uuidSource !== null, true)
  })

  it('a create over the wrong geometry (--assume-clean --force): the content wins over the new superblocks, whose UUID the journal does not confirm', function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 91)
    const devs = m.a.devs
    // the operator's mistake: another chunk, layout and member order, and a new UUID, written over the set
    const [j, ...mem] = devs
    createArray({
      level: 5,
      raidDevices: 4,
      chunkBytes: 128 * KiB,
      layout: 1,
      members: [mem[2], mem[0], mem[3], mem[1]],
      journal: j,
      force: true,
      assumeClean: true,
    })
    const newUuid = uuidOf(j)
    const snap = snapshot(devs)
    const r = detectArray(shuffled(devs, 5))
    assert.deepEqual(changedSince(devs, snap), [])
    expectMade(r, m, names(4))
    assert.equal(
      r.arrayUuid,
      Buffer.from(newUuid)
        .toString('hex')
        .replace(/(.{8})(?!$)/g, '$1:'),
    )
    assert.equal(r.journal?.uuidConfirmed, false)
  })

  it('a create over the wrong disks that puts the journal role on a member: the journal is still found by its meta blocks', function () {
    const m = makeArray(5, 4, 1, 64 * KiB, 92)
    const [j, ...mem] = m.a.devs
    // j becomes a member; m3 the journal, its first data page overwritten by the new log's first meta block
    createArray({
      level: 5,
      raidDevices: 4,
      chunkBytes: 64 * KiB,
      members: [mem[2], mem[0], j, mem[1]],
      journal: mem[3],
      force: true,
      assumeClean: true,
    })
    const r = detectArray(shuffled(m.a.devs, 6))
    // the stripe whose m3 page the meta block replaced no longer holds
    expectMade(r, m, names(4), 1)
    assert.equal(r.devices.find(d => d.device === 'm3')?.role, 'journal')
    assert.equal(r.journal?.uuidConfirmed, false)
  })

  it('members whose stripes no parity holds for (every page changed): no candidate fits', function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 5)
    zeroSuperblocks(m.a.devs)
    // a different byte changed on each member in every page: no stripe XORs to zero any more
    m.a.members.forEach((d, k) => {
      for (let i = 1 << 20; i < d.size; i += 4096) d.data[i + 7] ^= 1 << k
    })
    const r = detectArray(m.a.devs)
    assert.equal(r.found, false)
  })

  it('an array with every superblock intact and nothing written: no candidate, and the report points at what the superblocks state', function () {
    const m = makeArray(5, 4, 2, 64 * KiB, 7, 0)
    const r = detectArray(m.a.devs)
    assert.equal(r.found, false)
    assert.ok(
      r.notes.some(n => /every device has a valid superblock of array [0-9a-f:]+: `r5ctl examine` shows the geometry they state/.test(n)),
      r.notes.join('; '),
    )
  })

  it('a write-through write cut at every write while its stripes go to the members: the half-written stripes the journal logs do not count against the array', function () {
    const data = pseudoRandom(1536 * KiB, 31)
    const all = runWorkload(makeArray(5, 4, 2, 64 * KiB, 31, 0).a.devs, [{offset: 0, data, mode: 'write-through'}]).writes
    // from the last write back to where the log is still being written (members untouched)
    for (let back = 1; back < all / 2; back++) {
      const m = makeArray(5, 4, 2, 64 * KiB, 31, 0)
      const cut = runWorkload(m.a.devs, [{offset: 0, data, mode: 'write-through'}], {crashAfter: all - back, crashSeed: back})
      assert.equal(cut.interrupted, 0)
      zeroSuperblocks(m.a.members)
      const r = detectArray(m.a.devs)
      const e = r.candidates.at(0)?.evidence
      assert.ok(r.found && e?.exactHeld === e?.exactChecked, `cut ${back} writes before the end: ${JSON.stringify(e)}`)
    }
  })

  it('refuses fewer than 3 devices and a device named twice', function () {
    const m = makeArray(5, 3, 2, 64 * KiB, 6)
    assert.throws(() => detectArray(m.a.devs.slice(0, 2)), /at least 3/)
    assert.throws(() => detectArray([...m.a.devs, m.a.devs[1]]), /twice/)
  })
})
