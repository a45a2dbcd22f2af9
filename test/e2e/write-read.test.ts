/**
 * What `r5ctl write` puts into an array, `r5ctl read` gives back byte for byte: against a model of
 * the whole array kept in the test (zeros where never written), with every member, with any one
 * member left out (RAID4/5) or any pair (RAID6), and as GRUB's own md driver reads the member images
 * (grub-fstest), which knows nothing of r5ctl.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {
  r5ctl,
  ok,
  expectExit,
  jsonOf,
  pseudoRandom,
  assertSameBytes,
  expectErrorLine,
  fingerprint,
  requireTool,
  suiteTempDir,
} from '../helpers/cli.js'
import {createImageArray, grubDisks, grubRead, combinations, mdadmExamine, type ArraySpec, type ImageArray} from '../helpers/array.js'

const PAGE = 4096
const KiB = 1024
const MiB = 1024 * KiB

interface Write {
  what: string
  offset: number
  /** bytes written (--length) */
  length: number
  /** bytes in the input (more than length when --length cuts the input short) */
  inputBytes?: number
  via: 'file' | 'stdin'
  /** also read back on its own with --offset/--length */
  spot?: boolean
}

/** Writes chosen from the geometry, so every case hits the same kinds of stripes. */
function plan(a: ImageArray): Write[] {
  const {rowBytes: row, chunkBytes: chunk, sizeBytes: size} = a
  return [
    {what: 'the first two pages', offset: 0, length: 2 * PAGE, via: 'file'},
    {what: 'three full stripe rows', offset: 2 * row, length: 3 * row, via: 'file'},
    {what: 'a partial stripe (3 pages inside one chunk)', offset: 6 * row + 2 * PAGE, length: 3 * PAGE, via: 'file'},
    {
      what: 'a run not aligned to chunks, over two row boundaries',
      offset: 8 * row + chunk / 2 + PAGE,
      length: 2 * row + chunk + 3 * PAGE,
      via: 'stdin',
      spot: true,
    },
    {what: 'a single page', offset: 12 * row + chunk + 3 * PAGE, length: PAGE, via: 'stdin', spot: true},
    {
      what: '10000 bytes (not a page multiple) over written data, input longer than --length',
      offset: 2 * row + 5 * PAGE,
      length: 10000,
      inputBytes: 20000,
      via: 'file',
      spot: true,
    },
    {what: 'several MiB from an unaligned page', offset: 4 * MiB + 3 * PAGE, length: 3 * MiB + 5 * PAGE, via: 'file'},
    {what: '50000 bytes from stdin overlapping the start of the MiB run', offset: 4 * MiB - 2 * PAGE, length: 50000, via: 'stdin'},
    {what: 'a run across a chunk boundary inside one row', offset: 20 * row + chunk - 2 * PAGE, length: 4 * PAGE, via: 'stdin'},
    {what: 'the last page of the array', offset: size - PAGE, length: PAGE, via: 'file', spot: true},
  ]
}

interface Case {
  title: string
  spec: ArraySpec
  /** how many members a read may leave out */
  tolerates: 1 | 2
}

const CASES: Case[] = [
  {title: 'RAID5 left-symmetric, 4 members, 64K chunk', spec: {level: 5, raidDevices: 4, chunk: '64K', name: 'r5ctl:r5ls'}, tolerates: 1},
  {
    title: 'RAID5 right-asymmetric, 4 members, 32K chunk',
    spec: {level: 5, raidDevices: 4, chunk: '32K', layout: 'right-asymmetric', name: 'r5ctl:r5ra'},
    tolerates: 1,
  },
  {title: 'RAID6 left-symmetric, 5 members, 64K chunk', spec: {level: 6, raidDevices: 5, chunk: '64K', name: 'r5ctl:r6'}, tolerates: 2},
  {title: 'RAID4, 4 members, 16K chunk', spec: {level: 4, raidDevices: 4, chunk: '16K', name: 'r5ctl:r4'}, tolerates: 1},
]

