/**
 * Writing a write-back cache out to the members (journal/writeout.ts), as recover, reclaim and a
 * write that fills the ring do it: a power cut at any device write, and then the loss of any one
 * member, must still give every acknowledged byte. That holds only when no page of a cached stripe
 * reaches a member before the stripe's parity is durable in the log: otherwise the cut leaves
 * parity on the members that no longer matches their data, and the missing member's pages that the
 * log does not hold are rebuilt from it wrong (the RAID write hole the journal exists to close).
 * The references come from the writes themselves (the bytes each write put), never from a read of
 * our own.
 */
import assert from 'node:assert/strict'
import {readData, reclaimArray, recoverArray, writeData} from '../../../src/engine/index.js'
import type {BlockDevice, MemDevice} from '../../../src/engine/device.js'
import {bufferSource, cacheInLog, cloneDevs, cutAfter, createMemArray, pseudoRandom, totalWrites} from '../../helpers/model.js'

const KiB = 1024

/** the bytes the array presents with member `gone` left out (a dirty journal replayed in memory) */
function degradedView(devs: MemDevice[], gone: number): Buffer {
  const set = devs.filter((_, i) => i !== gone + 1)
  const parts: Buffer[] = []
  readData(set, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {})
  return Buffer.concat(parts)
}

/**
 * A RAID5 array (4 members, 16 KiB chunks, a 256 KiB ring) filled write-through, then write-back
 * writes of two pages of every stripe's three: partial stripes, whose third data page only the
 * members hold, and together more than the ring holds.
 */
function cachedArray(level: 5 | 6): {devs: MemDevice[]; expected: Buffer; ops: {offset: number; data: Buffer}[]} {
  const a = createMemArray({level, raidDevices: level === 6 ? 5 : 4, chunkBytes: 16 * KiB, memberDataBytes: 128 * KiB, journalRingBytes: 256 * KiB})
  const expected = pseudoRandom(a.sizeBytes, 71 + level)
  writeData(a.devs, 0, expected.length, bufferSource(expected), {mode: 'write-through'})
  const rowBytes = 3 * 16 * KiB // three data chunks a row on both
  const ops: {offset: number; data: Buffer}[] = []
  for (let row = 0; row * rowBytes < a.sizeBytes; row++) {
    // the first two data chunks of the row: pages 0..3 of chunk 0 and of chunk 1, one stripe per page
    ops.push({offset: row * rowBytes, data: pseudoRandom(32 * KiB, 900 + row)})
  }
  return {devs: a.devs, expected, ops}
}

/**
 * The same array with its ring filled by another writer to all but `freePages`: DATA records of two
 * pages of every stripe's three, and not the room kept for writing them out.
 */
function fullLogArray(level: 5 | 6, freePages: number, wholeRows = 0): {devs: MemDevice[]; expected: Buffer; cached: number} {
  const {devs, expected} = cachedArray(level)
  const pages = new Map<number, Uint8Array>()
  for (let row = 0; row * 12 * 4096 < expected.length; row++) {
    // the first `wholeRows` rows whole (every data page of their stripes), the others two chunks of three
    for (let k = 0; k < (row < wholeRows ? 12 : 8); k++) pages.set(row * 12 + k, pseudoRandom(4096, 3000 + row * 12 + k))
  }
  const cached = cacheInLog(devs, pages, freePages)
  let n = 0
  for (const [page, bytes] of pages) if (n++ < cached) expected.set(bytes, page * 4096)
  return {devs, expected, cached}
}

