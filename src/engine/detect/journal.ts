/**
 * Finding a journal device by its content: r5l meta blocks (magic 0x6433c509, version 1) at 4 KiB
 * positions of a bounded sample of the device. Each block states its own sector in the log, so where
 * it was found gives the journal's data offset. Its checksum is crc32c_le(seed, page) with the seed
 * crc32c_le(~0, array UUID); the raw CRC is affine in its seed, so each block gives back the one seed
 * that makes its checksum hold (solveSeed): blocks that agree on it are one log, and a UUID from a
 * surviving superblock is confirmed when its seed is that one.
 */
import {crc32cRaw, uuidSeed} from '../checksum.js'
import type {BlockDevice} from '../device.js'
import {alignedBuffer} from '../device.js'
import {BLOCK_SIZE, META_MAGIC, META_VERSION, MetaColumns, PAYLOAD_DATA, PAYLOAD_FLUSH, PAYLOAD_PARITY, decodeMeta} from '../format/meta.js'

/** bytes read from the start of a device (where a fresh log's first block sits) */
const HEAD_BYTES = 16 << 20
/** further windows spread over the rest of the device, and the size of every read */
const SPREAD_WINDOWS = 16
const SPREAD_BYTES = 1 << 20

/** most logged data pages kept */
const LOGGED_PAGES = 64
/** logged page locations kept (what a crash may have left half-written on the members) */
const TOUCHED = 1 << 16

/** A data page the log holds: where in the array it was written, and its bytes. */
export interface LoggedPage {
  arraySector: number
  page: Uint8Array
  /** the seed its block was read with (pages of another log are dropped) */
  seed: number
}

/** What the meta blocks found on one device say. */
export interface JournalFinding {
  /** meta blocks found (magic, version, meta_size and a position that fits where they sit) */
  metaBlocks: number
  /** the journal's data offset that most blocks' positions give, in sectors */
  dataOffsetSector: number
  /** the checksum seed (crc32c_le(~0, uuid)) most blocks agree on, and how many do */
  seed: number
  seedAgreeing: number
  /** parity pages per stripe record seen (1: RAID4/5, 2: RAID6), null when no parity record was seen */
  parityPages: 1 | 2 | null
  /** data records with the parity records of their meta block: to test a chunk size and data disks */
  records: {data: number[]; parity: number[]}[]
  /** data pages of the log (checksums holding), for locating on the members */
  logged: LoggedPage[]
  /** what the blocks found log, whatever is still pending: data pages by array sector, parity by stripe (member sector) */
  touched: {data: number[]; parity: number[]}
  /** bytes of the device looked at */
  bytesRead: number
}

/**
 * The seed s with crc32c_le(s, page) = checksum for a page whose checksum field reads as zero. The
 * raw CRC is linear in the register: crc(s, buf) = crc(0, buf) xor crc(s, zeros), and crc(s, zeros)
 * is a linear map of s (multiplication by x^(8·len) modulo the polynomial, invertible), so one solve
 * of a 32×32 system over GF(2) gives it.
 */
export function solveSeed(page: Uint8Array, checksum: number): number {
  const zeros = new Uint8Array(page.length)
  const cols: number[] = []
  for (let i = 0; i < 32; i++) cols.push(crc32cRaw((1 << i) >>> 0, zeros))
  const target = (checksum ^ crc32cRaw(0, page)) >>> 0
  // Gaussian elimination on rows (bit k of every column) augmented with the target bit
  const rows: number[] = []
  const rhs: number[] = []
  for (let k = 0; k < 32; k++) {
    let r = 0
    for (let i = 0; i < 32; i++) if ((cols[i] >>> k) & 1) r |= 1 << i
    rows.push(r >>> 0)
    rhs.push((target >>> k) & 1)
  }
  for (let c = 0; c < 32; c++) {
    const p = rows.findIndex((r, i) => i >= c && ((r >>> c) & 1) === 1)
    if (p < 0) throw new Error('crc32c seed map is not invertible') // cannot happen: the CRC polynomial has x^0
    ;[rows[c], rows[p]] = [rows[p], rows[c]]
    ;[rhs[c], rhs[p]] = [rhs[p], rhs[c]]
    for (let i = 0; i < 32; i++) {
      if (i !== c && ((rows[i] >>> c) & 1) === 1) {
        rows[i] = (rows[i] ^ rows[c]) >>> 0
        rhs[i] ^= rhs[c]
      }
    }
  }
  let s = 0
  for (let i = 0; i < 32; i++) if (rhs[i]) s |= 1 << i
  return s >>> 0
}

