/**
 * The recovery plan is what recovery does: for random logs (write-through cut by a power failure,
 * write-back caches, RAID4/5/6, logs that wrap around the ring, units with a corrupted page or meta
 * block), the member ranges `recover --dry-run` lists are exactly the ranges `recover` writes, every
 * member byte that changes lies in a listed range, and a second recover finds a clean log; with
 * members missing too (nothing is listed or written for them). The plan
 * does not depend on how much of the log the walk reads per request.
 */
import assert from 'node:assert/strict'
import {recoverArray} from '../../../src/engine/index.js'
import {openArray} from '../../../src/engine/array.js'
import {planRecovery, type RecoveryPlan} from '../../../src/engine/journal/plan.js'
import {DeviceWrapper, type MemDevice} from '../../../src/engine/device.js'
import {R5Error} from '../../../src/engine/errors.js'
import {
  createMemArray,
  cloneDevs,
  runWorkload,
  pseudoRandom,
  snapshot,
  changedPages,
  totalWrites,
  DATA_OFFSET_BYTES,
  PAGE,
  type WriteOp,
} from '../../helpers/model.js'
import {rng} from '../../helpers/reference.js'

/** Records the byte ranges written through it. */
class WriteRecorder extends DeviceWrapper {
  readonly writes: [offset: number, length: number][] = []
  override writev(bufs: Uint8Array[], offset: number): void {
    let len = 0
    for (const b of bufs) len += b.length
    this.writes.push([offset, len])
    super.writev(bufs, offset)
  }
}

/** "slot:page" for every data-area page of a member in the ranges (pages from the data offset) */
function pagesOf(ranges: [offset: number, length: number][], slot: number, into: Set<string>): void {
  for (const [offset, length] of ranges) {
    if (offset < DATA_OFFSET_BYTES) continue // superblock updates: not member data
    for (let p = offset; p < offset + length; p += PAGE) into.add(`${slot}:${(p - DATA_OFFSET_BYTES) / PAGE}`)
  }
}

interface LogCase {
  level: 4 | 5 | 6
  mode: 'write-through' | 'write-back'
  seed: number
  corrupt: boolean
  /** member slots left out of the set: the log replays onto the members present */
  missing: number[]
}

/** A dirty log made by a random workload (cut by a crash in write-through), optionally with one byte of the live log flipped. */
function dirtyLog(c: LogCase): MemDevice[] | null {
  const r = rng(c.seed)
  const a = createMemArray({
    level: c.level,
    raidDevices: c.level === 6 ? 5 : 4,
    chunkBytes: 16384,
    memberDataBytes: 1 << 20,
    journalRingBytes: 512 << 10,
  })
  const ops: WriteOp[] = []
  for (let i = 0, count = 2 + Math.floor(r() * 5); i < count; i++) {
    const length = PAGE * (1 + Math.floor(r() * 40)) + (r() < 0.3 ? Math.floor(r() * PAGE) : 0)
    const offset = Math.min(a.sizeBytes - length, PAGE * Math.floor(r() * (a.sizeBytes / PAGE)))
    ops.push({offset, data: pseudoRandom(length, c.seed * 31 + i), mode: c.mode})
  }
  const devs = cloneDevs(a.devs)
  if (c.mode === 'write-through') {
    const total = runWorkload(cloneDevs(a.devs), ops).writes
    runWorkload(devs, ops, {crashAfter: 1 + Math.floor(r() * (total - 1)), crashSeed: c.seed})
  } else runWorkload(devs, ops)
  if (c.corrupt) {
    const arr = openArray(devs, {writable: false})
    let plan: RecoveryPlan
    try {
      plan = planRecovery(arr)
    } finally {
      arr.close()
    }
    const ring = arr.ring!
    const pages = ring.distance(plan.tailSector, plan.stop.position) / 8
    if (pages < 2) return null
    // a page after the tail block: a data page (the unit is dropped) or a later meta block (the log ends there)
    const pos = ring.add(plan.tailSector, 8 * (1 + Math.floor(r() * (pages - 1))))
    devs[0].data[ring.baseBytes + pos * 512 + Math.floor(r() * PAGE)] ^= 1 << Math.floor(r() * 8)
  }
  return devs
}

