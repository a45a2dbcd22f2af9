/**
 * write/batch.ts LogBatch: io units open and close at log pages, payload records in order, and the
 * member writes: one request per contiguous run of a member's pages (crash injection counts
 * requests), members in order, the lists empty afterwards; a system error from a member's write is
 * an IoError naming it, while the engine's own errors (a simulated crash) pass through unchanged.
 */
import assert from 'node:assert/strict'
import type {MdArray} from '../../../src/engine/array.js'
import {MemDevice, type BlockDevice} from '../../../src/engine/device.js'
import {IoError, SimulatedCrash} from '../../../src/engine/errors.js'
import {PAYLOAD_DATA} from '../../../src/engine/format/meta.js'
import {LogBatch} from '../../../src/engine/write/batch.js'

const PAGE = 4096

/** just what writeMembers uses of an array: its members' devices */
const fakeArray = (devs: BlockDevice[]) => ({members: devs.map(dev => ({dev}))}) as unknown as MdArray

describe('engine write: batch (LogBatch)', () => {
  it('opens units at log pages and records payloads in order', () => {
    const b = new LogBatch(new Uint8Array(16 * PAGE), 2)
    assert.equal(b.closeUnit(), false, 'no unit open')
    b.openUnit()
    assert.equal(b.unitStart, 0)
    assert.equal(b.logLen, PAGE)
    b.record(PAYLOAD_DATA, 8, 1, 1)
    b.logLen += PAGE
    assert.equal(b.closeUnit(), true)
    assert.equal(b.unitStart, -1)
    assert.equal(b.nUnits, 1)
    assert.equal(b.nRecs, 1)
    assert.deepEqual([b.recs.type[0], b.recs.location[0], b.recs.firstSum[0], b.recs.pages[0]], [PAYLOAD_DATA, 8, 1, 1])
    b.clear()
    assert.deepEqual([b.logLen, b.nUnits, b.nRecs], [0, 0, 0])
  })

  it('writes each member run of contiguous pages as one request, at its place', () => {
    const log = new Uint8Array(8 * PAGE)
    for (let p = 0; p < 8; p++) log.fill(p + 1, p * PAGE, (p + 1) * PAGE)
    const devs = [new MemDevice('a', 64 * PAGE), new MemDevice('b', 64 * PAGE)]
    const requests: string[] = []
    for (const d of devs) {
      const writev = d.writev.bind(d)
      d.writev = (bufs, off) => {
        requests.push(`${d.name}@${off / PAGE}x${bufs.length}`)
        writev(bufs, off)
      }
    }
    const b = new LogBatch(log, 2)
    // member 1 first in call order: requests still go member by member
    b.memberPage(1, 0, 7)
    b.memberPage(0, 0, 1)
    b.memberPage(0, PAGE, 2)
    b.memberPage(0, 3 * PAGE, 3)
    b.memberPage(1, PAGE, 6)
    b.writeMembers(fakeArray(devs), [10 * PAGE, 20 * PAGE])
    assert.deepEqual(requests, ['a@10x2', 'a@13x1', 'b@20x2'])
    const pageOf = (d: MemDevice, p: number) => d.data[p * PAGE]
    assert.deepEqual(
      [10, 11, 12, 13].map(p => pageOf(devs[0], p)),
      [2, 3, 0, 4],
    )
    assert.deepEqual(
      [20, 21].map(p => pageOf(devs[1], p)),
      [8, 7],
    )
    b.writeMembers(fakeArray(devs), [0, 0])
    assert.equal(requests.length, 3, 'the lists are empty after a write')
  })

  it("names the member whose write fails with a system error, and passes the engine's own errors on", () => {
    const bad = new MemDevice('bad', 8 * PAGE)
    bad.writev = () => {
      throw Object.assign(new Error('EIO: i/o error, writev'), {code: 'EIO', errno: -5})
    }
    const b = new LogBatch(new Uint8Array(2 * PAGE), 1)
    b.memberPage(0, PAGE, 0)
    assert.throws(
      () => b.writeMembers(fakeArray([bad]), [0]),
      (e: unknown) => e instanceof IoError && e.device === 'bad' && /^write failed at offset 4096: EIO/.test(e.message),
    )
    const crash = new SimulatedCrash(3)
    bad.writev = () => {
      throw crash
    }
    b.memberPage(0, 0, 0)
    assert.throws(
      () => b.writeMembers(fakeArray([bad]), [0]),
      (e: unknown) => e === crash,
    )
  })
})
