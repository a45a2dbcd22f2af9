/**
 * `r5ctl create` writes superblocks that mdadm 4.2 reads as a journaled array (checksums correct,
 * feature map 0x200, level, devices, chunk, layout, roles), and `r5ctl examine` agrees with
 * `mdadm --examine` field by field. create's refusals and usage errors change nothing on disk.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, ok, expectExit, expectErrorLine, expectJsonError, jsonOf, fingerprint, filesUnder, requireTool, suiteTempDir} from '../helpers/cli.js'
import {mdadmExamine, parseExamine} from '../helpers/array.js'

/** Fields both examine reports print and must agree on (Checksum is compared as a number). */
const SHARED_FIELDS = [
  'Magic',
  'Version',
  'Feature Map',
  'Array UUID',
  'Name',
  'Raid Level',
  'Raid Devices',
  'Avail Dev Size',
  'Array Size',
  'Data Offset',
  'Super Offset',
  'State',
  'Device UUID',
  'Events',
  'Layout',
  'Chunk Size',
  'Device Role',
  'Array State',
]

/** `117188ca - correct` → 0x117188ca (mdadm prints %x, without leading zeros) */
function checksumOf(field: string | undefined): {value: number; correct: boolean} {
  const m = /^([0-9a-f]+) - (.*)$/.exec(field ?? '')
  assert.ok(m, `Checksum field not understood: ${JSON.stringify(field)}`)
  return {value: parseInt(m[1], 16), correct: m[2] === 'correct'}
}

interface LevelCase {
  title: string
  level: 4 | 5 | 6
  n: number
  extra: string[]
  raidLevel: string
  /** the Layout line mdadm prints; null: mdadm prints none (RAID4) */
  layout: string | null
}

const LEVELS: LevelCase[] = [
  {title: 'RAID5, 4 members', level: 5, n: 4, extra: [], raidLevel: 'raid5', layout: 'left-symmetric'},
  {title: 'RAID6, 5 members', level: 6, n: 5, extra: [], raidLevel: 'raid6', layout: 'left-symmetric'},
  // mdadm --examine (super1.c) prints a Layout line only for raid5/6/10: none for raid4
  {title: 'RAID4, 4 members', level: 4, n: 4, extra: [], raidLevel: 'raid4', layout: null},
  {title: 'RAID5 --layout right-asymmetric', level: 5, n: 4, extra: ['--layout', 'right-asymmetric'], raidLevel: 'raid5', layout: 'right-asymmetric'},
]

