/**
 * `r5ctl read` of a dirty array on image files: it prints the bytes Linux would present after its
 * replay (the same as `recover` then `read` on a copy), says so in one stderr line, exits 0 and
 * leaves every image's sha256 as it was; `--no-replay` prints the members as they are. Two arrays:
 * a RAID5 whose write-through write lost power before its log was closed (data+parity stripes), and
 * a RAID6 with a write-back write cached in the journal (data-only stripes), read also degraded.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, ok, expectExit, jsonOf, fingerprint, pseudoRandom, suiteTempDir, type RunResult} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {bufferSource} from '../helpers/model.js'
import {MemDevice} from '../../src/engine/device.js'
import {examineJournal, readData, recoverArray, writeData} from '../../src/engine/index.js'
import {SimulatedCrash} from '../../src/engine/errors.js'

const KiB = 1024
const NOTICE = /^r5ctl: journal dirty: (\d+) stripes? served from the journal; nothing written$/

/** the one stderr line of a replayed read; returns the stripe count it names */
function notice(r: RunResult): number {
  const lines = r.stderr.replace(/\n$/, '').split('\n')
  assert.equal(lines.length, 1, `one stderr line: ${JSON.stringify(r.stderr)}`)
  const m = NOTICE.exec(lines[0])
  assert.ok(m, `stderr: ${JSON.stringify(r.stderr)}`)
  return Number(m[1])
}

function memCopies(files: string[]): MemDevice[] {
  return files.map(f => {
    const b = fs.readFileSync(f)
    return new MemDevice(f, b.length, new Uint8Array(b.buffer, b.byteOffset, b.length))
  })
}

/** A crash point N for `write --crash-after N` after which the members are behind a dirty log. */
function crashPoint(files: string[], offset: number, data: Buffer): number {
  const writes = (devs: MemDevice[]) => devs.reduce((n, d) => n + d.stats.writes, 0)
  const probe = memCopies(files)
  writeData(probe, offset, data.length, bufferSource(data))
  const W = writes(probe)
  for (let N = Math.floor(W / 2); N < W; N++) {
    const devs = memCopies(files)
    try {
      writeData(devs, offset, data.length, bufferSource(data), {crashAfter: N})
      continue
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error
    }
    if (examineJournal(devs).stripesPending.dataParity === 0) continue
    const recovered = devs.map(d => new MemDevice(d.name, d.size, Uint8Array.from(d.data)))
    recoverArray(recovered, {})
    // the array's bytes as the crash left the members, against those after recover: some logged page is missing
    const bytes = (d: MemDevice[]) => {
      const parts: Buffer[] = []
      readData(d, 0, undefined, vs => vs.forEach(v => parts.push(Buffer.from(v))), {replay: false})
      return Buffer.concat(parts)
    }
    if (!bytes(devs).equals(bytes(recovered))) return N
  }
  throw new Error(`no crash point among ${W} writes leaves the members behind a dirty log`)
}

/** copies of the images in `dir`, recovered, then read: the reference */
function recoverThenRead(a: ImageArray, dir: string): Buffer {
  fs.mkdirSync(dir, {recursive: true})
  const copies = a.all.map(f => {
    const c = path.join(dir, path.basename(f))
    fs.copyFileSync(f, c)
    return c
  })
  ok(r5ctl(['recover', ...copies]))
  const r = ok(r5ctl(['read', ...copies]))
  assert.equal(r.stderr, '', 'a recovered array reads without a notice')
  return r.stdout
}

