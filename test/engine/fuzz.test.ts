/**
 * Hostile-input fuzzing: a seeded mutator over the on-disk structures of small in-memory
 * journaled arrays (RAID5 with 4 members, RAID6 with 5; each with a clean journal and with a dirty
 * one left by a write cut short by a simulated power cut), and every engine operation run on the
 * result. Mutations: bit flips and byte runs in member and journal superblocks, meta blocks and
 * logged pages; absurd values in superblock fields (max_dev, data_offset/data_size past the end,
 * size, chunksize, raid_disks, level, layout, journal_tail outside the ring or unaligned,
 * dev_number, duplicate dev_roles, events, uuid), in meta block fields (meta_size, seq near 2^64,
 * position outside the ring) and in payload lists (type, size, location past the end, added,
 * dropped or duplicated payloads); truncated devices (a shorter MemDevice holding a prefix of the
 * bytes); and odd device lists. In half the cases the checksums are recomputed after the mutation
 * so that the structure checks are exercised, not only the checksums.
 *
 * Properties, per operation (examineDevices, examineJournal, dumpMeta, readData, recoverArray,
 * reclaimArray, writeData of one page, assembleArray):
 *   - nothing but an R5Error reaches the caller (no TypeError, RangeError, out-of-memory);
 *   - the exit code is one of the documented ones (shared/design/CLI.md);
 *   - an operation takes < 2 s (an allocation or a loop sized by an unchecked field shows here);
 *   - read-only operations never change a byte; an operation that fails with a validation error
 *     (exit 2, 3, 4) or a dirty-journal refusal (exit 5) has changed no byte of any device.
 *
 * Every case is derived from its own 32-bit seed, printed with any failure. Replay one case with
 * R5CTL_FUZZ_CASE=0x<seed> (prints what it did); R5CTL_FUZZ_SEED changes the master seed;
 * R5CTL_LONG=1 runs ≥ 100,000 cases; R5CTL_FUZZ_TRACE=1 prints each case seed before it runs (to
 * find a case that hangs).
 */
import assert from 'node:assert/strict'
import {uuidSeed, crc32cRaw, sbCsum} from '../../src/engine/checksum.js'
import {MemDevice} from '../../src/engine/device.js'
import {R5Error, EXIT} from '../../src/engine/errors.js'
import {META_MAGIC, decodeMetaBlock, encodeMetaBlock} from '../../src/engine/format/meta.js'
import {SB_MAX_DEV} from '../../src/engine/format/superblock.js'
import {assembleArray, dumpMeta, examineDevices, examineJournal, reclaimArray, recoverArray, readData, writeData} from '../../src/engine/index.js'
import {DATA_OFFSET_BYTES, PAGE, bufferSource, createMemArray, pseudoRandom} from '../helpers/model.js'

const KiB = 1024
const LONG = process.env.R5CTL_LONG === '1'
const ONE = process.env.R5CTL_FUZZ_CASE
const TRACE = process.env.R5CTL_FUZZ_TRACE === '1'
const MASTER = Number(process.env.R5CTL_FUZZ_SEED ?? 0x5eed5) >>> 0
const CASES = ONE ? 1 : LONG ? 100_000 : 2_000
const OP_BUDGET_MS = 2000
const SB_OFF = 4096
const DOCUMENTED: number[] = Object.values(EXIT)
/** exits after which no byte may have changed */
const VALIDATION: number[] = [EXIT.USAGE, EXIT.REFUSED, EXIT.CORRUPT, EXIT.DIRTY]

// ---------------------------------------------------------------------------------------------
// PRNG

/** xorshift32 */
class Rng {
  private x: number
  constructor(seed: number) {
    this.x = seed >>> 0 || 0x9e3779b9
  }
  next(): number {
    let x = this.x
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    this.x = x
    return x
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n
  }
  bool(p = 0.5): boolean {
    return this.next() / 0x100000000 < p
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]
  }
  u64(): bigint {
    return (BigInt(this.next()) << 32n) | BigInt(this.next())
  }
}

