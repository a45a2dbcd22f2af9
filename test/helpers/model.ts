/**
 * Reference models for the crash and recovery tests, written independently of the engine:
 *
 *  - in-memory arrays (MemDevice) built with the engine's `createArray`, cloned per case;
 *  - a workload runner that spreads one global crash point over several `writeData` calls;
 *  - the page model a recovered array must satisfy after a crash: every 4 KiB page holds either
 *    its value before the interrupted write or the interrupted write's new value, and every
 *    acknowledged byte is present;
 *  - parity checks through degraded reads (each member left out; RAID6 also every pair);
 *  - md's left-symmetric RAID5/RAID6 layout and P/Q parity in a few plain lines (raid5.c
 *    raid5_compute_sector, lib/raid6 gen_syndrome), so tests can say where bytes must land
 *    without asking the engine.
 */
import {createHash} from 'node:crypto'
import {MemDevice, type BlockDevice} from '../../src/engine/device.js'
import {CrashController} from '../../src/engine/crash.js'
import {createArray, dumpMeta, readData, writeData} from '../../src/engine/index.js'
import {openArray} from '../../src/engine/array.js'
import {decodeMetaBlock, encodeMetaBlock, PAYLOAD_DATA} from '../../src/engine/format/meta.js'
import {appendRecords, unitsSize, type LogRecord} from '../../src/engine/journal/append.js'
import {SimulatedCrash} from '../../src/engine/errors.js'

export const PAGE = 4096
export const MiB = 1 << 20
/** mdadm's and r5ctl's data offset: 2048 sectors */
export const DATA_OFFSET_BYTES = MiB

// ---------------------------------------------------------------------------------------------
// bytes

/** Deterministic pseudo-random bytes: the one generator the CLI tests use too. */
export {pseudoRandom} from './cli.js'

/** A `Source` for writeData that hands out `buf` from its start. */
export function bufferSource(buf: Uint8Array): (out: Uint8Array) => number {
  let p = 0
  return out => {
    const k = Math.min(out.length, buf.length - p)
    out.set(buf.subarray(p, p + k))
    p += k
    return k
  }
}

export function xorPages(pages: Uint8Array[]): Buffer {
  const out = Buffer.alloc(pages[0].length)
  for (const p of pages) for (let i = 0; i < out.length; i++) out[i] ^= p[i]
  return out
}

/** GF(2^8) multiply by 2 with md's polynomial 0x11d. */
function gfMul2(x: number): number {
  x <<= 1
  return (x & 0x100 ? x ^ 0x11d : x) & 0xff
}

/** RAID6 Q = Σ g^i · D_i (g = 2), by Horner's rule from the highest data index, as gen_syndrome does. */
export function raid6Q(data: Uint8Array[]): Buffer {
  const q = Buffer.alloc(data[0].length)
  for (let i = 0; i < q.length; i++) {
    let acc = 0
    for (let d = data.length - 1; d >= 0; d--) acc = gfMul2(acc) ^ data[d][i]
    q[i] = acc
  }
  return q
}

// ---------------------------------------------------------------------------------------------
// md left-symmetric layout (ALGORITHM_LEFT_SYMMETRIC = 2, mdadm's default for RAID5/6)

export interface StripeRef {
  /** member sector of the stripe (relative to the members' data offset) */
  stripeSector: number
  pd: number
  /** -1 for RAID5 */
  qd: number
  /** dataMembers[dd] = slot holding data index dd; Q uses g^dd for it */
  dataMembers: number[]
}

export function lsStripe(level: 5 | 6, n: number, chunkSectors: number, memberSector: number): StripeRef {
  const row = Math.floor(memberSector / chunkSectors)
  const D = level === 6 ? n - 2 : n - 1
  const pd = level === 6 ? n - 1 - (row % n) : D - (row % n)
  const qd = level === 6 ? (pd + 1) % n : -1
  const first = level === 6 ? pd + 2 : pd + 1
  const dataMembers = Array.from({length: D}, (_, dd) => (first + dd) % n)
  return {stripeSector: memberSector - (memberSector % 8), pd, qd, dataMembers}
}

