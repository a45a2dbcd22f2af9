/**
 * Reclaim of long runs of cached write-back stripes: the parity records it logs must be packed so
 * that every meta block holds at most 4096 bytes of header and payloads (a DATA/PARITY payload is
 * 16 bytes plus 4 per page). It once counted the parity payloads at 16 bytes (their checksums are
 * filled in later) and packed 254 of them into one 5112-byte meta block, which threw. And a plan
 * of more than 1024 stripes must keep every page: StripePages.set once lost the page that made
 * its table grow (recover and reclaim then left one stale data page per 1024 cached stripes).
 */
import assert from 'node:assert/strict'
import {examineJournal, reclaimArray, recoverArray, writeData, dumpMeta} from '../../../src/engine/index.js'
import {bufferSource, cacheInLog, checkParity, createMemArray, MiB, pseudoRandom, readAll} from '../../helpers/model.js'

describe('reclaim / recover: long runs of cached write-back stripes', function () {
  this.timeout(120000)
  for (const level of [4, 5, 6] as const) {
    const raidDevices = level === 6 ? 4 : 3
    for (const how of ['reclaim', 'recover', 'write-through after write-back'] as const) {
      it(`raid${level}: ${how} with 1200 contiguous cached stripes (a plan crossing 1024 stripes)`, () => {
        // a ring that holds the 1200 stripes and the room kept for writing them out
        const a = createMemArray({level, raidDevices, chunkBytes: 16384, memberDataBytes: 6 * MiB, journalRingBytes: 32 * MiB})
        const dataDisks = raidDevices - (level === 6 ? 2 : 1)
        // every page of the first 1200 stripes cached in the log (data only)
        const stripes = 1200
        const len = stripes * dataDisks * 4096
        const cached = pseudoRandom(len, 11 + level)
        writeData(a.devs, 0, len, bufferSource(cached), {mode: 'write-back'})
        assert.ok(examineJournal(a.devs).stripesPending.dataOnly >= stripes, 'the stripes are cached in the log')
        let expect = Buffer.from(cached)
        if (how === 'reclaim') {
          const r = reclaimArray(a.devs)
          assert.ok(r.dataOnlyStripes >= stripes, 'every cached stripe was written out')
          // every stripe's parity is logged before the write-out: runs far beyond 254 payloads
          assert.equal(r.parityLogged, r.dataOnlyStripes, 'parity of every cached stripe logged before the write-out')
        } else if (how === 'recover') {
          const r = recoverArray(a.devs, {})
          assert.ok(
            r.dataOnlyStripes >= stripes && r.pagesWritten >= stripes * raidDevices,
            `${r.dataOnlyStripes} stripes, ${r.pagesWritten} pages written`,
          )
        } else {
          const more = pseudoRandom(8192, 99)
          writeData(a.devs, 4096, more.length, bufferSource(more), {mode: 'write-through'})
          expect = Buffer.concat([expect.subarray(0, 4096), more, expect.subarray(4096 + more.length)])
        }
        assert.equal(examineJournal(a.devs).state, 'clean')
        const got = readAll(a.devs, 0, len)
        assert.ok(got.equals(expect), 'the array holds what was written')
        assert.equal(checkParity(a.devs, level, got), null)
        // every meta block of the whole ring, live or stale, fits its page (dump-meta --all decodes each)
        for (const b of dumpMeta(a.devs, {all: true}).blocks) assert.ok(b.metaSize <= 4096, `meta block at ${b.positionSector}: ${b.metaSize} bytes`)
      })
    }
  }

  it('reclaim makes all the parity it logs durable with one journal flush, not one per run of stripes', () => {
    const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 65536, memberDataBytes: 24 * MiB, journalRingBytes: 64 * MiB})
    const len = 2000 * 3 * 4096
    const data = pseudoRandom(len, 5)
    writeData(a.devs, 0, len, bufferSource(data), {mode: 'write-back'})
    const before = a.devs.map(d => d.stats.flushes)
    const r = reclaimArray(a.devs)
    assert.equal(r.parityLogged, 2000, 'the ring had room for the parity of every cached stripe')
    const flushes = a.devs.map((d, i) => d.stats.flushes - before[i])
    // the journal: the logged parity, the closing block, the superblock; each member: its pages, its superblock
    assert.deepEqual(flushes, [3, 2, 2, 2, 2], `flushes per device (journal first): ${flushes.join(', ')}`)
    assert.ok(readAll(a.devs, 0, len).equals(data), 'the array holds what was written')
    assert.equal(checkParity(a.devs, 5, readAll(a.devs, 0, len)), null)
  })
  it('reclaim reads the logged data of stripes whose parity does not fit the ring once, not twice', () => {
    const a = createMemArray({level: 5, raidDevices: 3, chunkBytes: 16384, memberDataBytes: 6 * MiB, journalRingBytes: 8 * MiB})
    // every data page of the first stripes cached by another writer, up to the ring's last page
    const pages = new Map<number, Uint8Array>()
    for (let p = 0; p < 2400; p++) pages.set(p, pseudoRandom(4096, 21 + p))
    const cached = cacheInLog(a.devs, pages)
    // a stripe of this array has two data pages: four consecutive pages of one chunk, then of the next
    const stripes = new Set([...pages.keys()].slice(0, cached).map(p => Math.floor(p / 8) * 4 + (p % 4))).size
    const before = a.devs[0].stats.bytesRead
    const r = reclaimArray(a.devs)
    const read = a.devs[0].stats.bytesRead - before
    assert.equal(r.dataOnlyStripes, stripes)
    // the walk reads the ring; the copy of the stripes made complete streams the log from the tail to
    // the parity's end; computing parity reads a stripe's logged data once, whether or not its parity is logged
    const bound = r.sizeBytes + r.usedBytesBefore + r.parityLogged * 4096 + stripes * 2 * 4096 + 64 * 1024
    assert.ok(read <= bound, `journal bytes read ${read}, at most ${bound}`)
    const expect = Buffer.concat([...pages.values()].slice(0, cached))
    assert.ok(readAll(a.devs, 0, expect.length).equals(expect), 'the array holds what was cached')
  })
})
