/**
 * StripeRows (the state machine's stripe sector <-> row table) against a Map, on random operation
 * sequences: stripes in runs and scattered, sectors beyond 2^35 (page numbers past 32 bits, which
 * the hash folds), and growth past the first table.
 */
import assert from 'node:assert/strict'
import {StripeRows} from '../../../src/engine/journal/stripes.js'
import {rng} from '../../helpers/reference.js'

describe('StripeRows', () => {
  for (const [name, sectorOf] of [
    ['consecutive stripes', (r: () => number, i: number) => 8 * (1000 + i + Math.floor(r() * 3))],
    ['scattered stripes', (r: () => number) => 8 * Math.floor(r() * 2 ** 20)],
    ['sectors beyond 2^35 (pages past 32 bits)', (r: () => number) => 8 * (2 ** 32 * Math.floor(1 + r() * 4) + Math.floor(r() * 64))],
  ] as const) {
    it(`agrees with a Map: ${name}`, () => {
      const r = rng(name.length * 7919)
      for (let round = 0; round < 20; round++) {
        const rows = new StripeRows()
        const ref = new Map<number, number>()
        const ops = 1 + Math.floor(r() * (round % 4 === 0 ? 30000 : 3000))
        for (let i = 0; i < ops; i++) {
          const sector = sectorOf(r, i)
          if (r() < 0.6) {
            // a stripe keeps the row it was first given; a new one gets the next number
            if (!ref.has(sector)) ref.set(sector, ref.size)
            assert.equal(rows.row(sector), ref.get(sector), `round ${round}, op ${i}: row(${sector})`)
          }
          const probe = r() < 0.5 ? sector : sectorOf(r, i + 17)
          assert.equal(rows.get(probe), ref.get(probe) ?? -1, `round ${round}, op ${i}: get(${probe})`)
        }
        assert.equal(rows.count, ref.size, `round ${round}: count`)
        for (const [k, v] of ref) {
          assert.equal(rows.get(k), v, `round ${round}: final get(${k})`)
          assert.equal(rows.sectorOf(v), k)
        }
        assert.deepEqual(rows.sectors(), [...ref.keys()])
      }
    })
  }
})
