/**
 * What r5ctl reports, where it used to report something untrue: a crash injection that never fired,
 * --until-seq below the tail, dump-meta over a broken tail, the normal end of a clean log, errors
 * that named a device the problem was not about, errors that named a consequence instead of the
 * cause (an offset past the end, a folder as the undo file, a slot named twice, a member as a new
 * journal), and progress for reclaim, recover and write.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, run, BIN, ok, expectExit, expectErrorLine, expectJsonError, jsonOf, pseudoRandom, suiteTempDir, fingerprint} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {decodeSuperblock, encodeSuperblock, SB_BLOCK_SIZE, SB_OFFSET_BYTES, type Superblock} from '../../src/engine/format/superblock.js'

const PAGE = 4096

/** A fresh RAID5 array of 4 members in its own folder. */
function fresh(tmp: {file(...p: string[]): string}, name: string): ImageArray {
  return createImageArray(tmp.file(name), {level: 5, raidDevices: 4, chunk: '64K', size: '16M', journalSize: '4M'})
}

/** The journal's data offset (sectors), where sector 0 of the ring lies. */
function ringBase(a: ImageArray): number {
  return jsonOf(ok(r5ctl(['examine', '--json', a.journal]))).devices[0].dataOffsetSector
}

/** Overwrite one 4 KiB block of the ring with `bytes` (zeros by default). */
function clobberRing(a: ImageArray, sector: number, bytes = Buffer.alloc(PAGE)): void {
  const fd = fs.openSync(a.journal, 'r+')
  try {
    fs.writeSync(fd, bytes, 0, PAGE, (ringBase(a) + sector) * 512)
  } finally {
    fs.closeSync(fd)
  }
}

