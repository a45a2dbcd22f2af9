/**
 * md v1.0 and v1.1 superblocks (mdadm --metadata=1.0 / 1.1): the superblock sits at the end of each
 * device (v1.0: (sectors - 16) rounded down to 8) or at its start (v1.1) instead of 4 KiB in (v1.2).
 * The array is the same; r5ctl must find it there, read and replay it, and write its superblock
 * updates back where it found them. The arrays here are r5ctl-made v1.2 sets with every superblock
 * moved as mdadm would have placed it (the kernel suite checks mdadm-made ones).
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, ok, jsonOf, pseudoRandom, suiteTempDir, expectExit, expectErrorLine, fingerprint} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {decodeSuperblock, encodeSuperblock} from '../../src/engine/format/superblock.js'

const MiB = 1024 * 1024

function readBlock(file: string, at: number): Buffer {
  const fd = fs.openSync(file, 'r')
  try {
    const b = Buffer.alloc(4096)
    fs.readSync(fd, b, 0, 4096, at)
    return b
  } finally {
    fs.closeSync(fd)
  }
}

function writeBlock(file: string, at: number, b: Buffer): void {
  const fd = fs.openSync(file, 'r+')
  try {
    fs.writeSync(fd, b, 0, b.length, at)
  } finally {
    fs.closeSync(fd)
  }
}

/** Where mdadm and the kernel put a v1.x superblock on a device of this size (super_1_load). */
function sbSector(version: '1.0' | '1.1', bytes: number): number {
  return version === '1.1' ? 0 : (bytes / 512 - 16) & ~7
}

/** Move every device's v1.2 superblock to where `version` keeps it (v1.0: the device grows 1 MiB first). */
function convert(arr: ImageArray, version: '1.0' | '1.1'): void {
  for (const f of arr.all) {
    if (version === '1.0') fs.truncateSync(f, fs.statSync(f).size + MiB)
    const {sb, problems} = decodeSuperblock(readBlock(f, 4096))
    assert.deepEqual(problems, [])
    const at = sbSector(version, fs.statSync(f).size)
    writeBlock(f, 4096, Buffer.alloc(4096))
    writeBlock(f, at * 512, encodeSuperblock({...sb, superOffset: BigInt(at)}))
  }
}

function readAll(arr: ImageArray): Buffer {
  return ok(r5ctl(['read', '--offset', '0', '--length', String(arr.sizeBytes), ...arr.all])).stdout
}

