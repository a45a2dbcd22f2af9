import assert from 'node:assert/strict'
import {goldenKernelSuperblock} from '../../helpers/reference.js'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  FEATURE_JOURNAL,
  ROLE_FAULTY,
  ROLE_JOURNAL,
  ROLE_SPARE,
  SB_MAGIC,
  SB_OFFSET_BYTES,
  type Superblock,
  decodeSuperblock,
  encodeSuperblock,
  makeSuperblock,
  mdTime,
  mdTimeToDate,
  superblockPlaces,
} from '../../../src/engine/format/superblock.js'
import {formatUuid, layoutName, parseUuid} from '../../../src/engine/format/names.js'

function mdadmAvailable(): boolean {
  const r = spawnSync('mdadm', ['--version'], {encoding: 'utf8'})
  return !r.error && r.status === 0
}
function requireOrSkip(ctx: Mocha.Context): void {
  if (mdadmAvailable()) return
  if (process.env.R5CTL_REQUIRE_INTEROP === '1') assert.fail('mdadm is not installed but R5CTL_REQUIRE_INTEROP=1')
  ctx.skip()
}

const seq16 = (start: number): Uint8Array => Uint8Array.from({length: 16}, (_, i) => (start + i) & 0xff)

/** Every field gets a value that is distinct and recognisable at its offset. */
function distinctive(): Superblock {
  return makeSuperblock({
    featureMap: 0x200,
    setUuid: seq16(0x10),
    setName: 'host:distinct',
    ctime: 0x0102030405060708n,
    level: 6,
    layout: 18,
    size: 0x1112131415161718n,
    chunkSize: 0x21222324,
    raidDisks: 0x31,
    bitmapOffset: -8,
    newLevel: 0x41424344,
    reshapePosition: 0x5152535455565758n,
    deltaDisks: -2,
    newLayout: 0x61626364,
    newChunk: 0x71727374,
    newOffset: -1024,
    dataOffset: 0x8182838485868788n,
    dataSize: 0x9192939495969798n,
    superOffset: 8n,
    journalTail: 0xa1a2a3a4a5a6a7a8n,
    devNumber: 2,
    cntCorrectedRead: 0xb1b2b3b4,
    deviceUuid: seq16(0xc0),
    devflags: 0xd1,
    bblogShift: 0xd2,
    bblogSize: 0xd3d4,
    bblogOffset: -16,
    utime: 0xe1e2e3e4e5e6e7e8n,
    events: 0xf1f2f3f4f5f6f7f8n,
    resyncOffset: 0x0a0b0c0d0e0f1011n,
    devRoles: [0, 1, ROLE_JOURNAL, ROLE_FAULTY, ROLE_SPARE],
  })
}

/** The journal-feature RAID5 set used for the mdadm interop test. */
function raid5Member(devNumber: number): Superblock {
  return makeSuperblock({
    featureMap: FEATURE_JOURNAL,
    setUuid: parseUuid('3a1f0c44:9b2e7d10:55aa66bb:0f1e2d3c'),
    setName: 'r5ctl:test',
    ctime: mdTime(new Date('2024-05-06T07:08:09.250Z')),
    utime: mdTime(new Date('2024-05-06T07:10:00Z')),
    level: 5,
    layout: 2,
    chunkSize: 128,
    raidDisks: 4,
    dataOffset: 2048n,
    dataSize: 129024n, // 64 MiB image - 2048 sectors
    size: 129024n, // a whole number of 128-sector chunks
    devNumber,
    deviceUuid: seq16(0x40 + devNumber),
    journalTail: devNumber === 4 ? 8n : 0n,
    events: 42n,
    devRoles: [0, 1, 2, 3, ROLE_JOURNAL],
  })
}

