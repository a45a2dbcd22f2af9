/**
 * SectorIndex (the state machine's stripe sector -> row table) against a Map, on random operation
 * sequences: stripes in runs and scattered, sectors beyond 2^35 (page numbers past 32 bits, which
 * the hash folds), and growth from a tiny table.
 */
import assert from 'node:assert/strict'
import {SectorIndex} from '../../../src/engine/journal/stripes.js'
import {rng} from '../../helpers/reference.js'

describe('SectorIndex', () => {
  for (const [name, sectorOf] of [
    ['consecutive stripes', (r: () => number, i: number) => 8 * (1000 + i + Math.floor(r() * 3))],
    ['scattered stripes', (r: () => number) => 8 * Math.floor(r() * 2 ** 20)],
    ['sectors beyond 2^35 (pages past 32 bits)', (r: () => number) => 8 * (2 ** 32 * Math.floor(1 + r() * 4) + Math.floor(r() * 64))],
  ] as const) {
    it(`agrees with a Map: ${name}`, () => {
      const r = rng(name.length * 7919)
      for (let round = 0; round < 20; round++) {
        const idx = new SectorIndex(4)
        const ref = new Map<number, number>()
        const ops = 1 + Math.floor(r() * 3000)
        for (let i = 0; i < ops; i++) {
          const sector = sectorOf(r, i)
          if (r() < 0.6) {
            const row = Math.floor(r() * 1e6)
            idx.set(sector, row)
            ref.set(sector, row)
          }
          const probe = r() < 0.5 ? sector : sectorOf(r, i + 17)
          assert.equal(idx.get(probe), ref.get(probe) ?? -1, `round ${round}, op ${i}: get(${probe})`)
        }
        assert.equal(idx.size, ref.size, `round ${round}: size`)
        for (const [k, v] of ref) assert.equal(idx.get(k), v, `round ${round}: final get(${k})`)
      }
    })
  }
})
