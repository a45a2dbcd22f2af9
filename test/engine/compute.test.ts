/**
 * The implementations an array computes with are a value the caller passes (OpenOptions.compute,
 * EngineOptions.compute), not a process-wide switch: two arrays in one process, one on the default
 * (native CRC, WebAssembly parity) and one on the pure-JS implementations, go through write-through,
 * write-back, recover, reclaim and degraded reads and end with the same bytes on every device.
 */
import assert from 'node:assert/strict'
import {DEFAULT_COMPUTE, computeFor, type Compute} from '../../src/engine/compute.js'
import {examineJournal, readData, reclaimArray, recoverArray, writeData} from '../../src/engine/index.js'
import {bufferSource, cloneArray, createMemArray, MiB, pseudoRandom, type MemArray} from '../helpers/model.js'

const SB = [4096, 8192] // the superblock carries the time of its update: compared apart from the rest

function sameBytes(a: MemArray, b: MemArray, what: string): void {
  a.devs.forEach((d, i) => {
    const x = Buffer.from(d.data)
    const y = Buffer.from(b.devs[i].data)
    assert.ok(x.subarray(0, SB[0]).equals(y.subarray(0, SB[0])) && x.subarray(SB[1]).equals(y.subarray(SB[1])), `${what}: ${d.name} differs`)
  })
}

function readWithout(a: MemArray, slot: number, compute = DEFAULT_COMPUTE): Buffer {
  const parts: Buffer[] = []
  const devs = a.devs.filter(d => d !== a.members[slot])
  readData(devs, 0, a.sizeBytes, views => parts.push(...views.map(v => Buffer.from(v))), {compute})
  return Buffer.concat(parts)
}

/** The pure-JS implementations, counting the calls made to them. */
function countingJs(): Compute & {calls: {crc: number; parity: number}} {
  const base = computeFor({crc: 'js', parity: 'js'})
  const calls = {crc: 0, parity: 0}
  const count =
    <A extends unknown[], R>(what: 'crc' | 'parity', f: (...a: A) => R) =>
    (...a: A): R => {
      calls[what]++
      return f(...a)
    }
  return {
    calls,
    crc: {...base.crc, pages: count('crc', base.crc.pages.bind(base.crc)), raw: count('crc', base.crc.raw.bind(base.crc))},
    parity: {
      backend: 'js',
      computeP: count('parity', base.parity.computeP),
      computeQ: count('parity', base.parity.computeQ),
      computePQ: count('parity', base.parity.computePQ),
    },
  }
}

describe('compute: the implementations travel with the operation', function () {
  this.timeout(60_000)
  const js = computeFor({crc: 'js', parity: 'js'})

  it('the pure-JS choice is a different implementation from the default', () => {
    assert.equal(js.crc.name, 'crc-32 (js)')
    assert.equal(js.parity.backend, 'js')
    assert.notEqual(js, DEFAULT_COMPUTE)
  })

  for (const level of [5, 6] as const) {
    it(`raid${level}: the default and the pure-JS implementations write, log, replay and reclaim the same bytes in one process`, () => {
      const a = createMemArray({level, raidDevices: level === 6 ? 5 : 4, chunkBytes: 16384, memberDataBytes: 2 * MiB, journalRingBytes: 2 * MiB})
      const b = cloneArray(a)
      const data = pseudoRandom(a.sizeBytes, level)
      const run = (x: MemArray, compute = DEFAULT_COMPUTE) => {
        writeData(x.devs, 0, a.sizeBytes, bufferSource(data), {compute})
        writeData(x.devs, 12_288, 200_000, bufferSource(pseudoRandom(200_000, 9)), {mode: 'write-back', compute})
        assert.equal(examineJournal(x.devs, {compute}).state, 'dirty')
        recoverArray(x.devs, {compute})
        writeData(x.devs, 90_112, 100_000, bufferSource(pseudoRandom(100_000, 10)), {mode: 'write-back', compute})
        reclaimArray(x.devs, {compute})
      }
      const counted = countingJs()
      run(a)
      run(b, counted)
      assert.ok(
        counted.calls.crc > 0 && counted.calls.parity > 0,
        `the operations computed with what they were given (${JSON.stringify(counted.calls)})`,
      )
      sameBytes(a, b, 'after write-through, write-back, recover and reclaim')
      const before = counted.calls.parity
      for (let slot = 0; slot < a.members.length; slot++)
        assert.ok(readWithout(a, slot).equals(readWithout(b, slot, counted)), `read without member ${slot}`)
      assert.ok(counted.calls.parity > before, 'degraded reads rebuilt with what they were given')
    })
  }
})
