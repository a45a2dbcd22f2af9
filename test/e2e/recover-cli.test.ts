/**
 * Crash and recovery through the CLI, on image files, as an operator would run it:
 *
 *   create → write --crash-after N --crash-seed S (exit 75, one error line) → examine-journal
 *   (exit 5, pending stripes) → read (the replayed bytes, exit 0, no byte changed) → recover --dry-run
 *   (exit 0, no byte changed) → recover (exit 0) →
 *   examine-journal (exit 0, clean) → recover again (clean, no byte changed) → read (every page
 *   old or new, every acknowledged byte present)
 *
 * then write-back: write --journal-mode write-back (journal dirty with data-only stripes, read
 * serves them from the journal) → reclaim --json (used/free before and after, journal clean) → read returns the
 * data. The crash point N is chosen in-process, on in-memory copies of the same images, so that the
 * power cut falls after some data was acknowledged and leaves complete stripes in the log.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, ok, expectExit, expectErrorLine, jsonOf, fingerprint, pseudoRandom, assertSameBytes, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {MemDevice} from '../../src/engine/device.js'
import {examineJournal, writeData} from '../../src/engine/index.js'
import {SimulatedCrash} from '../../src/engine/errors.js'
import {bufferSource, checkCrashImage} from '../helpers/model.js'
import {FIXTURES, gunzipSparse, md5} from '../kernel/util.js'

const KiB = 1024

/** In-memory copies of the image files (same bytes), for planning a crash point. */
function memCopies(files: string[]): MemDevice[] {
  return files.map(f => {
    const b = fs.readFileSync(f)
    return new MemDevice(f, b.length, new Uint8Array(b.buffer, b.byteOffset, b.length))
  })
}

function totalWrites(devs: MemDevice[]): number {
  return devs.reduce((a, d) => a + d.stats.writes, 0)
}