describe('e2e: what r5ctl reports', function () {
  const tmp = suiteTempDir()

  before(function () {
    fs.writeFileSync(tmp.file('in-64k.bin'), pseudoRandom(64 << 10, 11))
  })

  describe('write --crash-after beyond the last device write', function () {
    let a: ImageArray
    let deviceWrites: number
    before(function () {
      a = fresh(tmp, 'crash-past-end')
    })

    it('says no power cut happened, with the device write count, and exits 76', function () {
      const r = expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), '--crash-after', '100000', ...a.all]), 76)
      const m = /^r5ctl: no power cut: the write completed after (\d+) device writes \(--crash-after 100000\)$/m.exec(r.stderr)
      assert.ok(m, `stderr: ${JSON.stringify(r.stderr)}`)
      deviceWrites = Number(m[1])
      assert.ok(deviceWrites > 0)
      assert.match(r.stdout.toString(), /^wrote 64.00 KiB at offset 0/)
    })

    it('--json carries crash {injected: false, deviceWrites}; the count is where a power cut starts to fire', function () {
      const j = jsonOf(
        expectExit(
          r5ctl(['write', '--json', '--offset', '0', '--input', tmp.file('in-64k.bin'), '--crash-after', String(deviceWrites), ...a.all]),
          76,
        ),
      )
      assert.deepEqual(j.crash, {injected: false, deviceWrites})
      assert.equal(j.bytes, 64 << 10)
      // one write fewer than the write needs: the power cut happens
      expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), '--crash-after', String(deviceWrites - 1), ...a.all]), 75)
    })
  })

  describe('recover --until-seq below the tail', function () {
    let a: ImageArray
    let tailSeq: bigint
    before(function () {
      a = fresh(tmp, 'until-seq')
      // a crashed write leaves a dirty log
      expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), '--crash-after', '8', ...a.all]), 75)
      const j = jsonOf(expectExit(r5ctl(['examine-journal', '--json', ...a.all]), 5))
      tailSeq = BigInt(j.tailSeq)
    })

    it('is refused as a usage error naming the journal and the tail seq; nothing is written', function () {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['recover', '--until-seq', String(tailSeq - 1n), ...a.all]), 2)
      const line = expectErrorLine(r, {device: a.journal})
      assert.match(line, new RegExp(`--until-seq ${tailSeq - 1n} .*tail.* seq ${tailSeq}`))
      expectJsonError(r5ctl(['recover', '--json', '--dry-run', '--until-seq', String(tailSeq - 1n), ...a.all]), 2, {device: a.journal})
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('with --progress, the refusal is still the only thing on stderr (no progress line drawn before it)', function () {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['recover', '--progress', '--until-seq', String(tailSeq - 1n), ...a.all]), 2)
      expectErrorLine(r, {device: a.journal})
      assert.doesNotMatch(r.stderr, /%/)
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('--until-seq past the last meta block is refused as a usage error (it would replay the whole log); nothing is written', function () {
      const before = fingerprint(a.all)
      const j = jsonOf(expectExit(r5ctl(['examine-journal', '--json', ...a.all]), 5))
      const last = BigInt(j.nextSeq) - 1n
      const past = last + 5n
      const r = expectExit(r5ctl(['recover', '--until-seq', String(past), ...a.all]), 2)
      assert.match(expectErrorLine(r, {device: a.journal}), new RegExp(`--until-seq ${past} .*ends after seq ${last}`))
      assert.deepEqual(fingerprint(a.all), before)
    })

    it('--until-seq equal to the tail seq is accepted', function () {
      const j = jsonOf(ok(r5ctl(['recover', '--json', '--dry-run', '--until-seq', String(tailSeq), ...a.all])))
      assert.equal(j.stopReason, 'until-seq')
    })
  })

  describe('dump-meta over a journal whose tail block is broken', function () {
    let a: ImageArray
    before(function () {
      a = fresh(tmp, 'bad-tail')
      clobberRing(a, jsonOf(ok(r5ctl(['examine-journal', '--json', a.journal]))).journalTailSector)
    })

    it('reports no valid meta block at the tail with the reason, and exits 4', function () {
      const r = expectExit(r5ctl(['dump-meta', a.journal]), 4)
      const text = r.stdout.toString()
      assert.doesNotMatch(text, /every page checksum matches/)
      assert.match(text, /no valid meta block at the journal tail \(sector 0\): bad-magic/)
    })

    it('--json: badTail true, the stop reason at the tail, exit 4', function () {
      const j = jsonOf(expectExit(r5ctl(['dump-meta', '--json', a.journal]), 4))
      assert.equal(j.badTail, true)
      assert.equal(j.blocks.length, 0)
      assert.equal(j.stop.sector, 0)
      assert.equal(j.stop.reason, 'bad-magic')
    })
  })

  describe('the end of a clean log', function () {
    let a: ImageArray
    before(function () {
      a = fresh(tmp, 'clean-end')
      ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), ...a.all]))
    })

    it('examine --journal reports the normal end of the log, not a corruption reason (text, JSON, -Y)', function () {
      const j = jsonOf(ok(r5ctl(['examine', '--journal', '--json', a.journal])))
      assert.equal(j.state, 'clean')
      assert.equal(j.stop.reason, 'end-of-log')
      assert.equal(j.stop.sector, j.headSector)
      assert.match(j.stop.message, new RegExp(`after the empty meta block at sector ${j.journalTailSector} \\(seq ${j.tailSeq}\\)`))
      const text = ok(r5ctl(['examine', '--journal', a.journal])).stdout.toString()
      assert.match(text, new RegExp(`Scan Stopped : sector ${j.headSector}: end-of-log \\(`))
      assert.doesNotMatch(text, /bad-magic/)
      assert.match(ok(r5ctl(['examine-journal', '-Y', a.journal])).stdout.toString(), /^MD_JOURNAL_STOP=end-of-log$/m)
    })

    it('dump-meta ends with the normal end of the log', function () {
      const r = ok(r5ctl(['dump-meta', a.journal]))
      assert.match(r.stdout.toString(), /log ends at sector \d+: end-of-log \(/)
      assert.equal(jsonOf(ok(r5ctl(['dump-meta', '--json', a.journal]))).stop.reason, 'end-of-log')
    })

    it('a broken tail still reports its real reason (state corrupt, exit 4)', function () {
      const b = fresh(tmp, 'clean-end-broken')
      clobberRing(b, 0)
      const j = jsonOf(expectExit(r5ctl(['examine', '--journal', '--json', b.journal]), 4))
      assert.equal(j.state, 'corrupt')
      assert.equal(j.stop.reason, 'bad-magic')
    })
  })

  describe('errors name the device the problem is about', function () {
    let a: ImageArray
    before(function () {
      a = fresh(tmp, 'names')
    })

    it('write without the journal: the error names no member and gives the array uuid', function () {
      const r = expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), ...a.members]), 3)
      const line = expectErrorLine(r)
      assert.doesNotMatch(line, /\(.*m0\.img\)$/)
      assert.ok(line.includes(a.uuid), line)
      assert.equal(expectJsonError(r5ctl(['write', '--json', '--offset', '0', '--input', tmp.file('in-64k.bin'), ...a.members]), 3).device, null)
    })

    it('examine --journal of members only: the error names no member and gives the array uuid', function () {
      const line = expectErrorLine(expectExit(r5ctl(['examine', '--journal', ...a.members]), 3))
      assert.doesNotMatch(line, /\(.*m0\.img\)$/)
      assert.ok(line.includes(a.uuid), line)
    })

    it('write missing a member: the error does not name the journal; it names the slot and the array uuid', function () {
      const r = expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), a.journal, ...a.members.slice(0, 3)]), 3)
      const line = expectErrorLine(r)
      assert.doesNotMatch(line, /\(.*j\.img\)$/)
      assert.match(line, /slot 3/)
      assert.ok(line.includes(a.uuid), line)
    })

    it('read missing two members of a RAID5: the error does not name the journal; it gives the array uuid', function () {
      const r = expectExit(r5ctl(['read', '--length', '4K', '--output', tmp.file('out.bin'), a.journal, ...a.members.slice(0, 2)]), 3)
      const line = expectErrorLine(r)
      assert.doesNotMatch(line, /\(.*j\.img\)$/)
      assert.ok(line.includes(a.uuid), line)
    })

    it('a member whose geometry differs from the rest is the one named, even when it is given first', function () {
      const b = fresh(tmp, 'odd-geometry')
      // the odd member: the same superblock with another chunk size (checksum fixed), one event ahead
      const odd = b.members[2]
      patchSuperblock(odd, sb => {
        sb.chunkSize *= 2
        sb.events += 1n
      })
      const line = expectErrorLine(
        expectExit(r5ctl(['read', '--length', '4K', '--output', tmp.file('out2.bin'), odd, b.journal, ...b.members.filter(m => m !== odd)]), 4),
        {device: odd},
      )
      assert.match(line, /geometry/)
    })
  })

  describe('--progress on a stderr that is not a terminal', function () {
    let a: ImageArray
    before(function () {
      a = fresh(tmp, 'progress')
    })

    it('write --progress prints a progress line', function () {
      const r = ok(r5ctl(['write', '--progress', '--offset', '0', '--input', tmp.file('in-64k.bin'), ...a.all]))
      assert.match(r.stderr, /^write \[[#.]+\] +100%/m)
    })

    it('reclaim --progress prints a progress line for the cached stripes it writes out', function () {
      ok(r5ctl(['write', '--journal-mode', 'write-back', '--offset', '0', '--input', tmp.file('in-64k.bin'), ...a.all]))
      const r = ok(r5ctl(['reclaim', '--progress', ...a.all]))
      assert.match(r.stderr, /^reclaim \[[#.]+\] +100%/m)
    })

    it('recover --progress prints a progress line', function () {
      expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in-64k.bin'), '--crash-after', '8', ...a.all]), 75)
      expectExit(r5ctl(['examine-journal', ...a.all]), 5)
      const r = ok(r5ctl(['recover', '--progress', ...a.all]))
      assert.match(r.stderr, /^recover \[[#.]+\] +100%/m)
    })

    it('check --progress says the sector it has checked to, and the --from that resumes there', function () {
      const r = ok(r5ctl(['check', '--progress', ...a.all]))
      const end = JSON.parse(String(ok(r5ctl(['check', '--json', ...a.all])).stdout)).toSector
      assert.match(r.stderr, new RegExp(`^check \\[[#.]+\\] +100%.*checked to sector ${end} \\(--from ${end} resumes\\)$`, 'm'))
    })
  })

  describe('errors say what is wrong, not what follows from it', function () {
    let a: ImageArray
    before(function () {
      a = fresh(tmp, 'says')
    })

    it('read --offset past the end of the array names the offset and the array size (exit 2)', function () {
      const r = expectExit(r5ctl(['read', '--offset', '46M', '--output', tmp.file('says-out.bin'), ...a.all]), 2)
      assert.match(expectErrorLine(r), /offset 48234496 is past the end of the array \(\d+ bytes\)/)
    })

    it('an error whose stderr reader has gone (`2>&1 | true`) still exits with its own code, not 1', function () {
      const cmd = `"${process.execPath}" "${BIN}" read --offset 46M --output "${tmp.file('says-out.bin')}" ${a.all.map(f => `"${f}"`).join(' ')}`
      const r = run('bash', ['-c', `${cmd} 2>&1 | true; exit \${PIPESTATUS[0]}`])
      assert.equal(r.status, 2, r.stderr)
    })

    it('undo with a folder as the undo file says it is not a file (exit 2), naming it', function () {
      fs.mkdirSync(tmp.file('says-dir'))
      const r = expectExit(r5ctl(['undo', tmp.file('says-dir'), ...a.all]), 2)
      assert.match(expectErrorLine(r, {device: tmp.file('says-dir')}), /not a regular file/)
    })

    it('rebuild --slot 3,3 says the slot is named twice (exit 2)', function () {
      fs.writeFileSync(tmp.file('says-new.img'), Buffer.alloc(0))
      fs.truncateSync(tmp.file('says-new.img'), 16 << 20)
      const r = expectExit(r5ctl(['rebuild', '--slot', '3,3', tmp.file('says-new.img'), ...a.all.filter(f => f !== a.members[3])]), 2)
      assert.match(expectErrorLine(r), /slot 3 .*twice/)
    })

    it('journal replace with a member as NEW names that member as what it is (exit 3), writing nothing', function () {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['journal', 'replace', a.journal, a.members[0], ...a.members.slice(1)]), 3)
      assert.match(expectErrorLine(r, {device: a.members[0]}), /member 0 of array/)
      assert.deepEqual(fingerprint(a.all), before)
    })
  })
})

/** Rewrite the v1.2 superblock of an image through `edit` (re-encoded, so its checksum is right). */
function patchSuperblock(file: string, edit: (sb: Superblock) => void): void {
  const fd = fs.openSync(file, 'r+')
  try {
    const block = Buffer.alloc(SB_BLOCK_SIZE)
    fs.readSync(fd, block, 0, SB_BLOCK_SIZE, SB_OFFSET_BYTES)
    const {sb} = decodeSuperblock(block)
    edit(sb)
    fs.writeSync(fd, encodeSuperblock(sb), 0, SB_BLOCK_SIZE, SB_OFFSET_BYTES)
  } finally {
    fs.closeSync(fd)
  }
}
