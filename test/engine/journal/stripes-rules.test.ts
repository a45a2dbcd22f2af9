/**
 * Journal replay rules on hand-made logs. Every log here is written byte by byte into the journal
 * ring of an in-memory array (meta blocks with encodeMetaBlock, checksums with crc32cRaw, pages at
 * their ring positions, journal_tail set in the journal's superblock), and every expectation comes
 * from the Linux 6.1 rules in drivers/md/raid5-cache.c, not from r5ctl's own output:
 *
 *  - r5l_recovery_read_meta_block: a meta block is valid only with the magic, seq == ctx->seq,
 *    version 1, position == ctx->pos, crc32c_le(uuid_checksum, page with checksum 0) and
 *    meta_size <= PAGE_SIZE; the first invalid one ends the scan (the log head).
 *  - r5c_recovery_flush_log / r5c_recovery_analyze_meta_block: an io unit whose data or parity
 *    page mismatches its logged checksum is dropped (-EAGAIN) and the scan goes on with
 *    ctx->seq + 1 at ctx->pos + meta_total_blocks, which is still BLOCK_SECTORS (8) because no
 *    page was loaded: the next meta block is looked for at the unit's first page.
 *  - DATA marks the stripe caching (data-only); PARITY completes it; new DATA for a complete
 *    stripe replays it first (r5l_recovery_replay_one_stripe); FLUSH drops the stripe; a stripe
 *    with parity but no data writes nothing; at the end complete stripes are replayed and
 *    data-only stripes are written with parity computed from the members (r5c_recovery_flush_-
 *    data_only_stripes; the kernel rewrites them into the log first, same array bytes).
 *  - r5l_recovery_log: ctx->seq += 10000, an empty meta block at ctx->pos with that seq, and
 *    journal_tail = ctx->pos, so that stale blocks beyond the old head can never continue the log.
 *
 * Geometry: md's left-symmetric layout (raid5_compute_sector), computed in test/helpers/model.ts.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {crc32cRaw} from '../../../src/engine/checksum.js'
import {encodeMetaBlock, type Payload} from '../../../src/engine/format/meta.js'
import {MemDevice} from '../../../src/engine/device.js'
import {examineJournal, recoverArray, writeData} from '../../../src/engine/index.js'
import {CorruptError, EXIT, R5Error} from '../../../src/engine/errors.js'
import {
  DATA_OFFSET_BYTES,
  PAGE,
  bufferSource,
  checkParity,
  createMemArray,
  lsArraySector,
  lsStripe,
  pseudoRandom,
  raid6Q,
  readAll,
  snapshot,
  changedSince,
  totalWrites,
  xorPages,
  type StripeRef,
} from '../../helpers/model.js'

const KiB = 1024
const SB_OFF = 4096
const CHUNK = 16 * KiB
const CHUNK_SECTORS = CHUNK / 512

// ---------------------------------------------------------------------------------------------
// fixture: a filled array whose log we then write ourselves

interface Fix {
  level: 5 | 6
  n: number
  devs: MemDevice[]
  journal: MemDevice
  members: MemDevice[]
  /** log->uuid_checksum */
  seed: number
  /** byte offset of ring sector 0 on the journal device */
  ringBase: number
  ringSectors: number
  memberBase: number
  /** the array bytes recover must produce */
  model: Buffer
  tail: number
  s0: bigint
}

const u64 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getBigUint64(off, true)
const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true)

/** md.c calc_sb_1_csum, in a few lines */
function sbCsum(sb: Uint8Array): number {
  const maxDev = u32(sb, 220)
  const size = 256 + 2 * maxDev
  const dv = new DataView(sb.buffer, sb.byteOffset)
  let sum = 0
  let off = 0
  for (; off + 4 <= size; off += 4) if (off !== 216) sum += dv.getUint32(off, true)
  if (size - off === 2) sum += dv.getUint16(off, true)
  return ((sum % 0x100000000) + Math.floor(sum / 0x100000000)) >>> 0
}

/** Point journal_tail (journal superblock offset 152) at `pos`, and re-checksum the superblock. */
function setJournalTail(f: Fix, pos: number): void {
  const sb = f.journal.data.subarray(SB_OFF, SB_OFF + 4096)
  const dv = new DataView(sb.buffer, sb.byteOffset)
  dv.setBigUint64(152, BigInt(pos), true)
  dv.setUint32(216, sbCsum(sb), true)
}

function journalTail(f: Fix): number {
  return Number(u64(f.journal.data, SB_OFF + 152))
}

/** Write bytes into the ring at `pos`, page by page, wrapping at the end. */
function ringWrite(f: Fix, pos: number, bytes: Uint8Array): void {
  for (let k = 0; k < bytes.length / PAGE; k++) {
    const p = (pos + 8 * k) % f.ringSectors
    f.journal.data.set(bytes.subarray(k * PAGE, (k + 1) * PAGE), f.ringBase + p * 512)
  }
}

function ringRead(f: Fix, pos: number): Buffer {
  return Buffer.from(f.journal.data.subarray(f.ringBase + pos * 512, f.ringBase + pos * 512 + PAGE))
}

const ringAdd = (f: Fix, pos: number, sectors: number) => (pos + sectors) % f.ringSectors

