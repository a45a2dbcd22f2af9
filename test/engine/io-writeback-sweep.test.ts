/**
 * Write-back crash sweep with unaligned writes: seeded workloads of write-back writes at random
 * page offsets with lengths that are not page multiples, each likely to overlap earlier ones (so
 * partial last pages land on pages still cached in the journal), on RAID4, 5 and 6 with a 256 KiB
 * ring (the log fills and is reclaimed in the middle of writes). A power cut after every device
 * write request (some with seeded loss of unflushed writes), then each of
 *   recover · reclaim · reclaim then recover · reclaim cut by a second power cut, then recover
 * must leave every acknowledged write in place (one write-through write in the middle of the workload
 * reclaims what is cached first, and may be cut too): each byte whose last acknowledged writer is a
 * given write holds that write's byte (the interrupted write's unacknowledged pages may be old or
 * new), every page is one of its legitimate values (checkCrashImage), and parity is consistent.
 * Counts are printed at the end (trials, writes checked, acknowledged writes lost).
 */
import assert from 'node:assert/strict'
import {recoverArray, reclaimArray, writeData} from '../../src/engine/index.js'
import type {MemDevice} from '../../src/engine/device.js'
import {
  type WriteOp,
  applyOps,
  bufferSource,
  checkCrashImage,
  checkParity,
  cloneDevs,
  createMemArray,
  cutAfter,
  pseudoRandom,
  readAll,
  runWorkload,
  totalWrites,
} from '../helpers/model.js'

const KiB = 1024
const PAGE = 4096

/** a small deterministic generator (mulberry32) for offsets and lengths */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0
  return n => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

/**
 * `count` writes, all write-back but the sixth: page-aligned offsets (the only ones `write` takes), lengths of 0..15
 * pages plus 1..4095 bytes; most start inside an earlier write, so its partial last page or its
 * body overlaps data that may still be cached.
 */
function workload(sizeBytes: number, count: number, seed: number): WriteOp[] {
  const r = rng(seed)
  const ops: WriteOp[] = []
  for (let k = 0; k < count; k++) {
    const length = r(16) * PAGE + 1 + r(PAGE - 1)
    let offset: number
    if (ops.length > 0 && r(4) > 0) {
      // inside an earlier write, often at its last (partial) page
      const e = ops[r(ops.length)]
      const last = Math.floor((e.offset + e.data.length - 1) / PAGE) * PAGE
      offset = r(2) === 0 ? last : e.offset + r((last - e.offset) / PAGE + 1) * PAGE
    } else offset = r(sizeBytes / PAGE) * PAGE
    offset = Math.min(offset, Math.floor((sizeBytes - length) / PAGE) * PAGE)
    // one write-through write among them: it reclaims the cached stripes first
    ops.push({offset, data: pseudoRandom(length, seed * 100 + k), mode: k === 5 ? 'write-through' : 'write-back'})
  }
  return ops
}

/**
 * Acknowledged writes whose bytes are not in `img`: for each byte, its last acknowledged writer
 * (completed writes, then the interrupted write's acknowledged prefix); bytes the interrupted
 * write may or may not have reached belong to no one.
 */
function lostWrites(img: Buffer, ops: WriteOp[], completed: number, interrupted: number | null, acknowledged: number): number[] {
  const owner = new Int16Array(img.length).fill(-1)
  for (let k = 0; k < completed; k++) owner.fill(k, ops[k].offset, ops[k].offset + ops[k].data.length)
  if (interrupted !== null) {
    const op = ops[interrupted]
    owner.fill(-2, op.offset, op.offset + op.data.length)
    owner.fill(interrupted, op.offset, op.offset + acknowledged)
  }
  const lost = new Set<number>()
  for (let i = 0; i < img.length; i++) {
    const k = owner[i]
    if (k >= 0 && !lost.has(k) && img[i] !== ops[k].data[i - ops[k].offset]) lost.add(k)
  }
  return [...lost]
}

interface Counts {
  level: number
  workloadWrites: number
  crashPoints: number
  trials: number
  writesChecked: number
  lost: number
  reclaimCuts: number
  ms: number
}
const counts: Counts[] = []

