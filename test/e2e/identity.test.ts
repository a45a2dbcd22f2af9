/**
 * Which paths are one device, and which files are devices at all: an output or input that is one of
 * the array's own images is refused before anything is opened for writing; one image named twice
 * (by a hard link, a symlink, or a loop device over it) is refused; a FIFO, a directory, a socket or
 * a character device given as a device is refused at once instead of hanging; a loop device and its
 * backing file share one lock.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import {spawnSync} from 'node:child_process'
import {r5ctl, run, expectExit, expectErrorLine, fingerprint, pseudoRandom, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {startHolder, race, release} from '../helpers/holders.js'

describe('e2e: device identity', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-identity-')
  let a: ImageArray
  let input: string
  let before_: Record<string, string>

  before(() => {
    a = createImageArray(tmp.file('arr'), {level: 5, raidDevices: 4, size: '4M', journalSize: '2M'})
    input = tmp.file('in.bin')
    fs.writeFileSync(input, pseudoRandom(64 * 1024, 11))
    expectExit(r5ctl(['write', '--offset', '0', '--input', input, ...a.all]), 0)
    fs.symlinkSync(a.members[1], tmp.file('m1-symlink.img'))
    fs.linkSync(a.members[2], tmp.file('m2-hardlink.img'))
  })
  beforeEach(() => {
    before_ = fingerprint(a.all)
  })

  const unchanged = () => assert.deepEqual(fingerprint(a.all), before_, 'an image changed')

  for (const [what, target] of [
    ['a member', () => a.members[0]],
    ['the journal', () => a.journal],
    ['a symlink to a member', () => tmp.file('m1-symlink.img')],
    ['a hard link to a member', () => tmp.file('m2-hardlink.img')],
  ] as [string, () => string][]) {
    it(`read --output naming ${what} is refused and leaves every image intact`, () => {
      const r = expectExit(r5ctl(['read', '--offset', '0', '--length', '64K', '--output', target(), ...a.all]), 3)
      assert.match(expectErrorLine(r, {device: target()}), /output .*one of the array's devices/)
      unchanged()
    })

    it(`write --input naming ${what} is refused and writes nothing`, () => {
      const r = expectExit(r5ctl(['write', '--offset', '0', '--length', '4096', '--input', target(), ...a.all]), 3)
      assert.match(expectErrorLine(r, {device: target()}), /input .*one of the array's devices/)
      unchanged()
    })
  }

  it('read --output naming the member left out of a degraded read is refused (exit 3), the member untouched', () => {
    const left = a.members[0]
    const rest = a.all.filter(f => f !== left)
    const r = expectExit(r5ctl(['read', '--offset', '0', '--length', '64K', '--output', left, ...rest]), 3)
    assert.match(expectErrorLine(r, {device: left}), /md superblock/)
    unchanged()
  })

  it('a member named again through a hard link is refused as given twice', () => {
    for (const cmd of [
      ['read', '--offset', '0', '--length', '4096', '--output', tmp.file('x.bin')],
      ['write', '--offset', '0', '--input', input],
    ]) {
      const r = expectExit(r5ctl([...cmd, ...a.all, tmp.file('m2-hardlink.img')]), 2)
      assert.match(expectErrorLine(r), /given twice/)
      unchanged()
    }
  })

  it('create naming one new file twice (x.img and ./x.img) is refused as given twice and creates nothing', () => {
    const dir = tmp.file('new')
    fs.mkdirSync(dir)
    const r = expectExit(
      r5ctl(
        [
          'create',
          '--level',
          '5',
          '--raid-devices',
          '3',
          '--size',
          '4M',
          '--journal-size',
          '2M',
          '--write-journal',
          'j.img',
          'x.img',
          './x.img',
          'y.img',
        ],
        {cwd: dir},
      ),
      2,
    )
    assert.match(expectErrorLine(r), /given twice/)
    assert.deepEqual(fs.readdirSync(dir), [])
  })

  describe('files that are not devices', () => {
    const kinds: [string, () => string, RegExp][] = [
      ['a FIFO', () => tmp.file('fifo'), /is a FIFO, not a regular file or block device/],
      ['a directory', () => tmp.path, /is a directory, not a regular file or block device/],
      ['a character device', () => '/dev/null', /is a character device, not a regular file or block device/],
      ['a socket', () => tmp.file('sock'), /is a socket, not a regular file or block device/],
    ]
    let server: net.Server | undefined
    before(async () => {
      expectExit(run('mkfifo', [tmp.file('fifo')]), 0)
      const s = net.createServer()
      server = s
      await new Promise<void>(resolve => s.listen(tmp.file('sock'), resolve))
    })
    after(() => {
      server?.close()
    })

    for (const [what, dev, message] of kinds) {
      it(`${what} given as a device is refused at once, by name`, () => {
        for (const args of [
          ['examine', dev()],
          ['read', '--offset', '0', '--length', '4096', '--output', tmp.file('y.bin'), ...a.all.slice(0, 2), dev(), ...a.all.slice(3)],
          ['write', '--offset', '0', '--input', input, ...a.all.slice(0, 2), dev(), ...a.all.slice(3)],
        ]) {
          const r = r5ctl(args, {timeout: 20000})
          assert.notEqual(r.status, null, `\`${r.cmd}\` hung (killed after 20 s)`)
          assert.equal(r.status, 1, r.stderr)
          if (args[0] === 'examine') assert.match(r.stdout.toString() + r.stderr, message)
          else assert.match(expectErrorLine(r, {device: dev()}), message)
          unchanged()
        }
      })
    }
  })
})

/** losetup over a member image; null when loop devices cannot be set up here (not root, no losetup). */
function attachLoop(file: string): string | null {
  if (process.getuid?.() !== 0) return null
  const r = spawnSync('losetup', ['--find', '--show', file], {encoding: 'utf8'})
  return r.status === 0 ? r.stdout.trim() : null
}