describe('e2e: create + examine (interop with mdadm --examine)', function () {
  const tmp = suiteTempDir()
  let mdadm: string

  before(function () {
    mdadm = requireTool(this, 'mdadm')
  })

  for (const c of LEVELS) {
    describe(c.title, function () {
      let dir: string
      let members: string[]
      const journal = 'j.img'

      before(function () {
        dir = tmp.file(`level-${c.level}-${c.layout ?? 'none'}`)
        fs.mkdirSync(dir)
        members = 'abcde'
          .slice(0, c.n)
          .split('')
          .map(x => `${x}.img`)
        ok(
          r5ctl(
            [
              'create',
              '--level',
              String(c.level),
              '--raid-devices',
              String(c.n),
              '--chunk',
              '64K',
              '--size',
              '64M',
              ...c.extra,
              '--write-journal',
              journal,
              ...members,
            ],
            {cwd: dir},
          ),
        )
      })

      it('mdadm --examine reads every member: checksum correct, journal feature, level, devices, chunk, layout, role', function () {
        let uuid: string | undefined
        members.forEach((m, i) => {
          const f = mdadmExamine(mdadm, path.join(dir, m))
          const csum = checksumOf(f['Checksum'])
          assert.ok(csum.correct, `${m}: mdadm says Checksum : ${f['Checksum']}`)
          assert.equal(f['Feature Map'], '0x200', m)
          assert.equal(f['Raid Level'], c.raidLevel, m)
          assert.equal(f['Raid Devices'], String(c.n), m)
          assert.equal(f['Chunk Size'], '64K', m)
          if (c.layout === null) assert.equal(f['Layout'], undefined, `${m}: mdadm prints no Layout for raid4`)
          else assert.equal(f['Layout'], c.layout, m)
          assert.equal(f['Device Role'], `Active device ${i}`, m)
          assert.equal(f['Array State'], 'A'.repeat(c.n) + " ('A' == active, '.' == missing, 'R' == replacing)", m)
          assert.equal(f['Data Offset'], '2048 sectors', m)
          uuid ??= f['Array UUID']
          assert.equal(f['Array UUID'], uuid, `${m}: every member carries the same array UUID`)
        })
      })

      it('mdadm --examine reads the journal device as "Device Role : Journal"', function () {
        const f = mdadmExamine(mdadm, path.join(dir, journal))
        assert.ok(checksumOf(f['Checksum']).correct, `mdadm says Checksum : ${f['Checksum']}`)
        assert.equal(f['Feature Map'], '0x200')
        assert.equal(f['Device Role'], 'Journal')
        assert.equal(f['Raid Level'], c.raidLevel)
        assert.equal(f['Array UUID'], mdadmExamine(mdadm, path.join(dir, members[0]))['Array UUID'])
      })

      it('r5ctl examine (text) agrees with mdadm --examine on every shared field', function () {
        const all = [...members, journal]
        const mine = parseExamine(ok(r5ctl(['examine', ...all], {cwd: dir})).stdout.toString('utf8'))
        assert.deepEqual(
          mine.map(b => b.device),
          all,
        )
        for (const b of mine) {
          const theirs: Record<string, string | undefined> = mdadmExamine(mdadm, path.join(dir, b.device))
          for (const k of SHARED_FIELDS) {
            if (theirs[k] === undefined) {
              assert.equal(b.fields[k], undefined, `${b.device}: r5ctl prints "${k}" which mdadm does not`)
              continue
            }
            assert.equal(b.fields[k], theirs[k], `${b.device}: "${k}"`)
          }
          const a = checksumOf(b.fields['Checksum'])
          const m = checksumOf(theirs['Checksum'])
          assert.equal(a.value, m.value, `${b.device}: checksum`)
          assert.ok(a.correct, `${b.device}: r5ctl says Checksum : ${b.fields['Checksum']}`)
        }
      })

      it('r5ctl examine --json agrees with mdadm on uuid, events, data offset, checksum, role, level, layout', function () {
        const all = [...members, journal]
        const res = jsonOf<{devices: any[]}>(ok(r5ctl(['examine', '--json', ...all], {cwd: dir})))
        assert.equal(res.devices.length, all.length)
        for (const d of res.devices) {
          const theirs = mdadmExamine(mdadm, path.join(dir, d.device))
          assert.equal(d.ok, true, d.device)
          assert.deepEqual(d.problems, [])
          assert.equal(d.arrayUuid, theirs['Array UUID'], `${d.device}: arrayUuid`)
          assert.match(d.arrayUuid, /^[0-9a-f]{8}(:[0-9a-f]{8}){3}$/)
          assert.equal(d.deviceUuid, theirs['Device UUID'], `${d.device}: deviceUuid`)
          assert.equal(d.events, theirs['Events'], `${d.device}: events`)
          assert.equal(`${d.dataOffsetSector} sectors`, theirs['Data Offset'], `${d.device}: dataOffsetSector`)
          assert.equal(`${d.superOffsetSector} sectors`, theirs['Super Offset'], `${d.device}: superOffsetSector`)
          assert.match(d.checksum, /^[0-9a-f]{8}$/, 'checksums are 8-digit hex strings')
          assert.equal(parseInt(d.checksum, 16), checksumOf(theirs['Checksum']).value, `${d.device}: checksum`)
          assert.equal(d.checksumOk, true)
          assert.equal(d.raidLevel, theirs['Raid Level'])
          assert.equal(d.raidDevices, Number(theirs['Raid Devices']))
          assert.equal(d.chunkBytes, 64 * 1024)
          assert.equal(d.deviceRole, theirs['Device Role'])
          assert.equal(d.featureMap, theirs['Feature Map'])
          if (c.layout !== null) assert.equal(d.layout, theirs['Layout'])
        }
      })
    })
  }

  describe('refusing to overwrite, --force', function () {
    const cmd = [
      'create',
      '--level',
      '5',
      '--raid-devices',
      '4',
      '--chunk',
      '64K',
      '--size',
      '64M',
      '--write-journal',
      'j.img',
      'a.img',
      'b.img',
      'c.img',
      'd.img',
    ]
    const names = ['j.img', 'a.img', 'b.img', 'c.img', 'd.img']
    let dir: string

    before(function () {
      dir = tmp.file('force')
      fs.mkdirSync(dir)
      ok(r5ctl(cmd, {cwd: dir}))
    })

    it('create on devices that carry a superblock exits 3 with one error line naming a device, and changes no byte', function () {
      const files = names.map(n => path.join(dir, n))
      const before = fingerprint(files)
      const r = expectExit(r5ctl(cmd, {cwd: dir}), 3)
      expectErrorLine(r, {device: /^[a-d]\.img$|^j\.img$/})
      assert.deepEqual(fingerprint(files), before)
      const j = expectJsonError(r5ctl([...cmd, '--json'], {cwd: dir}), 3, {device: /^[a-d]\.img$|^j\.img$/})
      assert.notEqual(j.code, 'usage')
      assert.deepEqual(fingerprint(files), before)
    })

    it('one used device among new files: refused (exit 3) naming it, and no file is created', function () {
      const sub = path.join(dir, 'mixed')
      fs.mkdirSync(sub)
      fs.copyFileSync(path.join(dir, 'b.img'), path.join(sub, 'b.img'))
      const before = fingerprint([path.join(sub, 'b.img')])
      const r = expectExit(r5ctl(cmd, {cwd: sub}), 3)
      expectErrorLine(r, {device: 'b.img'})
      assert.deepEqual(fs.readdirSync(sub), ['b.img'])
      assert.deepEqual(fingerprint([path.join(sub, 'b.img')]), before)
    })

    it('with --force the array is created anew: new uuid, mdadm checksums correct', function () {
      const old = mdadmExamine(mdadm, path.join(dir, 'a.img'))['Array UUID']
      const res = jsonOf(ok(r5ctl([...cmd, '--force', '--json'], {cwd: dir})))
      assert.notEqual(res.arrayUuid, old)
      names.forEach(n => {
        const f = mdadmExamine(mdadm, path.join(dir, n))
        assert.equal(f['Array UUID'], res.arrayUuid, n)
        assert.ok(checksumOf(f['Checksum']).correct, `${n}: ${f['Checksum']}`)
        assert.equal(f['Device Role'], n === 'j.img' ? 'Journal' : `Active device ${'abcd'.indexOf(n[0])}`)
      })
      // and the new array is usable: its journal is clean
      assert.equal(jsonOf(ok(r5ctl(['examine-journal', '--json', ...names], {cwd: dir}))).state, 'clean')
    })
  })

  describe('usage errors: exit 2, one error line, no stack trace, nothing created', function () {
    const cases: [string, string[]][] = [
      ['--level 1', ['--level', '1', '--raid-devices', '4', '--chunk', '64K']],
      ['--chunk 3000', ['--level', '5', '--raid-devices', '4', '--chunk', '3000']],
      ['--chunk 96K (not a power of two)', ['--level', '5', '--raid-devices', '4', '--chunk', '96K']],
      ['--raid-devices 4 with 3 members', ['--level', '5', '--raid-devices', '4', '--chunk', '64K']],
      ['--raid-devices 5 with 4 members', ['--level', '6', '--raid-devices', '5', '--chunk', '64K']],
      ['--layout nonsense', ['--level', '5', '--raid-devices', '4', '--layout', 'nonsense']],
      ['--size 12Q', ['--level', '5', '--raid-devices', '4', '--chunk', '64K', '--size', '12Q']],
      ['an unknown flag', ['--level', '5', '--raid-devices', '4', '--frobnicate']],
    ]
    for (const [title, flags] of cases) {
      it(title, function () {
        const dir = tmp.file(`usage-${title.replace(/\W+/g, '_')}`)
        fs.mkdirSync(dir)
        const three = title.includes('3 members')
        const members = three ? ['a.img', 'b.img', 'c.img'] : ['a.img', 'b.img', 'c.img', 'd.img']
        const args = ['create', ...flags, ...(flags.includes('--size') ? [] : ['--size', '16M']), '--write-journal', 'j.img', ...members]
        const r = expectExit(r5ctl(args, {cwd: dir}), 2)
        expectErrorLine(r)
        assert.equal(r.stdout.length, 0, 'nothing on stdout')
        assert.deepEqual(filesUnder(dir), [], 'no file created')
        expectJsonError(r5ctl([...args, '--json'], {cwd: dir}), 2)
        assert.deepEqual(filesUnder(dir), [], 'no file created')
      })
    }
  })
})
