/**
 * The write path's batched bookkeeping and in-place parity: on RAID4/5/6 (wide arrays for
 * read-modify-write, a DDF layout for Q slot holes), write-through and write-back with a journal
 * small enough for checkpoints and reclaim on a full log,
 *   - (the WASM and JS parity implementations giving the same bytes through the whole write path is
 *     checked on the CLI, test/e2e/engine-options.test.ts: the implementation in use is chosen once
 *     per process; parity.test.ts and parity-arena.test.ts compare the two directly);
 *   - every meta block written is what the reference encoder makes of its decoded contents, and
 *     its checksums are those of the pages that follow it (by the pure-JS CRC reference);
 *   - a batch's member writes are one request per maximal contiguous run, in slot order;
 *   - the array reads back as the model, with consistent parity;
 *   - reusing the parity arena between arrays of other shapes changes nothing.
 */
import assert from 'node:assert/strict'
import {crc32cRawReference, uuidSeed} from '../../../src/engine/checksum.js'
import {DeviceWrapper, MemDevice} from '../../../src/engine/device.js'
import {BLOCK_SIZE, META_MAGIC, PAYLOAD_FLUSH, decodeMetaBlock, encodeMetaBlock} from '../../../src/engine/format/meta.js'
import {decodeSuperblock} from '../../../src/engine/format/superblock.js'
import {reclaimArray, writeData} from '../../../src/engine/index.js'
import {type MemArray, bufferSource, checkParity, cloneDevs, createMemArray, pseudoRandom, readAll} from '../../helpers/model.js'

const KiB = 1024
const MiB = 1 << 20
const DATA_OFFSET = MiB

interface Req {
  dev: string
  kind: 'W' | 'F'
  offset: number
  bytes: Uint8Array | null
}

/** Records every write request (with a copy of its bytes) and flush, in order. */
class Tracer extends DeviceWrapper {
  constructor(
    override readonly inner: MemDevice,
    readonly log: Req[],
  ) {
    super(inner)
  }
  override writev(bufs: Uint8Array[], offset: number): void {
    this.log.push({dev: this.name, kind: 'W', offset, bytes: Buffer.concat(bufs)})
    this.inner.writev(bufs, offset)
  }
  override flush(): void {
    this.log.push({dev: this.name, kind: 'F', offset: 0, bytes: null})
    this.inner.flush()
  }
  override close(): void {}
}

interface Config {
  name: string
  level: 4 | 5 | 6
  n: number
  chunk: number
  layout?: number
}
const CONFIGS: Config[] = [
  {name: 'raid4 3 disks', level: 4, n: 3, chunk: 16 * KiB},
  {name: 'raid5 4 disks', level: 5, n: 4, chunk: 16 * KiB},
  {name: 'raid5 9 disks (rmw)', level: 5, n: 9, chunk: 8 * KiB},
  {name: 'raid6 5 disks', level: 6, n: 5, chunk: 16 * KiB},
  {name: 'raid6 9 disks (rmw)', level: 6, n: 9, chunk: 8 * KiB},
  {name: 'raid6 ddf-zero-restart 8 disks (rmw, Q slot holes)', level: 6, n: 8, chunk: 8 * KiB, layout: 8},
]

/** Mixed writes: full rows, single pages, partial and unaligned stripes, a non-page tail, the array's end. */
function ops(sizeBytes: number, row: number, salt: number): {offset: number; data: Buffer}[] {
  const spec: [number, number][] = [
    [0, 4 * row],
    [row + 4096, 4096],
    [2 * row + 8192, row + 12288],
    [4096, 8192],
    [5 * row, 5000],
    [row / 2 + 4096, 3 * row + 7 * 4096 + 100],
    [sizeBytes - 3 * 4096, 3 * 4096],
    [0, sizeBytes], // more than the ring holds: checkpoints / reclaim of a full log
    [7 * row - 8192, 2 * row],
  ]
  return spec.map(([offset, length], k) => ({offset, data: pseudoRandom(length, 500 + 10 * salt + k)}))
}

