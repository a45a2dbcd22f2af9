/**
 * Crash sweep: a power cut after every single device write request of a mixed workload, on
 * RAID5 and RAID6, write-through and write-back, with and without seeded reordering of the
 * writes each device had not flushed yet. After each crash, `recoverArray` must leave an array
 * where
 *   - every 4 KiB page holds a value it legitimately had: its value before the interrupted write
 *     or that write's new value (never garbage, never a mix within a page);
 *   - every acknowledged byte is present (all completed writes, the interrupted write's prefix);
 *   - parity is consistent (a read with any member left out, RAID6 also any pair, equals the full
 *     read);
 *   - a second recover finds a clean journal and writes nothing.
 * The workload runs on small in-memory arrays with a 256 KiB journal ring so that checkpoints
 * (write-through), reclaim on a full log (write-back) and ring wrap all happen.
 *
 * A second part interrupts recover and reclaim themselves at every write request (after a crash
 * at every write of a smaller mixed write-back/write-through workload): a recover afterwards must
 * give the same guarantees, i.e. recovery is restartable.
 *
 * R5CTL_LONG=1 enables the long variant: a bigger workload and many more seeds.
 */
import assert from 'node:assert/strict'
import {recoverArray, reclaimArray, writeData} from '../../src/engine/index.js'
import type {BlockDevice} from '../../src/engine/device.js'
import {
  type MemArray,
  type WriteOp,
  applyOps,
  bufferSource,
  changedSince,
  checkCrashImage,
  checkParity,
  cloneDevs,
  createMemArray,
  cutAfter,
  pseudoRandom,
  readAll,
  runWorkload,
  snapshot,
  totalWrites,
} from '../helpers/model.js'

const KiB = 1024
const LONG = process.env.R5CTL_LONG === '1'

type Mode = WriteOp['mode']

interface Config {
  level: 5 | 6
  mode: Mode
}
const CONFIGS: Config[] = [
  {level: 5, mode: 'write-through'},
  {level: 5, mode: 'write-back'},
  {level: 6, mode: 'write-through'},
  {level: 6, mode: 'write-back'},
]

interface SweepSize {
  /** bytes of each member's data area */
  memberData: number
  /**
   * seeded cases per configuration, spread evenly over the crash points (each crash point gets
   * at least one seeded case as well as the unseeded one)
   */
  seeds: number
  /** the long workload adds more writes */
  big: boolean
}

const SHORT: SweepSize = {memberData: 128 * KiB, seeds: 200, big: false}
const LONG_SIZE: SweepSize = {memberData: 512 * KiB, seeds: 2000, big: true}

/**
 * Mixed full-stripe and partial-stripe writes; one row is 48 KiB (3 data chunks of 16 KiB) on
 * both arrays. Some overlap, one is not a page multiple, some are several journal batches long
 * (a batch is a quarter of the 256 KiB ring), and together they log more than the ring holds.
 */
function workload(mode: Mode, arrayBytes: number, big: boolean, salt: number): WriteOp[] {
  const spec: [number, number][] = [
    [0, 96 * KiB], // two full rows
    [20 * KiB, 40 * KiB], // partial, across chunk boundaries, overlaps the first
    [144 * KiB, 192 * KiB], // four full rows: several batches
    [56 * KiB, 10_000], // partial stripe, not a page multiple, overlaps the second
    [200 * KiB, 120 * KiB], // overlaps the third, starts and ends mid-row
    [arrayBytes - 16 * KiB, 12 * KiB], // near the end of the array, partial
  ]
  if (big) {
    spec.push([300 * KiB, 400 * KiB], [4 * KiB, 4 * KiB], [arrayBytes - 200 * KiB, 150 * KiB + 123], [96 * KiB, 48 * KiB])
  }
  return spec.map(([offset, length], k) => ({offset, data: pseudoRandom(length, 1000 + salt * 100 + k), mode}))
}

interface Stats {
  config: string
  deviceWrites: number
  crashPoints: number
  seeds: number
  cases: number
  journalBytes: number
  ringBytes: number
  checkpoints: number
  reclaimedStripes: number
  ms: number
}

const stats: Stats[] = []

/** Failure messages grouped by cause (numbers blanked), with counts. Entries are "where  ::  message". */
function causes(failures: string[]): string {
  const by = new Map<string, number>()
  for (const f of failures) {
    const cause = f.slice(f.indexOf('  ::  ') + 6).replace(/\d+/g, 'N')
    by.set(cause, (by.get(cause) ?? 0) + 1)
  }
  return [...by].map(([c, n]) => `${n}× "${c}"`).join('; ')
}

