/**
 * Write-back keeps every acknowledged byte when a later write covers only part of a page: the
 * rest of that page must come from its newest copy, which may still be cached in the journal (an
 * earlier write-back write), not from the members. Checked after reclaim, after recover, after a
 * write-through write, and for a partial last page of a write that spans several log batches or
 * fills the log (reclaim in the middle of the write). RAID4, 5 and 6, against a byte model.
 */
import assert from 'node:assert/strict'
import {examineJournal, reclaimArray, recoverArray, writeData} from '../../../src/engine/index.js'
import type {WriteResult} from '../../../src/engine/write/write-array.js'
import {bufferSource, checkParity, createMemArray, type MemArray, pseudoRandom, readAll} from '../../helpers/model.js'

const PAGE = 4096
const KiB = 1024

type Mode = 'write-through' | 'write-back'

/** an array and the bytes it must hold (zeros where never written) */
function rig(
  level: 4 | 5 | 6,
  ringBytes = 1024 * KiB,
): {a: MemArray; model: Buffer; write: (offset: number, data: Buffer, mode: Mode, batchBytes?: number) => WriteResult} {
  const raidDevices = level === 6 ? 5 : 4
  const a = createMemArray({level, raidDevices, chunkBytes: 16 * KiB, memberDataBytes: 512 * KiB, journalRingBytes: ringBytes})
  const model = Buffer.alloc(a.sizeBytes)
  const write = (offset: number, data: Buffer, mode: Mode, batchBytes?: number) => {
    const r = writeData(a.devs, offset, data.length, bufferSource(data), {mode, batchBytes})
    model.set(data, offset)
    return r
  }
  return {a, model, write}
}

function assertHolds(a: MemArray, model: Buffer, level: number): void {
  const img = readAll(a.devs)
  if (!img.equals(model)) {
    let i = 0
    while (img[i] === model[i]) i++
    assert.fail(`array byte ${i} (page ${Math.floor(i / PAGE)} +${i % PAGE}) is ${img[i]}, the last write put ${model[i]} there`)
  }
  assert.equal(checkParity(a.devs, level, img), null)
}

const finish = {
  reclaim: (a: MemArray) => {
    reclaimArray(a.devs)
  },
  recover: (a: MemArray) => {
    recoverArray(a.devs, {})
  },
  'reclaim then recover': (a: MemArray) => {
    reclaimArray(a.devs)
    recoverArray(a.devs, {})
  },
}

describe('write-back: partial pages merge with the newest cached data', function () {
  this.timeout(60_000)
  for (const level of [4, 5, 6] as const) {
    for (const [how, fin] of Object.entries(finish)) {
      it(`raid${level}: a partial-page write keeps the earlier cached write's bytes after ${how}`, () => {
        const {a, model, write} = rig(level)
        write(0, pseudoRandom(3 * PAGE, 1), 'write-back')
        // ends 100 bytes into page 1: bytes 100.. of page 1 are the first write's
        write(PAGE, pseudoRandom(100, 2), 'write-back')
        assert.ok(examineJournal(a.devs).stripesPending.dataOnly > 0, 'the pages are cached in the log')
        fin(a)
        assertHolds(a, model, level)
      })
    }

    it(`raid${level}: three write-back writes to one page, each shorter, keep the newest bytes of each`, () => {
      const {a, model, write} = rig(level)
      write(8 * PAGE, pseudoRandom(PAGE, 3), 'write-back')
      write(8 * PAGE, pseudoRandom(3000, 4), 'write-back')
      write(8 * PAGE, pseudoRandom(1000, 5), 'write-back')
      reclaimArray(a.devs)
      assertHolds(a, model, level)
    })

    it(`raid${level}: a write-through partial-page write after a write-back write keeps the cached bytes`, () => {
      const {a, model, write} = rig(level)
      write(0, pseudoRandom(5 * PAGE, 6), 'write-back')
      write(2 * PAGE, pseudoRandom(PAGE + 700, 7), 'write-through')
      assertHolds(a, model, level)
    })

    it(`raid${level}: a write-back write over several log batches ending mid-page keeps the cached bytes of its last page`, () => {
      const {a, model, write} = rig(level)
      const last = 40 * PAGE
      write(last, pseudoRandom(PAGE, 8), 'write-back')
      // 40 pages and 123 bytes in batches of 16 pages: the cached page is the partial last one
      const r = write(0, pseudoRandom(last + 123, 9), 'write-back', 16 * PAGE)
      assert.ok(r.ioUnits > 2 && r.reclaimedStripes === 0, `${r.ioUnits} io units, nothing reclaimed`)
      recoverArray(a.devs, {})
      assertHolds(a, model, level)
    })

    it(`raid${level}: a write-back write whose input ends mid-page (to end of input) keeps the cached bytes of that page`, () => {
      const {a, model, write} = rig(level)
      write(0, pseudoRandom(4 * PAGE, 13), 'write-back')
      const data = pseudoRandom(2 * PAGE + 500, 14)
      writeData(a.devs, 0, 8 * PAGE, bufferSource(data), {mode: 'write-back', endAtShortInput: true})
      model.set(data, 0)
      reclaimArray(a.devs)
      assertHolds(a, model, level)
    })

    it(`raid${level}: a write-back write that fills the log and then ends mid-page at the end of its input keeps the cached bytes`, () => {
      // the cached page is written out by the reclaim in the middle of the write; its old log place is reused
      const {a, model, write} = rig(level, 256 * KiB)
      const len = 60 * PAGE + 2000
      write(len - 2000, pseudoRandom(PAGE, 15), 'write-back')
      write(0, pseudoRandom(30 * PAGE, 16), 'write-back')
      const data = pseudoRandom(len, 17)
      const r = writeData(a.devs, 0, len + 10 * PAGE, bufferSource(data), {mode: 'write-back', endAtShortInput: true})
      assert.ok(r.reclaimedStripes > 0, 'the write reclaimed the cached stripes on a full log')
      model.set(data, 0)
      reclaimArray(a.devs)
      assertHolds(a, model, level)
    })

    it(`raid${level}: a write-back write that fills the log (reclaim mid-write) and ends mid-page keeps the cached bytes`, () => {
      // a 256 KiB ring: the second write reclaims the first in its middle
      const {a, model, write} = rig(level, 256 * KiB)
      const len = 60 * PAGE + 2000
      write(len - 2000, pseudoRandom(PAGE, 10), 'write-back')
      write(0, pseudoRandom(30 * PAGE, 11), 'write-back')
      const r = write(0, pseudoRandom(len, 12), 'write-back')
      assert.ok(r.reclaimedStripes > 0, 'the write reclaimed the cached stripes on a full log')
      reclaimArray(a.devs)
      assertHolds(a, model, level)
    })
  }
})
