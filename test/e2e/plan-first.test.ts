/**
 * Plan, then apply: a command that fails on a bad argument or on metadata it cannot update fails
 * before its first write. Each case here used to write (superblocks wiped, files created, the log
 * opened) and only then fail.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {decodeSuperblock, encodeSuperblock} from '../../src/engine/format/superblock.js'
import {r5ctl, ok, expectExit, expectErrorLine, fingerprint, pseudoRandom, suiteTempDir, createImages} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const SB_OFFSET = 4096

/** rewrite the events counter of a device's superblock (and its checksum, so that only the value is wrong) */
export function setEvents(file: string, events: bigint): void {
  const fd = fs.openSync(file, 'r+')
  try {
    const block = Buffer.alloc(4096)
    fs.readSync(fd, block, 0, 4096, SB_OFFSET)
    const {sb} = decodeSuperblock(block)
    fs.writeSync(fd, encodeSuperblock({...sb, events}), 0, 4096, SB_OFFSET)
  } finally {
    fs.closeSync(fd)
  }
}

describe('e2e: nothing is written before everything is validated', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-planfirst-')
  let a: ImageArray
  let input: string

  before(() => {
    a = createImageArray(tmp.file('a'), {level: 5, raidDevices: 3, chunk: '64K', size: '4M', journalSize: '2M'})
    input = tmp.file('in.bin')
    fs.writeFileSync(input, pseudoRandom(64 * 1024, 3))
  })

  it('create --force with a name longer than 32 bytes is refused (exit 2, naming --name) and leaves the old array intact', () => {
    const before = fingerprint(a.all)
    for (const name of ['x'.repeat(33), 'é'.repeat(17)]) {
      const r = r5ctl(['create', '--force', '--level', '5', '--raid-devices', '3', '--chunk', '64K', '--name', name, '--write-journal', ...a.all])
      expectExit(r, 2)
      assert.match(expectErrorLine(r), /--name/)
      assert.deepEqual(fingerprint(a.all), before, `name ${JSON.stringify(name)}: no image changed`)
    }
    // 32 bytes exactly is what the field holds
    fs.mkdirSync(tmp.file('n32'))
    ok(
      r5ctl([
        'create',
        '--level',
        '5',
        '--raid-devices',
        '3',
        '--chunk',
        '64K',
        '--size',
        '4M',
        '--journal-size',
        '2M',
        '--name',
        'y'.repeat(32),
        '--write-journal',
        tmp.file('n32', 'j.img'),
        ...['m0', 'm1', 'm2'].map(m => tmp.file('n32', `${m}.img`)),
      ]),
    )
  })

  it('create --chunk 3T or 4T (chunk sectors beyond the 32-bit field) is refused (exit 2, naming --chunk) and creates no file', () => {
    const dir = tmp.file('huge')
    fs.mkdirSync(dir)
    const files = ['j.img', 'm0.img', 'm1.img', 'm2.img'].map(f => `${dir}/${f}`)
    for (const chunk of ['3T', '4T', '6T']) {
      const r = r5ctl([
        'create',
        '--level',
        '5',
        '--raid-devices',
        '3',
        '--chunk',
        chunk,
        '--size',
        '8T',
        '--journal-size',
        '2M',
        '--write-journal',
        ...files,
      ])
      expectExit(r, 2)
      assert.match(expectErrorLine(r), /--chunk/)
      const left = fs.readdirSync(dir)
      for (const f of left) fs.rmSync(`${dir}/${f}`) // (8T sparse files must not reach the next try: it would sync their parity)
      assert.deepEqual(left, [], `--chunk ${chunk}: no file created`)
    }
  })

  it('create with a size no file of this file system can have is refused (exit 1, naming the file) and leaves no file', () => {
    const dir = tmp.file('too-big')
    fs.mkdirSync(dir)
    const files = ['j.img', 'm0.img', 'm1.img', 'm2.img', 'm3.img'].map(f => `${dir}/${f}`)
    // 2^53 - 1 bytes: past what ext4, xfs or tmpfs let a file grow to
    const r = createImages(files, {size: '9007199254740991', journalSize: '8M'})
    expectExit(r, 1)
    expectErrorLine(r, {device: /m0\.img/})
    assert.deepEqual(fs.readdirSync(dir), [], 'no file left behind')
  })

  it('create --size larger than an existing member is refused (exit 2, naming it), and a smaller one uses that much of each', () => {
    const dir = tmp.file('existing')
    fs.mkdirSync(dir)
    const files = ['j.img', 'm0.img', 'm1.img', 'm2.img', 'm3.img'].map(f => `${dir}/${f}`)
    for (const f of files) fs.writeFileSync(f, Buffer.alloc(16 << 20))
    const before = fingerprint(files)
    const r = createImages(files, {size: '1T', journalSize: '8M'})
    expectExit(r, 2)
    assert.match(expectErrorLine(r, {device: /m0\.img/}), /--size/)
    assert.deepEqual(fingerprint(files), before, 'no image changed')
    const made = JSON.parse(
      ok(r5ctl(['create', '--json', '--level', '5', '--raid-devices', '4', '--size', '8M', '--write-journal', ...files])).stdout.toString(),
    )
    // 8 MiB of each member, less the 1 MiB data offset, in whole 512K chunks, times 3 data members
    assert.equal(made.arraySizeBytes, 3 * 7 * (1 << 20))
  })

  it("write on a set whose events counter cannot take the write's superblock updates is refused before any write (exit 4)", () => {
    const set = tmp.file('ev')
    const e = createImageArray(set, {level: 5, raidDevices: 3, chunk: '64K', size: '4M', journalSize: '2M'})
    for (const f of e.all) setEvents(f, 0xfffffffffffffffen) // 2^64 - 2: room for one update, a write makes at least two
    const before = fingerprint(e.all)
    const r = r5ctl(['write', '--offset', '0', '--input', input, ...e.all])
    expectExit(r, 4)
    assert.match(expectErrorLine(r, {device: e.journal}), /events counter/)
    assert.match(r.stderr, /nothing was written/)
    assert.deepEqual(fingerprint(e.all), before, 'no image changed')
    // one update is still possible: a recover of the clean log writes nothing, a reclaim of it neither
    ok(r5ctl(['recover', ...e.all]))
    assert.deepEqual(fingerprint(e.all), before)
    const j = r5ctl(['examine', '--journal', '--json', e.journal])
    expectExit(j, 0)
  })
})
