/**
 * Crashes the hostile-input fuzzer (fuzz.test.ts) found, each with its concrete input. Before the
 * fix each of these reached the caller as a RangeError or ran out of memory; now each is an
 * R5Error (CorruptError, exit 4, naming the device) and no byte of any device changes.
 */
import assert from 'node:assert/strict'
import {crc32cRaw, sbCsum, uuidSeed} from '../../src/engine/checksum.js'
import {MemDevice} from '../../src/engine/device.js'
import {CorruptError, EXIT, R5Error} from '../../src/engine/errors.js'
import {encodeMetaBlock, type Payload} from '../../src/engine/format/meta.js'
import {assembleArray, dumpMeta, examineDevices, examineJournal, reclaimArray, recoverArray, readData, writeData} from '../../src/engine/index.js'
import {DATA_OFFSET_BYTES, PAGE, bufferSource, changedSince, createMemArray, pseudoRandom, snapshot, type MemArray} from '../helpers/model.js'

const KiB = 1024
const SB_OFF = 4096

function small(level: 5 | 6 = 5): MemArray {
  return createMemArray({level, raidDevices: level === 6 ? 5 : 4, chunkBytes: 16 * KiB, memberDataBytes: 64 * KiB, journalRingBytes: 256 * KiB})
}

function setSbField(d: MemDevice, off: number, width: 1 | 2 | 4 | 8, v: bigint): void {
  const sb = Buffer.from(d.data.buffer, d.data.byteOffset + SB_OFF, 4096)
  if (width === 8) sb.writeBigUInt64LE(BigInt.asUintN(64, v), off)
  else if (width === 4) sb.writeUInt32LE(Number(v), off)
  else if (width === 2) sb.writeUInt16LE(Number(v), off)
  else sb.writeUInt8(Number(v), off)
}

/** recompute sb_csum, so that only the structure checks can catch the damage */
function fixSbCsum(d: MemDevice): void {
  const sb = Buffer.from(d.data.buffer, d.data.byteOffset + SB_OFF, 4096)
  sb.writeUInt32LE(sbCsum(sb, Math.min(sb.readUInt32LE(220), 1920)), 216)
}

function seedOf(a: MemArray): number {
  return uuidSeed(a.journal.data.subarray(SB_OFF + 16, SB_OFF + 32))
}

/** a well-formed io unit (meta block + pages, all checksums right) at ring sector `pos` */
function putUnit(a: MemArray, pos: number, seq: bigint, payloads: Payload[], pages: Uint8Array[]): void {
  const seed = seedOf(a)
  encodeMetaBlock(
    {seq, position: BigInt(pos), payloads},
    seed,
    a.journal.data.subarray(DATA_OFFSET_BYTES + pos * 512, DATA_OFFSET_BYTES + pos * 512 + PAGE),
  )
  pages.forEach((p, i) => a.journal.data.set(p, DATA_OFFSET_BYTES + (pos + 8 * (i + 1)) * 512))
}

type Run = [string, (devs: MemDevice[]) => unknown]
const READERS: Run[] = [
  ['examineJournal', devs => examineJournal(devs)],
  ['dumpMeta', devs => dumpMeta(devs, {})],
  ['readData', devs => readData(devs, 0, PAGE, () => {}, {})],
  ['recover --dry-run', devs => recoverArray(devs, {dryRun: true})],
]
const WRITERS: Run[] = [
  ['recoverArray', devs => recoverArray(devs, {})],
  ['reclaimArray', devs => reclaimArray(devs)],
  ['writeData', devs => writeData(devs, 0, PAGE, bufferSource(pseudoRandom(PAGE, 1)), {})],
  ['assembleArray', devs => assembleArray(devs, {})],
]

/** every operation fails with CorruptError `code` naming `device`, and nothing is written */
function expectCorrupt(a: MemArray, runs: Run[], code: string, device: string): void {
  for (const [name, run] of runs) {
    const before = snapshot(a.devs)
    assert.throws(
      () => run(a.devs),
      (e: unknown) => {
        assert.ok(e instanceof R5Error, `${name}: ${String(e)}`)
        assert.ok(e instanceof CorruptError, `${name}: ${e.constructor.name} ${e.message}`)
        assert.equal(e.exitCode, EXIT.CORRUPT, name)
        assert.equal(e.code, code, `${name}: ${e.message}`)
        assert.equal(e.device, device, name)
        return true
      },
    )
    assert.deepEqual(changedSince(a.devs, before), [], `${name} changed bytes`)
  }
}

