/**
 * `r5ctl detect` from the command line: an array made and written by the CLI on image files, its
 * superblocks zeroed (a dd of 4 KiB at byte 4096, what mdadm --zero-superblock clears), the devices
 * named shuffled. The report (text and --json) must name the geometry the test created; devices that
 * hold no array exit 4; no byte of any file changes, whatever the outcome.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, ok, expectExit, expectErrorLine, jsonOf, pseudoRandom, suiteTempDir, fingerprint} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {FIXTURES, gunzipSparse, md5} from '../kernel/util.js'
import * as path from 'node:path'

function zeroSuperblock(file: string): void {
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 4096)
  fs.closeSync(fd)
}

describe('e2e: detect', function () {
  this.timeout(120_000)
  const tmp = suiteTempDir('r5ctl-detect-')
  let a: ImageArray

  before(function () {
    a = createImageArray(tmp.file('r6'), {level: 6, raidDevices: 5, chunk: '32K', size: '8M', journalSize: '4M', layout: 'right-asymmetric'})
    // two writes that leave gaps, as a filesystem does
    fs.writeFileSync(tmp.file('in.bin'), pseudoRandom(700 << 10, 5))
    ok(r5ctl(['write', '--offset', '100K', '--input', tmp.file('in.bin'), ...a.all]))
    ok(r5ctl(['write', '--offset', '9M', '--length', '300K', '--input', tmp.file('in.bin'), ...a.all]))
    for (const f of a.all) zeroSuperblock(f)
  })

  it('--json: the created geometry first, the journal found, nothing written', function () {
    const before = fingerprint(a.all)
    const [j, m0, m1, m2, m3, m4] = a.all
    const j1 = jsonOf(ok(r5ctl(['detect', '--json', m3, j, m1, m4, m0, m2])))
    assert.deepEqual(fingerprint(a.all), before)
    assert.equal(j1.found, true)
    const c = j1.candidates[0]
    assert.deepEqual(
      {level: c.level, layout: c.layout, chunkBytes: c.chunkBytes, members: c.members, dataOffsetSector: c.dataOffsetSector, journal: c.journal},
      {level: 6, layout: 'right-asymmetric', chunkBytes: 32768, members: [m0, m1, m2, m3, m4], dataOffsetSector: 2048, journal: j},
    )
    assert.equal(j1.arrayUuid, null)
    assert.equal(j1.journal.device, j)
  })

  it('text: the result line and the candidates table', function () {
    const out = ok(r5ctl(['detect', ...a.all.slice().reverse()])).stdout.toString()
    assert.match(out, /Result : found: raid6 right-asymmetric, chunk 32K, 5 members, data offset 2048 sectors/)
    assert.match(out, /^rank +level +layout/m)
  })

  it('devices that hold no array: exit 4, nothing written', function () {
    const files = ['x0.img', 'x1.img', 'x2.img'].map(f => tmp.file(f))
    files.forEach((f, i) => fs.writeFileSync(f, pseudoRandom(4 << 20, 50 + i)))
    const before = fingerprint(files)
    const r = jsonOf(expectExit(r5ctl(['detect', '--json', ...files]), 4))
    assert.equal(r.found, false)
    assert.deepEqual(fingerprint(files), before)
  })

  it('--write with --uuid: the set examines, reads and assembles again; `undo` takes the superblocks back', function () {
    const b = createImageArray(tmp.file('w5'), {level: 5, raidDevices: 4, chunk: '64K', size: '8M', journalSize: '4M'})
    ok(r5ctl(['write', '--offset', '64K', '--input', tmp.file('in.bin'), ...b.all]))
    const want = ok(r5ctl(['read', '--offset', '0', '--length', String(b.sizeBytes), ...b.all])).stdout
    for (const f of b.all) zeroSuperblock(f)
    const zeroed = fingerprint(b.all)
    const usage = expectExit(r5ctl(['detect', '--candidate', '2', ...b.all]), 2)
    assert.match(expectErrorLine(usage), /--candidate goes with --write/)
    const refused = expectExit(r5ctl(['detect', '--write', ...b.all]), 3)
    assert.match(expectErrorLine(refused), /the array UUID is lost/)
    const dry = jsonOf(ok(r5ctl(['detect', '--write', '--dry-run', '--json', '--uuid', b.uuid, ...b.all])))
    assert.equal(dry.write.dryRun, true)
    assert.deepEqual(fingerprint(b.all), zeroed, 'a dry run writes nothing')

    const undo = tmp.file('w5.undo')
    const r = jsonOf(ok(r5ctl(['detect', '--write', '--json', '--undo', undo, '--uuid', b.uuid, ...b.all.slice().reverse()])))
    assert.equal(r.write.arrayUuid, b.uuid)
    assert.deepEqual(
      r.write.devices.map((d: {device: string; role: string}) => d.role),
      ['active 0', 'active 1', 'active 2', 'active 3', 'journal'],
    )
    assert.equal(jsonOf(ok(r5ctl(['examine', '--json', ...b.all]))).devices.length, 5)
    assert.deepEqual(ok(r5ctl(['read', '--offset', '0', '--length', String(b.sizeBytes), ...b.all])).stdout, want)
    // the log is replayed from the start of its chain, so assemble finds it pending (exit 5)
    assert.match(expectExit(r5ctl(['assemble', '--readonly', ...b.all]), 5).stdout.toString(), /State : clean, read-only, journal pending replay/)
    ok(r5ctl(['undo', undo, ...b.all]))
    assert.deepEqual(fingerprint(b.all), zeroed, 'undo restores the zeroed superblocks')
  })

  it("a set Linux left after a power cut (write-back), every superblock zeroed: --write gives it back and read gives the kernel's own replay", function () {
    const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8'))
    const f = manifest.fixtures['raid5-wb-powercut']
    const dir = tmp.file('fixture')
    fs.mkdirSync(dir)
    const unpack = (file: string) => {
      const dst = path.join(dir, file.replace(/\.gz$/, ''))
      gunzipSparse(path.join(FIXTURES, 'raid5-wb-powercut', file), dst)
      return dst
    }
    const journal = unpack(f.files.journal)
    const members: string[] = f.files.members.map(unpack)
    const uuid = jsonOf(ok(r5ctl(['examine', '--json', journal]))).devices[0].arrayUuid
    for (const d of [journal, ...members]) zeroSuperblock(d)
    // stripes the cut left half-written on the members do not hold: detect still finds the array
    const r = jsonOf(ok(r5ctl(['detect', '--write', '--json', '--uuid', uuid, ...members.slice().reverse(), journal])))
    assert.equal(r.write.journalTailSource, 'log')
    const read = ok(r5ctl(['read', '--offset', '0', '--length', String(f.arrayBytes), journal, ...members]))
    assert.equal(md5(read.stdout), f.kernelReplay.md5)
  })
})