/** Base array: created, then filled completely with pseudo-random bytes, journal clean. */
function baseArray(cfg: Config, size: SweepSize): {base: MemArray; initial: Buffer} {
  const base = createMemArray({
    level: cfg.level,
    raidDevices: cfg.level === 6 ? 5 : 4,
    chunkBytes: 16 * KiB,
    memberDataBytes: size.memberData,
    journalRingBytes: 256 * KiB,
  })
  const fill = pseudoRandom(base.sizeBytes, 77 + cfg.level)
  writeData(base.devs, 0, fill.length, bufferSource(fill), {mode: 'write-through'})
  const initial = readAll(base.devs)
  assert.ok(initial.equals(fill))
  return {base, initial}
}

function sweep(cfg: Config, size: SweepSize, salt: number): Stats {
  const t0 = Date.now()
  const {base, initial} = baseArray(cfg, size)
  const ops = workload(cfg.mode, base.sizeBytes, size.big, salt)

  // the uncrashed workload: how many device write requests it makes (W), and that it really
  // wraps the ring and checkpoints / reclaims
  const full = cloneDevs(base.devs)
  const ref = runWorkload(full, ops)
  assert.equal(ref.completed, ops.length)
  const W = ref.writes
  assert.ok(ref.journalBytes > base.ringBytes, `the workload logs ${ref.journalBytes} bytes, more than the ${base.ringBytes}-byte ring`)
  if (cfg.mode === 'write-through') assert.ok(ref.checkpoints > 0, 'write-through workload must checkpoint')
  else assert.ok(ref.reclaimedStripes > 0, 'write-back workload must reclaim on a full log')
  // the same workload twice gives the same write count (the sweep relies on it)
  assert.equal(runWorkload(cloneDevs(base.devs), ops).writes, W)

  const S = Math.max(size.seeds, W + 1)
  const seedsAt = (N: number) => Math.floor(((N + 1) * S) / (W + 1)) - Math.floor((N * S) / (W + 1))
  const failures: string[] = []
  let cases = 0
  let seeded = 0
  const name = `raid${cfg.level} ${cfg.mode}`
  for (let N = 0; N <= W; N++) {
    const seeds: (number | undefined)[] = [undefined]
    for (let i = 0; i < seedsAt(N); i++) seeds.push(((salt + 1) * 1_000_003 + N * 7919 + i * 104_729) >>> 0)
    for (const seed of seeds) {
      cases++
      if (seed !== undefined) seeded++
      const where = `${name}: crash after ${N} of ${W} writes${seed === undefined ? '' : `, seed ${seed}`}`
      try {
        const devs = cloneDevs(base.devs)
        const out = runWorkload(devs, ops, {crashAfter: N, crashSeed: seed})
        if (N < W && out.interrupted === null) throw new Error('the workload did not crash')
        if (N === W && out.interrupted !== null) throw new Error('the workload crashed with a budget of every write')
        recoverArray(devs, {})
        const img = readAll(devs)
        const before = applyOps(initial, ops, out.completed)
        const op = out.interrupted === null ? null : ops[out.interrupted]
        const bad = checkCrashImage(img, before, op, out.acknowledged) ?? checkParity(devs, cfg.level, img)
        if (bad) throw new Error(`${bad} (op ${out.interrupted ?? '-'}, ${out.acknowledged} bytes acknowledged)`)
        const snap = snapshot(devs)
        const w0 = totalWrites(devs)
        const again = recoverArray(devs, {})
        if (again.state !== 'clean') throw new Error(`second recover: state ${again.state}, expected clean`)
        if (totalWrites(devs) !== w0) throw new Error(`second recover made ${totalWrites(devs) - w0} write requests`)
        const changed = changedSince(devs, snap)
        if (changed.length > 0) throw new Error(`second recover changed bytes of ${changed.join(', ')}`)
      } catch (error) {
        failures.push(`${where}  ::  ${(error as Error).message}`)
      }
    }
  }
  const s: Stats = {
    config: name,
    deviceWrites: W,
    crashPoints: W + 1,
    seeds: seeded,
    cases,
    journalBytes: ref.journalBytes,
    ringBytes: base.ringBytes,
    checkpoints: ref.checkpoints,
    reclaimedStripes: ref.reclaimedStripes,
    ms: Date.now() - t0,
  }
  stats.push(s)
  assert.ok(seeded >= size.seeds, `only ${seeded} seeded cases`)
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} of ${cases} cases failed; causes: ${causes(failures)}`)
  return s
}

interface RestartStats {
  config: string
  workloadWrites: number
  crashPoints: number
  interruptedRuns: number
  ms: number
}
const restartStats: RestartStats[] = []

function restartSweep(level: 5 | 6, salt: number): void {
  const t0 = Date.now()
  const {base, initial} = baseArray({level, mode: 'write-back'}, SHORT)
  const KB = 1024
  const ops: WriteOp[] = [
    {offset: 0, data: pseudoRandom(96 * KB, 2000 + salt), mode: 'write-back'},
    {offset: 20 * KB, data: pseudoRandom(40 * KB, 2001 + salt), mode: 'write-through'},
    {offset: 56 * KB, data: pseudoRandom(10_000, 2002 + salt), mode: 'write-back'},
  ]
  const W = runWorkload(cloneDevs(base.devs), ops).writes
  const failures: string[] = []
  let runs = 0
  for (let N = 0; N <= W; N++) {
    const seed = N % 2 === 0 ? undefined : 5000 + N
    const crashed = cloneDevs(base.devs)
    const out = runWorkload(crashed, ops, {crashAfter: N, crashSeed: seed})
    const before = applyOps(initial, ops, out.completed)
    const op = out.interrupted === null ? null : ops[out.interrupted]
    for (const what of ['recover', 'reclaim'] as const) {
      const run = (d: BlockDevice[]) => (what === 'recover' ? recoverArray(d, {}) : reclaimArray(d))
      const probe = cloneDevs(crashed)
      run(probe)
      const R = totalWrites(probe)
      for (let r = 0; r < R; r++) {
        const rseed = r % 2 === 0 ? undefined : 7000 + r
        const devs = cloneDevs(crashed)
        runs++
        try {
          if (!cutAfter(devs, r, run, rseed)) throw new Error(`${what} did not crash`)
          recoverArray(devs, {})
          const img = readAll(devs)
          const bad = checkCrashImage(img, before, op, out.acknowledged) ?? checkParity(devs, level, img)
          if (bad) throw new Error(bad)
          if (recoverArray(devs, {}).state !== 'clean') throw new Error('third recover not clean')
        } catch (error) {
          failures.push(
            `raid${level}: workload crash after ${N} of ${W} writes${seed === undefined ? '' : ` (seed ${seed})`}, ` +
              `${what} interrupted after ${r} of ${R} writes${rseed === undefined ? '' : ` (seed ${rseed})`}  ::  ${(error as Error).message}`,
          )
        }
      }
    }
  }
  restartStats.push({config: `raid${level} mixed`, workloadWrites: W, crashPoints: W + 1, interruptedRuns: runs, ms: Date.now() - t0})
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${runs} interrupted recover/reclaim runs failed; causes: ${causes(failures)}`)
}