/** raid5_compute_sector for left-symmetric: where array sector `a` lives. */
export function lsMap(
  level: 5 | 6,
  n: number,
  chunkSectors: number,
  a: number,
): StripeRef & {member: number; memberSector: number; dataIndex: number} {
  const D = level === 6 ? n - 2 : n - 1
  const chunk = Math.floor(a / chunkSectors)
  const dataIndex = chunk % D
  const row = Math.floor(chunk / D)
  const memberSector = row * chunkSectors + (a % chunkSectors)
  const s = lsStripe(level, n, chunkSectors, memberSector)
  return {...s, member: s.dataMembers[dataIndex], memberSector, dataIndex}
}

/** The array sector of data index dd in the stripe at member sector `stripeSector` (raid5_compute_blocknr). */
export function lsArraySector(level: 5 | 6, n: number, chunkSectors: number, stripeSector: number, dd: number): number {
  const D = level === 6 ? n - 2 : n - 1
  const row = Math.floor(stripeSector / chunkSectors)
  return (row * D + dd) * chunkSectors + (stripeSector % chunkSectors)
}

// ---------------------------------------------------------------------------------------------
// in-memory arrays

export interface MemSpec {
  level: 4 | 5 | 6
  raidDevices: number
  chunkBytes: number
  /** bytes of each member's data area (after the 1 MiB data offset) */
  memberDataBytes: number
  /** bytes of the journal's ring (after its 1 MiB data offset); at least 256 KiB */
  journalRingBytes: number
  /** md layout number (default: the level's default) */
  layout?: number
}

export interface MemArray {
  spec: MemSpec
  /** journal first, then the members in slot order */
  devs: MemDevice[]
  journal: MemDevice
  members: MemDevice[]
  sizeBytes: number
  ringBytes: number
  firstSeq: bigint
}

export function createMemArray(spec: MemSpec): MemArray {
  const members = Array.from({length: spec.raidDevices}, (_, i) => new MemDevice(`m${i}`, DATA_OFFSET_BYTES + spec.memberDataBytes))
  const journal = new MemDevice('j', DATA_OFFSET_BYTES + spec.journalRingBytes)
  const r = createArray({level: spec.level, raidDevices: spec.raidDevices, chunkBytes: spec.chunkBytes, layout: spec.layout, members, journal})
  return {
    spec,
    devs: [journal, ...members],
    journal,
    members,
    sizeBytes: r.arraySizeBytes,
    ringBytes: r.journalSizeBytes,
    firstSeq: BigInt(r.firstSeq!),
  }
}

/** Fresh copies of the devices (same names, same bytes, zeroed stats). */
export function cloneDevs(devs: MemDevice[]): MemDevice[] {
  return devs.map(d => new MemDevice(d.name, d.size, Uint8Array.from(d.data)))
}

export function withDevs(a: MemArray, devs: MemDevice[]): MemArray {
  return {...a, devs, journal: devs[0], members: devs.slice(1)}
}

export function cloneArray(a: MemArray): MemArray {
  return withDevs(a, cloneDevs(a.devs))
}

