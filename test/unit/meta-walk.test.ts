/**
 * The extent pre-walk through the addon (scan.ts walkMetaNative over native walkMeta) against the
 * JavaScript meta-only walk (scanLog with metaOnly), which is the reference: on file-backed rings
 * holding chains of io units, the native walk followed by the JavaScript walk from where it stops
 * must give the same units (position, pages, seq, empty or not), the same stop (code, position,
 * expected seq) and the same refusal (a payload outside the array) as the JavaScript walk alone.
 * Chains break at a random unit in every way the meta block checks know (meta-blocks.ts mutate,
 * re-checksummed half of the time), with payload locations outside the array, misaligned or past
 * 2^53, with units that do not fit in the ring, a chain that wraps around the ring's end, a ring
 * that the log fills completely, a ring whose size is not whole pages, a file cut short, and no
 * payload limits at all. Each case also checks that the native walk did take the units before the
 * break, so a walk that accepts nothing cannot pass.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {nativeWalkMeta} from '../../src/engine/checksum.js'
import {DeviceWrapper, FileDevice, MemDevice, type BlockDevice} from '../../src/engine/device.js'
import {BLOCK_SIZE, MetaColumns, PAYLOAD_FLUSH, encodeMetaBlock, type Payload} from '../../src/engine/format/meta.js'
import {Ring} from '../../src/engine/journal/ring.js'
import {scanLog, setNativeMetaWalk, walkMetaNative, type PayloadLimits} from '../../src/engine/journal/scan.js'
import {SEED, mutate, randomPayloads, rechecksum} from '../helpers/meta-blocks.js'
import {rng} from '../helpers/reference.js'
import {skipWithoutNative} from '../helpers/addon.js'

const LIMITS: PayloadLimits = {arraySectors: 1 << 24, memberSectors: 1 << 22, device: 'journal.img'}

interface Outcome {
  units: string[]
  stop: string | null
  error: string | null
}

/** the JavaScript meta-only walk from `pos` (the reference, or the rest after the native walk) */
function jsWalk(ring: Ring, pos: number, out: Outcome, from?: {seq: bigint | undefined; walked: number}): void {
  try {
    for (const u of scanLog(ring, SEED, pos, {
      metaOnly: true,
      columns: new MetaColumns(),
      firstSeq: from?.seq,
      startWalked: from?.walked,
      onStop: s => {
        out.stop = `${s.code} at ${s.position}, expected seq ${s.expectedSeq}`
      },
    })) {
      out.units.push(`${u.position}+${u.pages} seq ${u.seq}${u.cols!.count === 0 ? ' empty' : ''}`)
    }
  } catch (e) {
    out.error = (e as Error).message
  }
}

function reference(ring: Ring, tail: number): Outcome {
  const out: Outcome = {units: [], stop: null, error: null}
  const old = setNativeMetaWalk(false)
  try {
    assert.equal(
      walkMetaNative(ring, SEED, tail, () => assert.fail('native walk while turned off')),
      null,
    )
    jsWalk(ring, tail, out)
  } finally {
    setNativeMetaWalk(old)
  }
  return out
}

/**
 * The native walk, then the JavaScript walk from where it stopped; how many units the native one took
 * and how many of them had no payloads (it counts those per batch).
 */
function nativeThenJs(ring: Ring, tail: number): {out: Outcome; native: number; nativeEmpty: number} {
  const out: Outcome = {units: [], stop: null, error: null}
  let native = 0
  let nativeEmpty = 0
  const point = walkMetaNative(ring, SEED, tail, (pos, pages, n, firstSeq, empty) => {
    for (let i = 0; i < n; i++) out.units.push(`${pos[i]}+${pages[i]} seq ${firstSeq + BigInt(i)}`)
    native += n
    nativeEmpty += empty
  })
  assert.ok(point, 'no native walk on a plain file with the addon loaded')
  jsWalk(ring, point.position, out, {seq: point.seq, walked: point.walked})
  return {out, native, nativeEmpty}
}