describe('e2e: read replays a dirty journal in memory and writes nothing', function () {
  this.timeout(120_000)
  const tmp = suiteTempDir('r5ctl-replay-')

  describe('raid5, write-through write cut before its log was closed', function () {
    let a: ImageArray
    let ref: Buffer
    let asIs: Buffer

    before(function () {
      a = createImageArray(tmp.file('wt'), {level: 5, raidDevices: 4, chunk: '16K', size: '3M', journalSize: '2M'})
      fs.writeFileSync(tmp.file('old.bin'), pseudoRandom(a.sizeBytes, 11))
      ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('old.bin'), ...a.all]))
      const data = pseudoRandom(300 * KiB, 12)
      fs.writeFileSync(tmp.file('new.bin'), data)
      // the crash point, chosen on in-memory copies: the first past the middle of the write that
      // leaves complete stripes in the log whose pages have not all reached the members
      const cut = crashPoint(a.all, 64 * KiB, data)
      expectExit(r5ctl(['write', '--offset', '64K', '--input', tmp.file('new.bin'), '--crash-after', String(cut), ...a.all]), 75)
      assert.equal(jsonOf(expectExit(r5ctl(['examine-journal', '--json', ...a.all]), 5)).state, 'dirty')
      asIs = fs.readFileSync(tmp.file('old.bin'))
      ref = recoverThenRead(a, tmp.file('wt-recovered'))
    })

    it('read (stdout): the replayed bytes, one stderr line, exit 0, no image changed', function () {
      const before = fingerprint(a.all)
      const r = ok(r5ctl(['read', ...a.all]))
      assert.ok(r.stdout.equals(ref), 'read = recover + read on a copy')
      assert.ok(notice(r) > 0)
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('read --output and --json: the same bytes; the JSON says what was replayed; the notice on stderr only', function () {
      const before = fingerprint(a.all)
      const out = tmp.file('wt-out.bin')
      const t = ok(r5ctl(['read', '--output', out, ...a.all]))
      assert.ok(fs.readFileSync(out).equals(ref))
      assert.match(t.stdout.toString(), /^read .* into /)
      const n = notice(t)
      const j = jsonOf(ok(r5ctl(['read', '--json', '--output', out, ...a.all])))
      assert.ok(fs.readFileSync(out).equals(ref))
      assert.equal(j.journal.state, 'dirty')
      assert.equal(j.journal.replayed, true)
      assert.equal(j.journal.stripes, n)
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('each member left out: the same replayed bytes', function () {
      const before = fingerprint(a.all)
      for (const m of a.members) {
        const r = ok(r5ctl(['read', ...a.all.filter(d => d !== m)]))
        assert.ok(r.stdout.equals(ref), `without ${m}`)
        notice(r)
      }
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('--no-replay: the members as they are, no notice', function () {
      const before = fingerprint(a.all)
      const r = ok(r5ctl(['read', '--no-replay', ...a.all]))
      assert.equal(r.stderr, '')
      assert.ok(!r.stdout.equals(ref), 'the members are behind the journal')
      // every page is the replayed one or the one before the write
      for (let p = 0; p < ref.length; p += 4096) {
        const got = r.stdout.subarray(p, p + 4096)
        assert.ok(got.equals(ref.subarray(p, p + 4096)) || got.equals(asIs.subarray(p, p + 4096)), `page ${p / 4096}`)
      }
      assert.deepEqual(fingerprint(a.all), before)
    })
  })

  describe('raid6, write-back data cached in the journal', function () {
    let a: ImageArray
    let old: Buffer
    let wb: Buffer
    const wbOffset = 40 * KiB

    before(function () {
      a = createImageArray(tmp.file('wb'), {level: 6, raidDevices: 5, chunk: '16K', size: '2M', journalSize: '2M'})
      old = pseudoRandom(a.sizeBytes, 21)
      fs.writeFileSync(tmp.file('old6.bin'), old)
      ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('old6.bin'), ...a.all]))
      wb = pseudoRandom(100 * KiB + 3 * 4096, 22)
      fs.writeFileSync(tmp.file('wb.bin'), wb)
      ok(r5ctl(['write', '--journal-mode', 'write-back', '--offset', String(wbOffset), '--input', tmp.file('wb.bin'), ...a.all]))
    })

    it('read: the cached data over the members (= recover + read), with every member, each and every pair left out', function () {
      const want = Buffer.from(old)
      wb.copy(want, wbOffset)
      assert.ok(recoverThenRead(a, tmp.file('wb-recovered')).equals(want))
      const before = fingerprint(a.all)
      const sets = [a.all]
      for (let i = 0; i < a.members.length; i++) {
        sets.push(a.all.filter(d => d !== a.members[i]))
        for (let k = i + 1; k < a.members.length; k++) sets.push(a.all.filter(d => d !== a.members[i] && d !== a.members[k]))
      }
      for (const devs of sets) {
        const r = ok(r5ctl(['read', ...devs]))
        assert.ok(r.stdout.equals(want), `with ${devs.map(d => path.basename(d)).join(' ')}`)
        assert.ok(notice(r) > 0)
      }
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('--no-replay: the members as they are (the old bytes)', function () {
      const before = fingerprint(a.all)
      const r = ok(r5ctl(['read', '--no-replay', ...a.all]))
      assert.ok(r.stdout.equals(old))
      assert.equal(r.stderr, '')
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('a journal without a valid meta block at its tail: the members as they are (the kernel would start a new log), one stderr line, exit 0', function () {
      const tail = jsonOf(expectExit(r5ctl(['examine-journal', '--json', ...a.all]), 5)).journalTailSector as number
      const bad = tmp.file('wb-bad-tail.img')
      fs.copyFileSync(a.journal, bad)
      const fd = fs.openSync(bad, 'r+')
      fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, (2048 + tail) * 512)
      fs.closeSync(fd)
      const devs = [bad, ...a.members]
      const before = fingerprint(devs)
      const r = ok(r5ctl(['read', ...devs]))
      assert.ok(r.stdout.equals(old))
      assert.match(r.stderr, /^r5ctl: journal corrupt: no valid meta block at the journal tail .*; reading the members as they are\n$/)
      assert.deepEqual(fingerprint(devs), before)
    })

    it('--force without the journal: the members as they are, as before', function () {
      const r = ok(r5ctl(['read', '--force', ...a.members]))
      assert.ok(r.stdout.equals(old))
    })
  })
})