/** Every meta block in the journal writes re-encodes identically and checksums the pages after it. */
function checkJournalWrites(log: Req[], seed: number): number {
  let metas = 0
  for (const r of log) {
    if (r.dev !== 'j' || r.kind !== 'W' || r.offset < DATA_OFFSET) continue
    const b = r.bytes!
    let at = 0
    while (at < b.length) {
      const page = b.subarray(at, at + BLOCK_SIZE)
      if (new DataView(page.buffer, page.byteOffset, 4).getUint32(0, true) !== META_MAGIC) {
        at += BLOCK_SIZE
        continue
      }
      const {meta, problems} = decodeMetaBlock(page, seed)
      assert.ok(!problems.length, `meta block at journal byte ${r.offset + at}: ${problems.map(p => p.message).join('; ')}`)
      assert.ok(
        Buffer.from(encodeMetaBlock(meta!, seed)).equals(page),
        `meta block at journal byte ${r.offset + at} differs from the reference encoding of its contents`,
      )
      metas++
      at += BLOCK_SIZE
      for (const p of meta!.payloads) {
        if (p.type === PAYLOAD_FLUSH) continue
        for (const sum of p.checksums) {
          if (at >= b.length) break // a unit split by the ring's wrap: its pages are in the next request
          assert.equal(crc32cRawReference(seed, b.subarray(at, at + BLOCK_SIZE)), sum, `page checksum at journal byte ${r.offset + at}`)
          at += BLOCK_SIZE
        }
      }
    }
  }
  return metas
}

/**
 * The member writes right after each journal flush (a batch going to the members): slots never go
 * back, and a slot's consecutive requests are neither out of order nor adjacent (adjacent ones
 * should have been one request).
 */
function checkCoalescing(log: Req[]): number {
  let batches = 0
  for (let i = 0; i < log.length; i++) {
    if (!(log[i].dev === 'j' && log[i].kind === 'F')) continue
    let j = i + 1
    let lastSlot = -1
    let lastEnd = -1
    let any = false
    while (j < log.length && log[j].dev !== 'j' && log[j].kind === 'W' && log[j].offset >= DATA_OFFSET) {
      const slot = Number(log[j].dev.slice(1))
      assert.ok(slot >= lastSlot, `member writes out of slot order: m${slot} after m${lastSlot}`)
      if (slot !== lastSlot) lastEnd = -1
      assert.ok(log[j].offset > lastEnd, `m${slot}: request at ${log[j].offset} is not after the previous one (end ${lastEnd}) with a gap`)
      lastSlot = slot
      lastEnd = log[j].offset + log[j].bytes!.length
      any = true
      j++
    }
    if (any) batches++
  }
  return batches
}

function run(
  mode: 'write-through' | 'write-back',
  base: MemArray,
  list: {offset: number; data: Buffer}[],
  between?: () => void,
): {devs: MemDevice[]; log: Req[]; totals: {rmwStripes: number; rcwStripes: number; checkpoints: number}} {
  const devs = cloneDevs(base.devs)
  const log: Req[] = []
  const traced = devs.map(d => new Tracer(d, log))
  const totals = {rmwStripes: 0, rcwStripes: 0, checkpoints: 0}
  for (const op of list) {
    const res = writeData(traced, op.offset, op.data.length, bufferSource(op.data), {mode})
    totals.rmwStripes += res.rmwStripes
    totals.rcwStripes += res.rcwStripes
    totals.checkpoints += res.checkpoints
    between?.()
  }
  return {devs, log, totals}
}