describe('fuzz regressions', () => {
  it('raid_disks 0xffffffff (valid checksum) on a member: examine reports it, open refuses (was: out of memory building the array-state string)', () => {
    // fuzz case 0x4d0d536b: m3.sb.raid_disks=4294967295; checksums recomputed
    const a = small(5)
    setSbField(a.members[2], 92, 4, 0xffffffffn)
    fixSbCsum(a.members[2])
    const ex = examineDevices(a.devs)
    const m2 = ex.find(e => e.device === 'm2')!
    assert.equal(m2.ok, false)
    assert.equal(m2.problems[0].code, 'bad-raid-disks')
    assert.ok(ex.filter(e => e.device !== 'm2').every(e => e.ok))
    expectCorrupt(a, [...READERS, ...WRITERS], 'bad-raid-disks', 'm2')
  })

  it('chunksize 0 on every device (valid checksums): refused (was: RangeError from new Geometry)', () => {
    // fuzz case 0xd856917 (raid5-clean): all.sb.chunksize=0; checksums recomputed
    const a = small(5)
    for (const d of a.devs) {
      setSbField(d, 88, 4, 0n)
      fixSbCsum(d)
    }
    expectCorrupt(a, [...READERS, ...WRITERS], 'bad-geometry', 'j')
  })

  it('raid_disks 1 on every device (valid checksums): refused before the geometry is built', () => {
    // same rule as chunksize (raid5.c setup_conf bounds), the RangeError of new Geometry for raid_disks
    const a = small(6)
    for (const d of a.devs) {
      setSbField(d, 92, 4, 1n)
      fixSbCsum(d)
    }
    expectCorrupt(a, [...READERS, ...WRITERS], 'bad-geometry', 'j')
  })

  it('data payload located past the end of the array in a checksummed meta block (was: RangeError from Geometry.mapSector)', () => {
    // fuzz case 0xe60da64b (raid5-dirty): j.meta@200.payload@32.location=18446744073709551608; checksums recomputed
    const a = small(5)
    const page = pseudoRandom(PAGE, 7)
    putUnit(a, 0, a.firstSeq, [{type: 0, flags: 0, sizeSectors: 8, location: 18446744073709551608n, checksums: [crc32cRaw(seedOf(a), page)]}], [page])
    expectCorrupt(a, [...READERS, ...WRITERS], 'bad-payload-location', 'j')
  })

  it("parity payload for a stripe past the members' data area (was: RangeError from Geometry.stripeInfo)", () => {
    // fuzz case 0x3245e929 (raid5-dirty): j.meta@176.payload@32.type=1 (a data payload retyped as parity); checksums recomputed
    const a = small(5)
    const page = pseudoRandom(PAGE, 8)
    // 64 KiB members use 128 sectors: a parity page for member sector 136 lies beyond them
    putUnit(a, 0, a.firstSeq, [{type: 1, flags: 0, sizeSectors: 8, location: 136n, checksums: [crc32cRaw(seedOf(a), page)]}], [page])
    expectCorrupt(a, [...READERS, ...WRITERS], 'bad-payload-location', 'j')
  })

  it('dump-meta --all skips a stale forged meta block whose empty data payload sits at the array end (was: RangeError)', () => {
    // fuzz case 0x26e721c5 (raid6-clean): forged meta@344 seq=0 with one data payload of size 0 at array sector 384
    const a = small(6)
    const arraySectors = a.sizeBytes / 512
    putUnit(a, 344, 0n, [{type: 0, flags: 0, sizeSectors: 0, location: BigInt(arraySectors), checksums: []}], [])
    assert.equal(dumpMeta(a.devs, {}).blocks.length, 1, 'the live log does not reach the stale block')
    // junk beyond the head is not part of any log: listed stale blocks exclude it, nothing throws
    const all = dumpMeta(a.devs, {all: true})
    assert.ok(!all.blocks.some(b => b.positionSector === 344), 'the junk block is not listed')
  })

  it('events 2^64-1 on every device (valid checksums): writers refuse (was: RangeError from encodeSuperblock on events + 1)', () => {
    // fuzz case 0x3ccab562 (master seed 0xb, raid5-dirty): all.sb.events=18446744073709551615; checksums recomputed
    const a = small(5)
    for (const d of a.devs) {
      setSbField(d, 200, 8, 0xffffffffffffffffn)
      fixSbCsum(d)
    }
    assert.equal(examineJournal(a.devs).state, 'clean')
    expectCorrupt(a, WRITERS, 'bad-events', 'j')
  })

  it('set_name bytes that are not UTF-8 (valid checksum): writers refuse (was: RangeError from encodeSuperblock), readers work', () => {
    // fuzz case 0xa69b1037 (raid5-dirty): j.sb[38..+28]=255; checksums recomputed
    const a = small(5)
    a.journal.data.fill(0xff, SB_OFF + 38, SB_OFF + 38 + 26) // set_name is bytes 32..63
    fixSbCsum(a.journal)
    assert.equal(examineJournal(a.devs).state, 'clean')
    expectCorrupt(a, WRITERS, 'bad-name', 'j')
  })
})