function fixture(level: 5 | 6, opts: {tail?: number; s0?: bigint} = {}): Fix {
  const n = level === 6 ? 5 : 4
  const a = createMemArray({level, raidDevices: n, chunkBytes: CHUNK, memberDataBytes: 128 * KiB, journalRingBytes: 256 * KiB})
  const fill = pseudoRandom(a.sizeBytes, 500 + level)
  writeData(a.devs, 0, fill.length, bufferSource(fill), {mode: 'write-through'})
  const sb = a.journal.data.subarray(SB_OFF, SB_OFF + 4096)
  const ringBase = Number(u64(sb, 128)) * 512
  assert.equal(ringBase, DATA_OFFSET_BYTES, 'journal data offset is 2048 sectors')
  const ringSectors = Math.floor(Number(u64(sb, 136)) / 8) * 8
  assert.equal(ringSectors * 512, 256 * KiB)
  const f: Fix = {
    level,
    n,
    devs: a.devs,
    journal: a.journal,
    members: a.members,
    seed: crc32cRaw(0xffffffff, sb.subarray(16, 32)),
    ringBase,
    ringSectors,
    memberBase: Number(u64(a.members[0].data, SB_OFF + 128)) * 512,
    model: readAll(a.devs),
    tail: opts.tail ?? 64,
    s0: opts.s0 ?? 0x5eed_0000_1000n,
  }
  assert.ok(f.model.equals(fill))
  // our own tail: an empty meta block with seq s0 (what mdadm or a clean shutdown leaves)
  ringWrite(f, f.tail, encodeMetaBlock({seq: f.s0, position: BigInt(f.tail), payloads: []}, f.seed))
  setJournalTail(f, f.tail)
  return f
}

// ---------------------------------------------------------------------------------------------
// io units

type Rec = {t: 'data'; arraySector: number; page: Buffer} | {t: 'parity'; stripeSector: number; pages: Buffer[]} | {t: 'flush'; stripes: number[]}

interface UnitOpts {
  /** flip a bit of the stored meta block checksum */
  badMetaChecksum?: boolean
  /** the position field, when not the block's own position */
  positionField?: number
  /** corrupt the k-th page after the meta block (its logged checksum stays) */
  badPage?: number
  /** edit the header and re-seal the checksum */
  metaSize?: number
  version?: number
  magic?: number
}

/** Write one io unit at `pos` with `seq`; returns the position after it. */
function unit(f: Fix, pos: number, seq: bigint, recs: Rec[], o: UnitOpts = {}): number {
  const payloads: Payload[] = []
  const pages: Buffer[] = []
  for (const r of recs) {
    if (r.t === 'data') {
      payloads.push({type: 0, flags: 0, sizeSectors: 8, location: BigInt(r.arraySector), checksums: [crc32cRaw(f.seed, r.page)]})
      pages.push(r.page)
    } else if (r.t === 'parity') {
      payloads.push({
        type: 1,
        flags: 0,
        sizeSectors: 8 * r.pages.length,
        location: BigInt(r.stripeSector),
        checksums: r.pages.map(p => crc32cRaw(f.seed, p)),
      })
      pages.push(...r.pages)
    } else {
      payloads.push({type: 2, flags: 0, stripes: r.stripes.map(BigInt)})
    }
  }
  const mb = Buffer.from(encodeMetaBlock({seq, position: BigInt(o.positionField ?? pos), payloads}, f.seed))
  if (o.metaSize !== undefined || o.version !== undefined || o.magic !== undefined) {
    if (o.magic !== undefined) mb.writeUInt32LE(o.magic, 0)
    if (o.version !== undefined) mb[8] = o.version
    if (o.metaSize !== undefined) mb.writeUInt32LE(o.metaSize, 12)
    mb.writeUInt32LE(0, 4)
    mb.writeUInt32LE(crc32cRaw(f.seed, mb), 4)
  }
  if (o.badMetaChecksum) mb[4] ^= 0x01
  const body = Buffer.concat([mb, ...pages.map(p => Buffer.from(p))])
  if (o.badPage !== undefined) body[(1 + o.badPage) * PAGE + 100] ^= 0x40
  ringWrite(f, pos, body)
  return ringAdd(f, pos, 8 * (1 + pages.length))
}

// ---------------------------------------------------------------------------------------------
// stripes: what to log and what the members must hold afterwards

interface StripeWrite {
  S: number
  ref: StripeRef
  /** data index -> new page */
  data: Map<number, Buffer>
  /** slot -> page the member must hold once the stripe is on the members (data, P, Q) */
  expect: Map<number, Buffer>
  /** slot -> page before anything was replayed */
  before: Map<number, Buffer>
  /** DATA records in slot order, then PARITY */
  records: Rec[]
  dataRecords: Rec[]
}

function memberPage(f: Fix, slot: number, S: number): Buffer {
  const o = f.memberBase + S * 512
  return Buffer.from(f.members[slot].data.subarray(o, o + PAGE))
}

/**
 * New pages for data indices `dds` of the page-row stripe at member sector S, and the parity
 * md computes over the members' current pages plus these (P = xor, Q = Σ g^dd·D_dd).
 */