describe('e2e: a loop device and its backing file are one device', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-loop-')
  let a: ImageArray
  let loop: string | null = null
  let input: string

  before(function () {
    a = createImageArray(tmp.file('arr'), {level: 5, raidDevices: 3, size: '4M', journalSize: '2M'})
    input = tmp.file('in.bin')
    fs.writeFileSync(input, pseudoRandom(8192, 5))
    loop = attachLoop(a.members[0])
    if (!loop) {
      console.log('      (skipped: loop devices need root and a working losetup)')
      this.skip()
    }
  })
  after(() => {
    if (loop) spawnSync('losetup', ['--detach', loop])
  })

  const viaLoop = () => a.all.map(d => (d === a.members[0] ? loop! : d))

  it('names the loop device and its backing file together: refused as given twice', () => {
    const before = fingerprint(a.all)
    for (const cmd of [
      ['read', '--offset', '0', '--length', '4096', '--output', tmp.file('x.bin')],
      ['write', '--offset', '0', '--input', input],
    ]) {
      const r = expectExit(r5ctl([...cmd, ...a.all, loop!]), 2)
      assert.match(expectErrorLine(r), /given twice/)
    }
    assert.deepEqual(fingerprint(a.all), before)
  })

  it('read --output naming the loop device over a member is refused', () => {
    const before = fingerprint(a.all)
    const r = expectExit(r5ctl(['read', '--offset', '0', '--length', '4096', '--output', loop!, ...a.all]), 3)
    assert.match(expectErrorLine(r, {device: loop!}), /one of the array's devices/)
    assert.deepEqual(fingerprint(a.all), before)
  })

  it('a writer through the loop device is refused while another holds the image file', async () => {
    const h = startHolder([a.members[0]])
    assert.deepEqual(await race([h]), ['won'])
    const r = r5ctl(['write', '--offset', '0', '--input', input, ...viaLoop()])
    await release([h])
    expectExit(r, 3)
    assert.match(expectErrorLine(r), /in use/)
  })
})