describe('e2e: crash, examine-journal, recover, reclaim (CLI on image files)', function () {
  this.timeout(120_000)
  const tmp = suiteTempDir('r5ctl-recover-')
  let a: ImageArray
  let old: Buffer
  const offset = 100 * KiB
  const length = 700_000 // not a page multiple; several journal batches
  let data: Buffer
  let crashAfter = -1
  const crashSeed = 7
  let predictedAck = -1
  let acknowledged = -1

  const readArray = (devs = a.all): Buffer => {
    const out = tmp.file('read.bin')
    ok(r5ctl(['read', '--offset', '0', '--length', String(a.sizeBytes), '--output', out, ...devs]))
    return fs.readFileSync(out)
  }

  before(function () {
    // a 1 MiB journal ring, so a 700 KB write takes several batches (a quarter of the ring each)
    a = createImageArray(tmp.file('r5'), {level: 5, raidDevices: 4, chunk: '16K', size: '3M', journalSize: '2M'})
    old = pseudoRandom(a.sizeBytes, 4242)
    fs.writeFileSync(tmp.file('old.bin'), old)
    ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('old.bin'), ...a.all]))
    data = pseudoRandom(length, 4343)
    fs.writeFileSync(tmp.file('new.bin'), data)

    // plan the crash point on in-memory copies: the uncrashed write makes W device write requests;
    // pick the first N past the middle where some bytes are acknowledged and the log holds
    // complete stripes that are pending replay
    const probe = memCopies(a.all)
    const w0 = totalWrites(probe)
    writeData(probe, offset, length, bufferSource(data))
    const W = totalWrites(probe) - w0
    for (let N = Math.floor(W / 2); N < W && crashAfter < 0; N++) {
      const devs = memCopies(a.all)
      try {
        writeData(devs, offset, length, bufferSource(data), {crashAfter: N, crashSeed})
        continue
      } catch (error) {
        if (!(error instanceof SimulatedCrash)) throw error
        if (error.acknowledged === 0 || error.acknowledged >= length) continue
        const j = examineJournal(devs)
        if (j.state === 'dirty' && j.stripesPending.dataParity > 0) {
          crashAfter = N
          predictedAck = error.acknowledged
        }
      }
    }
    assert.ok(crashAfter >= 0, `no crash point among ${W} writes leaves acknowledged data and a dirty log`)
  })

  it('write --crash-after N --crash-seed S: exit 75 with one error line saying how much was acknowledged', function () {
    const r = expectExit(
      r5ctl([
        'write',
        '--offset',
        String(offset),
        '--input',
        tmp.file('new.bin'),
        '--crash-after',
        String(crashAfter),
        '--crash-seed',
        String(crashSeed),
        ...a.all,
      ]),
      75,
    )
    const line = expectErrorLine(r)
    assert.match(line, new RegExp(`simulated power cut after ${crashAfter} device writes`))
    const m = /(\d+) bytes of the write were acknowledged/.exec(line)
    assert.ok(m, line)
    acknowledged = Number(m[1])
    assert.equal(acknowledged, predictedAck, 'the CLI crashed where the in-memory run did')
    assert.ok(acknowledged > 0 && acknowledged < length)
  })

  it('examine-journal: exit 5 (dirty); --json shows the stripes pending replay', function () {
    const t = expectExit(r5ctl(['examine-journal', ...a.all]), 5)
    assert.match(t.stdout.toString(), /dirty/)
    const j = jsonOf(expectExit(r5ctl(['examine-journal', '--json', ...a.all]), 5))
    assert.equal(j.state, 'dirty')
    assert.ok(j.stripesPending.dataParity > 0, JSON.stringify(j.stripesPending))
    assert.ok(j.dataPages > 0 && j.parityPages > 0)
    // the journal alone says the same
    assert.equal(jsonOf(expectExit(r5ctl(['examine-journal', '--json', a.journal]), 5)).state, 'dirty')
  })

  let replayed: Buffer
  it('read of the dirty journal: exit 0, the journal replayed in memory (one stderr line), no byte of any image changed', function () {
    const before = fingerprint(a.all)
    const r = ok(r5ctl(['read', '--offset', '0', '--length', String(a.sizeBytes), ...a.all]))
    assert.match(r.stderr, /^r5ctl: journal dirty: \d+ stripes served from the journal; nothing written\n$/)
    replayed = r.stdout
    assert.deepEqual(fingerprint(a.all), before)
    // the members as they are
    assert.ok(!ok(r5ctl(['read', '--no-replay', '--offset', '0', '--length', String(a.sizeBytes), ...a.all])).stdout.equals(replayed))
  })

  it('recover --dry-run: exit 0, lists the writes, changes no byte of any image', function () {
    const before = fingerprint(a.all)
    const t = ok(r5ctl(['recover', '--dry-run', ...a.all]))
    assert.match(t.stdout.toString(), /dry run/)
    const j = jsonOf(ok(r5ctl(['recover', '--dry-run', '--json', ...a.all])))
    assert.equal(j.state, 'would-replay')
    assert.equal(j.dryRun, true)
    assert.ok(j.writes.length > 0 && j.pagesWritten > 0)
    assert.deepEqual(fingerprint(a.all), before)
    expectExit(r5ctl(['examine-journal', ...a.all]), 5)
  })

  it('recover: exit 0; examine-journal then exits 0 (clean)', function () {
    const j = jsonOf(ok(r5ctl(['recover', '--json', ...a.all])))
    assert.equal(j.state, 'replayed')
    assert.ok(j.dataParityStripes > 0)
    const e = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
    assert.equal(e.state, 'clean')
    assert.equal(e.journalTailSector, j.newTailSector)
    ok(r5ctl(['examine-journal', ...a.all]))
  })

  it('a second recover reports clean and changes no byte', function () {
    const before = fingerprint(a.all)
    const j = jsonOf(ok(r5ctl(['recover', '--json', ...a.all])))
    assert.equal(j.state, 'clean')
    assert.equal(j.pagesWritten, 0)
    assert.match(ok(r5ctl(['recover', ...a.all])).stdout.toString(), /clean/)
    assert.deepEqual(fingerprint(a.all), before)
  })

  it('read: every page is old or new, every acknowledged byte is present; degraded reads agree', function () {
    const img = readArray()
    assert.equal(checkCrashImage(img, old, {offset, data}, acknowledged), null)
    assertSameBytes(replayed, img, 'the read before recover')
    for (const m of a.members) assertSameBytes(readArray(a.all.filter(d => d !== m)), img, `read without ${m}`)
    old = img
  })

  describe('write-back', function () {
    const wbOffset = 1024 * KiB
    const wbLength = 200 * KiB + 4096 * 3
    let wb: Buffer

    it('write --journal-mode write-back: exit 0; the journal is dirty with data-only stripes (exit 5)', function () {
      wb = pseudoRandom(wbLength, 4444)
      fs.writeFileSync(tmp.file('wb.bin'), wb)
      ok(r5ctl(['write', '--journal-mode', 'write-back', '--offset', String(wbOffset), '--input', tmp.file('wb.bin'), ...a.all]))
      const j = jsonOf(expectExit(r5ctl(['examine-journal', '--json', ...a.all]), 5))
      assert.equal(j.state, 'dirty')
      assert.ok(j.stripesPending.dataOnly > 0, JSON.stringify(j.stripesPending))
      assert.equal(j.parityPages, 0, 'write-back logs data only')
    })

    it('read serves the stripes cached in the journal (exit 0) and writes nothing', function () {
      const before = fingerprint(a.all)
      const r = ok(r5ctl(['read', '--offset', String(wbOffset), '--length', String(wbLength), ...a.all]))
      assertSameBytes(r.stdout, wb, 'the cached data')
      assert.match(r.stderr, /journal dirty/)
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('reclaim --json: reports used/free before and after, and leaves the journal clean', function () {
      const r = jsonOf(ok(r5ctl(['reclaim', '--json', ...a.all])))
      assert.equal(r.wasClean, false)
      assert.ok(r.dataOnlyStripes > 0)
      assert.ok(r.usedBytesBefore > r.usedBytesAfter, JSON.stringify(r))
      assert.ok(r.freeBytesAfter > r.freeBytesBefore)
      assert.equal(r.usedBytesBefore + r.freeBytesBefore, r.sizeBytes)
      assert.equal(r.usedBytesAfter + r.freeBytesAfter, r.sizeBytes)
      const j = jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all])))
      assert.equal(j.state, 'clean')
      assert.equal(j.journalTailSector, r.journalTailSector)
    })

    it('read then returns the written data (and degraded reads agree)', function () {
      const img = readArray()
      const want = Buffer.from(old)
      wb.copy(want, wbOffset)
      assertSameBytes(img, want, 'array after reclaim')
      assertSameBytes(readArray(a.all.filter(d => d !== a.members[2])), want, 'read without member 2')
    })
  })

  it('write --crash-after 0: exit 75, nothing reaches the images; --json gives the error object with acknowledgedBytes 0', function () {
    const before = fingerprint(a.all)
    const line = expectErrorLine(expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('new.bin'), '--crash-after', '0', ...a.all]), 75))
    assert.match(line, /simulated power cut after 0 device writes; 0 bytes of the write were acknowledged/)
    const j = jsonOf(expectExit(r5ctl(['write', '--json', '--offset', '0', '--input', tmp.file('new.bin'), '--crash-after', '0', ...a.all]), 75))
    assert.equal(j.error.exitCode, 75)
    assert.equal(j.error.acknowledgedBytes, 0)
    assert.deepEqual(fingerprint(a.all), before)
    ok(r5ctl(['examine-journal', ...a.all]))
  })

  it('--crash-seed without --crash-after is a usage error (exit 2) and writes nothing', function () {
    const before = fingerprint(a.all)
    const r = expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('new.bin'), '--crash-seed', '3', ...a.all]), 2)
    expectErrorLine(r)
    assert.deepEqual(fingerprint(a.all), before)
  })
})

