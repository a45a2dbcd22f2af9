/**
 * rebuild and replace from the command line: a member file is taken out of a RAID5 set r5ctl made
 * (its bytes kept), and the rebuilt file must hold them again; every refusal exits with its code and
 * leaves every image as it was; --undo restores the survivors bit for bit; --json has the documented
 * shape; --resume of a finished rebuild copies nothing.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, expectExit, expectJsonError, jsonOf, suiteTempDir, pseudoRandom, fingerprint, sha256File, requireTool} from '../helpers/cli.js'
import {mdadmExamine} from '../helpers/array.js'

const MEMBER = 24 << 20
const OFFSET = 1 << 20

/** sha256 of a member file's data area (what its slot holds) */
function dataHash(file: string): string {
  const copy = `${file}.data`
  fs.writeFileSync(copy, fs.readFileSync(file).subarray(OFFSET))
  const h = sha256File(copy)
  fs.rmSync(copy)
  return h
}

describe('e2e: rebuild and replace', function () {
  this.timeout(180000)
  const tmp = suiteTempDir('r5ctl-rebuild-')
  const f = (n: string) => tmp.file(n)
  const survivors = () => ['j.img', 'm0.img', 'm1.img', 'm3.img'].map(f)
  let slot2 = ''
  let slot1 = ''
  let readHash = ''

  before(() => {
    const all = ['j.img', 'm0.img', 'm1.img', 'm2.img', 'm3.img'].map(f)
    expectExit(
      r5ctl(['create', '--level', '5', '--raid-devices', '4', '--chunk', '64K', '--size', '24M', '--journal-size', '8M', '--write-journal', ...all]),
      0,
    )
    fs.writeFileSync(f('in.bin'), pseudoRandom(8 << 20, 9))
    expectExit(r5ctl(['write', '--offset', '0', '--input', f('in.bin'), ...all]), 0)
    expectExit(r5ctl(['read', '--output', f('before.bin'), ...all]), 0)
    readHash = sha256File(f('before.bin'))
    slot2 = dataHash(f('m2.img'))
    slot1 = dataHash(f('m1.img'))
    fs.renameSync(f('m2.img'), f('old2.img'))
    fs.writeFileSync(f('new.img'), '')
    fs.truncateSync(f('new.img'), MEMBER)
  })

  const refusals: [string, () => string[], number, string][] = [
    ['a slot past the last', () => ['--slot', '4', f('new.img'), ...survivors()], 2, 'usage'],
    ['a slot that is not missing', () => ['--slot', '1', f('new.img'), ...survivors()], 3, 'slot-present'],
    ['the member taken out as the new device', () => ['--slot', '2', f('old2.img'), ...survivors()], 3, 'is-member'],
    ['a new device too small', () => ['--slot', '2', f('small.img'), ...survivors()], 3, 'too-small'],
    ['too many missing members', () => ['--slot', '2', f('new.img'), ...survivors().slice(0, 3)], 3, 'refused'],
  ]
  for (const [what, args, code, name] of refusals)
    it(`refuses ${what} (exit ${code}) and writes nothing`, () => {
      fs.writeFileSync(f('small.img'), '')
      fs.truncateSync(f('small.img'), MEMBER - 4096)
      const files = [...survivors(), f('new.img'), f('old2.img'), f('small.img')]
      const before = fingerprint(files)
      const err = expectJsonError(r5ctl(['rebuild', '--json', ...args()]), code)
      assert.equal(err.code, name)
      assert.deepEqual(fingerprint(files), before)
    })

  it('--dry-run --json plans the slot and writes nothing', () => {
    const files = [...survivors(), f('new.img')]
    const before = fingerprint(files)
    const r = jsonOf(expectExit(r5ctl(['rebuild', '--dry-run', '--json', '--slot', '2', f('new.img'), ...survivors()]), 0))
    assert.equal(r.dryRun, true)
    assert.equal(r.targets.length, 1)
    assert.equal(r.targets[0].slot, 2)
    assert.equal(r.targets[0].startSector, 0)
    assert.equal(r.bytesWritten, MEMBER - OFFSET)
    assert.deepEqual(fingerprint(files), before)
  })

  it('rebuild --undo: the new file holds the slot, the array reads as before and checks clean; undo puts the survivors back', () => {
    const before = fingerprint(survivors())
    const r = jsonOf(expectExit(r5ctl(['rebuild', '--json', '--undo', f('r.undo'), '--slot', '2', f('new.img'), ...survivors()]), 0))
    assert.equal(r.dryRun, false)
    assert.equal(dataHash(f('new.img')), slot2)
    const set = [...survivors(), f('new.img')]
    expectExit(r5ctl(['read', '--output', f('after.bin'), ...set]), 0)
    assert.equal(sha256File(f('after.bin')), readHash)
    expectExit(r5ctl(['check', ...set]), 0)
    expectExit(r5ctl(['undo', f('r.undo'), ...set]), 0)
    assert.deepEqual(fingerprint(survivors()), before)
    expectExit(r5ctl(['examine', f('new.img')]), 4)
  })

  it('--checkpoint sets how often recovery_offset moves; --resume of a finished rebuild copies nothing and leaves the set in sync', () => {
    const first = jsonOf(expectExit(r5ctl(['rebuild', '--json', '--checkpoint', '4M', '--slot', '2', f('new.img'), ...survivors()]), 0))
    assert.equal(first.checkpoints, 5, 'recovery_offset at 4, 8, 12, 16 and 20 MiB of the 23 MiB member')
    const r = jsonOf(expectExit(r5ctl(['rebuild', '--json', '--resume', '--slot', '2', f('new.img'), ...survivors()]), 0))
    assert.equal(r.targets[0].startSector, (MEMBER - OFFSET) / 512)
    assert.equal(r.bytesWritten, 0)
    expectExit(r5ctl(['check', ...survivors(), f('new.img')]), 0)
  })

  it("mdadm --examine reads the rebuilt member's superblock: its slot, a correct checksum, the set's events", function () {
    const mdadm = requireTool(this, 'mdadm')
    const e = mdadmExamine(mdadm, f('new.img'))
    assert.equal(e['Device Role'], 'Active device 2')
    assert.match(e.Checksum, /- correct$/)
    assert.equal(e['Array State'], "AAAA ('A' == active, '.' == missing, 'R' == replacing)")
    assert.equal(e.Events, mdadmExamine(mdadm, f('m0.img')).Events)
    assert.equal(e['Feature Map'], '0x200')
  })

  it("replace OLD NEW: the new file takes the old member's slot and bytes", () => {
    fs.writeFileSync(f('new1.img'), '')
    fs.truncateSync(f('new1.img'), MEMBER)
    const others = [f('j.img'), f('m0.img'), f('new.img'), f('m3.img')]
    const r = jsonOf(expectExit(r5ctl(['replace', '--json', f('m1.img'), f('new1.img'), ...others]), 0))
    assert.equal(r.targets[0].slot, 1)
    assert.equal(dataHash(f('new1.img')), slot1)
    expectExit(r5ctl(['read', '--output', f('after1.bin'), ...others, f('new1.img')]), 0)
    assert.equal(sha256File(f('after1.bin')), readHash)
  })
})
