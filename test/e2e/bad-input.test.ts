/**
 * Damaged and wrong device sets: a truncated member, a zeroed or bit-flipped superblock, a device
 * of another array, a missing journal. Every command that opens the array refuses before touching
 * anything: the documented exit code (4 corruption, 3 refused), one `r5ctl: ... (device)` line on
 * stderr naming the culprit (plus at most a hint), no stack trace, the same as a JSON object on
 * stdout with --json, and not one byte changed on any image.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, ok, expectExit, expectErrorLine, expectJsonError, jsonOf, fingerprint, pseudoRandom, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const SB_OFFSET = 4096

interface BadCase {
  title: string
  /** the device list given to the commands */
  devices: () => string[]
  /** the device the error must name; a RegExp when any of several is right; null: none (the problem is the set's) */
  culprit: () => string | RegExp | null
  exit: 3 | 4
  /** also run `examine` (the superblock report), which must flag the device and exit 4 */
  examine: boolean
  /** what the message must mention */
  message?: RegExp
}

describe('e2e: bad input is refused, named, and changes nothing', function () {
  const tmp = suiteTempDir()
  let a: ImageArray
  let b: ImageArray
  let bad: Record<string, string>
  let input: string
  /** the two arrays' images before any bad command ran */
  let pristine: Record<string, string>

  /** a's device list with one device replaced */
  const swap = (from: string, to: string) => a.all.map(d => (d === from ? to : d))

  before(function () {
    // small images keep the sha256 of every image before and after each command cheap
    const spec = {level: 5 as const, raidDevices: 4, chunk: '64K', size: '4M', journalSize: '2M'}
    a = createImageArray(tmp.file('a'), spec)
    b = createImageArray(tmp.file('b'), spec)
    input = tmp.file('input.bin')
    fs.writeFileSync(input, pseudoRandom(256 * 1024, 7))
    for (const arr of [a, b]) ok(r5ctl(['write', '--offset', '4096', '--input', input, ...arr.all]))
    const dir = tmp.file('bad')
    fs.mkdirSync(dir)
    const copy = (src: string, name: string) => {
      const p = path.join(dir, name)
      fs.copyFileSync(src, p)
      return p
    }
    const patch = (file: string, offset: number, bytes: Buffer) => {
      const fd = fs.openSync(file, 'r+')
      fs.writeSync(fd, bytes, 0, bytes.length, offset)
      fs.closeSync(fd)
    }
    const flip = (file: string, offset: number) => {
      const buf = fs.readFileSync(file)
      patch(file, offset, Buffer.from([buf[offset] ^ 0x01]))
    }
    bad = {
      truncated: copy(a.members[1], 'm1-truncated.img'),
      zeroed: copy(a.members[1], 'm1-zeroed-sb.img'),
      journalZeroed: copy(a.journal, 'j-zeroed-sb.img'),
      flipped: copy(a.members[1], 'm1-flipped-sb.img'),
      journalFlipped: copy(a.journal, 'j-flipped-sb.img'),
    }
    pristine = fingerprint([...a.all, ...b.all])
    fs.truncateSync(bad.truncated, 2 << 20)
    patch(bad.zeroed, SB_OFFSET, Buffer.alloc(4096))
    patch(bad.journalZeroed, SB_OFFSET, Buffer.alloc(4096))
    flip(bad.flipped, SB_OFFSET + 170) // inside device_uuid
    flip(bad.journalFlipped, SB_OFFSET + 0xd0) // inside resync_offset
  })

  const cases: BadCase[] = [
    {
      title: 'a truncated member',
      devices: () => swap(a.members[1], bad.truncated),
      culprit: () => bad.truncated,
      exit: 4,
      examine: true,
      message: /truncated/,
    },
    {title: 'a member whose superblock is zeroed', devices: () => swap(a.members[1], bad.zeroed), culprit: () => bad.zeroed, exit: 4, examine: true},
    {
      title: 'a journal whose superblock is zeroed',
      devices: () => swap(a.journal, bad.journalZeroed),
      culprit: () => bad.journalZeroed,
      exit: 4,
      examine: true,
    },
    {
      title: 'a member superblock with one flipped byte',
      devices: () => swap(a.members[1], bad.flipped),
      culprit: () => bad.flipped,
      exit: 4,
      examine: true,
      message: /checksum/,
    },
    {
      title: 'a journal superblock with one flipped byte',
      devices: () => swap(a.journal, bad.journalFlipped),
      culprit: () => bad.journalFlipped,
      exit: 4,
      examine: true,
      message: /checksum/,
    },
    {
      title: 'a member of another array swapped in',
      devices: () => swap(a.members[1], b.members[1]),
      culprit: () => b.members[1],
      exit: 3,
      examine: false,
      message: /another array/,
    },
    {
      title: 'a member of another array named first',
      devices: () => [b.members[2], ...a.all.filter(d => d !== a.members[2])],
      culprit: () => b.members[2],
      exit: 3,
      examine: false,
      message: /another array/,
    },
    {
      title: 'the journal of another array',
      devices: () => swap(a.journal, b.journal),
      culprit: () => b.journal,
      exit: 3,
      examine: false,
      message: /another array/,
    },
    {
      title: 'no journal device',
      devices: () => a.members,
      exit: 3,
      examine: false,
      message: /journal device missing for array [0-9a-f:]{35}/,
      // the missing device cannot be named, and no member is the problem: the message names the array
      culprit: () => null,
    },
  ]

  /** text mode reads to stdout (which must stay empty); --json needs --output for read */
  const commands: {name: string; args: () => string[]; json: (out: string) => string[]}[] = [
    {
      name: 'read',
      args: () => ['read', '--offset', '0', '--length', '64K'],
      json: out => ['read', '--offset', '0', '--length', '64K', '--output', out, '--json'],
    },
    {name: 'write', args: () => ['write', '--offset', '0', '--input', input], json: () => ['write', '--offset', '0', '--input', input, '--json']},
    {name: 'examine-journal', args: () => ['examine-journal'], json: () => ['examine-journal', '--json']},
  ]

  for (const c of cases) {
    describe(c.title, function () {
      for (const cmd of commands) {
        it(`${cmd.name}: exit ${c.exit}, one error line naming the device, same in --json, no byte changed`, function () {
          const images = c.devices()
          const before = fingerprint(images)
          const r = expectExit(r5ctl([...cmd.args(), ...c.devices()]), c.exit)
          const culprit = c.culprit()
          const line = expectErrorLine(r, culprit === null ? {} : {device: culprit})
          if (culprit === null) assert.doesNotMatch(line, /\)$/, `names no device: ${line}`)
          if (c.message) assert.match(line, c.message)
          assert.equal(r.stdout.length, 0, `nothing on stdout: ${r.stdout.toString().slice(0, 200)}`)
          assert.deepEqual(fingerprint(images), before, 'no image changed')

          const out = tmp.file('out.bin')
          const rj = r5ctl([...cmd.json(out), ...c.devices()])
          const e = expectJsonError(rj, c.exit, culprit === null ? {} : {device: culprit})
          if (culprit === null) assert.equal(e.device, null)
          if (c.message) assert.match(e.message, c.message)
          assert.equal(rj.stderr, '', 'with --json nothing on stderr')
          assert.deepEqual(fingerprint(images), before, 'no image changed')
          fs.rmSync(out, {force: true})
        })
      }

      if (c.examine) {
        it('examine: reports the damaged device (ok: false, a problem) and exits 4; changes nothing', function () {
          const devices = c.devices()
          const images = devices
          const before = fingerprint(images)
          const culprit = c.culprit() as string
          const r = expectExit(r5ctl(['examine', ...devices]), 4)
          assert.match(r.stdout.toString(), new RegExp(`^${culprit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:$`, 'm'))
          assert.equal(r.stderr, '', 'the report is on stdout')
          const j = jsonOf<{devices: {device: string; ok: boolean; problems: {code: string; message: string}[]}[]}>(
            expectExit(r5ctl(['examine', '--json', ...devices]), 4),
          )
          assert.deepEqual(
            j.devices.map(d => d.device),
            devices,
          )
          for (const d of j.devices) {
            if (d.device === culprit) {
              assert.equal(d.ok, false, `${d.device} is flagged`)
              assert.ok(d.problems.length > 0, `${d.device} has a problem listed`)
              if (c.message) assert.match(d.problems.map(p => p.message).join('; '), c.message)
            } else {
              assert.equal(d.ok, true, `${d.device} is fine`)
            }
          }
          assert.deepEqual(fingerprint(images), before, 'no image changed')
        })
      }
    })
  }

  describe('afterwards', function () {
    it('every image of both arrays is as it was before all the refused commands', function () {
      assert.deepEqual(fingerprint([...a.all, ...b.all]), pristine)
    })

    it('the array still reads back what was written before', function () {
      const r = ok(r5ctl(['read', '--offset', '4096', '--length', String(256 * 1024), ...a.all]))
      assert.ok(r.stdout.equals(fs.readFileSync(input)))
      assert.equal(jsonOf(ok(r5ctl(['examine-journal', '--json', ...a.all]))).state, 'clean')
    })
  })
})