/** `run` cut after each of its device writes in turn: every degraded view must read `expected`. */
function cutEverywhere(base: MemDevice[], expected: Buffer, what: string, run: (d: BlockDevice[]) => unknown): void {
  const probe = cloneDevs(base)
  run(probe)
  const R = totalWrites(probe)
  const bad: string[] = []
  for (let n = 0; n < R; n++) {
    const devs = cloneDevs(base)
    assert.ok(cutAfter(devs, n, run), `${what} was not cut after ${n} writes`)
    for (let gone = 0; gone < devs.length - 1; gone++) {
      if (!degradedView(devs, gone).equals(expected)) bad.push(`${what} cut after ${n} of ${R} writes, m${gone} missing`)
    }
  }
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} degraded reads lost acknowledged bytes`)
}

function runOps(devs: BlockDevice[], ops: {offset: number; data: Buffer}[], expected?: Buffer): void {
  for (const op of ops) {
    writeData(devs, op.offset, op.data.length, bufferSource(op.data), {mode: 'write-back'})
    expected?.set(op.data, op.offset)
  }
}

describe('writing a write-back cache out: a power cut at any write, then any one member lost, loses nothing', function () {
  this.timeout(600_000)

  for (const level of [5, 6] as const) {
    it(`raid${level}: after any write-back write, the log has room to write its whole cache out with parity logged`, function () {
      const {devs} = cachedArray(level)
      const size = 3 * 16 * KiB * 8
      let x = 12345 + level
      const rand = (n: number) => {
        x = (x * 1103515245 + 12345) >>> 0
        return x % n
      }
      for (let i = 0; i < 60; i++) {
        // scattered single pages, partial rows and whole rows, at random places
        const pages = [1, 1, 2, 5, 12, 24][rand(6)]
        const offset = rand(size / 4096 - pages) * 4096
        writeData(devs, offset, pages * 4096, bufferSource(pseudoRandom(pages * 4096, i)), {mode: 'write-back'})
        const dry = recoverArray(cloneDevs(devs), {dryRun: true})
        assert.equal(dry.unloggedStripes, 0, `after write ${i} (${pages} pages at ${offset}): ${dry.dataOnlyStripes} cached stripes`)
      }
    })

    it(`raid${level}: write-back writes that fill the ring, cut at every write, read with each member missing`, function () {
      const {devs: base, expected, ops} = cachedArray(level)
      const probe = cloneDevs(base)
      const want = Buffer.from(expected)
      runOps(probe, ops, want)
      const W = totalWrites(probe) // a copy counts its writes from zero
      assert.ok(W > 20, `${W} writes`)
      const bad: string[] = []
      for (let n = 0; n <= W; n++) {
        const devs = cloneDevs(base)
        // a write is acknowledged when it returns: the cut one may show old or new bytes, the ones before it only new
        const acked = Buffer.from(expected)
        let done = 0
        cutAfter(devs, n, d => {
          for (const op of ops) {
            writeData(d, op.offset, op.data.length, bufferSource(op.data), {mode: 'write-back'})
            acked.set(op.data, op.offset)
            done++
          }
        })
        const cutOp = done < ops.length ? ops[done] : null
        for (let gone = 0; gone < devs.length - 1; gone++) {
          const got = degradedView(devs, gone)
          for (let p = 0; p < got.length; p += 4096) {
            if (got.subarray(p, p + 4096).equals(acked.subarray(p, p + 4096))) continue
            const inCut = cutOp !== null && p >= cutOp.offset && p < cutOp.offset + cutOp.data.length
            if (inCut && got.subarray(p, p + 4096).equals(cutOp.data.subarray(p - cutOp.offset, p - cutOp.offset + 4096))) continue
            bad.push(`cut after ${n} of ${W} writes, m${gone} missing: array page ${p / 4096}`)
            break
          }
        }
      }
      assert.deepEqual(bad.slice(0, 5), [], `${bad.length} degraded reads lost acknowledged bytes`)
    })

    for (const what of ['recover', 'reclaim'] as const) {
      it(`raid${level}: ${what} of a ring another writer left room in for a few stripes' parity only, in rounds, cut at every write, read with each member missing`, function () {
        const {devs: base, expected, cached} = fullLogArray(level, 16)
        assert.ok(cached > 30, `${cached} pages cached`)
        assert.ok(degradedView(base, 0).equals(expected), 'the cache is served before the write-out')
        const run = (d: BlockDevice[]) => (what === 'recover' ? recoverArray(d, {}) : reclaimArray(d))
        assert.equal(recoverArray(cloneDevs(base), {dryRun: true}).unloggedStripes, 0, 'every stripe is written out with its parity logged')
        cutEverywhere(base, expected, what, run)
      })

      it(`raid${level}: a ${what === 'recover' ? 'write-back' : 'write-through'} write on a log that fills the ring writes it out first, not over it`, function () {
        const {devs, expected} = fullLogArray(level, 0)
        const data = pseudoRandom(6000, 17)
        writeData(devs, 8192, data.length, bufferSource(data), {mode: what === 'recover' ? 'write-back' : 'write-through'})
        expected.set(data, 8192)
        const parts: Buffer[] = []
        readData(devs, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {})
        assert.ok(Buffer.concat(parts).equals(expected))
      })

      it(`raid${level}: ${what} of a ring filled to its last page, whole stripes oldest: those go out first from their logged data, the room they free takes the others' parity; nothing unlogged, cut at every write, each member missing`, function () {
        const {devs: base, expected, cached} = fullLogArray(level, 1, 2)
        assert.ok(cached > 30, `${cached} pages cached`)
        const run = (d: BlockDevice[]) => (what === 'recover' ? recoverArray(d, {}) : reclaimArray(d))
        assert.equal(recoverArray(cloneDevs(base), {dryRun: true}).unloggedStripes, 0, 'no stripe is written out unprotected')
        cutEverywhere(base, expected, what, run)
      })

      for (const free of [1, 0]) {
        it(`raid${level}: ${what} of a ring filled to ${free === 0 ? 'the tail (no free page)' : 'its last page'}: nothing written over the log, said, every byte there`, function () {
          const {devs, expected} = fullLogArray(level, free)
          // no room for a single parity record: the stripes go out as a replay writes them, and the result says how many
          const r = what === 'recover' ? recoverArray(devs, {}).unloggedStripes : reclaimArray(devs).unloggedStripes
          assert.ok(r > 0, `${r} stripes written without logged parity`)
          const parts: Buffer[] = []
          readData(devs, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {})
          assert.ok(Buffer.concat(parts).equals(expected))
        })
      }

      it(`raid${level}: ${what} of a full write-back cache, cut at every write, read with each member missing`, function () {
        const {devs: base, expected, ops} = cachedArray(level)
        runOps(base, ops, expected)
        const run = (d: BlockDevice[]) => (what === 'recover' ? recoverArray(d, {}) : reclaimArray(d))
        cutEverywhere(base, expected, what, run)
      })
    }
  }
})