describe('e2e: write then read back (model, degraded reads, grub-fstest)', function () {
  const tmp = suiteTempDir()

  for (const c of CASES) {
    describe(c.title, function () {
      let a: ImageArray
      let model: Buffer
      let images: Record<string, string>
      const without = (left: string[]) => a.all.filter(d => !left.includes(d))
      const label = (left: string[]) => left.map(d => path.basename(d)).join('+')

      before(function () {
        a = createImageArray(tmp.file(c.spec.name!.replace(/\W/g, '_')), {size: '16M', journalSize: '8M', ...c.spec})
        model = Buffer.alloc(a.sizeBytes)
      })

      it('writes the planned runs (files and stdin), each exit 0 with the JSON it documents', function () {
        plan(a).forEach((w, i) => {
          const data = pseudoRandom(w.inputBytes ?? w.length, 1000 * c.spec.level + i)
          const args = ['write', '--json', '--offset', String(w.offset), '--length', String(w.length)]
          let r
          if (w.via === 'file') {
            const input = path.join(a.dir, `input-${i}.bin`)
            fs.writeFileSync(input, data)
            r = r5ctl([...args, '--input', input, ...a.all])
          } else {
            r = r5ctl([...args, ...a.all], {input: data})
          }
          const res = jsonOf(ok(r))
          assert.equal(res.bytes, w.length, `${w.what}: bytes`)
          assert.equal(res.arrayUuid, a.uuid)
          data.copy(model, w.offset, 0, w.length)
        })
        images = fingerprint(a.all)
      })

      it('read (all members, to stdout) returns the model: written bytes, zeros elsewhere', function () {
        const r = ok(r5ctl(['read', ...a.all]))
        assertSameBytes(r.stdout, model, 'whole array')
      })

      it('read --offset/--length of written runs (with the journal named last)', function () {
        for (const w of plan(a).filter(x => x.spot)) {
          // the run, rounded up to pages, and one page more where the array goes on
          const len = Math.min(Math.ceil(w.length / PAGE) * PAGE + PAGE, a.sizeBytes - w.offset)
          const r = ok(r5ctl(['read', '--offset', String(w.offset), '--length', String(len), ...a.members, a.journal]))
          assertSameBytes(r.stdout, model.subarray(w.offset, w.offset + len), `${w.what} at ${w.offset}`)
        }
        // a length that is not a page multiple is honoured exactly
        const r = ok(r5ctl(['read', '--offset', String(2 * a.rowBytes), '--length', '10000', ...a.all]))
        assertSameBytes(r.stdout, model.subarray(2 * a.rowBytes, 2 * a.rowBytes + 10000), 'read of 10000 bytes')
      })

      it(`read with any ${c.tolerates === 2 ? 'one or two members' : 'one member'} left out returns the same bytes`, function () {
        const out = path.join(a.dir, 'degraded.bin')
        const sets = [...combinations(a.members, 1), ...(c.tolerates === 2 ? combinations(a.members, 2) : [])]
        for (const left of sets) {
          const res = jsonOf(ok(r5ctl(['read', '--json', '--output', out, ...without(left)])))
          assert.deepEqual(
            res.missingMembers,
            left.map(d => a.members.indexOf(d)),
            `without ${label(left)}: missingMembers`,
          )
          assertSameBytes(fs.readFileSync(out), model, `read without ${label(left)}`)
        }
        fs.rmSync(out)
      })

      it('reads changed no byte of any image', function () {
        assert.deepEqual(fingerprint(a.all), images)
      })

      it('the log is closed after the writes: examine-journal clean, exit 0', function () {
        const j = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
        assert.equal(j.state, 'clean')
        assert.deepEqual(j.stripesPending, {dataParity: 0, dataOnly: 0})
      })

      it('mdadm --examine after the writes: every checksum correct, one Events count, r5ctl agrees', function () {
        const mdadm = requireTool(this, 'mdadm')
        const mine = jsonOf<{devices: any[]}>(ok(r5ctl(['examine', '--json', ...a.all]))).devices
        const events = new Set<string>()
        for (const d of mine) {
          const f = mdadmExamine(mdadm, d.device)
          assert.match(f['Checksum'], / - correct$/, `${d.device}: mdadm says Checksum : ${f['Checksum']}`)
          assert.equal(parseInt(f['Checksum'], 16), parseInt(d.checksum, 16), `${d.device}: checksum`)
          assert.equal(f['Events'], d.events, `${d.device}: events`)
          assert.equal(f['Array UUID'], a.uuid)
          events.add(f['Events'])
        }
        assert.equal(events.size, 1, `every device at the same events count: ${[...events]}`)
        assert.notEqual([...events][0], '0', 'writes moved the journal tail, so the superblocks were rewritten')
      })

      describe("grub-fstest reads the member images with GRUB's md driver", function () {
        let grub: string
        let disk: string
        before(function () {
          grub = requireTool(this, 'grub-fstest')
        })

        it('assembles exactly one md disk, named after the array name (md/NAME)', function () {
          const disks = grubDisks(grub, a.members)
          assert.deepEqual(disks, [`md/${c.spec.name!.split(':')[1]}`])
          disk = disks[0]
          // the journal is ignored by grub (its role 0xfffd is >= raid_disks, "spares aren't implemented")
          assert.deepEqual(grubDisks(grub, a.all), disks, 'passing the journal image too changes nothing')
        })

        it('with every member (with and without the journal image) it reads the model', function () {
          const out = path.join(a.dir, 'grub.bin')
          assertSameBytes(grubRead(grub, a.members, disk, a.sizeBytes, out), model, 'grub, all members')
          assertSameBytes(grubRead(grub, a.all, disk, a.sizeBytes, out), model, 'grub, all members + journal')
          fs.rmSync(out)
        })

        it(`with any ${c.tolerates === 2 ? 'one or two members' : 'one member'} left out it reads the model`, function () {
          const out = path.join(a.dir, 'grub.bin')
          const sets = [...combinations(a.members, 1), ...(c.tolerates === 2 ? combinations(a.members, 2) : [])]
          for (const left of sets) {
            const kept = a.members.filter(m => !left.includes(m))
            assertSameBytes(grubRead(grub, kept, disk, a.sizeBytes, out), model, `grub without ${label(left)}`)
          }
          fs.rmSync(out)
        })
      })
    })
  }

  describe('a write whose stdin ends before --length', function () {
    let a: ImageArray
    const offset = 1 << 20
    const length = 16 << 20
    const given = 12 << 20
    let data: Buffer
    let r: ReturnType<typeof r5ctl>

    before(function () {
      // 12 of 16 MiB: more than write reads ahead of stdin (8 MiB), so with an 8M journal the input runs out
      // after some batches of stripes already went to the log and the members (r5ctl batches up to a quarter
      // of the ring)
      a = createImageArray(tmp.file('short-input'), {level: 5, raidDevices: 4, chunk: '64K', size: '16M', journalSize: '8M', name: 'r5ctl:short'})
      data = pseudoRandom(given, 99)
      r = r5ctl(['write', '--offset', String(offset), '--length', String(length), ...a.all], {input: data})
    })

    it('fails with exit 1 and one error line saying how many bytes arrived and how many were written', function () {
      expectExit(r, 1)
      assert.match(expectErrorLine(r), new RegExp(`input ended after ${given} of ${length} bytes; the first [1-9]\\d* bytes were written`))
    })

    it('leaves the journal clean: no recovery needed before the next read or write', function () {
      const j = r5ctl(['examine-journal', '--json', ...a.all])
      const state = jsonOf(j).state
      assert.equal(state, 'clean', `examine-journal says ${state} (exit ${j.status}) after a write that failed on its input`)
      ok(j)
    })

    it('every page holds either its old bytes (zeros) or the new ones; nothing outside the range changed', function () {
      const got = ok(r5ctl(['read', ...a.all])).stdout
      assert.equal(got.length, a.sizeBytes)
      assertSameBytes(got.subarray(0, offset), Buffer.alloc(offset), 'before the range')
      assertSameBytes(got.subarray(offset + length), Buffer.alloc(a.sizeBytes - offset - length), 'after the range')
      const zero = Buffer.alloc(PAGE)
      for (let p = 0; p < length / PAGE; p++) {
        const page = got.subarray(offset + p * PAGE, offset + (p + 1) * PAGE)
        const fresh = p * PAGE < given ? data.subarray(p * PAGE, (p + 1) * PAGE) : null
        assert.ok(page.equals(zero) || (fresh !== null && page.equals(fresh)), `page ${p} of the range is neither old nor new`)
      }
    })
  })
})