/** per-case seed from the master seed and the case index (splitmix-like finaliser) */
function caseSeed(i: number): number {
  let h = (MASTER ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
  return (h ^ (h >>> 16)) >>> 0 || 1
}

// ---------------------------------------------------------------------------------------------
// base arrays

interface Base {
  name: string
  level: 5 | 6
  /** journal first, then members in slot order */
  devs: MemDevice[]
  seed: number
  ringSectors: number
  arraySectors: number
  memberSectors: number
  /** ring positions (sectors) of every well-formed meta block in the ring (live or stale) */
  metaBlocks: number[]
}

function findMetaBlocks(journal: MemDevice, ringSectors: number, seed: number): number[] {
  const out: number[] = []
  for (let s = 0; s < ringSectors; s += 8) {
    const blk = journal.data.subarray(DATA_OFFSET_BYTES + s * 512, DATA_OFFSET_BYTES + s * 512 + PAGE)
    if (Buffer.from(blk.buffer, blk.byteOffset, 4).readUInt32LE(0) !== META_MAGIC) continue
    const {meta, problems} = decodeMetaBlock(blk, seed, {position: BigInt(s)})
    if (meta && problems.length === 0) out.push(s)
  }
  return out
}

function makeBase(level: 5 | 6, dirty: boolean): Base {
  const raidDevices = level === 6 ? 5 : 4
  const memberDataBytes = 64 * KiB
  const a = createMemArray({level, raidDevices, chunkBytes: 16 * KiB, memberDataBytes, journalRingBytes: 256 * KiB})
  const data = pseudoRandom(a.sizeBytes, level * 7 + 1)
  // a few complete writes (write-through and write-back: data, parity and flush payloads)
  writeData(a.devs, 0, 48 * KiB, bufferSource(data), {mode: 'write-through'})
  writeData(a.devs, 64 * KiB, 8 * KiB, bufferSource(data.subarray(64 * KiB)), {mode: 'write-back'})
  writeData(a.devs, 16 * KiB, 4 * KiB, bufferSource(data.subarray(100 * KiB)), {mode: 'write-back'})
  if (!dirty) reclaimArray(a.devs)
  else {
    // cut a write-through write short after its log writes, before every member was written
    let done = false
    for (let crashAfter = 1; crashAfter < 64 && !done; crashAfter++) {
      const devs = a.devs.map(d => new MemDevice(d.name, d.size, d.data.slice()))
      try {
        writeData(devs, 96 * KiB, 48 * KiB, bufferSource(data.subarray(8 * KiB)), {mode: 'write-through', crashAfter})
      } catch (error) {
        if (!(error instanceof R5Error) || error.exitCode !== EXIT.CRASH) throw error
      }
      if (examineJournal(devs).state === 'dirty') {
        a.devs.forEach((d, i) => d.data.set(devs[i].data))
        done = true
      }
    }
    assert.ok(done, 'could not make a dirty journal')
  }
  const js = examineJournal(a.devs)
  assert.equal(js.state, dirty ? 'dirty' : 'clean')
  const seed = uuidSeed(a.journal.data.subarray(SB_OFF + 16, SB_OFF + 32))
  const ringSectors = a.ringBytes / 512
  return {
    name: `raid${level}-${dirty ? 'dirty' : 'clean'}`,
    level,
    devs: a.devs,
    seed,
    ringSectors,
    arraySectors: a.sizeBytes / 512,
    memberSectors: memberDataBytes / 512,
    metaBlocks: findMetaBlocks(a.journal, ringSectors, seed),
  }
}

// ---------------------------------------------------------------------------------------------
// mutations

interface Subject {
  base: Base
  devs: MemDevice[]
  rng: Rng
  /** recompute checksums after mutating */
  fix: boolean
  log: string[]
}

function le(buf: Uint8Array, off: number, width: number, v: bigint): void {
  let x = BigInt.asUintN(width * 8, v)
  for (let i = 0; i < width; i++) {
    buf[off + i] = Number(x & 0xffn)
    x >>= 8n
  }
}

function rdle(buf: Uint8Array, off: number, width: number): bigint {
  let x = 0n
  for (let i = width - 1; i >= 0; i--) x = (x << 8n) | BigInt(buf[off + i])
  return x
}

/** recompute sb_csum of the superblock at SB_OFF on `d` (over the roles that fit the block) */
function fixSbCsum(d: MemDevice): void {
  if (d.data.length < SB_OFF + 4096) return
  const sb = d.data.subarray(SB_OFF, SB_OFF + 4096)
  const maxDev = Math.min(Number(rdle(sb, 220, 4)), SB_MAX_DEV)
  le(sb, 216, 4, BigInt(sbCsum(sb, maxDev)))
}

/** recompute the checksum of the meta block at ring sector `pos` */
function fixMetaCsum(s: Subject, pos: number): void {
  const j = s.devs[0]
  const off = DATA_OFFSET_BYTES + pos * 512
  if (off + PAGE > j.data.length) return
  const blk = j.data.subarray(off, off + PAGE)
  le(blk, 4, 4, 0n)
  le(blk, 4, 4, BigInt(crc32cRaw(s.base.seed, blk)))
}

const U64_MAX = (1n << 64n) - 1n

interface SbField {
  name: string
  off: number
  width: number
  values: (s: Subject, d: MemDevice) => bigint[]
}

const SB_FIELDS: SbField[] = [
  {name: 'max_dev', off: 220, width: 4, values: () => [0n, 1n, 3n, 4n, 5n, 6n, 1919n, 1920n, 1921n, 4096n, 0x7fffffffn, 0xffffffffn]},
  {
    name: 'data_offset',
    off: 128,
    width: 8,
    values: (_s, d) => [
      0n,
      1n,
      7n,
      8n,
      9n,
      2047n,
      2049n,
      BigInt(d.size / 512),
      BigInt(d.size / 512) - 8n,
      1n << 53n,
      (1n << 53n) + 1n,
      1n << 63n,
      U64_MAX,
    ],
  },
  {
    name: 'data_size',
    off: 136,
    width: 8,
    values: (s, d) => [
      0n,
      1n,
      7n,
      8n,
      15n,
      16n,
      17n,
      BigInt(d.size / 512),
      BigInt(d.size / 512) - 2048n + 8n,
      BigInt(s.base.ringSectors) + 1n,
      1n << 53n,
      1n << 62n,
      U64_MAX,
    ],
  },
  {
    name: 'size',
    off: 80,
    width: 8,
    values: s => [
      0n,
      1n,
      8n,
      31n,
      32n,
      33n,
      BigInt(s.base.memberSectors) + 32n,
      BigInt(s.base.memberSectors) * 2n,
      1n << 40n,
      1n << 53n,
      (1n << 53n) + 1n,
      1n << 63n,
      U64_MAX,
    ],
  },
  {name: 'chunksize', off: 88, width: 4, values: () => [0n, 1n, 7n, 8n, 9n, 12n, 16n, 64n, 128n, 1n << 20n, 1n << 30n, 1n << 31n, 0xffffffffn]},
  {name: 'raid_disks', off: 92, width: 4, values: () => [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 200n, 1920n, 1921n, 0x7fffffffn, 0xffffffffn]},
  {name: 'level', off: 72, width: 4, values: () => [0n, 1n, 4n, 5n, 6n, 7n, 10n, 0xffffffffn, 0xfffffffcn, 0x7fffffffn, 0x80000000n]},
  {name: 'layout', off: 76, width: 4, values: () => [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 10n, 11n, 16n, 20n, 21n, 0x7fffffffn, 0xffffffffn]},
  {
    name: 'journal_tail',
    off: 152,
    width: 8,
    values: s => {
      const r = BigInt(s.base.ringSectors)
      return [
        0n,
        1n,
        3n,
        4n,
        7n,
        9n,
        r - 8n,
        r - 4n,
        r - 1n,
        r,
        r + 8n,
        r * 2n,
        1n << 32n,
        1n << 53n,
        (1n << 53n) + 8n,
        1n << 63n,
        U64_MAX,
        U64_MAX - 7n,
      ]
    },
  },
  {name: 'dev_number', off: 160, width: 4, values: () => [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 1919n, 1920n, 0x7fffffffn, 0xffffffffn]},
  {name: 'events', off: 200, width: 8, values: () => [0n, 1n, 2n, 3n, 100n, 1n << 53n, U64_MAX - 1n, U64_MAX]},
  {name: 'super_offset', off: 144, width: 8, values: () => [0n, 7n, 9n, U64_MAX]},
  {name: 'feature_map', off: 8, width: 4, values: () => [0n, 0x1n, 0x200n, 0x204n, 0x201n, 0x208n, 0x1fffn, 0x2000n, 0xffffffffn]},
  {name: 'major_version', off: 4, width: 4, values: () => [0n, 2n, 0xffffffffn]},
  {name: 'resync_offset', off: 208, width: 8, values: () => [0n, 8n, U64_MAX]},
  {name: 'ctime', off: 64, width: 8, values: () => [0n, U64_MAX, 1n << 40n]},
  {name: 'utime', off: 192, width: 8, values: () => [0n, U64_MAX, (1n << 40n) - 1n]},
  {name: 'bitmap_offset', off: 96, width: 4, values: () => [0n, 8n, 0xfffffff8n]},
  {name: 'reshape_position', off: 104, width: 8, values: () => [0n, U64_MAX]},
  {name: 'delta_disks', off: 112, width: 4, values: () => [0n, 1n, 0xffffffffn]},
  {name: 'new_chunk', off: 120, width: 4, values: () => [0n, 0xffffffffn]},
  {name: 'bblog', off: 185, width: 1, values: () => [0n, 9n, 255n]},
]

function pickDevIndex(s: Subject): number {
  // the journal often: it carries journal_tail and the ring geometry
  return s.rng.bool(0.4) ? 0 : s.rng.int(s.devs.length)
}

function mutateSuperblock(s: Subject): void {
  const {rng} = s
  const di = pickDevIndex(s)
  const d = s.devs[di]
  if (d.data.length < SB_OFF + 4096) return
  const sb = d.data.subarray(SB_OFF, SB_OFF + 4096)
  const kind = rng.int(10)
  if (kind < 5) {
    const f = rng.pick(SB_FIELDS)
    const vals = f.values(s, d)
    const v = rng.bool(0.85) ? rng.pick(vals) : BigInt.asUintN(f.width * 8, rng.u64())
    le(sb, f.off, f.width, v)
    s.log.push(`${d.name}.sb.${f.name}=${v}`)
  } else if (kind < 7) {
    // dev_roles: duplicates, a second journal, spare/faulty, out of range, garbage
    const maxDev = Math.min(Number(rdle(sb, 220, 4)), SB_MAX_DEV)
    const i = rng.int(Math.max(maxDev, 1) + 1)
    const other = rng.int(Math.max(maxDev, 1))
    const choices = [
      Number(rdle(sb, 256 + 2 * other, 2)),
      0xfffd,
      0xffff,
      0xfffe,
      0,
      1,
      s.base.devs.length - 1,
      s.base.devs.length,
      1919,
      rng.int(0x10000),
    ]
    const v = rng.pick(choices)
    le(sb, 256 + 2 * i, 2, BigInt(v))
    s.log.push(`${d.name}.sb.dev_roles[${i}]=0x${v.toString(16)}`)
  } else if (kind < 8) {
    // set_uuid / device_uuid / set_name bytes
    const off = rng.pick([16, 16 + rng.int(16), 168 + rng.int(16), 32 + rng.int(32)])
    sb[off] ^= 1 + rng.int(255)
    s.log.push(`${d.name}.sb[${off}]^=..`)
  } else if (kind < 9) {
    const bits = 1 + rng.int(4)
    for (let k = 0; k < bits; k++) {
      const off = rng.bool(0.8) ? rng.int(256 + 2 * 8) : rng.int(4096)
      const bit = rng.int(8)
      sb[off] ^= 1 << bit
      s.log.push(`${d.name}.sb[${off}]^=bit${bit}`)
    }
  } else {
    const off = rng.int(300)
    const len = 1 + rng.int(32)
    const fill = rng.pick([0x00, 0xff, -1])
    for (let k = off; k < Math.min(off + len, 4096); k++) sb[k] = fill < 0 ? rng.int(256) : fill
    s.log.push(`${d.name}.sb[${off}..+${len}]=${fill < 0 ? 'rand' : fill}`)
  }
  if (s.fix) fixSbCsum(d)
}

/**
 * The same absurd value on every device (array-wide fields, roles): a single odd superblock is
 * outvoted by the others (geometry mismatch), so the values that reach the geometry need this.
 */
function mutateAllSuperblocks(s: Subject): void {
  const {rng} = s
  const kind = rng.int(4)
  const f = rng.pick(SB_FIELDS)
  const v = rng.pick(f.values(s, s.devs[0]))
  const a = rng.int(8)
  const b = rng.int(8)
  const role = rng.pick([0, 1, 2, 0xfffd, 0xffff, 0xfffe, 7, 1919])
  for (const d of s.devs) {
    if (d.data.length < SB_OFF + 4096) continue
    const sb = d.data.subarray(SB_OFF, SB_OFF + 4096)
    if (kind === 0)
      le(sb, 256 + 2 * a, 2, rdle(sb, 256 + 2 * b, 2)) // duplicate a role
    else if (kind === 1) le(sb, 256 + 2 * a, 2, BigInt(role))
    else le(sb, f.off, f.width, v)
    if (s.fix || rng.bool(0.8)) fixSbCsum(d)
  }
  s.log.push(
    kind === 0 ? `all.sb.dev_roles[${a}]=dev_roles[${b}]` : kind === 1 ? `all.sb.dev_roles[${a}]=0x${role.toString(16)}` : `all.sb.${f.name}=${v}`,
  )
}

/** byte offsets of the payloads in a meta block (by walking the raw sizes) */
function payloadOffsets(blk: Uint8Array): {off: number; type: number; len: number}[] {
  const metaSize = Math.min(Number(rdle(blk, 12, 4)), PAGE)
  const out: {off: number; type: number; len: number}[] = []
  let off = 32
  while (off + 8 <= metaSize) {
    const type = Number(rdle(blk, off, 2))
    const size = Number(rdle(blk, off + 4, 4))
    const len = type === 2 ? 8 + size : type < 2 ? 16 + 4 * Math.floor(size / 8) : 8
    out.push({off, type, len})
    if (type > 2 || off + len > metaSize) break
    off += len
  }
  return out
}

function metaBlockAt(s: Subject): number | null {
  const {rng, base} = s
  if (base.metaBlocks.length === 0 || rng.bool(0.1)) return rng.int(base.ringSectors / 8) * 8
  return rng.pick(base.metaBlocks)
}

function mutateMeta(s: Subject): void {
  const {rng, base} = s
  const j = s.devs[0]
  const pos = metaBlockAt(s)!
  const off = DATA_OFFSET_BYTES + pos * 512
  if (off + PAGE > j.data.length) return
  const blk = j.data.subarray(off, off + PAGE)
  const r = BigInt(base.ringSectors)
  const seq = rdle(blk, 16, 8)
  const kind = rng.int(12)
  const tag = `j.meta@${pos}`
  if (kind === 0) {
    const v = rng.pick([0n, 1n, 31n, 32n, 33n, 40n, 4095n, 4096n, 4097n, 8192n, 0xffffffffn, BigInt(rng.int(4200))])
    le(blk, 12, 4, v)
    s.log.push(`${tag}.meta_size=${v}`)
  } else if (kind === 1) {
    const v = rng.pick([0n, 1n, seq + 1n, seq - 1n, U64_MAX, U64_MAX - 1n, 1n << 63n, rng.u64()])
    le(blk, 16, 8, v)
    s.log.push(`${tag}.seq=${BigInt.asUintN(64, v)}`)
  } else if (kind === 2) {
    const v = rng.pick([r, r + 8n, r - 8n, r - 1n, BigInt(pos) + 1n, BigInt(pos) + 4n, BigInt(pos) + 8n, 1n << 53n, U64_MAX, U64_MAX - 7n, rng.u64()])
    le(blk, 24, 8, v)
    s.log.push(`${tag}.position=${BigInt.asUintN(64, v)}`)
  } else if (kind === 3) {
    const v = rng.pick([0, 2, 255])
    blk[8] = v
    s.log.push(`${tag}.version=${v}`)
  } else if (kind <= 7) {
    // a payload field
    const pls = payloadOffsets(blk)
    if (pls.length === 0) {
      s.log.push(`${tag}: no payloads`)
      mutateMetaAppend(s, blk, tag)
      return
    }
    const p = rng.pick(pls)
    const which = rng.int(4)
    if (which === 0) {
      const v = rng.pick([0n, 1n, 2n, 3n, 0xffffn])
      le(blk, p.off, 2, v)
      s.log.push(`${tag}.payload@${p.off}.type=${v}`)
    } else if (which === 1) {
      const v = rng.pick([0n, 4n, 8n, 16n, 24n, 1016n, 1024n, r, r * 8n, 0x7ffffff8n, 0xfffffff8n, 0xffffffffn, BigInt(rng.int(64)) * 8n])
      le(blk, p.off + 4, 4, v)
      s.log.push(`${tag}.payload@${p.off}.size=${v}`)
    } else if (which === 2) {
      const A = BigInt(base.arraySectors)
      const M = BigInt(base.memberSectors)
      const target = p.type === 2 ? p.off + 8 : p.off + 8
      const v = rng.pick([
        A,
        A - 8n,
        A + 8n,
        A - 1n,
        M,
        M - 8n,
        M + 8n,
        1n,
        3n,
        1n << 53n,
        (1n << 53n) + 8n,
        1n << 63n,
        U64_MAX,
        U64_MAX - 7n,
        rng.u64(),
      ])
      if (target + 8 <= PAGE) le(blk, target, 8, v)
      s.log.push(`${tag}.payload@${p.off}.location=${BigInt.asUintN(64, v)}`)
    } else {
      const v = rng.pick([0n, 1n, 2n, 3n, 0xffffn])
      le(blk, p.off + 2, 2, v)
      s.log.push(`${tag}.payload@${p.off}.flags=${v}`)
    }
  } else if (kind === 8) {
    mutateMetaAppend(s, blk, tag)
  } else if (kind === 9) {
    // drop or duplicate a payload
    const pls = payloadOffsets(blk)
    if (pls.length === 0) {
      mutateMetaAppend(s, blk, tag)
      return
    }
    const p = rng.pick(pls)
    const metaSize = Number(rdle(blk, 12, 4))
    if (rng.bool() || p.off + 2 * p.len > PAGE) {
      blk.copyWithin(p.off, p.off + p.len, PAGE)
      le(blk, 12, 4, BigInt(metaSize - p.len))
      s.log.push(`${tag}: dropped payload@${p.off}`)
    } else {
      blk.copyWithin(p.off + p.len, p.off, PAGE - p.len)
      le(blk, 12, 4, BigInt(metaSize + p.len))
      s.log.push(`${tag}: duplicated payload@${p.off}`)
    }
  } else if (kind === 10) {
    const bits = 1 + rng.int(4)
    const metaSize = Math.max(32, Math.min(Number(rdle(blk, 12, 4)), PAGE))
    for (let k = 0; k < bits; k++) {
      const o = rng.bool(0.9) ? rng.int(metaSize) : rng.int(PAGE)
      const bit = rng.int(8)
      blk[o] ^= 1 << bit
      s.log.push(`${tag}[${o}]^=bit${bit}`)
    }
  } else {
    const o = rng.int(256)
    const len = 1 + rng.int(32)
    const fill = rng.pick([0x00, 0xff, -1])
    for (let k = o; k < Math.min(o + len, PAGE); k++) blk[k] = fill < 0 ? rng.int(256) : fill
    s.log.push(`${tag}[${o}..+${len}]=${fill < 0 ? 'rand' : fill}`)
  }
  if (s.fix) fixMetaCsum(s, pos)
}

/** append a payload (often absurd) at meta_size */
function mutateMetaAppend(s: Subject, blk: Uint8Array, tag: string): void {
  const {rng, base} = s
  const metaSize = Math.min(Number(rdle(blk, 12, 4)), PAGE)
  const type = rng.pick([0, 1, 2, 2, 7])
  const A = BigInt(base.arraySectors)
  let len: number
  const at = metaSize
  if (at + 24 > PAGE) return
  le(blk, at, 2, BigInt(type))
  le(blk, at + 2, 2, 0n)
  if (type === 2) {
    const n = rng.int(4)
    le(blk, at + 4, 4, BigInt(8 * n))
    for (let k = 0; k < n && at + 16 + 8 * k <= PAGE; k++) le(blk, at + 8 + 8 * k, 8, rng.pick([0n, 8n, A, U64_MAX, rng.u64()]))
    len = 8 + 8 * n
  } else {
    const pages = rng.pick([0, 1, 2, 3, 64, 1000])
    le(blk, at + 4, 4, BigInt(pages * 8))
    le(blk, at + 8, 8, rng.pick([0n, 8n, A - 8n, A, A * 2n, U64_MAX - 7n, rng.u64() & ~7n]))
    len = 16 + 4 * pages
    for (let k = 0; k < pages && at + 16 + 4 * k + 4 <= PAGE; k++) le(blk, at + 16 + 4 * k, 4, BigInt(rng.next()))
  }
  le(blk, 12, 4, BigInt(Math.min(at + len, rng.bool(0.9) ? PAGE : 0xffffffff)))
  s.log.push(`${tag}: appended type-${type} payload`)
}

/** damage a logged page; with fix, update its logged checksum and the meta block's */
function mutatePage(s: Subject): void {
  const {rng, base} = s
  const j = s.devs[0]
  if (base.metaBlocks.length === 0) return
  const pos = rng.pick(base.metaBlocks)
  const moff = DATA_OFFSET_BYTES + pos * 512
  if (moff + PAGE > j.data.length) return
  const blk = j.data.subarray(moff, moff + PAGE)
  const pls = payloadOffsets(blk).filter(p => p.type < 2)
  if (pls.length === 0) {
    mutateMeta(s)
    return
  }
  let pageIndex = 0
  const counts = pls.map(p => Math.floor(Number(rdle(blk, p.off + 4, 4)) / 8))
  const pi = rng.int(pls.length)
  for (let k = 0; k < pi; k++) pageIndex += counts[k]
  if (counts[pi] === 0) return
  const pj = rng.int(counts[pi])
  pageIndex += pj
  const ppos = (pos + 8 * (1 + pageIndex)) % base.ringSectors
  const poff = DATA_OFFSET_BYTES + ppos * 512
  if (poff + PAGE > j.data.length) return
  const page = j.data.subarray(poff, poff + PAGE)
  const n = 1 + rng.int(8)
  for (let k = 0; k < n; k++) page[rng.int(PAGE)] ^= 1 + rng.int(255)
  s.log.push(`j.page@${ppos} (meta@${pos} payload ${pi} page ${pj}) damaged`)
  if (s.fix) {
    const coff = pls[pi].off + 16 + 4 * pj
    if (coff + 4 <= PAGE) le(blk, coff, 4, BigInt(crc32cRaw(base.seed, page)))
    fixMetaCsum(s, pos)
  }
}

/** rewrite the live log's seqs so that they wrap past 2^64 (checksums fixed) */
function mutateSeqWrap(s: Subject): void {
  const {rng, base} = s
  const start = U64_MAX - BigInt(rng.int(3))
  const j = s.devs[0]
  let k = 0n
  for (const pos of base.metaBlocks) {
    const blk = j.data.subarray(DATA_OFFSET_BYTES + pos * 512, DATA_OFFSET_BYTES + pos * 512 + PAGE)
    le(blk, 16, 8, start + k)
    k++
    fixMetaCsum(s, pos)
  }
  s.log.push(`seqs from ${start} wrapping`)
}

/** a forged, well-formed meta block at some ring position */
function mutateForge(s: Subject): void {
  const {rng, base} = s
  const j = s.devs[0]
  const pos = rng.int(base.ringSectors / 8) * 8
  const A = BigInt(base.arraySectors)
  const payloads: Parameters<typeof encodeMetaBlock>[0]['payloads'] = []
  const n = rng.int(4)
  for (let i = 0; i < n; i++) {
    const t = rng.int(3)
    if (t === 2) payloads.push({type: 2, flags: 0, stripes: [rng.pick([0n, 8n, U64_MAX, BigInt(base.memberSectors)])]})
    else {
      const pages = rng.pick([0, 1, 2, 3, 32])
      payloads.push({
        type: t as 0 | 1,
        flags: 0,
        sizeSectors: pages * 8,
        location: rng.pick([0n, 8n, 16n, A - 8n, A, U64_MAX - 7n, BigInt(rng.int(base.arraySectors / 8) * 8)]),
        checksums: Array.from({length: pages}, () => rng.next()),
      })
    }
  }
  const off = DATA_OFFSET_BYTES + pos * 512
  if (off + PAGE > j.data.length) return
  const seq = rng.pick([U64_MAX, 0n, rng.u64()])
  try {
    encodeMetaBlock({seq, position: BigInt(pos), payloads}, base.seed, j.data.subarray(off, off + PAGE))
    s.log.push(`forged meta@${pos} seq=${seq} ${payloads.length} payloads`)
  } catch {
    /* payloads do not fit a page: skip */
  }
}

function truncate(s: Subject): void {
  const {rng} = s
  const di = pickDevIndex(s)
  const d = s.devs[di]
  const sizes = [
    0,
    1,
    512,
    4096,
    4097,
    8191,
    8192,
    8704,
    DATA_OFFSET_BYTES - 512,
    DATA_OFFSET_BYTES,
    DATA_OFFSET_BYTES + 4096,
    d.size - 4096,
    d.size - 512,
    d.size - 1,
    rng.int(d.size),
  ]
  const size = rng.pick(sizes)
  s.devs[di] = new MemDevice(d.name, size, d.data.slice(0, size))
  s.log.push(`${d.name} truncated to ${size}`)
}

const MUTATORS: [string, number, (s: Subject) => void][] = [
  ['superblock', 26, mutateSuperblock],
  ['superblock-all', 12, mutateAllSuperblocks],
  ['meta', 30, mutateMeta],
  ['page', 12, mutatePage],
  ['forge', 6, mutateForge],
  ['seq-wrap', 4, mutateSeqWrap],
  ['truncate', 8, truncate],
]
const TOTAL_WEIGHT = MUTATORS.reduce((a, m) => a + m[1], 0)

function pickMutator(rng: Rng): [string, (s: Subject) => void] {
  let x = rng.int(TOTAL_WEIGHT)
  for (const [name, w, f] of MUTATORS) {
    if (x < w) return [name, f]
    x -= w
  }
  throw new Error('unreachable')
}

// ---------------------------------------------------------------------------------------------
// operations and properties

type Op = {name: string; writes: boolean; run: (devs: MemDevice[], rng: Rng) => unknown}

const OPS: Op[] = [
  {name: 'examineDevices', writes: false, run: devs => examineDevices(devs)},
  {name: 'examineJournal', writes: false, run: devs => examineJournal(devs)},
  {name: 'dumpMeta', writes: false, run: (devs, rng) => dumpMeta(devs, {all: rng.bool(), from: rng.bool(0.2) ? rng.int(600) * 8 : undefined})},
  {
    name: 'readData',
    writes: false,
    run: (devs, rng) => {
      return readData(devs, rng.int(64) * PAGE, rng.bool(0.1) ? undefined : rng.int(17) * PAGE, () => undefined, {force: rng.bool(0.3)})
    },
  },
  {name: 'recoverDryRun', writes: false, run: devs => recoverArray(devs, {dryRun: true})},
  {name: 'recoverArray', writes: true, run: devs => recoverArray(devs, {})},
  {name: 'reclaimArray', writes: true, run: devs => reclaimArray(devs)},
  {
    name: 'writeData',
    writes: true,
    run: (devs, rng) => {
      const buf = pseudoRandom(PAGE, rng.next())
      return writeData(devs, rng.int(48) * PAGE, PAGE, bufferSource(buf), {mode: rng.bool() ? 'write-through' : 'write-back'})
    },
  },
  {
    name: 'assembleArray',
    writes: true,
    run: (devs, rng) => assembleArray(devs, {force: rng.bool(0.3), readonly: rng.bool(0.2), noRecover: rng.bool(0.2)}),
  },
]

function clone(devs: MemDevice[]): MemDevice[] {
  return devs.map(d => new MemDevice(d.name, d.size, d.data.slice()))
}

function changed(devs: MemDevice[], before: MemDevice[]): string[] {
  const out: string[] = []
  devs.forEach((d, i) => {
    const a = d.data
    const b = before[i].data
    if (a.length !== b.length || Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) !== 0)
      out.push(d.name)
  })
  return out
}