function sweep(level: 4 | 5 | 6, salt: number): Counts {
  const t0 = Date.now()
  const base = createMemArray({
    level,
    raidDevices: level === 6 ? 5 : 4,
    chunkBytes: 16 * KiB,
    memberDataBytes: 128 * KiB,
    journalRingBytes: 256 * KiB,
  })
  const fill = pseudoRandom(base.sizeBytes, 500 + level)
  writeData(base.devs, 0, fill.length, bufferSource(fill), {mode: 'write-through'})
  const initial = readAll(base.devs)
  const ops = workload(base.sizeBytes, 8, 31 + salt)
  const ref = runWorkload(cloneDevs(base.devs), ops)
  assert.equal(ref.completed, ops.length)
  assert.ok(ref.reclaimedStripes > 0, 'the workload fills the log and reclaims in the middle of a write')
  const W = ref.writes
  const c: Counts = {level, workloadWrites: W, crashPoints: W + 1, trials: 0, writesChecked: 0, lost: 0, reclaimCuts: 0, ms: 0}
  const failures: string[] = []
  for (let N = 0; N <= W; N++) {
    const seed = N % 3 === 2 ? 9000 + salt * 1000 + N : undefined
    const crashed = cloneDevs(base.devs)
    const out = runWorkload(crashed, ops, {crashAfter: N, crashSeed: seed})
    const before = applyOps(initial, ops, out.completed)
    const op = out.interrupted === null ? null : ops[out.interrupted]
    const check = (devs: MemDevice[], what: string, parity: boolean) => {
      c.trials++
      c.writesChecked += out.completed + (out.acknowledged > 0 ? 1 : 0)
      const where = `raid${level}: crash after ${N} of ${W} writes${seed === undefined ? '' : ` (seed ${seed})`}, ${what}`
      try {
        const img = readAll(devs)
        const lost = lostWrites(img, ops, out.completed, out.interrupted, out.acknowledged)
        c.lost += lost.length
        if (lost.length > 0) throw new Error(`acknowledged write(s) ${lost.join(', ')} lost`)
        const bad = checkCrashImage(img, before, op, out.acknowledged) ?? (parity ? checkParity(devs, level, img) : null)
        if (bad) throw new Error(bad)
      } catch (error) {
        failures.push(`${where}  ::  ${(error as Error).message}`)
      }
    }
    const recovered = cloneDevs(crashed)
    recoverArray(recovered, {})
    // parity through degraded reads (RAID6: 15 of them) at every other crash point keeps the sweep short
    check(recovered, 'recover', N % 2 === 0 || N === W)
    const reclaimed = cloneDevs(crashed)
    reclaimArray(reclaimed)
    const R = totalWrites(reclaimed) // (clones start at zero writes)
    check(reclaimed, 'reclaim', N % 4 === 0)
    recoverArray(reclaimed, {})
    check(reclaimed, 'reclaim then recover', false)
    // reclaim cut by a second power cut at a few of its write requests, then recover
    if (N % 4 === 0 || N === W) {
      for (let r = 0; r < R; r += Math.max(1, Math.floor(R / 5))) {
        const devs = cloneDevs(crashed)
        c.reclaimCuts++
        if (!cutAfter(devs, r, d => reclaimArray(d), r % 2 === 1 ? 7000 + r : undefined)) {
          failures.push(`raid${level}: crash after ${N} of ${W} writes, reclaim cut after ${r} of ${R}  ::  reclaim did not crash`)
          continue
        }
        recoverArray(devs, {})
        check(devs, `reclaim cut after ${r} of ${R} writes, then recover`, r % 3 === 0)
      }
    }
  }
  c.ms = Date.now() - t0
  counts.push(c)
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${c.trials} trials failed`)
  return c
}

describe('write-back crash sweep: unaligned overlapping writes, every acknowledged write survives', function () {
  this.timeout(300_000)

  after(function () {
    if (counts.length === 0) return
    const sum = (f: (c: Counts) => number) => counts.reduce((a, c) => a + f(c), 0)
    console.log(
      `      write-back sweep: ${counts.length} levels, ${sum(c => c.crashPoints)} crash points, ${sum(c => c.trials)} trials, ` +
        `${sum(c => c.reclaimCuts)} reclaims cut, ${sum(c => c.writesChecked)} acknowledged writes checked, ${sum(c => c.lost)} acknowledged writes lost`,
    )
    for (const c of counts) {
      console.log(
        `        raid${c.level}: W=${c.workloadWrites} crash points=${c.crashPoints} trials=${c.trials} reclaim cuts=${c.reclaimCuts} ` +
          `writes checked=${c.writesChecked} lost=${c.lost} (${c.ms} ms)`,
      )
    }
  })

  for (const [i, level] of ([4, 5, 6] as const).entries()) {
    it(`raid${level}: crash at every write, then recover, reclaim, reclaim + recover, reclaim cut + recover`, function () {
      sweep(level, i)
    })
  }
})