/** Whether the seed of `uuid` is the one the journal's blocks were checksummed with. */
export function uuidMatchesSeed(uuid: Uint8Array, seed: number): boolean {
  return uuidSeed(uuid) === seed
}

/** The windows of a device to look at: its head, then evenly spread ones, in pieces of at most SPREAD_BYTES. */
function windows(size: number): [number, number][] {
  const out: [number, number][] = []
  for (let at = 0; at < Math.min(size, HEAD_BYTES); at += SPREAD_BYTES) out.push([at, Math.min(SPREAD_BYTES, size - at)])
  if (size <= HEAD_BYTES) return out
  const step = Math.floor((size - HEAD_BYTES) / SPREAD_WINDOWS / BLOCK_SIZE) * BLOCK_SIZE
  for (let k = 0; k < SPREAD_WINDOWS && step >= SPREAD_BYTES; k++) {
    const at = HEAD_BYTES + k * step
    out.push([at, Math.min(SPREAD_BYTES, size - at)])
  }
  return out
}

/** what findJournal gathers while it reads */
interface Scan {
  offsets: Map<number, number>
  seeds: Map<number, number>
  cols: MetaColumns
  records: JournalFinding['records']
  logged: LoggedPage[]
  parityPages: 1 | 2 | null
  metaBlocks: number
  touched: {seed: number; parity: boolean; location: number}[]
}

/**
 * Look for meta blocks on `dev`; null when none is found. A block counts when its magic, version and
 * meta_size are right and its position puts the log's start at or after sector 16 (past a v1.2
 * superblock) on a 4 KiB boundary.
 */
/** `read` counts the bytes looked at, found or not. */
export function findJournal(dev: BlockDevice, read: {bytes: number} = {bytes: 0}): JournalFinding | null {
  const scan: Scan = {
    offsets: new Map(),
    seeds: new Map(),
    cols: new MetaColumns(),
    records: [],
    logged: [],
    parityPages: null,
    metaBlocks: 0,
    touched: [],
  }
  let bytesRead = 0
  const buf = alignedBuffer(SPREAD_BYTES)
  for (const [at, len] of windows(dev.size)) {
    const w = buf.subarray(0, len - (len % BLOCK_SIZE))
    dev.read(w, at)
    bytesRead += w.length
    for (let o = 0; o + BLOCK_SIZE <= w.length; o += BLOCK_SIZE) {
      if (w.readUInt32LE(o) !== META_MAGIC || w[o + 8] !== META_VERSION || w.readUInt32LE(o + 12) > BLOCK_SIZE) continue
      bytesRead += readBlock(dev, w.subarray(o, o + BLOCK_SIZE), at + o, scan)
    }
  }
  read.bytes += bytesRead
  if (scan.metaBlocks === 0) return null
  const [dataOffsetSector] = mostCommon(scan.offsets)
  const [seed, seedAgreeing] = mostCommon(scan.seeds)
  const {metaBlocks, parityPages, records} = scan
  // pages checksummed with another seed are not this log's
  const logged = scan.logged.filter(p => p.seed === seed)
  const touched = scan.touched.filter(t => t.seed === seed)
  const locations = (parity: boolean) => touched.flatMap(t => (t.parity === parity ? [t.location] : []))
  return {
    metaBlocks,
    dataOffsetSector,
    seed,
    seedAgreeing,
    parityPages,
    records,
    logged,
    touched: {data: locations(false), parity: locations(true)},
    bytesRead,
  }
}