/** The array's logical bytes through the engine's read path (refuses a dirty journal). */
export function readAll(devs: MemDevice[], offset = 0, length?: number): Buffer {
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

export function deviceHashes(devs: MemDevice[]): string[] {
  return devs.map(d => createHash('sha1').update(d.data).digest('hex'))
}

/** Byte copies of the devices, to prove later that nothing changed (cheaper than hashing). */
export function snapshot(devs: MemDevice[]): Uint8Array[] {
  return devs.map(d => Uint8Array.from(d.data))
}

/** Names of the devices whose bytes differ from the snapshot. */
export function changedSince(devs: MemDevice[], snap: Uint8Array[]): string[] {
  return devs
    .filter(
      (d, i) =>
        Buffer.compare(
          Buffer.from(d.data.buffer, d.data.byteOffset, d.data.length),
          Buffer.from(snap[i].buffer, snap[i].byteOffset, snap[i].length),
        ) !== 0,
    )
    .map(d => d.name)
}

export function totalWrites(devs: MemDevice[]): number {
  return devs.reduce((a, d) => a + d.stats.writes, 0)
}

/** 4 KiB pages (by index) whose bytes differ between two snapshots of one device. */
export function changedPages(before: Uint8Array, after: Uint8Array, from = 0): number[] {
  const out: number[] = []
  for (let p = from; p < after.length; p += PAGE) {
    if (Buffer.compare(Buffer.from(before.buffer, before.byteOffset + p, PAGE), Buffer.from(after.buffer, after.byteOffset + p, PAGE)) !== 0)
      out.push(p / PAGE)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// workloads and the page model

export interface WriteOp {
  offset: number
  data: Buffer
  mode: 'write-through' | 'write-back'
}

export interface WorkloadOutcome {
  /** ops that completed (returned normally) */
  completed: number
  /** index of the op a SimulatedCrash interrupted, or null */
  interrupted: number | null
  /** bytes of the interrupted op acknowledged before the crash */
  acknowledged: number
  /** device write requests that reached the devices */
  writes: number
  /** the non-crashed ops' results, for statistics */
  journalBytes: number
  checkpoints: number
  reclaimedStripes: number
}

/**
 * Run `ops` in order on `devs`. With `crashAfter`, the crash point is global over the whole
 * workload: op k gets the budget left after the write requests ops 0..k-1 used.
 */
export function runWorkload(devs: MemDevice[], ops: WriteOp[], opts: {crashAfter?: number; crashSeed?: number} = {}): WorkloadOutcome {
  const out: WorkloadOutcome = {completed: 0, interrupted: null, acknowledged: 0, writes: 0, journalBytes: 0, checkpoints: 0, reclaimedStripes: 0}
  const start = totalWrites(devs)
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k]
    const used = totalWrites(devs) - start
    const crashAfter = opts.crashAfter === undefined ? undefined : opts.crashAfter - used
    try {
      const r = writeData(devs, op.offset, op.data.length, bufferSource(op.data), {
        mode: op.mode,
        crashAfter,
        crashSeed: crashAfter === undefined ? undefined : opts.crashSeed,
      })
      out.completed++
      out.journalBytes += r.journalBytes
      out.checkpoints += r.checkpoints
      out.reclaimedStripes += r.reclaimedStripes
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error
      out.interrupted = k
      out.acknowledged = error.acknowledged
      break
    }
  }
  out.writes = totalWrites(devs) - start
  return out
}

/** The array's bytes after applying ops[0..count) to `initial`. */
export function applyOps(initial: Buffer, ops: WriteOp[], count: number): Buffer {
  const img = Buffer.from(initial)
  for (let k = 0; k < count; k++) img.set(ops[k].data, ops[k].offset)
  return img
}

/**
 * What a recovered array may hold after a crash in `op` (null: no write was interrupted), given
 * `before` = the bytes after every completed op. Returns the first problem, or null.
 */
export function checkCrashImage(img: Buffer, before: Buffer, op: {offset: number; data: Uint8Array} | null, acknowledged: number): string | null {
  if (img.length !== before.length) return `image is ${img.length} bytes, expected ${before.length}`
  const after = op ? Buffer.from(before) : before
  if (op) after.set(op.data, op.offset)
  for (let p = 0; p < img.length; p += PAGE) {
    const got = img.subarray(p, p + PAGE)
    const old = before.subarray(p, p + PAGE)
    if (got.equals(old)) continue
    const nw = after.subarray(p, p + PAGE)
    if (got.equals(nw)) continue
    const touched = op && p + PAGE > op.offset && p < op.offset + op.data.length
    let firstDiff = 0
    while (firstDiff < PAGE && got[firstDiff] === (touched ? nw : old)[firstDiff]) firstDiff++
    return touched
      ? `page at array byte ${p} is neither its old value nor the interrupted write's new value (first difference from new at +${firstDiff})`
      : `page at array byte ${p} changed although no interrupted write touches it (first difference at +${firstDiff})`
  }
  if (op && acknowledged > 0) {
    const want = op.data.subarray(0, acknowledged)
    const got = img.subarray(op.offset, op.offset + acknowledged)
    if (!got.equals(want)) {
      let i = 0
      while (got[i] === want[i]) i++
      return `acknowledged byte ${i} of the interrupted write (array byte ${op.offset + i}) is lost (${acknowledged} bytes were acknowledged)`
    }
  }
  return null
}

/** Every way of choosing k of the items. */
export function combinations<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]]
  if (items.length < k) return []
  const [first, ...rest] = items
  return [...combinations(rest, k - 1).map(c => [first, ...c]), ...combinations(rest, k)]
}

