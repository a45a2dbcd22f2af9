/**
 * The journal as the CLI shows it: `examine-journal` on a clean array, `examine --journal` as its
 * alias, and `dump-meta` over a log of several meta blocks that wraps around the end of a small
 * ring: consecutive seqs, each block where the previous one says the next lies, every page checksum
 * a match; then one flipped byte in one logged data page turns exactly that page into a MISMATCH.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, ok, expectExit, jsonOf, pseudoRandom, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const PAGE_SECTORS = 8

interface DumpPage {
  positionSector: number
  checksum: string
  actual: string
  verdict: string
}
interface DumpPayload {
  type: 'data' | 'parity' | 'flush'
  locationSector?: string
  sizeSectors?: number
  pages?: DumpPage[]
}
interface DumpBlock {
  positionSector: number
  seq: string
  metaSize: number
  pages: number
  payloads: DumpPayload[]
}
interface Dump {
  journalTailSector: number
  fromSector: number
  blocks: DumpBlock[]
  mismatches: number
  stop: {sector: number; reason: string}
}

function allPages(d: Dump): {block: number; payload: DumpPayload; page: DumpPage}[] {
  return d.blocks.flatMap((b, block) => b.payloads.flatMap(payload => (payload.pages ?? []).map(page => ({block, payload, page}))))
}

describe('e2e: journal (examine-journal, examine --journal, dump-meta)', function () {
  const tmp = suiteTempDir()
  let a: ImageArray
  let ringSectors: number
  let journalDataOffset: number

  before(function () {
    // a 2 MiB ring (3M image - 1M data offset) so a second write of 1 MiB wraps around its end
    a = createImageArray(tmp.file('r5'), {level: 5, raidDevices: 4, chunk: '64K', size: '16M', journalSize: '3M'})
    journalDataOffset = jsonOf(ok(r5ctl(['examine', '--json', a.journal]))).devices[0].dataOffsetSector
  })

  it('examine-journal on a new array: clean, exit 0, one empty meta block at the tail', function () {
    const j = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
    assert.equal(j.state, 'clean')
    assert.equal(j.arrayUuid, a.uuid)
    assert.equal(j.journalTailSector, 0)
    assert.equal(j.metaBlocks, 1)
    assert.equal(j.dataPages, 0)
    assert.equal(j.parityPages, 0)
    assert.deepEqual(j.stripesPending, {dataParity: 0, dataOnly: 0})
    assert.equal(j.headSector, PAGE_SECTORS)
    ringSectors = j.sizeBytes / 512
    assert.equal(ringSectors, 4096, 'a 3M image leaves a 2 MiB ring after the 1 MiB data offset')
    // the journal alone is enough
    assert.deepEqual(jsonOf(ok(r5ctl(['examine-journal', '--json', a.journal]))), j)
    const d = jsonOf<Dump>(ok(r5ctl(['dump-meta', '--json', a.journal])))
    assert.equal(d.blocks.length, 1)
    assert.equal(d.blocks[0].pages, 0)
    assert.equal(d.blocks[0].seq, j.tailSeq)
    assert.equal(d.mismatches, 0)
  })

  it('examine --journal is the same report as examine-journal (text and --json, exit code)', function () {
    const t1 = ok(r5ctl(['examine-journal', ...a.all]))
    const t2 = ok(r5ctl(['examine', '--journal', ...a.all]))
    assert.equal(t2.stdout.toString(), t1.stdout.toString())
    assert.match(t1.stdout.toString(), /State : clean/)
    const j1 = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
    const j2 = jsonOf(ok(r5ctl(['examine', '--journal', '--json', ...a.all])))
    assert.deepEqual(j2, j1)
  })

  describe('a log of several meta blocks that wraps around the ring', function () {
    let oldHead: number
    let dump: Dump
    const secondOffset = 4 << 20
    const secondLength = 1 << 20

    before(function () {
      // the first write leaves the head well past the middle of the ring
      const first = pseudoRandom(1 << 20, 1)
      fs.writeFileSync(path.join(a.dir, 'first.bin'), first)
      ok(r5ctl(['write', '--offset', '0', '--input', path.join(a.dir, 'first.bin'), ...a.all]))
      const before = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
      assert.equal(before.state, 'clean')
      oldHead = before.headSector
      assert.ok(oldHead > ringSectors / 2, `head ${oldHead} should be past the middle of the ${ringSectors}-sector ring`)
      // the second write's records start at that head and run over the end of the ring
      ok(r5ctl(['write', '--offset', String(secondOffset), '--length', String(secondLength), ...a.all], {input: pseudoRandom(secondLength, 2)}))
      dump = jsonOf<Dump>(ok(r5ctl(['dump-meta', '--json', '--from', String(oldHead), ...a.all])))
    })

    it('the log is clean afterwards: the write closed it with an empty meta block at the tail', function () {
      const j = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
      assert.equal(j.state, 'clean')
      const last = dump.blocks[dump.blocks.length - 1]
      assert.equal(last.pages, 0)
      assert.equal(j.journalTailSector, last.positionSector)
      assert.equal(dump.journalTailSector, last.positionSector)
      assert.equal(dump.fromSector, oldHead)
    })

    it('more than one meta block with pages; seqs consecutive; each block lies where the previous one ends (mod ring)', function () {
      assert.equal(dump.blocks[0].positionSector, oldHead)
      assert.ok(dump.blocks.filter(b => b.pages > 0).length > 1, `meta blocks with pages: ${dump.blocks.map(b => b.pages)}`)
      for (let i = 1; i < dump.blocks.length; i++) {
        const p = dump.blocks[i - 1]
        const b = dump.blocks[i]
        assert.equal(BigInt(b.seq), BigInt(p.seq) + 1n, `seq of block ${i}`)
        assert.equal(b.positionSector, (p.positionSector + PAGE_SECTORS * (1 + p.pages)) % ringSectors, `position of block ${i}`)
      }
      const wrapped = dump.blocks.some(b => b.positionSector < oldHead)
      assert.ok(wrapped, `the log should wrap around the ${ringSectors}-sector ring: ${dump.blocks.map(b => b.positionSector)}`)
    })

    it('pages lie right after their meta block in order, and every page checksum is a match', function () {
      for (const b of dump.blocks) {
        const positions = b.payloads.flatMap(p => (p.pages ?? []).map(x => x.positionSector))
        assert.equal(positions.length, b.pages)
        assert.deepEqual(
          positions,
          positions.map((_, k) => (b.positionSector + PAGE_SECTORS * (k + 1)) % ringSectors),
        )
      }
      const pages = allPages(dump)
      assert.ok(pages.length > 0)
      assert.deepEqual(
        pages.filter(p => p.page.verdict !== 'match'),
        [],
      )
      assert.ok(pages.every(p => p.page.actual === p.page.checksum))
      assert.equal(dump.mismatches, 0)
    })

    it('the data payloads log exactly the pages written, at their array sectors', function () {
      const data = allPages(dump).filter(p => p.payload.type === 'data')
      const sectors = data.map(p => Number(p.payload.locationSector)).sort((x, y) => x - y)
      const want = Array.from({length: secondLength / 4096}, (_, k) => secondOffset / 512 + PAGE_SECTORS * k)
      assert.deepEqual(sectors, want)
      assert.ok(data.every(p => p.payload.sizeSectors === PAGE_SECTORS))
      // RAID5 logs one parity page per stripe, so some parity payloads too
      assert.ok(allPages(dump).some(p => p.payload.type === 'parity'))
    })

    describe('one flipped byte in one logged data page', function () {
      let target: DumpPage
      let byteOffset: number
      let original: number

      before(function () {
        // a data page past the wrap point, so the byte offset is computed from a wrapped position
        const data = allPages(dump).filter(p => p.payload.type === 'data')
        const pick = data.find(p => p.page.positionSector < oldHead && p.page.positionSector > PAGE_SECTORS)
        assert.ok(pick, 'a logged data page after the wrap')
        target = pick.page
        byteOffset = (journalDataOffset + target.positionSector) * 512 + 1234
        const fd = fs.openSync(a.journal, 'r+')
        const b = Buffer.alloc(1)
        fs.readSync(fd, b, 0, 1, byteOffset)
        original = b[0]
        b[0] ^= 0x5a
        fs.writeSync(fd, b, 0, 1, byteOffset)
        fs.closeSync(fd)
      })

      it('dump-meta --json: exactly that page is MISMATCH, every other page matches, exit 4', function () {
        const d = jsonOf<Dump>(expectExit(r5ctl(['dump-meta', '--json', '--from', String(oldHead), ...a.all]), 4))
        const bad = allPages(d).filter(p => p.page.verdict !== 'match')
        assert.equal(bad.length, 1, `mismatching pages: ${JSON.stringify(bad.map(p => p.page))}`)
        assert.equal(bad[0].page.verdict, 'MISMATCH')
        assert.equal(bad[0].page.positionSector, target.positionSector)
        assert.equal(bad[0].page.checksum, target.checksum, 'the logged checksum is unchanged')
        assert.notEqual(bad[0].page.actual, target.checksum)
        assert.equal(d.mismatches, 1)
        assert.equal(allPages(d).length, allPages(dump).length, 'the walk still covers every block')
        assert.deepEqual(
          d.blocks.map(b => b.seq),
          dump.blocks.map(b => b.seq),
        )
      })

      it('dump-meta (text) shows one [MISMATCH] and exits 4', function () {
        const r = expectExit(r5ctl(['dump-meta', '--from', String(oldHead), ...a.all]), 4)
        const text = r.stdout.toString()
        assert.equal(
          text.match(/\[MISMATCH\]/g)?.length,
          1,
          text
            .split('\n')
            .filter(l => l.includes('MISMATCH'))
            .join('\n'),
        )
      })

      it('restoring the byte makes every page match again (exit 0)', function () {
        const fd = fs.openSync(a.journal, 'r+')
        fs.writeSync(fd, Buffer.from([original]), 0, 1, byteOffset)
        fs.closeSync(fd)
        const d = jsonOf<Dump>(ok(r5ctl(['dump-meta', '--json', '--from', String(oldHead), ...a.all])))
        assert.deepEqual(d, dump)
      })
    })
  })
})