/** One block that looks like a meta block, at device byte `at`; returns the bytes of logged pages read. */
function readBlock(dev: BlockDevice, page: Buffer, at: number, scan: Scan): number {
  const position = Number(page.readBigUInt64LE(24))
  const dataOffset = at / 512 - position
  if (!Number.isSafeInteger(dataOffset) || dataOffset < 16 || dataOffset % 8 !== 0) return 0
  scan.metaBlocks++
  scan.offsets.set(dataOffset, (scan.offsets.get(dataOffset) ?? 0) + 1)
  const copy = Uint8Array.from(page)
  copy.fill(0, 4, 8)
  const seed = solveSeed(copy, page.readUInt32LE(4))
  scan.seeds.set(seed, (scan.seeds.get(seed) ?? 0) + 1)
  const cols = scan.cols
  if (decodeMeta(page, seed, {}, cols).length > 0) return 0
  const rec = {data: [] as number[], parity: [] as number[]}
  let k = 0
  let read = 0
  let kept = 0
  for (let i = 0; i < cols.count; i++) {
    const pages = cols.size[i] / 8
    if (cols.type[i] !== PAYLOAD_FLUSH && scan.touched.length < TOUCHED)
      scan.touched.push({seed, parity: cols.type[i] === PAYLOAD_PARITY, location: cols.location[i]})
    if (cols.type[i] === PAYLOAD_DATA) {
      rec.data.push(cols.location[i])
      // a few pages of each block, so that the ones kept come from many writes
      if (pages === 1 && kept++ < 4 && scan.logged.length < LOGGED_PAGES)
        read += readLogged(dev, at + (k + 1) * BLOCK_SIZE, cols.location[i], seed, cols.sum(i, 0), scan)
    }
    if (cols.type[i] === PAYLOAD_PARITY) {
      rec.parity.push(cols.location[i])
      scan.parityPages = cols.size[i] === 16 ? 2 : 1
    }
    if (cols.type[i] !== PAYLOAD_FLUSH) k += pages
  }
  if (rec.data.length > 0 && rec.parity.length > 0 && scan.records.length < 256) scan.records.push(rec)
  return read
}

/** A logged data page at device byte `at`, kept when its checksum holds and it is not all zero. */
function readLogged(dev: BlockDevice, at: number, arraySector: number, seed: number, sum: number, scan: Scan): number {
  if (at + BLOCK_SIZE > dev.size) return 0
  const page = alignedBuffer(BLOCK_SIZE)
  dev.read(page, at)
  if (crc32cRaw(seed, page) === sum && page.some(b => b !== 0)) scan.logged.push({arraySector, page, seed})
  return BLOCK_SIZE
}

function mostCommon(m: Map<number, number>): [number, number] {
  let best: [number, number] = [0, 0]
  for (const e of m) if (e[1] > best[1]) best = e
  return best
}

/**
 * How many data records of the sampled meta blocks have their stripe among the parity records of
 * the same block, for a chunk of `chunkSectors` and `dataDisks` data disks (the kernel logs each
 * stripe's data pages with its parity, keyed by the stripe's member sector): [agreeing, total].
 */
export function journalAgreement(records: JournalFinding['records'], chunkSectors: number, dataDisks: number): [number, number] {
  let agree = 0
  let total = 0
  for (const r of records) {
    const parity = new Set(r.parity)
    for (const loc of r.data) {
      const chunk = Math.floor(loc / chunkSectors)
      const stripe = Math.floor(chunk / dataDisks) * chunkSectors + (loc % chunkSectors)
      total++
      if (parity.has(stripe - (stripe % 8))) agree++
    }
  }
  return [agree, total]
}