function stripeWrite(f: Fix, S: number, dds: number[], seed: number, base?: Map<number, Buffer>): StripeWrite {
  const ref = lsStripe(f.level, f.n, CHUNK_SECTORS, S)
  const before = new Map<number, Buffer>()
  for (let slot = 0; slot < f.n; slot++) before.set(slot, memberPage(f, slot, S))
  const cur = base ?? before
  const data = new Map(dds.map((dd, i) => [dd, pseudoRandom(PAGE, seed * 31 + i + 1)]))
  const all = ref.dataMembers.map((slot, dd) => data.get(dd) ?? cur.get(slot)!)
  const expect = new Map<number, Buffer>()
  for (const [dd, page] of data) expect.set(ref.dataMembers[dd], page)
  expect.set(ref.pd, xorPages(all))
  if (f.level === 6) expect.set(ref.qd, raid6Q(all))
  const dataRecords: Rec[] = [...data.entries()]
    .sort((a, b) => ref.dataMembers[a[0]] - ref.dataMembers[b[0]])
    .map(([dd, page]) => ({t: 'data', arraySector: lsArraySector(f.level, f.n, CHUNK_SECTORS, S, dd), page}))
  const parity: Rec = {t: 'parity', stripeSector: S, pages: f.level === 6 ? [expect.get(ref.pd)!, expect.get(ref.qd)!] : [expect.get(ref.pd)!]}
  return {S, ref, data, expect, before, records: [...dataRecords, parity], dataRecords}
}

/** The array model after the stripe reached the members. */
function applyToModel(f: Fix, w: StripeWrite): void {
  for (const [dd, page] of w.data) page.copy(f.model, lsArraySector(f.level, f.n, CHUNK_SECTORS, w.S, dd) * 512)
}

function assertOnMembers(f: Fix, w: StripeWrite, what: string): void {
  for (const [slot, page] of w.expect)
    assert.ok(memberPage(f, slot, w.S).equals(page), `${what}: slot ${slot} of stripe ${w.S} does not hold the expected page`)
}

function assertUntouched(f: Fix, w: StripeWrite, what: string): void {
  for (const [slot, page] of w.before) assert.ok(memberPage(f, slot, w.S).equals(page), `${what}: slot ${slot} of stripe ${w.S} changed`)
}

/** The array equals the model, parity is consistent, and a second recover is clean and writes nothing. */
function assertRecovered(f: Fix): void {
  const img = readAll(f.devs)
  if (!img.equals(f.model)) {
    let i = 0
    while (img[i] === f.model[i]) i++
    assert.fail(`array differs from the model at byte ${i} (array sector ${Math.floor(i / 512)})`)
  }
  assert.equal(checkParity(f.devs, f.level, img), null)
  const snap = snapshot(f.devs)
  const w0 = totalWrites(f.devs)
  const again = recoverArray(f.devs, {})
  assert.equal(again.state, 'clean', 'a second recover finds a clean log')
  assert.equal(totalWrites(f.devs), w0, 'a second recover writes nothing')
  assert.deepEqual(changedSince(f.devs, snap), [])
}

/** r5l_recovery_log's closing: an empty meta block at `pos` with `seq`, journal_tail = pos. */
function assertClosedAt(f: Fix, pos: number, seq: bigint): void {
  assert.equal(journalTail(f), pos, 'journal_tail points at the new empty meta block')
  const mb = ringRead(f, pos)
  assert.equal(u32(mb, 0), 0x6433c509, 'magic')
  assert.equal(mb[8], 1, 'version')
  assert.equal(u32(mb, 12), 32, 'meta_size of an empty meta block')
  assert.equal(u64(mb, 16), seq, 'seq')
  assert.equal(u64(mb, 24), BigInt(pos), 'position')
  const stored = u32(mb, 4)
  mb.writeUInt32LE(0, 4)
  assert.equal(crc32cRaw(f.seed, mb), stored, 'checksum')
}

function hashAll(devs: MemDevice[]): string[] {
  return devs.map(d => createHash('sha256').update(d.data).digest('hex'))
}

// stripe sectors used below (page rows; rows 0..7 of 16 KiB chunks)
const S_A = 0
const S_B = 8
const S_C = 40
const S_D = 64 + 16

/** A, B, C: one full stripe each, consecutive units right after the tail. */
function threeUnits(f: Fix, o: {A?: UnitOpts; B?: UnitOpts; C?: UnitOpts; seqB?: bigint; seqC?: bigint} = {}) {
  const D = f.level === 6 ? f.n - 2 : f.n - 1
  const all = Array.from({length: D}, (_, i) => i)
  const A = stripeWrite(f, S_A, all, 1)
  const B = stripeWrite(f, S_B, all, 2)
  const C = stripeWrite(f, S_C, all, 3)
  const pA = ringAdd(f, f.tail, 8)
  const pB = unit(f, pA, f.s0 + 1n, A.records, o.A)
  const pC = unit(f, pB, o.seqB ?? f.s0 + 2n, B.records, o.B)
  const head = unit(f, pC, o.seqC ?? f.s0 + 3n, C.records, o.C)
  return {A, B, C, pA, pB, pC, head}
}

