/**
 * The write path's log (write/log.ts, write/batch.ts) numbers its io units with the kernel's u64 seq,
 * which wraps from 2^64 - 1 to 0.
 */
import assert from 'node:assert/strict'
import {examineJournal, recoverArray, writeData} from '../../../src/engine/index.js'
import {bufferSource, createMemArray, MiB, pseudoRandom, readAll, renumberLog} from '../../helpers/model.js'

const U64 = 1n << 64n

describe('write: the log seq is a 64-bit counter', function () {
  this.timeout(60000)

  for (const mode of ['write-through', 'write-back'] as const) {
    it(`${mode}: a write after the log closed at seq 2^64 - 1 goes on at seq 0`, () => {
      const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 16384, memberDataBytes: 4 * MiB, journalRingBytes: 4 * MiB})
      const first = pseudoRandom(3 * 4096 * 16, 7)
      writeData(a.devs, 0, first.length, bufferSource(first), {mode: 'write-back'})
      recoverArray(a.devs, {})
      // a write moves the tail of a clean log to (its seq + 1) + 10000 and numbers its units from
      // the seq after that: with the closing block at 2^64 - 10003, they are 2^64 - 1, 0, 1, ...
      assert.equal(renumberLog(a.devs, U64 - 10003n), 1, 'the clean log is one empty block')
      const more = pseudoRandom(3 * 4096 * 40, 8)
      const w = writeData(a.devs, 4096, more.length, bufferSource(more), {mode})
      const j = examineJournal(a.devs)
      assert.ok(BigInt(j.nextSeq ?? -1) < 1000n, `next seq ${j.nextSeq}: the counter wrapped`)
      assert.ok(w.lastSeq < U64, `the write reports its last seq as ${w.lastSeq}, past 2^64 - 1`)
      assert.equal((w.lastSeq + 1n) % U64, BigInt(j.nextSeq ?? -1), `the write reports its last seq as ${w.lastSeq}`)
      if (mode === 'write-back') recoverArray(a.devs, {})
      const expect = Buffer.concat([first.subarray(0, 4096), more, first.subarray(4096 + more.length)])
      assert.ok(readAll(a.devs, 0, first.length).equals(expect.subarray(0, first.length)), 'the array holds both writes')
    })
  }
})