describe('write path: batched records and in-place parity', () => {
  for (const c of CONFIGS) {
    for (const mode of ['write-through', 'write-back'] as const) {
      it(`${c.name}, ${mode}: meta blocks, coalescing, data and parity check out`, function () {
        this.timeout(120_000)
        const {base, initial} = realBase(c)
        const D = c.level === 6 ? c.n - 2 : c.n - 1
        const row = D * c.chunk
        const list = ops(base.sizeBytes, row, c.n)
        const a = run(mode, base, list)
        // the paths meant to be covered were taken
        assert.ok(a.totals.checkpoints > 0, 'a checkpoint (write-through) or a reclaim of a full log (write-back)')
        if (mode === 'write-through') assert.ok(a.totals.rcwStripes > 0)
        if (mode === 'write-through' && c.name.includes('rmw')) assert.ok(a.totals.rmwStripes > 0)
        const seed = seedOf(a.devs)
        assert.ok(checkJournalWrites(a.log, seed) > 0)
        if (mode === 'write-through') assert.ok(checkCoalescing(a.log) > 0)
        else reclaimArray(a.devs)
        const model = Buffer.from(initial)
        for (const op of list) op.data.copy(model, op.offset)
        const got = readAll(a.devs)
        assert.ok(got.equals(model), 'array reads back as the model')
        assert.equal(checkParity(a.devs, c.level, model), null)
      })
    }
  }

  it('reusing the parity arena for arrays of other shapes in between changes nothing', () => {
    const c5 = CONFIGS[1]
    const c6 = CONFIGS[5]
    const {base: b5} = realBase(c5)
    const {base: b6} = realBase(c6)
    const l5 = ops(b5.sizeBytes, 3 * c5.chunk, 1)
    const l6 = ops(b6.sizeBytes, 6 * c6.chunk, 2)
    const alone = run('write-through', b6, l6)
    const other = cloneDevs(b5.devs)
    let k = 0
    const mixed = run('write-through', b6, l6, () => {
      const op = l5[k++ % l5.length]
      writeData(other, op.offset, op.data.length, bufferSource(op.data), {mode: k % 2 ? 'write-back' : 'write-through'})
    })
    for (let d = 0; d < alone.devs.length; d++) assert.ok(dataArea(alone.devs[d]).equals(dataArea(mixed.devs[d])), `device ${alone.devs[d].name}`)
  })
})

// ---------------------------------------------------------------------------------------------

const bases = new Map<string, {base: MemArray; initial: Buffer}>()

/** A created array of this shape (layout included), filled with pseudo-random data; cached per config. */
function realBase(c: Config): {base: MemArray; initial: Buffer} {
  const hit = bases.get(c.name)
  if (hit) return hit
  const base = createMemArray({
    level: c.level,
    raidDevices: c.n,
    chunkBytes: c.chunk,
    layout: c.layout,
    memberDataBytes: 256 * KiB,
    journalRingBytes: 512 * KiB,
  })
  const initial = pseudoRandom(base.sizeBytes, 31 + c.n)
  writeData(base.devs, 0, initial.length, bufferSource(initial), {mode: 'write-through'})
  const out = {base, initial}
  bases.set(c.name, out)
  return out
}

const dataArea = (d: MemDevice) => Buffer.from(d.data.buffer, d.data.byteOffset + DATA_OFFSET, d.data.length - DATA_OFFSET)

function seedOf(devs: MemDevice[]): number {
  const {sb} = decodeSuperblock(devs[0].data.subarray(4096, 8192))
  return uuidSeed(sb.setUuid)
}

describe('engine write: a write of nothing', () => {
  for (const mode of ['write-through', 'write-back'] as const)
    it(`${mode}: a write of 0 bytes changes no byte of any device`, () => {
      const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 16 * KiB, memberDataBytes: 256 * KiB, journalRingBytes: 512 * KiB})
      const before = cloneDevs(a.devs)
      const r = writeData(a.devs, 64 * KiB, 0, bufferSource(new Uint8Array(0)), {mode})
      assert.equal(r.bytes, 0)
      a.devs.forEach((d, i) => assert.ok(Buffer.from(d.data).equals(Buffer.from(before[i].data)), `${d.name} changed`))
    })

  for (const mode of ['write-through', 'write-back'] as const)
    it(`${mode}: a stream that ends before its first byte (an empty pipe) changes no byte of any device`, () => {
      const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 16 * KiB, memberDataBytes: 256 * KiB, journalRingBytes: 512 * KiB})
      // write-back data cached in the log: a write-through write would write it out first
      writeData(a.devs, 0, 40 * KiB, bufferSource(pseudoRandom(40 * KiB, 3)), {mode: 'write-back'})
      const before = cloneDevs(a.devs)
      const r = writeData(a.devs, 64 * KiB, undefined, () => 0, {mode, endAtShortInput: true})
      assert.equal(r.bytes, 0)
      a.devs.forEach((d, i) => assert.ok(Buffer.from(d.data).equals(Buffer.from(before[i].data)), `${d.name} changed`))
    })
})