describe('crash sweep: power cut after every device write, then recover', function () {
  // a guard against a hang, not a speed check: on a busy 2-core machine the RAID6 sweep alone takes two minutes
  this.timeout(LONG ? 3_600_000 : 600_000)

  after(function () {
    if (stats.length === 0 && restartStats.length === 0) return
    const t = (s: Stats) =>
      `${s.config.padEnd(20)} W=${s.deviceWrites} crash points=${s.crashPoints} seeds=${s.seeds} cases=${s.cases}` +
      ` (journal ${s.journalBytes} B logged in a ${s.ringBytes} B ring, ${s.checkpoints} checkpoints, ${s.reclaimedStripes} reclaimed stripes, ${s.ms} ms)`
    console.log(
      `      crash sweep: ${stats.length} configs, ${stats.reduce((a, s) => a + s.crashPoints, 0)} crash points, ` +
        `${stats.reduce((a, s) => a + s.seeds, 0)} seeded cases, ${stats.reduce((a, s) => a + s.cases, 0)} cases`,
    )
    for (const s of stats) console.log(`        ${t(s)}`)
    for (const s of restartStats) {
      console.log(
        `        restart ${s.config}: W=${s.workloadWrites} crash points=${s.crashPoints}, ${s.interruptedRuns} interrupted recover/reclaim runs (${s.ms} ms)`,
      )
    }
  })

  CONFIGS.forEach((cfg, i) => {
    it(`raid${cfg.level} ${cfg.mode}: every crash point, unseeded and ≥${SHORT.seeds} seeded reorderings`, function () {
      sweep(cfg, SHORT, i)
    })
  })

  describe('recovery is restartable: recover or reclaim interrupted at every write, then recover', function () {
    it('raid5: a mixed write-back / write-through workload crashed at every write, then recover and reclaim each cut at every write', function () {
      restartSweep(5, 0)
    })
  })

  describe('long (R5CTL_LONG=1)', function () {
    before(function () {
      if (!LONG) this.skip()
    })
    CONFIGS.forEach((cfg, i) => {
      it(`raid${cfg.level} ${cfg.mode}: bigger workload, ≥${LONG_SIZE.seeds} seeded reorderings`, function () {
        sweep(cfg, LONG_SIZE, 10 + i)
      })
    })
    it('raid6: recovery is restartable (mixed workload, recover and reclaim cut at every write)', function () {
      restartSweep(6, 1)
    })
  })
})