describe('recovery plan: recover --dry-run lists exactly what recover writes', function () {
  this.timeout(300000)
  const cases: LogCase[] = []
  for (const level of [4, 5, 6] as const)
    for (const mode of ['write-through', 'write-back'] as const)
      for (let k = 0; k < 8; k++) {
        const seed = level * 1000 + (mode === 'write-back' ? 500 : 0) + k
        const missing = k === 2 || k === 3 ? [seed % 4] : level === 6 && k === 4 ? [seed % 4, 4] : []
        cases.push({level, mode, seed, corrupt: k % 2 === 1, missing})
      }

  for (const c of cases) {
    const missing = c.missing.length > 0 ? `, member${c.missing.length > 1 ? 's' : ''} ${c.missing.join(' and ')} missing` : ''
    it(`raid${c.level} ${c.mode}, seed ${c.seed}${c.corrupt ? ', one flipped bit in the live log' : ''}${missing}`, () => {
      const dirty = dirtyLog(c)
      if (!dirty) return
      // the set as given: the journal and the members present
      const given = <T>(devs: T[]) => devs.filter((_, i) => i === 0 || !c.missing.includes(i - 1))
      const dryDevs = cloneDevs(dirty)
      let dry: ReturnType<typeof recoverArray>
      try {
        dry = recoverArray(given(dryDevs), {dryRun: true})
      } catch (error) {
        // a refusal (e.g. the flip hit a payload location) is the same refusal without --dry-run, with nothing written
        assert.ok(error instanceof R5Error, String(error))
        const devs = cloneDevs(dirty)
        assert.throws(
          () => recoverArray(given(devs), {}),
          (e: unknown) => e instanceof R5Error && e.code === error.code,
        )
        assert.equal(totalWrites(devs), 0)
        return
      }
      assert.equal(totalWrites(dryDevs), 0, 'the dry run writes nothing')
      const listed = new Set<string>()
      for (const w of dry.writes) for (let p = 0; p < w.pages; p++) listed.add(`${w.slot}:${(w.offsetSector * 512) / PAGE + p}`)

      const devs = cloneDevs(dirty)
      const before = snapshot(devs)
      const wrapped = devs.map(d => new WriteRecorder(d))
      const real = recoverArray(given(wrapped), {})
      const written = new Set<string>()
      wrapped.slice(1).forEach((w, slot) => pagesOf(w.writes, slot, written))
      assert.deepEqual([...written].sort(), [...listed].sort(), 'pages written = pages listed')
      assert.equal(real.pagesWritten, dry.pagesWritten, 'pages written')
      assert.equal(real.state, dry.state === 'would-replay' ? 'replayed' : 'clean')
      for (const k of ['dataParityStripes', 'dataOnlyStripes', 'stopSector', 'newSeq', 'metaBlocks'] as const) assert.equal(real[k], dry[k], k)
      for (let slot = 0; slot < devs.length - 1; slot++) {
        for (const p of changedPages(before[slot + 1], devs[slot + 1].data, DATA_OFFSET_BYTES)) {
          const page = p - DATA_OFFSET_BYTES / PAGE
          assert.ok(listed.has(`${slot}:${page}`), `member ${slot} page ${page} changed but is not listed`)
        }
      }
      assert.deepEqual(real.missingSlots, c.missing)
      assert.equal(recoverArray(given(devs), {}).state, 'clean', 'a second recover finds a clean log')
    })
  }

  it('the plan does not depend on how much of the log each read brings in', () => {
    for (const c of cases.filter(x => !x.corrupt && x.level !== 4 && x.missing.length === 0)) {
      const dirty = dirtyLog(c)!
      const plans = [1, 2, 7, 33, 1024].map(pages => {
        const arr = openArray(cloneDevs(dirty), {writable: false})
        try {
          const p = planRecovery(arr, {readBytes: pages * PAGE})
          const pagesList: string[] = []
          p.fromLog.forEachPage((s, k, pos) => pagesList.push(`${s}/${k}/${pos}`))
          p.dataOnly.forEachPage((s, k, pos) => pagesList.push(`d${s}/${k}/${pos}`))
          return {stop: p.stop.position, units: p.units, dp: p.dataParityStripes, pages: pagesList.sort()}
        } finally {
          arr.close()
        }
      })
      for (const p of plans.slice(1)) assert.deepEqual(p, plans[0], `raid${c.level} ${c.mode} seed ${c.seed}`)
    }
  })
})
