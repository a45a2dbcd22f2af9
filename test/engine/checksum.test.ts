import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {DEFAULT_CRC, crc32c, crc32cPages, crc32cRaw, crc32cRawReference, crcFor, sbCsum, uuidSeed} from '../../src/engine/checksum.js'
import {refRaw, goldenKernelSuperblock, rng, randomBytes, u32} from '../helpers/reference.js'

// ---- independent references, written from the definitions, sharing no code with the module ----

/** calc_sb_1_csum the obvious way, in BigInt. */
function refSbCsum(sb: Uint8Array, maxDev: number): number {
  const b = Uint8Array.from(sb.subarray(0, 256 + 2 * maxDev))
  b.fill(0, 216, 220)
  let sum = 0n
  let i = 0
  for (; i + 4 <= b.length; i += 4) sum += BigInt(b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + (BigInt(b[i + 3]) << 24n)
  if (b.length - i === 2) sum += BigInt(b[i] | (b[i + 1] << 8))
  return Number(((sum & 0xffffffffn) + (sum >> 32n)) & 0xffffffffn)
}

// ---- interop helpers ----

function mdadmAvailable(): boolean {
  const r = spawnSync('mdadm', ['--version'], {encoding: 'utf8'})
  return !r.error && r.status === 0
}
function requireOrSkip(ctx: Mocha.Context): void {
  if (mdadmAvailable()) return
  if (process.env.R5CTL_REQUIRE_INTEROP === '1') assert.fail('mdadm is not installed but R5CTL_REQUIRE_INTEROP=1')
  ctx.skip()
}

describe('checksum', () => {
  describe('standard CRC32C (RFC 3720 B.4 vectors)', () => {
    const vectors: Array<[string, Uint8Array, number]> = [
      ['32 x 0x00', new Uint8Array(32), 0x8a9136aa],
      ['32 x 0xff', new Uint8Array(32).fill(0xff), 0x62a8ab43],
      ['ascending 0..31', Uint8Array.from({length: 32}, (_, i) => i), 0x46dd794e],
      ['descending 31..0', Uint8Array.from({length: 32}, (_, i) => 31 - i), 0x113fdb5c],
      ['"123456789"', new TextEncoder().encode('123456789'), 0xe3069283],
    ]
    for (const [name, buf, want] of vectors) {
      it(`${name} -> 0x${want.toString(16)}`, () => {
        assert.equal(crc32c(buf), want)
        assert.equal(~refRaw(0xffffffff, buf) >>> 0, want, 'bitwise reference disagrees with the RFC')
        assert.equal(~crc32cRawReference(0xffffffff, buf) >>> 0, want)
      })
    }
    it('empty input', () => {
      assert.equal(crc32c(new Uint8Array(0)), 0)
    })
  })

  describe('raw kernel convention crc32c_le(seed, buf)', () => {
    it('is the identity on empty input for any seed', () => {
      for (const s of [0, 1, 0xffffffff, 0x80000000, 0x12345678]) {
        assert.equal(crc32cRaw(s, new Uint8Array(0)), s >>> 0)
        assert.equal(crc32cRawReference(s, new Uint8Array(0)), s >>> 0)
      }
    })
    it('matches the bitwise reference on random buffers and seeds', () => {
      const r = rng(1)
      for (let i = 0; i < 200; i++) {
        const buf = randomBytes(r, (r() * 600) | 0)
        const seed = u32(r)
        const want = refRaw(seed, buf)
        assert.equal(crc32cRaw(seed, buf), want, `len ${buf.length} seed ${seed}`)
        assert.equal(crc32cRawReference(seed, buf), want, `reference len ${buf.length} seed ${seed}`)
      }
    })
    it('chains: raw(raw(s, a), b) = raw(s, a ++ b)', () => {
      const r = rng(2)
      const a = randomBytes(r, 777)
      const b = randomBytes(r, 4096)
      const ab = new Uint8Array(a.length + b.length)
      ab.set(a)
      ab.set(b, a.length)
      const s = u32(r)
      assert.equal(crc32cRaw(crc32cRaw(s, a), b), crc32cRaw(s, ab))
    })
    it('uuidSeed = crc32c_le(~0, uuid)', () => {
      const r = rng(3)
      for (let i = 0; i < 20; i++) {
        const u = randomBytes(r, 16)
        assert.equal(uuidSeed(u), refRaw(0xffffffff, u))
      }
    })
  })

  describe(`backend (${DEFAULT_CRC.name})`, () => {
    it('names itself', () => {
      assert.ok(['native addon (sse4.2, batched)', '@node-rs/crc32', 'crc-32 (js)'].includes(DEFAULT_CRC.name), DEFAULT_CRC.name)
    })
    it('agrees with the pure-JS reference on 1000 random buffers (lengths 0..9000, odd seeds, unaligned views)', () => {
      const r = rng(4)
      const pool = randomBytes(r, 9000 + 16)
      for (let i = 0; i < 1000; i++) {
        const len = i < 10 ? i : (r() * 9001) | 0
        const off = (r() * 16) | 0
        const view = pool.subarray(off, off + len)
        const seed = (u32(r) | 1) >>> 0
        assert.equal(crc32cRaw(seed, view), crc32cRawReference(seed, view), `len ${len} off ${off} seed ${seed}`)
      }
    })
    it("the module reads no R5CTL_CRC: its default is the same with R5CTL_CRC=js; crcFor('js') is the pure-JS one", () => {
      const mod = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/engine/checksum.js')
      const code = `import(${JSON.stringify(mod)}).then(m => process.stdout.write(m.DEFAULT_CRC.name + ' ' + m.crcFor('js').name))`
      const res = spawnSync(process.execPath, ['-e', code], {env: {...process.env, R5CTL_CRC: 'js'}, encoding: 'utf8'})
      assert.equal(res.status, 0, res.stderr)
      assert.equal(res.stdout, `${DEFAULT_CRC.name} crc-32 (js)`)
    })
    it('every implementation gives the same page checksums', () => {
      const r = rng(6)
      const buf = randomBytes(r, 4096 * 7)
      const sums = (choice: 'auto' | 'node-rs' | 'js') => {
        const out = new Uint32Array(7)
        crcFor(choice).pages(0x12345679, buf, out)
        return Array.from(out)
      }
      assert.deepEqual(sums('js'), sums('auto'))
      assert.deepEqual(sums('node-rs'), sums('auto'))
      assert.equal(crcFor('js'), crcFor('js'), 'one value per choice')
    })
  })

  describe('crc32cPages', () => {
    it('checksums each 4 KiB page independently at outOff', () => {
      const r = rng(5)
      const buf = randomBytes(r, 4096 * 5)
      const seed = u32(r)
      const out = new Uint32Array(8).fill(0xdeadbeef)
      crc32cPages(seed, buf, out, 2)
      assert.equal(out[0], 0xdeadbeef)
      assert.equal(out[1], 0xdeadbeef)
      for (let i = 0; i < 5; i++) assert.equal(out[2 + i], refRaw(seed, buf.subarray(i * 4096, (i + 1) * 4096)), `page ${i}`)
      assert.equal(out[7], 0xdeadbeef)
    })
    it('default outOff is 0 and empty input writes nothing', () => {
      const out = new Uint32Array(1)
      crc32cPages(7, new Uint8Array(4096), out)
      assert.equal(out[0], refRaw(7, new Uint8Array(4096)))
      crc32cPages(7, new Uint8Array(0), new Uint32Array(0))
    })
    it('rejects partial pages and a too-small output', () => {
      assert.throws(() => crc32cPages(0, new Uint8Array(4095), new Uint32Array(1)), RangeError)
      assert.throws(() => crc32cPages(0, new Uint8Array(8192), new Uint32Array(1)), RangeError)
      assert.throws(() => crc32cPages(0, new Uint8Array(4096), new Uint32Array(1), 1), RangeError)
    })
  })

  describe('sbCsum (calc_sb_1_csum)', () => {
    it('matches an independent implementation on random superblocks (odd and even max_dev)', () => {
      const r = rng(6)
      for (let i = 0; i < 300; i++) {
        const maxDev = i < 4 ? i : (r() * 1921) | 0
        const b = randomBytes(r, 4096)
        assert.equal(sbCsum(b, maxDev), refSbCsum(b, maxDev), `maxDev ${maxDev}`)
      }
    })
    it('folds the carry for an all-0xff block (largest possible sum)', () => {
      const b = new Uint8Array(4096).fill(0xff)
      for (const maxDev of [0, 1, 383, 384, 1919, 1920]) assert.equal(sbCsum(b, maxDev), refSbCsum(b, maxDev), `maxDev ${maxDev}`)
    })
    it('ignores the stored sb_csum field', () => {
      const b = goldenKernelSuperblock()
      const c = sbCsum(b, 128)
      b.writeUInt32LE(0x12345678, 216)
      assert.equal(sbCsum(b, 128), c)
    })
    it('rejects a buffer shorter than 256 + 2*max_dev', () => {
      assert.throws(() => sbCsum(new Uint8Array(300), 23), RangeError)
      assert.throws(() => sbCsum(new Uint8Array(300), -1), RangeError)
    })
    it('reproduces the checksum of a superblock written by mdadm and the kernel', () => {
      const b = goldenKernelSuperblock()
      assert.equal(b.readUInt32LE(216), 0x6064636f)
      assert.equal(sbCsum(b, b.readUInt32LE(220)), 0x6064636f)
      assert.equal(refSbCsum(b, 128), 0x6064636f)
    })

    describe('mdadm --examine as the oracle', function () {
      let dir = ''
      before(function () {
        requireOrSkip(this)
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-csum-'))
      })
      after(() => {
        if (dir) fs.rmSync(dir, {recursive: true, force: true})
      })

      /** Write sb bytes at 4 KiB of a sparse 1 MiB image and return mdadm's "Checksum" line. */
      function examineChecksum(sb: Uint8Array): string {
        const img = path.join(dir, 'sb.img')
        fs.writeFileSync(img, '')
        fs.truncateSync(img, 1 << 20)
        const fd = fs.openSync(img, 'r+')
        fs.writeSync(fd, sb, 0, sb.length, 4096)
        fs.closeSync(fd)
        const res = spawnSync('mdadm', ['--examine', img], {encoding: 'utf8'})
        assert.equal(res.status, 0, res.stderr)
        const m = /^\s*Checksum : (.*)$/m.exec(res.stdout)
        assert.ok(m, `no Checksum line in:\n${res.stdout}`)
        return m[1].trim()
      }

      it('says "correct" for the golden superblock', () => {
        const b = goldenKernelSuperblock()
        assert.equal(examineChecksum(b), '6064636f - correct')
      })

      it('computes the same checksum as sbCsum for random superblocks', () => {
        const r = rng(7)
        for (let i = 0; i < 12; i++) {
          // Random bytes everywhere that mdadm's examine only prints or sums; fields that steer its
          // loading or arithmetic are pinned to sane values.
          const b = Buffer.from(randomBytes(r, 4096))
          b.writeUInt32LE(0xa92b4efc, 0) // magic
          b.writeUInt32LE(1, 4) // major_version
          b.writeUInt32LE(0x200, 8) // features: journal only (bitmap would make mdadm read more)
          b.fill(0, 32, 64) // set_name printable
          b.writeBigUInt64LE(1700000000n, 64) // ctime
          b.writeUInt32LE(5, 72) // level
          b.writeUInt32LE((r() * 4) | 0, 76) // layout
          b.writeBigUInt64LE(1000n, 80) // size
          b.writeUInt32LE(128, 88)
          b.writeUInt32LE(4, 92)
          b.writeBigUInt64LE(2048n, 128)
          b.writeBigUInt64LE(1000n, 136)
          b.writeBigUInt64LE(8n, 144) // super_offset
          b.writeUInt8(0, 184) // devflags
          b.writeUInt16LE(0, 186) // no bad-block log
          b.writeBigUInt64LE(1700000001n, 192) // utime
          const maxDev = i === 0 ? 1920 : i === 1 ? 1 : (r() * 1921) | 0
          b.writeUInt32LE(maxDev, 220)
          if (i === 0) b.fill(0xff, 224) // large sum: exercises the carry fold
          b.writeUInt32LE((r() * maxDev) | 0, 160) // dev_number
          const want = sbCsum(b, maxDev)
          assert.equal(want, refSbCsum(b, maxDev))
          b.writeUInt32LE((want ^ 0x5a5a5a5a) >>> 0, 216)
          const line = examineChecksum(b)
          const m = /^([0-9a-f]+) - expected ([0-9a-f]+)$/.exec(line)
          assert.ok(m, `unexpected Checksum line '${line}'`)
          assert.equal(parseInt(m[2], 16), want, `maxDev ${maxDev}`)
          b.writeUInt32LE(want, 216)
          assert.equal(examineChecksum(b), `${want.toString(16)} - correct`)
        }
      })
    })
  })
})
