/**
 * Undo files: every destructive command run with --undo can be reverted bit for bit; undo refuses
 * files that are incomplete, damaged, or recorded for other devices, and writes nothing then.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {crc32c} from '../../src/engine/checksum.js'
import {r5ctl, expectExit, expectErrorLine, suiteTempDir, pseudoRandom, fingerprint} from '../helpers/cli.js'

describe('e2e: undo files', function () {
  this.timeout(180000)
  const tmp = suiteTempDir('r5ctl-undo-')
  const devs = () => ['j.img', 'a.img', 'b.img', 'c.img', 'd.img'].map(f => tmp.file(f))

  before(() => {
    expectExit(r5ctl(['create', '--level', '5', '--raid-devices', '4', '--chunk', '64K', '--size', '24M', '--journal-size', '12M',
      '--write-journal', ...devs()]), 0)
    fs.writeFileSync(tmp.file('in.bin'), pseudoRandom(3 << 20, 5))
    expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), '--crash-after', '9', ...devs()]), 75)
  })

  it('recover --undo, then undo: every image back bit-identical', () => {
    const before = fingerprint(devs())
    expectExit(r5ctl(['recover', '--undo', tmp.file('recover.undo'), ...devs()]), 0)
    assert.notDeepEqual(fingerprint(devs()), before, 'recover changed the images')
    const dry = expectExit(r5ctl(['undo', '--dry-run', '--json', tmp.file('recover.undo'), ...devs()]), 0)
    assert.equal(JSON.parse(dry.stdout.toString()).bytesRestored, 0)
    expectExit(r5ctl(['undo', tmp.file('recover.undo'), ...devs()]), 0)
    assert.deepEqual(fingerprint(devs()), before)
  })

  it('write-back write, reclaim --undo, then undo: bit-identical', () => {
    expectExit(r5ctl(['recover', ...devs()]), 0)
    expectExit(r5ctl(['write', '--offset', '1M', '--length', '256K', '--input', tmp.file('in.bin'), '--journal-mode', 'write-back', ...devs()]), 0)
    const before = fingerprint(devs())
    expectExit(r5ctl(['reclaim', '--undo', tmp.file('reclaim.undo'), ...devs()]), 0)
    assert.notDeepEqual(fingerprint(devs()), before)
    expectExit(r5ctl(['undo', tmp.file('reclaim.undo'), ...devs()]), 0)
    assert.deepEqual(fingerprint(devs()), before)
  })

  it('create --force --undo over an existing array, then undo: bit-identical', () => {
    const before = fingerprint(devs())
    expectExit(r5ctl(['create', '--force', '--undo', tmp.file('create.undo'), '--level', '6', '--raid-devices', '4', '--chunk', '64K',
      '--write-journal', ...devs()]), 0)
    assert.notDeepEqual(fingerprint(devs()), before)
    expectExit(r5ctl(['undo', tmp.file('create.undo'), ...devs()]), 0)
    assert.deepEqual(fingerprint(devs()), before)
  })

  it('refuses a device set that is not the recorded one (exit 3), writing nothing', () => {
    const before = fingerprint(devs())
    const r = r5ctl(['undo', tmp.file('create.undo'), devs()[1]])
    expectExit(r, 3)
    expectErrorLine(r)
    assert.deepEqual(fingerprint(devs()), before)
  })

  it('refuses an incomplete file (exit 3) and a damaged one (exit 4)', () => {
    const before = fingerprint(devs())
    const incomplete = tmp.file('incomplete.undo')
    const b = fs.readFileSync(tmp.file('create.undo'))
    const h = Buffer.from(b)
    // what a crashed run leaves: the complete flag clear, a valid header checksum
    h.writeUInt32LE(0, 12)
    h.writeUInt32LE(0, 56)
    h.writeUInt32LE(crc32c(h.subarray(0, 4096)) >>> 0, 56)
    fs.writeFileSync(incomplete, h)
    const r1 = r5ctl(['undo', incomplete, ...devs()])
    expectExit(r1, 3)
    assert.match(expectErrorLine(r1), /incomplete/)
    const damaged = tmp.file('damaged.undo')
    const d = Buffer.from(b)
    d[4096 + 24 + 100] ^= 0xff // a byte of the first record's data
    fs.writeFileSync(damaged, d)
    const r2 = r5ctl(['undo', damaged, ...devs()])
    expectExit(r2, 4)
    expectErrorLine(r2, {device: damaged})
    assert.deepEqual(fingerprint(devs()), before)
  })
})
