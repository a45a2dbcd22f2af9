/**
 * Undo files: every destructive command run with --undo can be reverted bit for bit; undo refuses
 * files that are incomplete, damaged, or recorded for other devices, and writes nothing then.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {crc32c} from '../../src/engine/checksum.js'
import {HEADER_BYTES, KIND_AFTER, KIND_END, KIND_OLD, MAX_RECORD, VERSION, encodeHead, encodeHeader} from '../../src/engine/undo/format.js'
import {r5ctl, run, BIN, expectExit, expectErrorLine, suiteTempDir, pseudoRandom, fingerprint, createImages} from '../helpers/cli.js'

describe('e2e: undo files', function () {
  this.timeout(180000)
  const tmp = suiteTempDir('r5ctl-undo-')
  const devs = () => ['j.img', 'a.img', 'b.img', 'c.img', 'd.img'].map(f => tmp.file(f))

  before(() => {
    expectExit(createImages(devs(), {size: '24M', journalSize: '12M'}), 0)
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
    expectExit(
      r5ctl([
        'create',
        '--force',
        '--undo',
        tmp.file('create.undo'),
        '--level',
        '6',
        '--raid-devices',
        '4',
        '--chunk',
        '64K',
        '--write-journal',
        ...devs(),
      ]),
      0,
    )
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
    // what a run cut off while sealing leaves: every record but the 32-byte end record
    fs.writeFileSync(incomplete, b.subarray(0, b.length - 32))
    const r1 = r5ctl(['undo', incomplete, ...devs()])
    expectExit(r1, 3)
    assert.match(expectErrorLine(r1), /incomplete/)
    const damaged = tmp.file('damaged.undo')
    const d = Buffer.from(b)
    d[4096 + 32 + 100] ^= 0xff // a byte of the first record's data
    fs.writeFileSync(damaged, d)
    const r2 = r5ctl(['undo', damaged, ...devs()])
    expectExit(r2, 4)
    expectErrorLine(r2, {device: damaged})
    assert.deepEqual(fingerprint(devs()), before)
  })
})

describe('e2e: undo files cannot make things worse', function () {
  this.timeout(180000)
  const tmp = suiteTempDir('r5ctl-undo-safe-')
  let n = 0
  /** A fresh small RAID5 set whose journal holds an interrupted write (dirty), in its own folder. */
  function dirtySet(): string[] {
    const dir = tmp.file(`set${n++}`)
    fs.mkdirSync(dir)
    const devs = ['j.img', 'a.img', 'b.img', 'c.img', 'd.img'].map(f => `${dir}/${f}`)
    expectExit(createImages(devs, {size: '4M', journalSize: '2M'}), 0)
    fs.writeFileSync(`${dir}/in.bin`, pseudoRandom(3 << 20, 7))
    expectExit(r5ctl(['write', '--offset', '0', '--input', `${dir}/in.bin`, '--crash-after', '9', ...devs]), 75)
    return devs
  }
  const RECORD0 = 4096 // the first record follows the 4 KiB header

  it('undo refuses (exit 3) when a later write changed what the run left, naming the range, and writes nothing', () => {
    const devs = dirtySet()
    const undo = `${devs[0]}.undo`
    expectExit(r5ctl(['recover', '--undo', undo, ...devs]), 0)
    fs.writeFileSync(`${devs[0]}.new`, pseudoRandom(64 << 10, 99))
    expectExit(r5ctl(['write', '--offset', '0', '--input', `${devs[0]}.new`, ...devs]), 0)
    const before = fingerprint(devs)
    const r = r5ctl(['undo', undo, ...devs])
    expectExit(r, 3)
    const line = expectErrorLine(r, {device: /\/[a-dj]\.img$/})
    assert.match(line, /\d+ bytes at byte \d+ changed since/)
    assert.deepEqual(fingerprint(devs), before, 'the refused undo wrote something')
    // the later write is still whole: what it wrote reads back
    const rd = expectExit(r5ctl(['read', '--offset', '0', '--length', '64K', ...devs]), 0)
    assert.ok(rd.stdout.equals(fs.readFileSync(`${devs[0]}.new`)), 'the later write no longer reads back')
    // --force --dry-run counts the changed ranges it would restore over, and still writes nothing
    const dry = expectExit(r5ctl(['undo', '--force', '--dry-run', '--json', undo, ...devs]), 0)
    const j = JSON.parse(dry.stdout.toString())
    assert.ok(j.changedRanges > 0 && j.changedRanges < j.ranges.length, `changedRanges ${j.changedRanges} of ${j.ranges.length}`)
    assert.deepEqual(fingerprint(devs), before)
  })

  it('undo refuses (exit 4) a record whose device offset has a flipped bit, writing nothing', () => {
    const devs = dirtySet()
    const undo = `${devs[0]}.undo`
    expectExit(r5ctl(['recover', '--undo', undo, ...devs]), 0)
    const b = fs.readFileSync(undo)
    b[RECORD0 + 10] ^= 0x01 // the first record's byte offset, +64 KiB
    fs.writeFileSync(undo, b)
    const before = fingerprint(devs)
    const r = r5ctl(['undo', undo, ...devs])
    expectExit(r, 4)
    expectErrorLine(r, {device: undo})
    assert.deepEqual(fingerprint(devs), before)
  })

  it('undo refuses (exit 4) a record whose device index has a flipped bit, writing nothing', () => {
    const devs = dirtySet()
    const undo = `${devs[0]}.undo`
    expectExit(r5ctl(['recover', '--undo', undo, ...devs]), 0)
    const b = fs.readFileSync(undo)
    b[RECORD0 + 4] ^= 0x01 // the first record's device index
    fs.writeFileSync(undo, b)
    const before = fingerprint(devs)
    const r = r5ctl(['undo', undo, ...devs])
    expectExit(r, 4)
    expectErrorLine(r, {device: undo})
    assert.deepEqual(fingerprint(devs), before)
  })

  it('a write whose undo file cannot grow stops (exit 1, naming the undo file), and undo --force restores every byte', () => {
    const devs = dirtySet()
    expectExit(r5ctl(['recover', ...devs]), 0)
    const before = fingerprint(devs)
    const undo = `${devs[0]}.undo`
    // a 4.5 MiB file-size limit: every device write fits (the images end at 4 MiB), the 5 MiB undo file does not;
    // node ignores SIGXFSZ, so the write that crosses the limit fails with EFBIG
    const r = run('bash', [
      '-c',
      'ulimit -f 4608; exec "$@"',
      'bash',
      process.execPath,
      BIN,
      'write',
      '--offset',
      '0',
      '--input',
      `${devs[0].replace(/j\.img$/, '')}in.bin`,
      '--undo',
      undo,
      ...devs,
    ])
    expectExit(r, 1)
    expectErrorLine(r, {device: undo})
    expectExit(r5ctl(['undo', '--force', undo, ...devs]), 0)
    assert.deepEqual(fingerprint(devs), before, 'undo --force did not restore what the stopped write changed')
  })

  it('assemble --undo replays a dirty journal, and undo restores it bit-identical', () => {
    const devs = dirtySet()
    const before = fingerprint(devs)
    const undo = `${devs[0]}.undo`
    expectExit(r5ctl(['assemble', '--undo', undo, ...devs]), 0)
    assert.notDeepEqual(fingerprint(devs), before)
    expectExit(r5ctl(['undo', undo, ...devs]), 0)
    assert.deepEqual(fingerprint(devs), before)
  })

  it('undo refuses (exit 3) two devices with the same device UUID (a copy beside the member), writing nothing', () => {
    const devs = dirtySet()
    const undo = `${devs[0]}.undo`
    expectExit(r5ctl(['recover', '--undo', undo, ...devs]), 0)
    const copy = devs[4].replace(/d\.img$/, 'd-copy.img')
    fs.copyFileSync(devs[4], copy)
    const all = [...devs.slice(0, 4), copy, devs[4]]
    const before = fingerprint(all)
    const r = r5ctl(['undo', undo, ...all])
    expectExit(r, 3)
    assert.match(expectErrorLine(r, {device: /d(-copy)?\.img/}), /device UUID/)
    assert.deepEqual(fingerprint(all), before)
  })

  it('undo refuses (exit 3) a device the undo file did not record (another array, the undo file itself), writing nothing', () => {
    const devs = dirtySet()
    const other = dirtySet()
    const undo = `${devs[0]}.undo`
    expectExit(r5ctl(['recover', '--undo', undo, ...devs]), 0)
    for (const extra of [other[1], undo]) {
      const before = fingerprint([...devs, other[1]])
      const r = r5ctl(['undo', undo, ...devs, extra])
      expectExit(r, 3)
      expectErrorLine(r, {device: extra})
      assert.deepEqual(fingerprint([...devs, other[1]]), before)
    }
  })

  it('a command refused before any device write leaves no undo file behind', () => {
    const devs = dirtySet()
    const undo = `${devs[0]}.undo`
    const r = r5ctl(['assemble', '--undo', undo, ...devs.slice(0, 3)]) // two members missing: more than RAID5 rebuilds, refused
    expectExit(r, 3)
    assert.equal(fs.existsSync(undo), false, 'a stub undo file was left behind')
  })

  it('create refuses (exit 3) an undo file that is one of its devices', () => {
    const dir = tmp.file(`set${n++}`)
    fs.mkdirSync(dir)
    const devs = ['j.img', 'a.img', 'b.img', 'c.img'].map(f => `${dir}/${f}`)
    const r = r5ctl([
      'create',
      '--level',
      '5',
      '--raid-devices',
      '3',
      '--size',
      '4M',
      '--journal-size',
      '2M',
      '--undo',
      devs[1],
      '--write-journal',
      ...devs,
    ])
    expectExit(r, 3)
    expectErrorLine(r)
    assert.deepEqual(fs.readdirSync(dir), [])
  })

  it('undo --dry-run reads an undo file larger than 2 GiB and lists every range', function () {
    // a sparse 2.1 GiB device of zeros and a sparse undo file whose 2100 records of 1 MiB saved zeros
    const dir = tmp.file(`set${n++}`)
    fs.mkdirSync(dir)
    const dev = `${dir}/big.img`
    const count = 2100
    fs.writeFileSync(dev, '')
    fs.truncateSync(dev, count * MAX_RECORD)
    const undo = `${dir}/big.undo`
    const fd = fs.openSync(undo, 'w')
    fs.writeSync(
      fd,
      encodeHeader({
        version: VERSION,
        created: new Date(),
        arrayUuid: new Uint8Array(16),
        devices: [{name: dev, size: count * MAX_RECORD, deviceUuid: new Uint8Array(16)}],
      }),
      0,
      HEADER_BYTES,
      0,
    )
    const zeros = Buffer.alloc(MAX_RECORD)
    const after = Buffer.alloc(4)
    after.writeUInt32LE(crc32c(zeros) >>> 0, 0)
    let pos = HEADER_BYTES
    for (let i = 0; i < count; i++) {
      fs.writeSync(fd, encodeHead({kind: KIND_OLD, device: 0, reserved: 0, offset: i * MAX_RECORD, length: MAX_RECORD, seq: i}, [zeros]), 0, 32, pos)
      pos += 32 + MAX_RECORD // the saved zeros stay a hole
    }
    for (let i = 0; i < count; i++) {
      fs.writeSync(
        fd,
        Buffer.concat([
          encodeHead({kind: KIND_AFTER, device: 0, reserved: 0, offset: i * MAX_RECORD, length: MAX_RECORD, seq: count + i}, [after]),
          after,
        ]),
        0,
        36,
        pos,
      )
      pos += 36
    }
    fs.writeSync(fd, encodeHead({kind: KIND_END, device: 0, reserved: 0, offset: count, length: 0, seq: 2 * count}, []), 0, 32, pos)
    fs.closeSync(fd)
    assert.ok(fs.statSync(undo).size > 2 ** 31)
    const r = expectExit(r5ctl(['undo', '--dry-run', '--json', undo, dev]), 0)
    const j = JSON.parse(r.stdout.toString())
    assert.equal(j.ranges.length, count)
    assert.deepEqual(j.ranges[count - 1], {device: dev, offset: (count - 1) * MAX_RECORD, length: MAX_RECORD})
    assert.equal(j.changedRanges, 0)
    assert.equal(j.bytesRestored, 0)
  })
})