describe('recover: kernel 6.1 replay rules on hand-made logs', function () {
  this.timeout(60_000)

  describe('the scan (r5l_recovery_read_meta_block)', function () {
    for (const level of [5, 6] as const) {
      it(`raid${level}: a consistent log: every unit replayed, then an empty meta block with seq + 10000 at the head becomes the tail`, function () {
        const f = fixture(level)
        const {A, B, C, head} = threeUnits(f)
        const r = recoverArray(f.devs, {})
        assert.equal(r.state, 'replayed')
        assert.equal(r.metaBlocks, 4, 'the tail block and three units')
        assert.equal(r.dataParityStripes, 3)
        assert.equal(r.dataOnlyStripes, 0)
        assert.equal(r.stopSector, head)
        for (const w of [A, B, C]) {
          assertOnMembers(f, w, 'replayed')
          applyToModel(f, w)
        }
        // the head expected seq s0+4; r5l_recovery_log adds 10000
        assert.equal(r.newSeq, String(f.s0 + 4n + 10000n))
        assertClosedAt(f, head, f.s0 + 4n + 10000n)
        assertRecovered(f)
      })
    }

    it('a meta block with a bad checksum ends the log: it and everything after it are not replayed', function () {
      const f = fixture(5)
      const {A, B, C, pB} = threeUnits(f, {B: {badMetaChecksum: true}})
      const r = recoverArray(f.devs, {})
      assert.equal(r.stopSector, pB)
      assert.equal(r.stopReason, 'bad-checksum')
      assertOnMembers(f, A, 'A before the bad block')
      applyToModel(f, A)
      assertUntouched(f, B, 'B (bad checksum)')
      assertUntouched(f, C, 'C after the bad block')
      assertClosedAt(f, pB, f.s0 + 2n + 10000n)
      assertRecovered(f)
    })

    it('a seq gap ends the log (seq != ctx->seq)', function () {
      const f = fixture(5)
      const {A, B, C, pB} = threeUnits(f, {seqB: f.s0 + 3n, seqC: f.s0 + 4n})
      const r = recoverArray(f.devs, {})
      assert.equal(r.stopSector, pB)
      assert.equal(r.stopReason, 'seq-mismatch')
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertUntouched(f, B, 'B (seq gap)')
      assertUntouched(f, C, 'C (continues the wrong seq)')
      assertClosedAt(f, pB, f.s0 + 2n + 10000n)
      assertRecovered(f)
    })

    it('a wrong position field ends the log (position != ctx->pos), even with a valid checksum', function () {
      const f = fixture(5)
      const {A, B, C, pB} = threeUnits(f, {B: {positionField: 8}})
      const r = recoverArray(f.devs, {})
      assert.equal(r.stopSector, pB)
      assert.equal(r.stopReason, 'position-mismatch')
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertUntouched(f, B, 'B (wrong position)')
      assertUntouched(f, C, 'C')
      assertClosedAt(f, pB, f.s0 + 2n + 10000n)
      assertRecovered(f)
    })

    it('bad magic, version 2 and meta_size > 4096 (checksum re-sealed) each end the log', function () {
      for (const bad of [{magic: 0x6433c508}, {version: 2}, {metaSize: 4100}] as UnitOpts[]) {
        const f = fixture(5)
        const {A, B, C, pB} = threeUnits(f, {B: bad})
        const r = recoverArray(f.devs, {})
        assert.equal(r.stopSector, pB, JSON.stringify(bad))
        assertOnMembers(f, A, 'A')
        applyToModel(f, A)
        assertUntouched(f, B, `B ${JSON.stringify(bad)}`)
        assertUntouched(f, C, 'C')
        assertClosedAt(f, pB, f.s0 + 2n + 10000n)
        assertRecovered(f)
      }
    })

    it('meta_size below the header size is not an error: the block is an empty unit and the scan goes on after it', function () {
      // r5l_recovery_read_meta_block only rejects meta_size > PAGE_SIZE; the payload loop
      // (mb_offset = 32 < meta_size) then runs zero times
      const f = fixture(5)
      const D = f.n - 1
      const all = Array.from({length: D}, (_, i) => i)
      const A = stripeWrite(f, S_A, all, 96)
      const C = stripeWrite(f, S_C, all, 97)
      const pA = ringAdd(f, f.tail, 8)
      const pB = unit(f, pA, f.s0 + 1n, A.records)
      const pC = unit(f, pB, f.s0 + 2n, [], {metaSize: 16})
      const head = unit(f, pC, f.s0 + 3n, C.records)
      const r = recoverArray(f.devs, {})
      assert.equal(r.metaBlocks, 4)
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertOnMembers(f, C, 'C (after the short block)')
      applyToModel(f, C)
      assertClosedAt(f, head, f.s0 + 4n + 10000n)
      assertRecovered(f)
    })

    it('a data page with a bad checksum drops that unit, and the scan advances by its meta block alone', function () {
      // r5c_recovery_analyze_meta_block returns -EAGAIN before loading any page, so
      // ctx->pos += meta_total_blocks (= 8): the next meta block is looked for at B's first page,
      // which is data, so the log ends there; C (valid, seq s0+3) is never reached.
      const f = fixture(5)
      const {A, B, C, pB} = threeUnits(f, {B: {badPage: 1}})
      const r = recoverArray(f.devs, {})
      assert.equal(r.skippedUnits.length, 1)
      assert.equal(r.skippedUnits[0].positionSector, pB)
      assert.equal(r.skippedUnits[0].seq, String(f.s0 + 2n))
      assert.equal(r.stopSector, ringAdd(f, pB, 8), "the scan stops at the dropped unit's first page")
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertUntouched(f, B, 'B (a page mismatches: none of its records are replayed)')
      assertUntouched(f, C, 'C (beyond the new head)')
      // ctx->seq was incremented for the dropped unit
      assertClosedAt(f, ringAdd(f, pB, 8), f.s0 + 3n + 10000n)
      assertRecovered(f)
    })

    it('after a dropped unit, a valid meta block right behind its meta block (seq + 1) is replayed', function () {
      // B describes one data page at pB+8, but what lies there is C's meta block (seq s0+3,
      // position pB+8): B's page checksum cannot match, B is dropped, and the kernel's next read
      // at pB+8 finds C valid.
      const f = fixture(5)
      const D = f.n - 1
      const all = Array.from({length: D}, (_, i) => i)
      const A = stripeWrite(f, S_A, all, 1)
      const B = stripeWrite(f, S_B, [0], 2)
      const C = stripeWrite(f, S_C, all, 3)
      const pA = ringAdd(f, f.tail, 8)
      const pB = unit(f, pA, f.s0 + 1n, A.records)
      unit(f, pB, f.s0 + 2n, B.dataRecords) // meta at pB, its page at pB+8 ...
      const head = unit(f, ringAdd(f, pB, 8), f.s0 + 3n, C.records) // ... overwritten by C's meta block
      const r = recoverArray(f.devs, {})
      assert.equal(r.skippedUnits.length, 1)
      assert.equal(r.skippedUnits[0].positionSector, pB)
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertUntouched(f, B, 'B (dropped)')
      assertOnMembers(f, C, 'C (found at B + 8)')
      applyToModel(f, C)
      assert.equal(r.stopSector, head)
      assertClosedAt(f, head, f.s0 + 4n + 10000n)
      assertRecovered(f)
    })

    for (const level of [5, 6] as const) {
      it(`raid${level}: a live log that wraps around the ring end: a unit whose pages straddle the end, and one whose meta block is the last block`, function () {
        const ringEnd = 512 // 256 KiB ring
        // tail at end-24: unit A's meta block at end-16, its pages at end-8, 0, 8, ...
        const f = fixture(level, {tail: ringEnd - 24})
        assert.equal(f.ringSectors, ringEnd)
        const D = level === 6 ? f.n - 2 : f.n - 1
        const all = Array.from({length: D}, (_, i) => i)
        const A = stripeWrite(f, S_A, all, 11)
        const B = stripeWrite(f, S_B, [1], 12) // partial stripe: parity over the members' other pages
        const pA = ringAdd(f, f.tail, 8)
        assert.equal(pA, ringEnd - 16)
        const pB = unit(f, pA, f.s0 + 1n, A.records)
        assert.ok(pB < pA, 'A straddles the end of the ring')
        const pC = unit(f, pB, f.s0 + 2n, B.records)
        // a second wrap-around case: a meta block in the last block of the ring, pages from 0
        const g = fixture(level, {tail: ringEnd - 16})
        const E = stripeWrite(g, S_C, all, 13)
        const pE = ringAdd(g, g.tail, 8)
        assert.equal(pE, ringEnd - 8)
        const gHead = unit(g, pE, g.s0 + 1n, E.records)

        const r = recoverArray(f.devs, {})
        assert.equal(r.dataParityStripes, 2)
        assertOnMembers(f, A, 'A (straddles the ring end)')
        applyToModel(f, A)
        assertOnMembers(f, B, 'B (after the wrap)')
        applyToModel(f, B)
        assert.equal(r.stopSector, pC)
        assertClosedAt(f, pC, f.s0 + 3n + 10000n)
        assertRecovered(f)

        const rg = recoverArray(g.devs, {})
        assert.equal(rg.dataParityStripes, 1)
        assertOnMembers(g, E, 'E (meta block in the last ring block)')
        applyToModel(g, E)
        assert.equal(rg.stopSector, gHead)
        assertClosedAt(g, gHead, g.s0 + 2n + 10000n)
        assertRecovered(g)
      })
    }

    it('the unit at journal_tail is itself replayed (the tail is the first meta block of the live log, ctx->seq = its seq)', function () {
      // after a write-through checkpoint the tail is the last unit already on the members; its
      // records are part of the live log and replaying them again is harmless
      const f = fixture(5)
      const D = f.n - 1
      const T = stripeWrite(
        f,
        S_A,
        Array.from({length: D}, (_, i) => i),
        91,
      )
      const B = stripeWrite(f, S_B, [1], 92)
      const pB = unit(f, f.tail, f.s0, T.records)
      const head = unit(f, pB, f.s0 + 1n, B.records)
      const r = recoverArray(f.devs, {})
      assert.equal(r.tailSeq, String(f.s0))
      assert.equal(r.dataParityStripes, 2)
      assertOnMembers(f, T, 'the tail unit')
      applyToModel(f, T)
      assertOnMembers(f, B, 'B')
      applyToModel(f, B)
      assertClosedAt(f, head, f.s0 + 2n + 10000n)
      assertRecovered(f)
    })

    it('a data page with a bad checksum in the unit at journal_tail: the unit is dropped, recovery goes on at tail + 8 (not an error)', function () {
      // r5l_load_log accepts the tail meta block (magic, version, checksum, position); the page
      // mismatch is found later by r5c_recovery_analyze_meta_block, which returns -EAGAIN: the
      // unit is dropped like any other, ctx->seq becomes s0+1 and ctx->pos tail+8, where the
      // unit's first page does not parse, so the log is closed there with seq s0+1+10000.
      const f = fixture(5)
      const D = f.n - 1
      const T = stripeWrite(
        f,
        S_A,
        Array.from({length: D}, (_, i) => i),
        93,
      )
      unit(f, f.tail, f.s0, T.records, {badPage: 0})
      let r: ReturnType<typeof recoverArray> | undefined
      assert.doesNotThrow(() => {
        r = recoverArray(f.devs, {})
      }, 'the kernel recovers from this log; r5ctl must not refuse it')
      assert.equal(r!.skippedUnits.length, 1)
      assert.equal(r!.stopSector, ringAdd(f, f.tail, 8))
      assertUntouched(f, T, 'the dropped tail unit')
      assertClosedAt(f, ringAdd(f, f.tail, 8), f.s0 + 1n + 10000n)
      assertRecovered(f)
    })

    it('garbage beyond the head: the valid log is replayed and the head is closed over the garbage', function () {
      const f = fixture(5)
      const D = f.n - 1
      const all = Array.from({length: D}, (_, i) => i)
      const A = stripeWrite(f, S_A, all, 21)
      const B = stripeWrite(f, S_B, [0, 2], 22)
      const pA = ringAdd(f, f.tail, 8)
      const pB = unit(f, pA, f.s0 + 1n, A.records)
      const head = unit(f, pB, f.s0 + 2n, B.records)
      ringWrite(f, head, pseudoRandom(10 * PAGE, 23))
      const r = recoverArray(f.devs, {})
      assert.equal(r.stopSector, head)
      assert.equal(r.dataParityStripes, 2)
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertOnMembers(f, B, 'B')
      applyToModel(f, B)
      assertClosedAt(f, head, f.s0 + 3n + 10000n)
      assertRecovered(f)
    })

    it('a stale valid-looking block beyond the head (seq + 1 at the next position) is not replayed by a second recover', function () {
      // The kernel's comment before r5c_recovery_rewrite_data_only_stripes: had recovery closed
      // the log at H with seq s (not s + 10000), a later recover would read on from H and accept
      // the stale block at H + 8 with seq s + 1.
      const f = fixture(5)
      const D = f.n - 1
      const all = Array.from({length: D}, (_, i) => i)
      const A = stripeWrite(f, S_A, all, 31)
      const Z = stripeWrite(f, S_D, all, 32)
      const pA = ringAdd(f, f.tail, 8)
      const H = unit(f, pA, f.s0 + 1n, A.records)
      ringWrite(f, H, pseudoRandom(PAGE, 33)) // a torn block: the head
      const zAt = ringAdd(f, H, 8)
      unit(f, zAt, f.s0 + 3n, Z.records) // stale, but valid for seq s0+3 at H + 8
      const stale = f.journal.data.slice(f.ringBase + zAt * 512, f.ringBase + (zAt + 8 * 5) * 512)

      const r = recoverArray(f.devs, {})
      assert.equal(r.stopSector, H)
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertUntouched(f, Z, 'Z (beyond the head)')
      assertClosedAt(f, H, f.s0 + 2n + 10000n)
      assert.ok(
        Buffer.from(f.journal.data.subarray(f.ringBase + zAt * 512, f.ringBase + (zAt + 40) * 512)).equals(stale),
        'the stale unit is still in the ring',
      )
      // second recover: H's seq is s0+10002, so H+8 would need s0+10003; Z (s0+3) stays stale
      const snap = snapshot(f.devs)
      const again = recoverArray(f.devs, {})
      assert.equal(again.state, 'clean')
      assert.deepEqual(changedSince(f.devs, snap), [])
      assertUntouched(f, Z, 'Z after the second recover')
      assertRecovered(f)
      // control: Z really is a valid continuation for a block with seq s0+2 at H, so the test
      // above is not vacuous (a closing block without the + 10000 would have let it in)
      ringWrite(f, H, encodeMetaBlock({seq: f.s0 + 2n, position: BigInt(H), payloads: []}, f.seed))
      const careless = recoverArray(f.devs, {dryRun: true})
      assert.equal(careless.dataParityStripes, 1, 'Z would be replayed after a closing block with seq s0+2')
    })
  })

  describe('stripe states (r5c_recovery_analyze_meta_block)', function () {
    for (const level of [5, 6] as const) {
      it(`raid${level}: a write-back data-only stripe: recover writes the data and parity computed from the members + logged data`, function () {
        const f = fixture(level)
        const W = stripeWrite(f, S_B, level === 6 ? [0, 2] : [1], 41)
        const next = unit(f, ringAdd(f, f.tail, 8), f.s0 + 1n, W.dataRecords)
        const j = examineJournal(f.devs)
        assert.equal(j.state, 'dirty')
        assert.deepEqual(j.stripesPending, {dataParity: 0, dataOnly: 1})
        const r = recoverArray(f.devs, {})
        assert.equal(r.dataOnlyStripes, 1)
        assert.equal(r.dataParityStripes, 0)
        assertOnMembers(f, W, 'data-only stripe with computed parity')
        applyToModel(f, W)
        assert.equal(r.stopSector, next)
        assertRecovered(f)
      })
    }

    it('data-only, then a PARITY record for the same stripe (write-out): a complete stripe, replayed with the logged parity', function () {
      // r5l_recovery_load_parity clears STRIPE_R5C_CACHING: the stripe is data-parity now
      const f = fixture(5)
      const W = stripeWrite(f, S_C, [0, 2], 95)
      let p = ringAdd(f, f.tail, 8)
      p = unit(f, p, f.s0 + 1n, W.dataRecords)
      const parity = W.records[W.records.length - 1]
      unit(f, p, f.s0 + 2n, [parity])
      const dry = recoverArray(f.devs, {dryRun: true})
      assert.equal(dry.dataParityStripes, 1)
      assert.equal(dry.dataOnlyStripes, 0)
      assert.ok(
        dry.writes.every(w => w.source === 'log'),
        'nothing computed: the parity comes from the log',
      )
      recoverArray(f.devs, {})
      assertOnMembers(f, W, 'written-out stripe')
      applyToModel(f, W)
      assertRecovered(f)
    })

    it('a FLUSH payload after the data drops the stripe: the members keep their bytes', function () {
      const f = fixture(5)
      const D = f.n - 1
      const all = Array.from({length: D}, (_, i) => i)
      const S1 = stripeWrite(f, S_A, all, 51) // complete (data + parity), then flushed
      const S2 = stripeWrite(f, S_B, [2], 52) // data-only, then flushed
      const S3 = stripeWrite(f, S_C, all, 53) // complete, never flushed: replayed
      let p = ringAdd(f, f.tail, 8)
      p = unit(f, p, f.s0 + 1n, [...S1.records, ...S2.dataRecords, ...S3.records])
      p = unit(f, p, f.s0 + 2n, [{t: 'flush', stripes: [S_A, S_B]}])
      const r = recoverArray(f.devs, {})
      assert.equal(r.dataParityStripes, 1)
      assert.equal(r.dataOnlyStripes, 0)
      assertUntouched(f, S1, 'S1 (flushed)')
      assertUntouched(f, S2, 'S2 (flushed)')
      assertOnMembers(f, S3, 'S3')
      applyToModel(f, S3)
      assert.equal(r.stopSector, p)
      assert.ok(!r.writes.some(w => w.offsetSector <= S_B && w.offsetSector + 8 * w.pages > S_A), 'no write planned for the flushed stripes')
      assertRecovered(f)
    })

    it('a parity-only stripe writes nothing to the members', function () {
      const f = fixture(5)
      const ref = lsStripe(5, f.n, CHUNK_SECTORS, S_B)
      const junk = pseudoRandom(PAGE, 61) // if it were written, parity would be inconsistent
      const head = unit(f, ringAdd(f, f.tail, 8), f.s0 + 1n, [{t: 'parity', stripeSector: S_B, pages: [junk]}])
      const members = snapshot(f.members)
      const dry = recoverArray(f.devs, {dryRun: true})
      assert.deepEqual(dry.writes, [])
      const r = recoverArray(f.devs, {})
      assert.equal(r.dataParityStripes, 0)
      assert.equal(r.pagesWritten, 0)
      // members: only their superblocks (events, journal_tail bookkeeping) may change, no data page
      for (let m = 0; m < f.n; m++) {
        const a = Buffer.from(f.members[m].data.subarray(f.memberBase))
        const b = Buffer.from(members[m].subarray(f.memberBase))
        assert.ok(a.equals(b), `member ${m}'s data area changed`)
      }
      assert.ok(!memberPage(f, ref.pd, S_B).equals(junk))
      assertClosedAt(f, head, f.s0 + 2n + 10000n)
      assertRecovered(f)
    })

    for (const level of [5, 6] as const) {
      it(`raid${level}: data, parity, then new data for the same stripe: the complete stripe is replayed, the new data stays data-only (parity computed)`, function () {
        const f = fixture(level)
        const first = stripeWrite(f, S_C, [0], 71) // complete: data index 0 + parity
        // the second write's parity is computed over the members after the first one
        const after = new Map(first.before)
        for (const [slot, page] of first.expect) after.set(slot, page)
        const second = stripeWrite(f, S_C, [1], 72, after)
        let p = ringAdd(f, f.tail, 8)
        p = unit(f, p, f.s0 + 1n, first.records)
        unit(f, p, f.s0 + 2n, second.dataRecords)
        const r = recoverArray(f.devs, {})
        assert.equal(r.dataParityStripes, 1, 'the complete stripe is replayed (r5l_recovery_replay_one_stripe on new data)')
        assert.equal(r.dataOnlyStripes, 1, 'the new data is a data-only stripe')
        const dd0 = first.ref.dataMembers[0]
        assert.ok(memberPage(f, dd0, S_C).equals(first.data.get(0)!), "the first write's data reached the members")
        assertOnMembers(f, second, 'second write with parity over first + second')
        applyToModel(f, first)
        applyToModel(f, second)
        assertRecovered(f)
      })
    }
  })

  describe('options', function () {
    it('--until-seq stops after the meta block with that seq: later units are not replayed', function () {
      const f = fixture(5)
      const {A, B, C, pC} = threeUnits(f)
      const r = recoverArray(f.devs, {untilSeq: f.s0 + 2n})
      assert.equal(r.stopReason, 'until-seq')
      assert.equal(r.stopSector, pC)
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertOnMembers(f, B, 'B')
      applyToModel(f, B)
      assertUntouched(f, C, 'C (after --until-seq)')
      assertClosedAt(f, pC, f.s0 + 3n + 10000n)
      assertRecovered(f)
      assertUntouched(f, C, 'C after a second, unrestricted recover')
    })

    for (const level of [5, 6] as const) {
      it(`raid${level}: --dry-run writes nothing, and its writes list is exactly the member pages a real run changes`, function () {
        const f = fixture(level)
        const D = level === 6 ? f.n - 2 : f.n - 1
        const all = Array.from({length: D}, (_, i) => i)
        const A = stripeWrite(f, S_A, all, 81)
        const A2 = stripeWrite(f, S_A + 8, all, 82) // contiguous with A: runs coalesce
        const B = stripeWrite(f, S_C, [0], 83) // partial complete stripe
        const W = stripeWrite(f, S_D, [D - 1], 84) // data-only: parity computed
        let p = ringAdd(f, f.tail, 8)
        p = unit(f, p, f.s0 + 1n, [...A.records, ...A2.records])
        unit(f, p, f.s0 + 2n, [...B.records, ...W.dataRecords])
        const hashes = hashAll(f.devs)
        const w0 = totalWrites(f.devs)
        const dry = recoverArray(f.devs, {dryRun: true})
        assert.equal(dry.state, 'would-replay')
        assert.equal(totalWrites(f.devs), w0, 'dry run: no write request')
        assert.deepEqual(hashAll(f.devs), hashes, 'dry run: no byte changed')
        const before = snapshot(f.members)
        const real = recoverArray(f.devs, {})
        assert.equal(real.state, 'replayed')
        // a real run streams in bounded memory and lists no runs; it writes the pages the dry run listed
        assert.deepEqual(real.writes, [])
        assert.equal(real.pagesWritten, dry.pagesWritten)
        // pages named by the runs, as "slot:memberSector"
        const listed = new Set<string>()
        for (const w of dry.writes) for (let k = 0; k < w.pages; k++) listed.add(`${w.slot}:${w.offsetSector + 8 * k}`)
        assert.equal(
          listed.size,
          dry.writes.reduce((a, w) => a + w.pages, 0),
          'runs do not overlap',
        )
        const changed = new Set<string>()
        f.members.forEach((m, slot) => {
          for (let o = f.memberBase; o < m.size; o += PAGE) {
            if (!Buffer.from(m.data.subarray(o, o + PAGE)).equals(Buffer.from(before[slot].subarray(o, o + PAGE))))
              changed.add(`${slot}:${(o - f.memberBase) / 512}`)
          }
        })
        assert.deepEqual([...changed].sort(), [...listed].sort())
        // sources: parity of the data-only stripe is computed, everything else comes from the log
        const computed = dry.writes
          .filter(w => w.source === 'computed')
          .flatMap(w => Array.from({length: w.pages}, (_, k) => `${w.slot}:${w.offsetSector + 8 * k}`))
        assert.deepEqual(computed.sort(), [W.ref.pd, ...(level === 6 ? [W.ref.qd] : [])].map(s => `${s}:${S_D}`).sort())
        for (const w of [A, A2, B, W]) {
          assertOnMembers(f, w, 'after the real run')
          applyToModel(f, w)
        }
        assertRecovered(f)
      })
    }
  })

  describe('safety: nothing reaches a member before its records are verified', function () {
    it('a corrupt page in the last unit: that unit is dropped (kernel rule, not an error), the earlier units are applied', function () {
      const f = fixture(5)
      const {A, B, C, pC} = threeUnits(f, {C: {badPage: 3}})
      const before = snapshot(f.members)
      const r = recoverArray(f.devs, {})
      assert.equal(r.skippedUnits.length, 1)
      assert.equal(r.skippedUnits[0].positionSector, pC)
      assertOnMembers(f, A, 'A')
      applyToModel(f, A)
      assertOnMembers(f, B, 'B')
      applyToModel(f, B)
      assertUntouched(f, C, 'C (corrupt page: dropped as a whole)')
      // exactly the pages of A and B changed on the members
      const expected = new Set<string>()
      for (const w of [A, B]) for (const slot of w.expect.keys()) expected.add(`${slot}:${w.S}`)
      const changed = new Set<string>()
      f.members.forEach((m, slot) => {
        for (let o = f.memberBase; o < m.size; o += PAGE) {
          if (!Buffer.from(m.data.subarray(o, o + PAGE)).equals(Buffer.from(before[slot].subarray(o, o + PAGE))))
            changed.add(`${slot}:${(o - f.memberBase) / 512}`)
        }
      })
      assert.deepEqual([...changed].sort(), [...expected].sort())
      assertClosedAt(f, ringAdd(f, pC, 8), f.s0 + 4n + 10000n)
      assertRecovered(f)
    })

    it('no valid meta block at journal_tail: recover refuses with exit code 4 and no byte of any device changes', function () {
      for (const dryRun of [false, true]) {
        const f = fixture(5)
        threeUnits(f)
        // corrupt the tail block itself (its checksum)
        f.journal.data[f.ringBase + f.tail * 512 + 4] ^= 0x10
        const hashes = hashAll(f.devs)
        const w0 = totalWrites(f.devs)
        assert.throws(
          () => recoverArray(f.devs, {dryRun}),
          (e: unknown) => {
            assert.ok(e instanceof R5Error, String(e))
            assert.ok(e instanceof CorruptError, `${(e as Error).constructor.name}: ${(e as Error).message}`)
            assert.equal(e.exitCode, EXIT.CORRUPT)
            assert.equal(e.exitCode, 4)
            return true
          },
        )
        assert.equal(totalWrites(f.devs), w0, 'no write request')
        assert.deepEqual(hashAll(f.devs), hashes, 'no byte changed')
        assert.equal(examineJournal(f.devs).state, 'corrupt')
      }
    })
  })
})