/** the units without their "empty" marks (the native walk counts those per batch instead) */
function withoutEmpty(units: string[]): string[] {
  return units.map(u => u.replace(/ empty$/, ''))
}

interface Chain {
  file: string
  ringSectors: number
  tail: number
}

/**
 * Write a chain of `count` io units into a fresh ring file: meta blocks with random payloads (data
 * pages are not read by the walk and stay zero); `edit(i, page)` may change unit i's block (return
 * true to re-checksum it).
 */
function writeChain(
  dir: string,
  name: string,
  r: () => number,
  opts: {
    ringSectors: number
    tail: number
    count: number
    firstSeq: bigint
    payloads?: (i: number) => Payload[]
    edit?: (i: number, page: Uint8Array) => void
    fileBytes?: number
  },
): Chain {
  const file = path.join(dir, name)
  const base = 4096
  const fd = fs.openSync(file, 'w+')
  try {
    fs.ftruncateSync(fd, base + opts.ringSectors * 512)
    let pos = opts.tail
    for (let i = 0; i < opts.count; i++) {
      const payloads = opts.payloads?.(i) ?? randomPayloads(r, {maxPayloads: 40, location: rr => BigInt(Math.floor(rr() * 2 ** 18)) * 8n})
      const page = encodeMetaBlock({seq: opts.firstSeq + BigInt(i), position: BigInt(pos), payloads}, SEED)
      opts.edit?.(i, page)
      // a block that straddles the ring's end is written in two parts, as the ring reads it
      const first = Math.min(BLOCK_SIZE, (opts.ringSectors - pos) * 512)
      fs.writeSync(fd, page, 0, first, base + pos * 512)
      if (first < BLOCK_SIZE) fs.writeSync(fd, page, first, BLOCK_SIZE - first, base)
      let pages = 0
      for (const p of payloads) if (p.type !== PAYLOAD_FLUSH) pages += p.sizeSectors / 8
      pos = (pos + 8 * (1 + pages)) % opts.ringSectors
    }
    if (opts.fileBytes !== undefined) fs.ftruncateSync(fd, opts.fileBytes)
  } finally {
    fs.closeSync(fd)
  }
  return {file, ringSectors: opts.ringSectors, tail: opts.tail}
}

function ringOf(dev: BlockDevice, ringSectors: number, limits: PayloadLimits | null = LIMITS): Ring {
  const ring = new Ring(dev, 4096, ringSectors)
  ring.payloadLimits = limits
  return ring
}

/** compare both walks over the chain's file; returns the native walk's unit count */
function compare(chain: Chain, why: string, limits: PayloadLimits | null = LIMITS): number {
  const dev = FileDevice.open(chain.file, {writable: false})
  try {
    const ring = ringOf(dev, chain.ringSectors, limits)
    const ref = reference(ring, chain.tail)
    const {out, native, nativeEmpty} = nativeThenJs(ring, chain.tail)
    assert.deepEqual(withoutEmpty(out.units), withoutEmpty(ref.units), `${why}: units`)
    const refEmpty = ref.units.filter(u => u.endsWith(' empty')).length
    const restEmpty = out.units.filter(u => u.endsWith(' empty')).length
    assert.equal(nativeEmpty + restEmpty, refEmpty, `${why}: units without payloads`)
    assert.equal(out.stop, ref.stop, `${why}: stop`)
    assert.equal(out.error, ref.error, `${why}: refusal`)
    return native
  } finally {
    dev.close()
  }
}

