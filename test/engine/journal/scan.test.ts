/**
 * The walk of the live log (scan.ts) follows the kernel's u64 arithmetic: seq is a 64-bit counter
 * that wraps from 2^64 - 1 to 0 (r5l_recovery_read_meta_block compares against ctx->seq, a u64 that
 * ctx->seq++ wraps), and the seq of the block that closes the log after a replay wraps the same way.
 */
import assert from 'node:assert/strict'
import {dumpMeta, recoverArray, writeData} from '../../../src/engine/index.js'
import {bufferSource, cloneArray, createMemArray, MiB, pseudoRandom, readAll, renumberLog} from '../../helpers/model.js'

const U64 = 1n << 64n

describe('journal scan: seq is a 64-bit counter', function () {
  this.timeout(60000)

  it('a log whose seq wraps past 2^64 - 1 replays every unit, as the kernel does', () => {
    const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 16384, memberDataBytes: 4 * MiB, journalRingBytes: 4 * MiB})
    const len = 64 * 3 * 4096
    const data = pseudoRandom(len, 3)
    // write-back: the data stays in the log as data-only stripes, in many io units
    for (let off = 0; off < len; off += 3 * 4096 * 8) writeData(a.devs, off, 3 * 4096 * 8, bufferSource(data.subarray(off)), {mode: 'write-back'})
    const wrapped = cloneArray(a)
    assert.ok(dumpMeta(wrapped.devs, {}).blocks.length >= 4, 'several live meta blocks')
    // renumber the live log so that its third block has seq 0: the tail sits at 2^64 - 2
    renumberLog(wrapped.devs, U64 - 2n)
    const plain = recoverArray(a.devs, {})
    const r = recoverArray(wrapped.devs, {})
    assert.equal(r.metaBlocks, plain.metaBlocks, 'every unit of the log was walked')
    assert.equal(r.stopReason, plain.stopReason)
    // the closing seq is as far past the tail's as in the log without the wrap (the walked units, the
    // parity units written for the cached stripes, 10000), modulo 2^64
    const ahead = BigInt(plain.newSeq) - BigInt(plain.tailSeq)
    assert.ok(ahead >= BigInt(plain.metaBlocks) + 10000n, `${ahead}`)
    assert.equal(r.newSeq, ((U64 - 2n + ahead) % U64).toString(), 'the closing seq wraps too')
    assert.ok(readAll(wrapped.devs, 0, len).equals(data), 'every acknowledged write is on the members')
  })
})