/** where in the engine an unexpected exception came from */
function origin(error: unknown): string {
  const stack = error instanceof Error ? (error.stack ?? '') : ''
  const m = stack.split('\n').find(l => l.includes('/src/engine/'))
  return m
    ? m
        .trim()
        .replace(/^at /, '')
        .replace(/\(.*\/src\/engine\//, '(')
        .replace(/:\d+\)$/, ')')
    : '?'
}

const norm = (m: string) => m.replace(/-?\d+n?/g, 'N').slice(0, 120)

interface Failure {
  kind: string
  seed: number
  base: string
  op: string
  mutations: string[]
  detail: string
}

const stats = {
  cases: 0,
  ms: 0,
  byMutator: new Map<string, number>(),
  byOp: new Map<string, number>(),
  byOutcome: new Map<string, number>(),
  byOpOutcome: new Map<string, number>(),
  failures: new Map<string, Failure[]>(),
  slowest: {ms: 0, seed: 0, op: ''},
}
const bump = (m: Map<string, number>, k: string, n = 1) => m.set(k, (m.get(k) ?? 0) + n)

function fail(f: Failure): void {
  const list = stats.failures.get(f.kind) ?? []
  list.push(f)
  stats.failures.set(f.kind, list)
}

/** the devices in the order the operations get them: usually as made, sometimes shuffled, short or repeated */
function deviceList(devs: MemDevice[], rng: Rng, log: string[]): MemDevice[] {
  const r = rng.int(20)
  if (r === 0) {
    const out = [...devs]
    for (let i = out.length - 1; i > 0; i--) {
      const k = rng.int(i + 1)
      ;[out[i], out[k]] = [out[k], out[i]]
    }
    log.push('shuffled')
    return out
  }
  if (r === 1) {
    const drop = rng.int(devs.length)
    log.push(`without ${devs[drop].name}`)
    return devs.filter((_, i) => i !== drop)
  }
  return devs
}

function runCase(bases: Base[], seed: number, verbose = false): void {
  const rng = new Rng(seed)
  const base = bases[rng.int(bases.length)]
  const s: Subject = {base, devs: clone(base.devs), rng, fix: rng.bool(), log: []}
  const nMut = 1 + (rng.bool(0.7) ? 0 : rng.int(3))
  for (let k = 0; k < nMut; k++) {
    const [name, f] = pickMutator(rng)
    bump(stats.byMutator, name)
    f(s)
  }
  if (s.fix) s.log.push('(checksums recomputed)')
  const devs = deviceList(s.devs, rng, s.log)
  if (verbose) console.log(`case 0x${seed.toString(16)} on ${base.name}: ${s.log.join('; ')}`)
  stats.cases++
  const pristine = clone(devs)
  for (const op of OPS) {
    const opRng = new Rng(rng.next())
    const target = op.writes ? clone(devs) : devs
    const reference = op.writes ? devs : pristine
    let outcome = 'ok'
    let error: unknown
    const t0 = performance.now()
    try {
      op.run(target, opRng)
    } catch (e) {
      error = e
    }
    const ms = performance.now() - t0
    if (ms > stats.slowest.ms) stats.slowest = {ms, seed, op: op.name}
    bump(stats.byOp, op.name)
    const report = (kind: string, detail: string) => fail({kind, seed, base: base.name, op: op.name, mutations: s.log, detail})
    if (error !== undefined) {
      if (!(error instanceof R5Error)) {
        const e = error as Error | null
        outcome = `crash ${e?.name ?? typeof e}`
        report(`${op.name}: ${e?.name}: ${norm(String(e?.message))} @ ${origin(e)}`, String(e?.stack ?? e))
      } else {
        outcome = `exit ${error.exitCode} ${error.code}`
        if (!DOCUMENTED.includes(error.exitCode) || error.exitCode === EXIT.OK)
          report(`${op.name}: undocumented exit ${error.exitCode}`, error.message)
        if (error.exitCode === EXIT.CRASH) report(`${op.name}: simulated crash without crash injection`, error.message)
      }
    }
    if (ms > OP_BUDGET_MS) report(`${op.name}: took ${Math.round(ms)} ms (budget ${OP_BUDGET_MS})`, `${Math.round(ms)} ms`)
    const exit = error instanceof R5Error ? error.exitCode : error === undefined ? 0 : -1
    if (!op.writes || VALIDATION.includes(exit)) {
      const ch = changed(target, reference)
      if (ch.length > 0)
        report(
          `${op.name}: ${op.writes ? `exit ${exit} (${(error as R5Error).code})` : 'read-only operation'} changed bytes`,
          `changed: ${ch.join(', ')}; ${error instanceof Error ? error.message : ''}`,
        )
    }
    bump(
      stats.byOutcome,
      outcome.replace(/ \S+$/, m => (outcome.startsWith('exit') ? m : m)),
    )
    bump(stats.byOpOutcome, `${op.name} → ${outcome}`)
    if (verbose) console.log(`  ${op.name}: ${outcome} (${ms.toFixed(1)} ms)${error instanceof Error ? ': ' + error.message : ''}`)
  }
}

function buildBases(): Base[] {
  return [makeBase(5, false), makeBase(5, true), makeBase(6, false), makeBase(6, true)]
}

describe(`fuzz: hostile on-disk input (${CASES} cases${LONG ? ', long' : ''})`, function () {
  this.timeout(LONG ? 3_600_000 : 300_000)
  let bases: Base[] = []

  before(function () {
    bases = buildBases()
  })

  after(function () {
    const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1])
    const lines: string[] = []
    lines.push(
      `fuzz: ${stats.cases} cases in ${(stats.ms / 1000).toFixed(1)} s (master seed 0x${MASTER.toString(16)}); slowest op ${stats.slowest.op} ${stats.slowest.ms.toFixed(0)} ms (case 0x${stats.slowest.seed.toString(16)})`,
    )
    lines.push(
      `  mutations: ${sorted(stats.byMutator)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    )
    lines.push(
      `  operations: ${sorted(stats.byOp)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    )
    const byExit = new Map<string, number>()
    for (const [k, v] of stats.byOutcome) bump(byExit, k.replace(/^(exit \d+).*/, '$1'), v)
    lines.push(
      `  outcomes: ${sorted(byExit)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    )
    lines.push('  by operation and outcome:')
    for (const [k, v] of [...stats.byOpOutcome.entries()].sort()) lines.push(`    ${k}: ${v}`)
    lines.push(`  distinct failure kinds: ${stats.failures.size}`)
    for (const [kind, list] of stats.failures) {
      const f = list[0]
      lines.push(`    [${list.length}×] ${kind}`)
      lines.push(`       e.g. case 0x${f.seed.toString(16)} (${f.base}): ${f.mutations.join('; ')}`)
    }
    console.log(lines.join('\n'))
  })

  it('no crash, documented exit codes, nothing written on a refusal', function () {
    const t0 = performance.now()
    for (let i = 0; i < CASES; i++) {
      const seed = ONE ? Number(ONE) >>> 0 : caseSeed(i)
      if (TRACE) process.stderr.write(`case 0x${seed.toString(16)}\n`)
      const c0 = performance.now()
      runCase(bases, seed, Boolean(ONE))
      const cms = performance.now() - c0
      if (cms > 4 * OP_BUDGET_MS) fail({kind: `case took ${Math.round(cms)} ms`, seed, base: '', op: '', mutations: [], detail: ''})
    }
    stats.ms = performance.now() - t0
    if (stats.failures.size > 0) {
      const msg = [...stats.failures.entries()]
        .map(([kind, list]) => {
          const f = list[0]
          return `${kind} [${list.length}×]\n    case 0x${f.seed.toString(16)} (${f.base}; R5CTL_FUZZ_CASE=0x${f.seed.toString(16)} replays it): ${f.mutations.join('; ')}\n    ${f.detail.split('\n').slice(0, 4).join('\n    ')}`
        })
        .join('\n')
      assert.fail(`${stats.failures.size} distinct failure kind(s):\n${msg}`)
    }
  })
})