/**
 * Parity is consistent when a read with any member left out (RAID6: also any two) rebuilds the
 * same bytes as the full read. `devs` is journal first, then members. Returns the first problem.
 */
export function checkParity(devs: MemDevice[], level: number, full: Buffer, offset = 0): string | null {
  const members = devs.slice(1)
  const sets = [
    ...combinations(
      members.map((_, i) => i),
      1,
    ),
    ...(level === 6
      ? combinations(
          members.map((_, i) => i),
          2,
        )
      : []),
  ]
  for (const out of sets) {
    const left = [devs[0], ...members.filter((_, i) => !out.includes(i))]
    const got = readAll(left, offset, full.length)
    if (!got.equals(full)) {
      let i = 0
      while (got[i] === full[i]) i++
      return `read without member(s) ${out.join('+')} differs from the full read at array byte ${offset + i}`
    }
  }
  return null
}

/** Give the live log's meta blocks consecutive seqs from `first` (mod 2^64), checksums and all; the pages stay. */
export function renumberLog(devs: MemDevice[], first: bigint): number {
  const blocks = dumpMeta(devs, {}).blocks
  const arr = openArray(devs, {writable: true})
  const page = new Uint8Array(4096)
  blocks.forEach((b, i) => {
    arr.ring!.read(page, b.positionSector)
    const m = decodeMetaBlock(page, arr.seed).meta!
    const seq = BigInt.asUintN(64, first + BigInt(i))
    arr.ring!.write(encodeMetaBlock({seq, position: BigInt(b.positionSector), payloads: m.payloads}, arr.seed), b.positionSector)
  })
  arr.close()
  return blocks.length
}

/**
 * Cache `pages` (array page index → its bytes) in the live log as DATA records appended after a
 * clean log's tail block, in as many io units as the 4 KiB meta block allows, filling the ring up to
 * all but `freePages`: the log another writer leaves when it keeps no room for writing its
 * cached stripes out (r5ctl's own write-back writes keep that room). Returns the pages that fit.
 */
export function cacheInLog(devs: MemDevice[], pages: Map<number, Uint8Array>, freePages = 1): number {
  const tail = dumpMeta(devs, {}).blocks[0]
  const arr = openArray(devs, {writable: true})
  const ring = arr.ring!
  // io units of four pages, as a writer that commits small writes one at a time leaves them
  const units: LogRecord[][] = []
  let used = PAGE
  for (const [page, bytes] of pages) {
    if (units.length === 0 || units[units.length - 1].length === 4) units.push([])
    const unit = units[units.length - 1]
    const before = unitsSize(unit)
    unit.push({payloads: [{type: PAYLOAD_DATA, flags: 0, sizeSectors: 8, location: BigInt(page * 8), checksums: []}], pages: [bytes]})
    // the tail block, the units and `freePages` (0: the head comes round to the tail, which the
    // kernel never does, as it keeps one block free)
    if (used + unitsSize(unit) - before + freePages * PAGE > ring.sizeBytes) {
      unit.pop()
      break
    }
    used += unitsSize(unit) - before
  }
  let cur = {head: ring.add(tail.positionSector, 8), seq: BigInt(tail.seq) + 1n}
  for (const unit of units) if (unit.length > 0) cur = appendRecords(arr, cur, unit)
  arr.close()
  return units.reduce((n, u) => n + u.length, 0)
}

/** Run `op` on `devs` with a power cut after `after` device writes (with a seed, unflushed writes lost at random); true when it was cut. */
export function cutAfter(devs: MemDevice[], after: number, op: (d: BlockDevice[]) => unknown, seed?: number): boolean {
  const ctl = new CrashController(after, seed)
  try {
    op(devs.map(d => ctl.wrap(d)))
    return false
  } catch (error) {
    if (error instanceof SimulatedCrash) return true
    throw error
  }
}