describe('superblock', () => {
  describe('encode: pinned offsets', () => {
    const b = encodeSuperblock(distinctive())
    it('is one zero-padded 4 KiB block', () => {
      assert.equal(b.length, 4096)
      assert.ok(
        b.subarray(256 + 2 * 5).every(x => x === 0),
        'bytes after the roles are zero',
      )
      assert.ok(
        b.subarray(224, 256).every(x => x === 0),
        'pad3 is zero',
      )
      assert.equal(b.readUInt32LE(12), 0, 'pad0 is zero')
    })
    const u32: Array<[number, number, string]> = [
      [0, SB_MAGIC, 'magic'],
      [4, 1, 'major_version'],
      [8, 0x200, 'feature_map'],
      [72, 6, 'level'],
      [76, 18, 'layout'],
      [88, 0x21222324, 'chunksize'],
      [92, 0x31, 'raid_disks'],
      [96, 0xfffffff8, 'bitmap_offset (-8)'],
      [100, 0x41424344, 'new_level'],
      [112, 0xfffffffe, 'delta_disks (-2)'],
      [116, 0x61626364, 'new_layout'],
      [120, 0x71727374, 'new_chunk'],
      [124, 0xfffffc00, 'new_offset (-1024)'],
      [160, 2, 'dev_number'],
      [164, 0xb1b2b3b4, 'cnt_corrected_read'],
      [188, 0xfffffff0, 'bblog_offset (-16)'],
      [220, 5, 'max_dev'],
    ]
    for (const [off, want, name] of u32) {
      it(`${name} at ${off}`, () => assert.equal(b.readUInt32LE(off), want))
    }
    const u64: Array<[number, bigint, string]> = [
      [64, 0x0102030405060708n, 'ctime'],
      [80, 0x1112131415161718n, 'size'],
      [104, 0x5152535455565758n, 'reshape_position'],
      [128, 0x8182838485868788n, 'data_offset'],
      [136, 0x9192939495969798n, 'data_size'],
      [144, 8n, 'super_offset'],
      [152, 0xa1a2a3a4a5a6a7a8n, 'journal_tail / recovery_offset'],
      [192, 0xe1e2e3e4e5e6e7e8n, 'utime'],
      [200, 0xf1f2f3f4f5f6f7f8n, 'events'],
      [208, 0x0a0b0c0d0e0f1011n, 'resync_offset'],
    ]
    for (const [off, want, name] of u64) {
      it(`${name} at ${off}`, () => assert.equal(b.readBigUInt64LE(off), want))
    }
    it('set_uuid at 16, set_name at 32, device_uuid at 168', () => {
      assert.deepEqual([...b.subarray(16, 32)], [...seq16(0x10)])
      assert.equal(b.subarray(32, 64).toString('latin1'), 'host:distinct'.padEnd(32, '\0'))
      assert.deepEqual([...b.subarray(168, 184)], [...seq16(0xc0)])
    })
    it('devflags 184, bblog_shift 185, bblog_size 186', () => {
      assert.equal(b[184], 0xd1)
      assert.equal(b[185], 0xd2)
      assert.equal(b.readUInt16LE(186), 0xd3d4)
    })
    it('dev_roles at 256', () => {
      assert.deepEqual(
        [0, 1, 2, 3, 4].map(i => b.readUInt16LE(256 + 2 * i)),
        [0, 1, 0xfffd, 0xfffe, 0xffff],
      )
    })
    it('sb_csum at 216 is the computed checksum', () => {
      assert.equal(b.readUInt32LE(216), decodeSuperblock(b).computedCsum)
    })
  })

  describe('round trip', () => {
    it('decode(encode(sb)) gives sb back, with the checksum filled in', () => {
      for (const sb of [distinctive(), raid5Member(1), raid5Member(4)]) {
        const enc = encodeSuperblock(sb)
        const {sb: back, problems, computedCsum} = decodeSuperblock(enc)
        assert.deepEqual(problems, [])
        assert.equal(back.sbCsum, computedCsum)
        assert.deepEqual(back, {...sb, sbCsum: computedCsum})
        assert.deepEqual(encodeSuperblock(back), enc)
      }
    })
    it('ignores the input sbCsum', () => {
      const a = encodeSuperblock({...raid5Member(0), sbCsum: 1})
      const b = encodeSuperblock({...raid5Member(0), sbCsum: 0xffffffff})
      assert.deepEqual(a, b)
    })
    it('fills roles beyond devRoles with 0xffff when maxDev is larger', () => {
      const sb = makeSuperblock({setUuid: seq16(0), level: 5, raidDisks: 3, devNumber: 0, devRoles: [0, 1, 2], maxDev: 6})
      const {sb: back, problems} = decodeSuperblock(encodeSuperblock(sb))
      assert.deepEqual(problems, [])
      assert.deepEqual(back.devRoles, [0, 1, 2, 0xffff, 0xffff, 0xffff])
    })
    it('decodes a superblock written by mdadm + the kernel', () => {
      const {sb, problems} = decodeSuperblock(goldenKernelSuperblock())
      assert.deepEqual(problems, [])
      assert.equal(formatUuid(sb.setUuid), '6865ede1:f1a76b48:45071d66:a55755bd')
      assert.equal(sb.setName, 'framework:arrayname')
      assert.equal(sb.level, 1)
      assert.equal(sb.raidDisks, 2)
      assert.equal(sb.dataOffset, 2048n)
      assert.equal(sb.superOffset, 8n)
      assert.equal(sb.events, 17n)
      assert.equal(sb.resyncOffset, 0xffffffffffffffffn)
      assert.equal(sb.bblogSize, 8)
      assert.equal(sb.bblogOffset, 16)
      assert.equal(sb.maxDev, 128)
      assert.deepEqual(sb.devRoles.slice(0, 3), [0, 1, 0xffff])
      assert.equal(mdTimeToDate(sb.ctime).toISOString(), '2024-08-11T17:23:26.000Z')
    })
  })

  describe('makeSuperblock', () => {
    it('defaults to a clean v1.2 superblock with maxDev = devRoles.length', () => {
      const roles = [0, 1, 2]
      const uuid = seq16(1)
      const sb = makeSuperblock({setUuid: uuid, level: 5, raidDisks: 3, devNumber: 1, devRoles: roles})
      assert.equal(sb.magic, SB_MAGIC)
      assert.equal(sb.majorVersion, 1)
      assert.equal(sb.superOffset, 8n)
      assert.equal(sb.resyncOffset, 0xffffffffffffffffn)
      assert.equal(sb.maxDev, 3)
      assert.equal(sb.featureMap, 0)
      assert.equal(sb.events, 0n)
      assert.deepEqual(sb.deviceUuid, new Uint8Array(16))
      roles.push(9)
      uuid[0] = 0xee
      assert.deepEqual(sb.devRoles, [0, 1, 2], 'roles are copied')
      assert.equal(sb.setUuid[0], 1, 'uuid is copied')
    })
  })

  describe('encode rejects what cannot be stored', () => {
    const base = (): Superblock => raid5Member(0)
    it('uuid lengths', () => {
      assert.throws(() => encodeSuperblock({...base(), setUuid: new Uint8Array(15)}), RangeError)
      assert.throws(() => encodeSuperblock({...base(), deviceUuid: new Uint8Array(17)}), RangeError)
    })
    it('a name over 32 bytes', () => {
      assert.doesNotThrow(() => encodeSuperblock({...base(), setName: 'x'.repeat(32)}))
      assert.throws(() => encodeSuperblock({...base(), setName: 'x'.repeat(33)}), RangeError)
    })
    it('maxDev out of range or smaller than the roles list', () => {
      assert.throws(() => encodeSuperblock({...base(), maxDev: 1921, devRoles: []}), RangeError)
      assert.throws(() => encodeSuperblock({...base(), maxDev: 2}), RangeError)
    })
    it('out-of-range integers', () => {
      assert.throws(() => encodeSuperblock({...base(), raidDisks: 2 ** 32}), RangeError)
      assert.throws(() => encodeSuperblock({...base(), events: -1n}), RangeError)
    })
  })

  describe('problems', () => {
    const hex8 = /0x[0-9a-f]{8}/
    it('zeroed block: bad magic only', () => {
      const {problems} = decodeSuperblock(new Uint8Array(4096))
      assert.deepEqual(problems, [{code: 'bad-magic', message: 'bad magic 0x00000000 (expected 0xa92b4efc)'}])
    })
    it('flipped byte: bad checksum with expected and stored values', () => {
      const b = encodeSuperblock(raid5Member(1))
      const stored = b.readUInt32LE(216)
      b[100] ^= 0x01
      const {problems, computedCsum} = decodeSuperblock(b)
      assert.deepEqual(
        problems.map(p => p.code),
        ['bad-checksum'],
      )
      assert.match(problems[0].message, hex8)
      assert.equal(
        problems[0].message,
        `checksum expected 0x${computedCsum.toString(16).padStart(8, '0')} got 0x${stored.toString(16).padStart(8, '0')}`,
      )
    })
    it('flipped byte in a role and in pad3 are caught (both are summed)', () => {
      for (const off of [256 + 2 * 3, 230]) {
        const b = encodeSuperblock(raid5Member(1))
        b[off] ^= 0x80
        assert.deepEqual(
          decodeSuperblock(b).problems.map(p => p.code),
          ['bad-checksum'],
          `offset ${off}`,
        )
      }
    })
    it('bytes after dev_roles[max_dev] are not summed', () => {
      const b = encodeSuperblock(raid5Member(1))
      b[256 + 2 * 5] = 0x77
      b[4095] = 0x77
      assert.deepEqual(decodeSuperblock(b).problems, [])
    })
    it('short buffers never throw', () => {
      const full = encodeSuperblock(raid5Member(1))
      for (const n of [0, 1, 100, 255]) {
        const {problems} = decodeSuperblock(full.subarray(0, n))
        assert.equal(problems[0].code, 'short', `length ${n}`)
      }
      // Header complete, roles cut off.
      const {problems} = decodeSuperblock(full.subarray(0, 260))
      assert.ok(problems.some(p => p.code === 'short'))
      // Header and roles complete: nothing missing.
      assert.deepEqual(decodeSuperblock(full.subarray(0, 266)).problems, [])
    })
    it('bad version, super_offset, max_dev and unknown features', () => {
      const sb = raid5Member(1)
      const codes = (s: Superblock): string[] => decodeSuperblock(encodeSuperblock(s)).problems.map(p => p.code)
      assert.deepEqual(codes({...sb, majorVersion: 2}), ['bad-version'])
      assert.deepEqual(codes({...sb, superOffset: 0n}), ['bad-super-offset'])
      assert.deepEqual(codes({...sb, featureMap: 0x200 | 0x8000}), ['bad-features'])
      // max_dev can only be made too large by hand: encode refuses it.
      const b = encodeSuperblock(sb)
      b.writeUInt32LE(5000, 220)
      const d = decodeSuperblock(b)
      assert.ok(d.problems.some(p => p.code === 'bad-max-dev'))
      assert.equal(d.sb.maxDev, 5000)
      assert.equal(d.sb.devRoles.length, 1920)
    })
    it('random garbage never throws', () => {
      let x = 12345
      for (let i = 0; i < 200; i++) {
        const b = new Uint8Array((i * 37) % 4200)
        for (let j = 0; j < b.length; j++) b[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24
        if (i % 2 && b.length >= 8) new DataView(b.buffer).setUint32(0, SB_MAGIC, true)
        assert.doesNotThrow(() => decodeSuperblock(b))
      }
    })
  })

  describe('where each minor version keeps it', () => {
    // super_1_load: v1.0 at (sectors - 16) rounded down to a multiple of 8; v1.1 at 0; v1.2 at 8
    it('v1.0 at least 8 KiB and less than 12 KiB before the end, 4 KiB aligned; v1.1 at 0; v1.2 at sector 8', () => {
      assert.deepEqual(superblockPlaces(18432 * 512), [
        {version: '1.0', sector: 18416n},
        {version: '1.1', sector: 0n},
        {version: '1.2', sector: 8n},
      ])
      // 1003 sectors: 987 rounded down to 984; a device of odd bytes counts whole sectors only
      assert.equal(superblockPlaces(1003 * 512 + 100)[0].sector, 984n)
    })
    it('places that do not fit a device are left out', () => {
      assert.deepEqual(
        superblockPlaces(12 * 512).map(p => p.version),
        ['1.1'],
      )
      assert.deepEqual(superblockPlaces(7 * 512), [])
    })
  })

  describe('time words', () => {
    it('writes whole seconds with the top 24 bits zero, as mdadm does (Linux 6.1 reads the u64 as seconds)', () => {
      const v = mdTime(new Date('2024-05-06T07:08:09.250Z'))
      assert.equal(v, 1714979289n)
      assert.equal(v >> 40n, 0n)
      assert.equal(mdTimeToDate(v).toISOString(), '2024-05-06T07:08:09.000Z')
    })
    it('still reads microseconds in the top 24 bits when another writer put them there', () => {
      const v = (250000n << 40n) | 1714979289n
      assert.equal(mdTimeToDate(v).toISOString(), '2024-05-06T07:08:09.250Z')
    })
  })

  // mdadm 4.2 prints nothing for journal_tail (the field shares recovery_offset's slot and is shown
  // only as "Recovery Offset" when MD_FEATURE_RECOVERY_OFFSET is set, which a journal never has),
  // and its "Array State" counts only roles 0..raid_disks-1, so the journal shows as "AAAA" on
  // every device, the journal included.
  describe('interop: mdadm --examine', function () {
    let dir = ''
    before(function () {
      requireOrSkip(this)
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-sb-'))
    })
    after(() => {
      if (dir) fs.rmSync(dir, {recursive: true, force: true})
    })

    function examine(sb: Superblock): string {
      const img = path.join(dir, `dev${sb.devNumber}.img`)
      fs.writeFileSync(img, '')
      fs.truncateSync(img, 64 * 1024 * 1024) // sparse
      const fd = fs.openSync(img, 'r+')
      fs.writeSync(fd, encodeSuperblock(sb), 0, 4096, SB_OFFSET_BYTES)
      fs.closeSync(fd)
      const res = spawnSync('mdadm', ['--examine', img], {encoding: 'utf8', env: {...process.env, TZ: 'UTC'}})
      assert.equal(res.status, 0, res.stderr)
      return res.stdout
    }
    const line = (out: string, key: string): string => {
      const m = new RegExp(`^\\s*${key} : (.*)$`, 'm').exec(out)
      assert.ok(m, `no '${key}' line in:\n${out}`)
      return m[1].trim()
    }

    it('accepts a RAID5 member with the journal feature', () => {
      const sb = raid5Member(1)
      const out = examine(sb)
      const csum = encodeSuperblock(sb).readUInt32LE(216)
      assert.equal(line(out, 'Checksum'), `${csum.toString(16)} - correct`)
      assert.equal(line(out, 'Magic'), 'a92b4efc')
      assert.equal(line(out, 'Version'), '1.2')
      assert.equal(line(out, 'Feature Map'), '0x200')
      assert.equal(line(out, 'Array UUID'), '3a1f0c44:9b2e7d10:55aa66bb:0f1e2d3c')
      assert.equal(line(out, 'Name'), 'r5ctl:test')
      assert.equal(line(out, 'Creation Time'), 'Mon May  6 07:08:09 2024')
      assert.equal(line(out, 'Raid Level'), 'raid5')
      assert.equal(line(out, 'Raid Devices'), '4')
      assert.equal(line(out, 'Data Offset'), '2048 sectors')
      assert.equal(line(out, 'Super Offset'), '8 sectors')
      assert.equal(line(out, 'State'), 'clean')
      assert.equal(line(out, 'Device UUID'), formatUuid(seq16(0x41)))
      assert.equal(line(out, 'Events'), '42')
      assert.equal(line(out, 'Layout'), 'left-symmetric')
      assert.equal(line(out, 'Chunk Size'), '64K')
      assert.equal(line(out, 'Device Role'), 'Active device 1')
      assert.match(line(out, 'Array State'), /^AAAA /)
      assert.doesNotMatch(out, /Journal Tail|Recovery Offset/)
    })

    it('shows the journal device as "Journal"', () => {
      const out = examine(raid5Member(4))
      assert.match(line(out, 'Checksum'), / - correct$/)
      assert.equal(line(out, 'Feature Map'), '0x200')
      assert.equal(line(out, 'Device Role'), 'Journal')
      assert.match(line(out, 'Array State'), /^AAAA /)
    })

    it("reports our computed checksum as mdadm's expected one after a corruption", () => {
      const sb = raid5Member(2)
      const enc = encodeSuperblock(sb)
      const good = enc.readUInt32LE(216)
      const bad = {...sb, events: 43n}
      const want = decodeSuperblock(encodeSuperblock(bad)).computedCsum
      // Same bytes as `bad` but with the old checksum left in place.
      const img = path.join(dir, 'stale.img')
      fs.writeFileSync(img, '')
      fs.truncateSync(img, 64 * 1024 * 1024)
      const b = encodeSuperblock(bad)
      b.writeUInt32LE(good, 216)
      const fd = fs.openSync(img, 'r+')
      fs.writeSync(fd, b, 0, 4096, SB_OFFSET_BYTES)
      fs.closeSync(fd)
      const out = spawnSync('mdadm', ['--examine', img], {encoding: 'utf8'}).stdout
      assert.equal(line(out, 'Checksum'), `${good.toString(16)} - expected ${want.toString(16)}`)
      const d = decodeSuperblock(b)
      assert.deepEqual(
        d.problems.map(p => p.code),
        ['bad-checksum'],
      )
    })

    it('RAID6 layout names match mdadm for every layout', () => {
      for (const layout of [0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 18, 19, 20]) {
        const sb = {...raid5Member(0), level: 6, layout}
        assert.equal(line(examine(sb), 'Layout'), layoutName(6, layout), `layout ${layout}`)
      }
      for (const layout of [0, 1, 2, 3, 4, 5]) {
        assert.equal(line(examine({...raid5Member(0), layout}), 'Layout'), layoutName(5, layout), `raid5 layout ${layout}`)
      }
    })
  })
})