describe('e2e: v1.0 and v1.1 superblocks', function () {
  this.timeout(300000)
  const tmp = suiteTempDir('r5ctl-sbver-')

  for (const version of ['1.0', '1.1'] as const) {
    it(`a v${version} array is examined, read and recovered in place, its superblocks updated where they are`, () => {
      const arr = createImageArray(tmp.file(`v${version}`), {level: 5, raidDevices: 4, size: '8M', journalSize: '4M'})
      const data = pseudoRandom(96 * 1024, 7)
      ok(r5ctl(['write', '--offset', '64K', '--journal-mode', 'write-back', ...arr.all], {input: data}))
      const want = readAll(arr)
      convert(arr, version)

      const ex = jsonOf(ok(r5ctl(['examine', '--json', ...arr.all])))
      for (const d of ex.devices) {
        assert.equal(d.version, version, d.device)
        assert.equal(d.superOffsetSector, sbSector(version, fs.statSync(d.device).size), d.device)
      }
      assert.deepEqual(readAll(arr), want, 'read (the journal replayed in memory)')

      const before = arr.all.map(f => decodeSuperblock(readBlock(f, sbSector(version, fs.statSync(f).size) * 512)).sb.events)
      ok(r5ctl(['recover', ...arr.all]))
      arr.all.forEach((f, i) => {
        const size = fs.statSync(f).size
        const {sb, problems} = decodeSuperblock(readBlock(f, sbSector(version, size) * 512), BigInt(sbSector(version, size)))
        assert.deepEqual(problems, [], f)
        assert.ok(sb.events > before[i], `${f}: events moved on where the superblock is`)
        assert.ok(readBlock(f, 4096).equals(Buffer.alloc(4096)), `${f}: nothing written where a v1.2 superblock would be`)
      })
      assert.deepEqual(readAll(arr), want, 'read after recover')
      const ej = r5ctl(['examine-journal', '--json', ...arr.all])
      assert.equal(jsonOf(ej).state, 'clean')
    })
  }

  for (const newer of ['1.1', '1.2'] as const) {
    it(`a device with superblocks at two places is taken by the newer creation time, as mdadm takes it (v${newer} newer)`, () => {
      const arr = createImageArray(tmp.file(`two-${newer}`), {level: 5, raidDevices: 3, size: '8M', journalSize: '4M'})
      const f = arr.members[0]
      const {sb} = decodeSuperblock(readBlock(f, 4096))
      // another array's v1.1 superblock at sector 0, created before or after this one
      const other = {...sb, superOffset: 0n, ctime: sb.ctime + (newer === '1.1' ? 100n : -100n), setName: 'other'}
      writeBlock(f, 0, encodeSuperblock(other))
      const ex = jsonOf(ok(r5ctl(['examine', '--json', f])))
      assert.equal(ex.devices[0].version, newer)
      assert.equal(ex.devices[0].name, newer === '1.1' ? 'other' : sb.setName)
    })
  }

  it('a set mixing superblock versions is refused by name before anything is written', () => {
    const arr = createImageArray(tmp.file('mixed'), {level: 5, raidDevices: 3, size: '8M', journalSize: '4M'})
    const f = arr.members[1]
    const {sb} = decodeSuperblock(readBlock(f, 4096))
    writeBlock(f, 4096, Buffer.alloc(4096))
    writeBlock(f, 0, encodeSuperblock({...sb, superOffset: 0n}))
    const before = fingerprint(arr.all)
    const r = expectExit(r5ctl(['recover', ...arr.all]), 4)
    assert.match(expectErrorLine(r, {device: f}), /superblock is v1\.1 where the rest of the set has v1\.2/)
    assert.deepEqual(fingerprint(arr.all), before)
  })

  it('rebuild on a v1.1 array is refused by name, with nothing written: it lays out new devices for v1.2 only', () => {
    const arr = createImageArray(tmp.file('rebuild-v1.1'), {level: 5, raidDevices: 3, size: '8M', journalSize: '4M'})
    convert(arr, '1.1')
    const spare = tmp.file('rebuild-v1.1', 'new.img')
    fs.writeFileSync(spare, Buffer.alloc(0))
    fs.truncateSync(spare, 8 * MiB)
    const rest = arr.all.filter(f => f !== arr.members[1])
    const before = fingerprint([...arr.all, spare])
    const r = expectExit(r5ctl(['rebuild', '--slot', '1', spare, ...rest]), 3)
    assert.match(expectErrorLine(r), /the array's superblocks are v1\.1: rebuild writes a new device's superblock only for v1\.2 arrays/)
    assert.deepEqual(fingerprint([...arr.all, spare]), before)
  })

  it('journal remove on a v1.1 array rewrites the superblocks where they are; journal add is refused by name, with nothing written', () => {
    const arr = createImageArray(tmp.file('journal-v1.1'), {level: 5, raidDevices: 3, size: '8M', journalSize: '4M'})
    const want = readAll(arr)
    convert(arr, '1.1')
    ok(r5ctl(['journal', 'remove', ...arr.all]))
    for (const f of arr.members) {
      const {sb, problems} = decodeSuperblock(readBlock(f, 0), 0n)
      assert.deepEqual(problems, [], f)
      assert.equal(sb.featureMap & 0x200, 0, `${f}: the journal feature is gone`)
      assert.ok(readBlock(f, 4096).equals(Buffer.alloc(4096)), `${f}: nothing written at v1.2's place`)
    }
    const members = ok(r5ctl(['read', '--offset', '0', '--length', String(arr.sizeBytes), ...arr.members])).stdout
    assert.deepEqual(members, want)
    const spare = tmp.file('journal-v1.1', 'j2.img')
    fs.writeFileSync(spare, Buffer.alloc(0))
    fs.truncateSync(spare, 4 * MiB)
    const before = fingerprint([...arr.members, spare])
    const r = expectExit(r5ctl(['journal', 'add', spare, ...arr.members]), 3)
    assert.match(expectErrorLine(r), /the array's superblocks are v1\.1: journal add writes a new device's superblock only for v1\.2 arrays/)
    assert.deepEqual(fingerprint([...arr.members, spare]), before)
  })
})
