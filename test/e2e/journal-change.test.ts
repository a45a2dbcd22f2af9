/**
 * `r5ctl journal remove|add|replace` from the command line: the bytes stay readable, mdadm --examine
 * reads the superblocks they write (feature map, role), --dry-run and every refusal leave the files
 * as they were, --undo restores them, and the other commands treat an array without a journal as
 * documented (read and check accept it, write refuses it naming `journal add`). A missing journal:
 * assemble --force does not call the array clean.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {r5ctl, ok, jsonOf, expectExit, expectErrorLine, fingerprint, pseudoRandom, suiteTempDir, which} from '../helpers/cli.js'

describe('journal remove / add / replace (CLI)', function () {
  this.timeout(300_000)
  const tmp = suiteTempDir('r5ctl-journal-')
  let n = 0

  /** a RAID5 with 1 MiB written through its journal, and an empty 8 MiB file for a new journal */
  function filled(): {a: ImageArray; data: Buffer; spare: string} {
    const a = createImageArray(tmp.file(`a${n++}`), {level: 5, raidDevices: 4})
    const data = pseudoRandom(1 << 20, n)
    fs.writeFileSync(tmp.file('in.bin'), data)
    ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), ...a.all]))
    const spare = `${a.dir}/j2.img`
    fs.writeFileSync(spare, '')
    fs.truncateSync(spare, 8 << 20)
    return {a, data, spare}
  }
  const readBack = (devs: string[]) => ok(r5ctl(['read', '--offset', '0', '--length', '1M', ...devs])).stdout

  it('remove then add: the array reads the same bytes; mdadm reads the new superblocks', function () {
    const {a, data, spare} = filled()
    const rm = jsonOf(ok(r5ctl(['journal', 'remove', '--json', ...a.all])))
    assert.equal(rm.journalBefore, 'present')
    assert.deepEqual(
      rm.writes.map((w: {device: string}) => w.device),
      a.members,
      'remove writes the members only',
    )
    assert.ok(readBack(a.members).equals(data))
    const w = expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), ...a.members]), 3)
    assert.match(expectErrorLine(w), /no write journal/)
    assert.match(w.stderr, /journal add/)
    assert.equal(expectExit(r5ctl(['check', ...a.members]), 0).status, 0)
    const add = jsonOf(ok(r5ctl(['journal', 'add', '--json', spare, ...a.members])))
    assert.equal(add.journalBefore, 'none')
    assert.ok(readBack([spare, ...a.members]).equals(data))
    const mdadm = which('mdadm')
    if (mdadm) {
      const j = spawnSync(mdadm, ['--examine', spare], {encoding: 'utf8'}).stdout
      assert.match(j, /Feature Map : 0x200/)
      assert.match(j, /Device Role : Journal/)
      assert.match(j, /Checksum : \w+ - correct/)
    }
  })

  it('--dry-run and refusals write nothing; --undo restores a remove bit for bit', function () {
    const {a, spare} = filled()
    const files = [...a.all, spare]
    const before = fingerprint(files)
    const dry = jsonOf(ok(r5ctl(['journal', 'remove', '--dry-run', '--json', ...a.all])))
    assert.equal(dry.dryRun, true)
    assert.deepEqual(fingerprint(files), before)
    for (const [args, code, what] of [
      [['journal', 'add', spare, ...a.all], 3, /already has a journal/],
      [['journal', 'add', spare, ...a.members], 3, /journal of array .* is missing/],
      [['journal', 'remove', ...a.members], 3, /journal of array .* is missing/],
      [['journal', 'replace', a.members[0], spare, a.journal, ...a.members.slice(1)], 3, /is not the journal/],
      [['journal', 'add', spare], 2, /name the array's members/],
    ] as const) {
      const r = expectExit(r5ctl([...args]), code)
      assert.match(expectErrorLine(r), what)
      assert.deepEqual(fingerprint(files), before, args.join(' '))
    }
    ok(r5ctl(['journal', 'remove', '--undo', tmp.file(`rm${n}.undo`), ...a.all]))
    assert.notDeepEqual(fingerprint(files), before)
    ok(r5ctl(['undo', tmp.file(`rm${n}.undo`), ...a.all]))
    assert.deepEqual(fingerprint(files), before)
  })

  it('replace a dirty journal: the copy replays to the same bytes', function () {
    const {a, spare} = filled()
    const more = pseudoRandom(256 << 10, 77)
    fs.writeFileSync(tmp.file('more.bin'), more)
    expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('more.bin'), '--crash-after', '10', ...a.all]), 75)
    const want = readBack(a.all)
    const r = jsonOf(ok(r5ctl(['journal', 'replace', '--json', a.journal, spare, ...a.members])))
    assert.ok(r.copiedLogBytes > 0)
    assert.ok(readBack([spare, ...a.members]).equals(want))
    assert.equal(jsonOf(r5ctl(['examine-journal', '--json', spare, ...a.members])).state, 'dirty')
    ok(r5ctl(['recover', spare, ...a.members]))
    assert.ok(readBack([spare, ...a.members]).equals(want))
  })

  it('create without --write-journal makes an array without a journal, which journal add completes', function () {
    const dir = tmp.file('bare')
    fs.mkdirSync(dir)
    const members = ['a', 'b', 'c'].map(m => `${dir}/${m}.img`)
    const c = jsonOf(ok(r5ctl(['create', '--json', '--level', '5', '--raid-devices', '3', '--size', '4M', ...members])))
    assert.equal(c.journal, null)
    assert.deepEqual(
      c.devices.map((d: {role: string}) => d.role),
      ['active 0', 'active 1', 'active 2'],
    )
    const mdadm = which('mdadm')
    if (mdadm) assert.match(spawnSync(mdadm, ['--examine', members[0]], {encoding: 'utf8'}).stdout, /Feature Map : 0x0/)
    expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), ...members]), 3)
    const j = `${dir}/j.img`
    fs.writeFileSync(j, '')
    fs.truncateSync(j, 4 << 20)
    ok(r5ctl(['journal', 'add', j, ...members]))
    const data = fs.readFileSync(tmp.file('in.bin'))
    ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), j, ...members]))
    assert.ok(readBack([j, ...members]).equals(data))
  })

  it('assemble --force without the journal does not call the array clean', function () {
    const {a} = filled()
    const r = jsonOf(ok(r5ctl(['assemble', '--force', '--json', ...a.members])))
    assert.equal(r.readOnly, true)
    assert.doesNotMatch(r.state, /^clean/)
    assert.match(r.state, /records only in it are lost/)
    // the runbook's next step: repair runs over the whole array without the journal, only when told to
    const before = fingerprint(a.members)
    expectErrorLine(expectExit(r5ctl(['repair', ...a.members]), 3))
    assert.deepEqual(fingerprint(a.members), before, 'a repair refused without the journal wrote nothing')
    const rep = jsonOf(ok(r5ctl(['repair', '--force', '--json', ...a.members])))
    assert.equal(rep.toSector, (16 << 20) / 512 - 2048, 'every member sector past the data offset')
  })
})