describe('e2e: a member died and the power was cut: recover without it, then rebuild it (CLI on image files)', function () {
  this.timeout(120_000)
  const tmp = suiteTempDir('r5ctl-recover-degraded-')
  let a: ImageArray
  let survivors: string[]
  let want: Buffer

  before(function () {
    a = createImageArray(tmp.file('r5'), {level: 5, raidDevices: 4, size: '16M', journalSize: '4M'})
    fs.writeFileSync(tmp.file('all.bin'), pseudoRandom(40 * 1024 * KiB, 41))
    ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('all.bin'), ...a.all]))
    fs.writeFileSync(tmp.file('wb.bin'), pseudoRandom(300 * KiB, 42))
    ok(r5ctl(['write', '--journal-mode', 'write-back', '--offset', String(72 * KiB), '--input', tmp.file('wb.bin'), ...a.all]))
    want = ok(r5ctl(['read', ...a.all])).stdout
    survivors = a.all.filter(d => d !== a.members[1])
  })

  it('rebuild before the journal is replayed: exit 5, nothing written, and the hint is to recover with the same devices first', function () {
    fs.writeFileSync(tmp.file('early.img'), Buffer.alloc(fs.statSync(a.members[1]).size))
    const before = fingerprint([...survivors, tmp.file('early.img')])
    const r = expectExit(r5ctl(['rebuild', '--slot', '1', tmp.file('early.img'), ...survivors]), 5)
    assert.match(r.stderr, /hint: replay it onto the members present first: `r5ctl recover` with the same devices/)
    assert.deepEqual(fingerprint([...survivors, tmp.file('early.img')]), before)
  })

  it('recover with member 1 left out: exit 0, says slot 1 was written nothing and how to rebuild it; the journal is then clean', function () {
    const r = ok(r5ctl(['recover', ...survivors]))
    assert.match(r.stdout.toString(), /Missing Slots : 1: written nothing .*r5ctl rebuild --slot 1 /)
    assert.equal(jsonOf(ok(r5ctl(['examine-journal', '--json', ...survivors]))).state, 'clean')
  })

  it('the survivors read as the whole set did before, replay included', function () {
    assertSameBytes(ok(r5ctl(['read', ...survivors])).stdout, want, 'read without member 1')
  })

  it('rebuild --slot 1 onto a blank image: check is clean and the array reads the same', function () {
    fs.writeFileSync(tmp.file('new.img'), Buffer.alloc(fs.statSync(a.members[1]).size))
    ok(r5ctl(['rebuild', '--slot', '1', tmp.file('new.img'), ...survivors]))
    const all = [...survivors, tmp.file('new.img')]
    ok(r5ctl(['check', ...all]))
    assertSameBytes(ok(r5ctl(['read', ...all])).stdout, want, 'read after the rebuild')
  })

  for (const name of ['raid5-wt-powercut', 'raid5-wb-powercut'])
    it(`${name} (Linux's power-cut images): recover with each member left out in turn, then read, gives the kernel's own replay`, function () {
      const f = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')).fixtures[name]
      const dir = tmp.file(name)
      fs.mkdirSync(dir)
      const unpack = (file: string) => {
        const dst = path.join(dir, file.replace(/\.gz$/, ''))
        gunzipSparse(path.join(FIXTURES, name, file), dst)
        return dst
      }
      const journal = unpack(f.files.journal)
      const members: string[] = f.files.members.map(unpack)
      for (const gone of members.keys()) {
        const copies = [journal, ...members.filter((_, k) => k !== gone)].map(src => {
          const dst = path.join(dir, `left-out-${gone}-${path.basename(src)}`)
          fs.copyFileSync(src, dst)
          return dst
        })
        assert.deepEqual(jsonOf(ok(r5ctl(['recover', '--json', ...copies]))).missingSlots, [gone])
        const read = ok(r5ctl(['read', '--length', String(f.arrayBytes), ...copies]))
        assert.equal(md5(read.stdout), f.kernelReplay.md5, `slot ${gone} left out`)
        for (const c of copies) fs.rmSync(c)
      }
    })
})
