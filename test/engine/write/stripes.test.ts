/**
 * write/stripes.ts RowPlan: per stripe of a row, which data pages are new and how parity is made
 * (full, reconstruct-write, read-modify-write, by the fewer reads, rcw on a tie), the member pages
 * each choice reads, write-back making no parity, and data indices in member order.
 */
import assert from 'node:assert/strict'
import type {RowLayout} from '../../../src/engine/rows.js'
import {HOW_FULL, HOW_NONE, HOW_RCW, HOW_RMW, RowPlan} from '../../../src/engine/write/stripes.js'

/** RAID5/6 row with data on members 0..D-1 in order, P (and Q) after them */
function layout(D: number, raid6 = false): RowLayout {
  return {pd: D, qd: raid6 ? D + 1 : -1, dataMembers: Array.from({length: D}, (_, i) => i), qSlot: Array.from({length: D}, (_, i) => i)}
}
const reads = (p: RowPlan) => Array.from(p.readHi, (hi, m) => (hi < 0 ? null : [p.readLo[m], hi]))

describe('engine write: stripes (RowPlan)', () => {
  it('a whole row: every stripe full, nothing read', () => {
    const p = new RowPlan(4, 3, 4, 1)
    p.decide(layout(3), 0, 12, false)
    assert.deepEqual([...p.how], [HOW_FULL, HOW_FULL, HOW_FULL, HOW_FULL])
    assert.deepEqual([...p.touched], [3, 3, 3, 3])
    assert.deepEqual(reads(p), [null, null, null, null])
  })

  it('one data chunk of three (RAID5): rcw on the tie of 2 reads against 2, the untouched members read', () => {
    const p = new RowPlan(4, 3, 4, 1)
    p.decide(layout(3), 0, 4, false)
    assert.deepEqual([...p.how], [HOW_RCW, HOW_RCW, HOW_RCW, HOW_RCW])
    assert.deepEqual(reads(p), [null, [0, 3], [0, 3], null])
  })

  it('one data chunk of six (RAID5): rmw, reading the touched member and P', () => {
    const p = new RowPlan(7, 6, 4, 1)
    p.decide(layout(6), 4, 8, false)
    assert.deepEqual([...p.how], [HOW_RMW, HOW_RMW, HOW_RMW, HOW_RMW])
    assert.deepEqual([...p.touched], [1, 1, 1, 1])
    assert.deepEqual(reads(p), [null, [0, 3], null, null, null, null, [0, 3]])
  })

  it('RAID6 counts two parity reads for rmw, and reads Q with P', () => {
    const p = new RowPlan(10, 8, 2, 2)
    p.decide(layout(8, true), 0, 2, false) // one page of eight new per stripe: rmw 3 reads, rcw 7
    assert.deepEqual([...p.how], [HOW_RMW, HOW_RMW])
    assert.deepEqual(reads(p), [[0, 1], null, null, null, null, null, null, null, [0, 1], [0, 1]])
  })

  it('a range inside one stripe leaves the others untouched and reads only that stripe', () => {
    const p = new RowPlan(4, 3, 4, 1)
    p.decide(layout(3), 1, 2, false)
    assert.deepEqual([...p.how], [HOW_NONE, HOW_RCW, HOW_NONE, HOW_NONE])
    assert.deepEqual([...p.touched], [0, 1, 0, 0])
    assert.deepEqual(reads(p), [null, [1, 1], [1, 1], null])
  })

  it('write-back logs data only: partial stripes are full, nothing read', () => {
    const p = new RowPlan(7, 6, 4, 1)
    p.decide(layout(6), 4, 8, true)
    assert.deepEqual([...p.how], [HOW_FULL, HOW_FULL, HOW_FULL, HOW_FULL])
    assert.deepEqual(reads(p), [null, null, null, null, null, null, null])
  })

  it('orders data indices by member (the kernel logs a stripe by device)', () => {
    const p = new RowPlan(4, 3, 1, 1)
    p.decide({pd: 1, qd: -1, dataMembers: [2, 3, 0], qSlot: [0, 1, 2]}, 0, 3, false)
    assert.deepEqual([...p.byMember], [2, 0, 1])
  })
})