describe('a stale journal (its events more than one behind the set)', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-stale-')

  it('is named a stale journal by every command that opens the set, with the runbook, and nothing is written', function () {
    const a = createImageArray(tmp.file('s'), {level: 5, raidDevices: 3, size: '8M', journalSize: '4M'})
    const data = pseudoRandom(64 * 1024, 3)
    ok(r5ctl(['write', '--offset', '0', ...a.all], {input: data}))
    fs.copyFileSync(a.journal, tmp.file('s', 'old-j.img'))
    ok(r5ctl(['write', '--offset', '64K', ...a.all], {input: data}))
    ok(r5ctl(['write', '--offset', '128K', ...a.all], {input: data}))
    const devs = [tmp.file('s', 'old-j.img'), ...a.members]
    const before = fingerprint(devs)
    for (const cmd of [['recover'], ['repair', '--dry-run'], ['read', '--offset', '0', '--length', '4096']]) {
      const r = expectExit(r5ctl([...cmd, ...devs]), 3)
      const line = expectErrorLine(r, {device: /old-j\.img/})
      assert.match(line, /stale journal: events \d+, the set is at \d+/, cmd[0])
      assert.match(r.stderr, /journal-stale\.md/, cmd[0])
    }
    assert.deepEqual(fingerprint(devs), before)
  })
})