describe('native meta walk (walkMetaNative) against the JavaScript meta-only walk', function () {
  let dir: string
  before(function () {
    skipWithoutNative(this, nativeWalkMeta !== null, 'walkMeta')
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-metawalk-'))
  })
  after(() => {
    if (dir) fs.rmSync(dir, {recursive: true, force: true})
  })

  it('takes a whole valid chain, then stops where the reference does (stale or empty ring after the head)', () => {
    const r = rng(11)
    for (let t = 0; t < 40; t++) {
      const count = 1 + Math.floor(r() * 30)
      const chain = writeChain(dir, `valid${t}.img`, r, {
        ringSectors: 1 << 16,
        tail: Math.floor(r() * 64) * 8,
        count,
        firstSeq: BigInt(Math.floor(r() * 2 ** 40)),
      })
      const native = compare(chain, `chain ${t}`)
      assert.equal(native, count, `chain ${t}: the native walk took ${native} of ${count} valid units`)
    }
  })

  it('takes a chain longer than one batch of the addon (1024 units) whole, across the batch boundaries', () => {
    const r = rng(13)
    const count = 2600
    const chain = writeChain(dir, 'long.img', r, {
      ringSectors: 16 * count + 64,
      tail: 32,
      count,
      firstSeq: 2n ** 32n - 1000n,
      payloads: i => (i % 7 === 0 ? [] : [{type: 0, flags: 0, sizeSectors: 8, location: BigInt(8 * (i % 500)), checksums: [i]}]),
    })
    assert.equal(compare(chain, 'long chain'), count)
  })

  it('agrees when one unit of the chain is broken in any field (1000 chains, half re-checksummed)', () => {
    const r = rng(2025)
    let brokenEarly = 0
    for (let t = 0; t < 1000; t++) {
      const count = 2 + Math.floor(r() * 12)
      const at = Math.floor(r() * count)
      let what = ''
      const chain = writeChain(dir, 'broken.img', r, {
        ringSectors: 1 << 15,
        tail: 8 * Math.floor(r() * 100),
        count,
        firstSeq: BigInt(Math.floor(r() * 2 ** 33)),
        edit: (i, page) => {
          if (i !== at) return
          what = mutate(page, r)
          if (r() < 0.5) rechecksum(page)
        },
      })
      const native = compare(chain, `chain ${t}, unit ${at} (${what})`)
      assert.ok(native >= at, `chain ${t}: the native walk stopped at ${native}, before the broken unit ${at}`)
      if (native === at) brokenEarly++
    }
    assert.ok(brokenEarly > 500, `only ${brokenEarly} of 1000 breaks stopped the native walk`)
  })

  it('hands a payload outside the array, misaligned or past 2^53 to the JavaScript walk, which refuses it', () => {
    const bad: [string, Payload][] = [
      ['data past the array end', {type: 0, flags: 0, sizeSectors: 8, location: BigInt(LIMITS.arraySectors), checksums: [1]}],
      ['data whose last page is past the end', {type: 0, flags: 0, sizeSectors: 16, location: BigInt(LIMITS.arraySectors - 8), checksums: [1, 2]}],
      ['data misaligned', {type: 0, flags: 0, sizeSectors: 8, location: 12n, checksums: [1]}],
      ['parity past the members', {type: 1, flags: 0, sizeSectors: 8, location: BigInt(LIMITS.memberSectors), checksums: [1]}],
      ['parity at 2^53', {type: 1, flags: 0, sizeSectors: 8, location: 2n ** 53n, checksums: [1]}],
      ['data at 2^64 - 8', {type: 0, flags: 0, sizeSectors: 8, location: 2n ** 64n - 8n, checksums: [1]}],
    ]
    const good: [string, Payload][] = [
      ['data ending at the array end', {type: 0, flags: 0, sizeSectors: 8, location: BigInt(LIMITS.arraySectors - 8), checksums: [1]}],
      ['parity of the last stripe', {type: 1, flags: 0, sizeSectors: 16, location: BigInt(LIMITS.memberSectors - 8), checksums: [1, 2]}],
    ]
    const r = rng(5)
    for (const [what, p] of [...bad, ...good]) {
      const chain = writeChain(dir, 'loc.img', r, {
        ringSectors: 1 << 14,
        tail: 0,
        count: 4,
        firstSeq: 100n,
        payloads: i =>
          i === 2
            ? [{type: 0, flags: 0, sizeSectors: 8, location: 8n, checksums: [3]}, p]
            : randomPayloads(r, {maxPayloads: 10, location: () => 64n}),
      })
      const native = compare(chain, what)
      const refused = bad.some(([w]) => w === what)
      assert.equal(native, refused ? 2 : 4, `${what}: native units`)
      // the refusal itself is the JavaScript walk's, and it happened
      const dev = FileDevice.open(chain.file, {writable: false})
      try {
        assert.equal(reference(ringOf(dev, chain.ringSectors), 0).error !== null, refused, what)
      } finally {
        dev.close()
      }
    }
  })

  it('checks no location when the ring has no payload limits', () => {
    const r = rng(6)
    const chain = writeChain(dir, 'nolimits.img', r, {
      ringSectors: 1 << 14,
      tail: 0,
      count: 3,
      firstSeq: 1n,
      payloads: () => [{type: 0, flags: 0, sizeSectors: 8, location: 2n ** 60n + 4n, checksums: [1]}],
    })
    assert.equal(compare(chain, 'no limits', null), 3)
  })

  it('agrees across the ring end: units that wrap, a meta block that straddles it, a log that fills the ring', () => {
    const r = rng(77)
    for (let t = 0; t < 60; t++) {
      // ring sizes that are whole pages, and some that are not (a meta block can then straddle the end)
      const ringSectors = 8 * (40 + Math.floor(r() * 60)) + (t % 3 === 0 ? Math.floor(r() * 8) : 0)
      const count = 1 + Math.floor(r() * 25)
      const chain = writeChain(dir, 'wrap.img', r, {
        ringSectors,
        tail: 8 * Math.floor(r() * (ringSectors / 8 - 1)),
        count,
        firstSeq: 7n,
        payloads: () => randomPayloads(r, {maxPayloads: 6, location: rr => BigInt(Math.floor(rr() * 1000)) * 8n}),
      })
      compare(chain, `ring ${ringSectors}, ${count} units from ${chain.tail}`)
    }
  })

  it('agrees on malformed payloads written with a valid checksum (sizes, types, a payload past meta_size)', () => {
    const cases: [string, (page: Uint8Array) => void][] = [
      ['data size 12 sectors', pg => new DataView(pg.buffer, pg.byteOffset).setUint32(32 + 4, 12, true)],
      ['data size 0', pg => new DataView(pg.buffer, pg.byteOffset).setUint32(32 + 4, 0, true)],
      ['type 3', pg => new DataView(pg.buffer, pg.byteOffset).setUint16(32, 3, true)],
      [
        'flush size 12 bytes',
        pg => {
          const dv = new DataView(pg.buffer, pg.byteOffset)
          dv.setUint16(32, 2, true)
          dv.setUint32(36, 12, true)
        },
      ],
      [
        'meta_size cuts the last payload',
        pg => {
          const dv = new DataView(pg.buffer, pg.byteOffset)
          dv.setUint32(12, dv.getUint32(12, true) - 4, true)
        },
      ],
      ['meta_size past the block', pg => new DataView(pg.buffer, pg.byteOffset).setUint32(12, 4100, true)],
    ]
    const r = rng(10)
    for (const [what, edit] of cases) {
      const chain = writeChain(dir, 'malformed.img', r, {
        ringSectors: 1 << 14,
        tail: 0,
        count: 4,
        firstSeq: 9n,
        payloads: () => [
          {type: 0, flags: 0, sizeSectors: 8, location: 8n, checksums: [3]},
          {type: 1, flags: 0, sizeSectors: 8, location: 16n, checksums: [4]},
        ],
        edit: (i, page) => {
          if (i !== 1) return
          edit(page)
          rechecksum(page)
        },
      })
      assert.equal(compare(chain, what), 1, `${what}: native units`)
    }
  })

  it('agrees on a log that fills the ring exactly (the walk comes back to the tail)', () => {
    const r = rng(12)
    for (const tail of [0, 16, 16 * 9]) {
      const chain = writeChain(dir, 'full.img', r, {
        ringSectors: 16 * 10,
        tail,
        count: 10,
        firstSeq: 3n,
        payloads: i => [{type: 0, flags: 0, sizeSectors: 8, location: BigInt(8 * i), checksums: [i]}],
      })
      compare(chain, `full ring from ${tail}`)
      const dev = FileDevice.open(chain.file, {writable: false})
      try {
        assert.match(reference(ringOf(dev, chain.ringSectors), tail).stop ?? '', /^wrapped /)
      } finally {
        dev.close()
      }
    }
  })

  it('agrees on a unit that does not fit in the ring, and on a file cut short', () => {
    const r = rng(8)
    const many = Array.from({length: 30}, (_, k) => ({type: 0 as const, flags: 0, sizeSectors: 8, location: BigInt(8 * k), checksums: [k]}))
    const tooLarge = writeChain(dir, 'large.img', r, {
      ringSectors: 8 * 20,
      tail: 0,
      count: 2,
      firstSeq: 1n,
      payloads: i => (i === 0 ? many.slice(0, 2) : many),
    })
    assert.equal(compare(tooLarge, 'too large'), 1)
    // the file ends inside the third unit's meta block: the JavaScript walk reports the read error
    const short = writeChain(dir, 'short.img', r, {
      ringSectors: 1 << 12,
      tail: 0,
      count: 3,
      firstSeq: 1n,
      payloads: () => many.slice(0, 1),
      fileBytes: 4096 + 2 * 16 * 512 + 2048,
    })
    assert.equal(compare(short, 'file cut short'), 2)
  })

  it('is used only where reads mean the same: a plain file or a wrapper that leaves reads alone', () => {
    const r = rng(9)
    const chain = writeChain(dir, 'dev.img', r, {ringSectors: 1 << 12, tail: 0, count: 3, firstSeq: 1n})
    const file = FileDevice.open(chain.file, {writable: false})
    try {
      const none = () => assert.fail('no native walk expected')
      assert.ok(
        walkMetaNative(ringOf(new DeviceWrapper(file), chain.ringSectors), SEED, 0, () => {}),
        'a plain wrapper forwards the fd',
      )
      class Tracer extends DeviceWrapper {
        read(buf: Uint8Array, offset: number): void {
          super.read(buf, offset)
        }
      }
      assert.equal(walkMetaNative(ringOf(new Tracer(file), chain.ringSectors), SEED, 0, none), null, 'a wrapper that sees reads')
      const mem = new MemDevice('mem', 4096 + chain.ringSectors * 512, new Uint8Array(fs.readFileSync(chain.file)))
      assert.equal(walkMetaNative(ringOf(mem, chain.ringSectors), SEED, 0, none), null, 'an in-memory device')
      const before = file.stats.reads
      walkMetaNative(ringOf(file, chain.ringSectors), SEED, 0, () => {})
      assert.equal(file.stats.reads - before, 3, 'a read counted for each unit taken')
    } finally {
      file.close()
    }
  })

  it('refuses bad arguments with a RangeError instead of reading anywhere', () => {
    const p = new Float64Array(16)
    const out = new Float64Array(4)
    assert.throws(() => nativeWalkMeta!(-1, p, out, out), RangeError)
    p[1] = 64
    p[2] = 64 // position not inside the ring
    assert.throws(() => nativeWalkMeta!(0, p, out, out), RangeError)
    p[2] = 0.5
    assert.throws(() => nativeWalkMeta!(0, p, out, out), RangeError)
    assert.throws(() => nativeWalkMeta!(0, new Float64Array(4), out, out), RangeError)
    const call = nativeWalkMeta as unknown as (...a: unknown[]) => number
    p[2] = 0
    assert.throws(() => call(0, [0, 64], out, out), TypeError)
    assert.throws(() => call(0, p, [0], out), TypeError)
    assert.throws(() => call(0, p, out, new Int32Array(4)), TypeError)
  })
})
