/**
 * r5l journal meta block codec (raid5-cache; structs in include/uapi/linux/raid/md_p.h).
 *
 * A meta block is one 4 KiB page of the journal ring. All integers little-endian, structs packed.
 *
 *   struct r5l_meta_block (32 bytes)
 *     off size field
 *       0    4 magic          0x6433c509
 *       4    4 checksum       crc32c_le(uuid_checksum, whole 4 KiB page with this field = 0)
 *       8    1 version        1
 *       9    1 pad            0
 *      10    2 pad            0
 *      12    4 meta_size      bytes used in this page, header included
 *      16    8 seq            consecutive meta blocks have consecutive seq
 *      24    8 position       the block's own sector in the log (relative to the journal's
 *                             data_offset)
 *      32      payloads, back to back, up to meta_size
 *
 *   struct r5l_payload_data_parity (16 + 4*n bytes)
 *       0    2 type           0 DATA, 1 PARITY
 *       2    2 flags          DATA: 1 DISCARD, 2 RESHAPED, 3 RESHAPING
 *       4    4 size           sectors of pages that follow (8 per page); PARITY of RAID6 = P+Q = 16
 *       8    8 location       DATA: array sector; PARITY: stripe sector on the members
 *      16  4*n checksum[]     n = size / 8, crc32c_le(uuid_checksum, page) per page
 *
 *   struct r5l_payload_flush (8 + size bytes)
 *       0    2 type           2 FLUSH (write-back mode)
 *       2    2 flags          1 FLUSH_STRIPE
 *       4    4 size           BYTES of the list below (8 per entry)
 *       8  size flush_stripes[] u64 stripe sectors whose cached data reached the members
 *
 * The pages described by DATA/PARITY payloads follow the meta block in the ring, in payload order;
 * the next meta block follows them (the kernel advances pos by 8 + sum(size) sectors).
 *
 * Checksum coverage: the kernel checksums the full PAGE_SIZE (4096) page, not meta_size bytes —
 * r5l_submit_current_io, r5l_log_write_empty_meta_block and r5l_recovery_read_meta_block all call
 * crc32c_le(uuid_checksum, mb, PAGE_SIZE) with mb->checksum = 0. Bytes past meta_size therefore
 * count; the kernel zeroes the page (clear_page) before filling it, and so do we.
 */
import {crc32cRaw} from '../checksum.js'

export const META_MAGIC = 0x6433c509
export const META_VERSION = 1
export const BLOCK_SIZE = 4096
export const BLOCK_SECTORS = 8
export const META_HEADER_SIZE = 32
export const PAYLOAD_DATA = 0
export const PAYLOAD_PARITY = 1
export const PAYLOAD_FLUSH = 2
/** The seq `n` blocks after `seq`: a u64 in the kernel, which wraps from 2^64 - 1 to 0. */
export function seqAfter(seq: bigint, n: bigint | number = 1n): bigint {
  return BigInt.asUintN(64, seq + BigInt(n))
}

/** Whether `seq` comes at or after `ref` in the wrapping order of u64 seqs (within 2^63 of it). */
export function seqAtOrAfter(seq: bigint, ref: bigint): boolean {
  return BigInt.asIntN(64, seq - ref) >= 0n
}

/** Fixed part of r5l_payload_data_parity; 4 bytes of checksum per page follow. */
export const DATA_PARITY_HEADER_SIZE = 16
/** Fixed part of r5l_payload_flush; 8 bytes per stripe follow. */
export const FLUSH_HEADER_SIZE = 8

export type Payload =
  {type: 0 | 1; flags: number; sizeSectors: number; location: bigint; checksums: number[]} | {type: 2; flags: number; stripes: bigint[]}

export interface MetaBlock {
  magic: number
  checksum: number
  version: number
  metaSize: number
  seq: bigint
  position: bigint
  payloads: Payload[]
}

export interface MetaProblem {
  code: 'short' | 'bad-magic' | 'bad-version' | 'bad-meta-size' | 'bad-checksum' | 'seq-mismatch' | 'position-mismatch' | 'bad-payload'
  message: string
}

const hex8 = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0')

/** Bytes a payload takes in the meta block. */
export function payloadBytes(p: Payload): number {
  return p.type === PAYLOAD_FLUSH ? FLUSH_HEADER_SIZE + 8 * p.stripes.length : DATA_PARITY_HEADER_SIZE + 4 * p.checksums.length
}

/**
 * Build a meta block: header, payloads, zeros to the end of the page; meta_size is computed and
 * the checksum is crc32c_le(seed, page with checksum 0), seed being uuidSeed(set_uuid). Writes into
 * `out` (at least 4096 bytes; its first 4096 are overwritten) when given. Throws RangeError when
 * the payloads do not fit in a page or a data/parity payload's checksum count disagrees with its
 * size (the kernel derives the count from the size).
 */
export function encodeMetaBlock(m: {seq: bigint; position: bigint; payloads: Payload[]}, seed: number, out?: Uint8Array): Uint8Array {
  let metaSize = META_HEADER_SIZE
  for (const p of m.payloads) {
    if (p.type === PAYLOAD_DATA || p.type === PAYLOAD_PARITY) {
      if (!Number.isInteger(p.sizeSectors) || p.sizeSectors < 0 || p.sizeSectors % BLOCK_SECTORS !== 0) {
        throw new RangeError(`payload size ${p.sizeSectors} sectors is not a whole number of ${BLOCK_SECTORS}-sector pages`)
      }
      if (p.checksums.length !== p.sizeSectors / BLOCK_SECTORS) {
        throw new RangeError(`payload of ${p.sizeSectors} sectors needs ${p.sizeSectors / BLOCK_SECTORS} checksums, got ${p.checksums.length}`)
      }
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- callers outside TypeScript can pass any type
    } else if (p.type !== PAYLOAD_FLUSH) {
      throw new RangeError(`unknown payload type ${(p as {type: number}).type}`)
    }
    metaSize += payloadBytes(p)
  }
  if (metaSize > BLOCK_SIZE) throw new RangeError(`payloads need ${metaSize} bytes, a meta block holds ${BLOCK_SIZE}`)

  if (out && out.length < BLOCK_SIZE) throw new RangeError(`output buffer is ${out.length} bytes, need ${BLOCK_SIZE}`)
  const page = out ? out.subarray(0, BLOCK_SIZE) : new Uint8Array(BLOCK_SIZE)
  page.fill(0)
  const dv = new DataView(page.buffer, page.byteOffset, BLOCK_SIZE)
  dv.setUint32(0, META_MAGIC, true)
  dv.setUint8(8, META_VERSION)
  dv.setUint32(12, metaSize, true)
  dv.setBigUint64(16, BigInt.asUintN(64, m.seq), true)
  dv.setBigUint64(24, BigInt.asUintN(64, m.position), true)

  let off = META_HEADER_SIZE
  for (const p of m.payloads) {
    dv.setUint16(off, p.type, true)
    dv.setUint16(off + 2, p.flags, true)
    if (p.type === PAYLOAD_FLUSH) {
      dv.setUint32(off + 4, 8 * p.stripes.length, true)
      off += FLUSH_HEADER_SIZE
      for (const s of p.stripes) {
        dv.setBigUint64(off, BigInt.asUintN(64, s), true)
        off += 8
      }
    } else {
      dv.setUint32(off + 4, p.sizeSectors, true)
      dv.setBigUint64(off + 8, BigInt.asUintN(64, p.location), true)
      off += DATA_PARITY_HEADER_SIZE
      for (const c of p.checksums) {
        dv.setUint32(off, c >>> 0, true)
        off += 4
      }
    }
  }
  dv.setUint32(4, crc32cRaw(seed, page), true)
  return page
}

/**
 * Data/parity payloads as parallel typed arrays, for encoders that must not build a Payload object
 * per page (the write path logs one payload per 4 KiB page). Entry i is one r5l_payload_data_parity
 * with flags 0; its checksums are sums[firstSum[i] .. firstSum[i] + pages[i]).
 */
export interface DataParityRecords {
  /** PAYLOAD_DATA or PAYLOAD_PARITY */
  type: Uint8Array
  /** DATA: array sector; PARITY: stripe sector on the members. Plain numbers: exact below 2^53. */
  location: Float64Array
  /** index in `sums` of the payload's first page checksum */
  firstSum: Int32Array
  /** pages the payload describes (size = 8 sectors per page) */
  pages: Uint8Array
}

/**
 * encodeMetaBlock for a meta block holding only data/parity payloads with flags 0, taken from
 * records[from..to); produces exactly the same 4096 bytes into `out` (returned). Used by the write
 * path, where it runs once per io unit without allocating; encodeMetaBlock stays the reference
 * (test/engine/io-write-meta.test.ts compares the two).
 */
export function encodeDataParityMeta(
  out: Uint8Array,
  seed: number,
  seq: bigint,
  position: number,
  records: DataParityRecords,
  from: number,
  to: number,
  sums: Uint32Array,
): Uint8Array {
  const {type, location, firstSum, pages} = records
  let metaSize = META_HEADER_SIZE
  for (let i = from; i < to; i++) metaSize += DATA_PARITY_HEADER_SIZE + 4 * pages[i]
  if (metaSize > BLOCK_SIZE) throw new RangeError(`payloads need ${metaSize} bytes, a meta block holds ${BLOCK_SIZE}`)
  if (out.length < BLOCK_SIZE) throw new RangeError(`output buffer is ${out.length} bytes, need ${BLOCK_SIZE}`)
  const page = out.subarray(0, BLOCK_SIZE)
  page.fill(0)
  const dv = new DataView(page.buffer, page.byteOffset, BLOCK_SIZE)
  dv.setUint32(0, META_MAGIC, true)
  dv.setUint8(8, META_VERSION)
  dv.setUint32(12, metaSize, true)
  dv.setBigUint64(16, BigInt.asUintN(64, seq), true)
  // u64 fields from plain numbers as two u32 halves (no BigInt per payload)
  dv.setUint32(24, position % 0x100000000, true)
  dv.setUint32(28, Math.floor(position / 0x100000000), true)
  let off = META_HEADER_SIZE
  for (let i = from; i < to; i++) {
    const n = pages[i]
    const loc = location[i]
    dv.setUint16(off, type[i], true)
    // flags (off + 2) stay 0
    dv.setUint32(off + 4, n * BLOCK_SECTORS, true)
    dv.setUint32(off + 8, loc % 0x100000000, true)
    dv.setUint32(off + 12, Math.floor(loc / 0x100000000), true)
    off += DATA_PARITY_HEADER_SIZE
    const s = firstSum[i]
    for (let k = 0; k < n; k++) {
      dv.setUint32(off, sums[s + k], true)
      off += 4
    }
  }
  dv.setUint32(4, crc32cRaw(seed, page), true)
  return page
}

/**
 * Decode and validate one meta block, as objects (dump-meta, tests, error messages): decodeMeta into
 * fresh columns, then their object form. Never throws. `meta` is non-null whenever the 32-byte
 * header could be read.
 */
export function decodeMetaBlock(
  block: Uint8Array,
  seed: number,
  expect?: {seq?: bigint; position?: bigint},
): {meta: MetaBlock | null; problems: MetaProblem[]; computedChecksum: number} {
  const cols = new MetaColumns()
  const position = expect?.position
  const problems = decodeMeta(block, seed, {seq: expect?.seq, position: position === undefined ? undefined : Number(position)}, cols)
  return {meta: cols.headerRead ? cols.toMetaBlock() : null, problems, computedChecksum: cols.computedChecksum}
}

/** Number of 4 KiB pages that follow the meta block in the ring (its data and parity pages). */
export function pagesOf(m: MetaBlock): number {
  let sectors = 0
  for (const p of m.payloads) if (p.type !== PAYLOAD_FLUSH) sectors += p.sizeSectors
  return Math.floor(sectors / BLOCK_SECTORS)
}

/**
 * One meta block as decodeMeta leaves it: the header fields and the payloads as parallel typed
 * arrays (objects would cost a BigInt and an array per payload, some 185 payloads per io unit of a
 * full log). A walk reuses one instance for every block, so its contents are valid until the next
 * decode; toMetaBlock gives the object form.
 *
 * Payload i: type[i], size[i] (the raw field: sectors for DATA/PARITY, bytes for FLUSH), location[i]
 * (DATA/PARITY: lo + hi·2^32 as a Number, exact below 2^53; `hugeLocation` says whether any was not),
 * and at[i], the byte offset in `page` of its checksum list (DATA/PARITY) or stripe list (FLUSH).
 */
export class MetaColumns {
  /** a private copy of the block, with the checksum field as read */
  readonly page = new Uint8Array(BLOCK_SIZE)
  readonly dv = new DataView(this.page.buffer)
  /**
   * The same page as little-endian u32 words (on a little-endian host; null otherwise). Every
   * payload starts 4-aligned (header 32 bytes, payloads 16 + 4n or 8 + 8n), so checksum k of
   * payload i is words[at[i] / 4 + k].
   */
  readonly words: Uint32Array | null = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? new Uint32Array(this.page.buffer) : null
  /** the 32-byte header could be read (the header fields below are set) */
  headerRead = false
  magic = 0
  /** the checksum field as stored */
  checksum = 0
  /** the checksum computed over the page with the field zeroed */
  computedChecksum = 0
  version = 0
  metaSize = 0
  position = 0n
  count = 0
  /** data and parity pages that follow the block */
  pages = 0
  /** some DATA/PARITY location is 2^53 or more (location[] is then inexact for it) */
  hugeLocation = false
  seq = 0n
  // at most (4096 - 32) / 8 payloads fit in a block
  readonly type = new Uint8Array(508)
  readonly size = new Uint32Array(508)
  readonly location = new Float64Array(508)
  readonly at = new Uint16Array(508)

  /** checksum k of DATA/PARITY payload i */
  sum(i: number, k: number): number {
    return this.dv.getUint32(this.at[i] + 4 * k, true)
  }

  /** stripe k of FLUSH payload i, as a Number (exact below 2^53, as every stripe sector of an array is) */
  stripe(i: number, k: number): number {
    const o = this.at[i] + 8 * k
    return this.dv.getUint32(o, true) + this.dv.getUint32(o + 4, true) * 0x100000000
  }

  /** The object form (BigInts, arrays): for cold paths, reports and errors. */
  toMetaBlock(): MetaBlock {
    const dv = this.dv
    const payloads: Payload[] = []
    for (let i = 0; i < this.count; i++) {
      const at = this.at[i]
      const size = this.size[i]
      if (this.type[i] === PAYLOAD_FLUSH) {
        const stripes: bigint[] = []
        for (let k = 0; k < size / 8; k++) stripes.push(dv.getBigUint64(at + 8 * k, true))
        payloads.push({type: PAYLOAD_FLUSH, flags: dv.getUint16(at - FLUSH_HEADER_SIZE + 2, true), stripes})
        continue
      }
      const header = at - DATA_PARITY_HEADER_SIZE
      const checksums: number[] = []
      for (let k = 0; k < size / BLOCK_SECTORS; k++) checksums.push(this.sum(i, k))
      const type = this.type[i] as 0 | 1
      payloads.push({type, flags: dv.getUint16(header + 2, true), sizeSectors: size, location: dv.getBigUint64(header + 8, true), checksums})
    }
    const {magic, checksum, version, metaSize, seq, position} = this
    return {magic, checksum, version, metaSize, seq, position, payloads}
  }
}

/**
 * The one meta block decoder: fills `out` and returns what is wrong (an empty list: a valid block).
 *
 * Validity follows r5l_recovery_read_meta_block: magic, version, seq = expected, position = where
 * it was read, checksum over the whole page, meta_size <= 4096. A meta_size below 32 is not an
 * error there (the payload loop simply runs zero times), so it is not one here either. A block
 * shorter than 4096 bytes is checked as zero-padded and reported 'short'.
 *
 * Payloads are parsed only when magic and version are right (otherwise the bytes are not a meta
 * block), up to min(meta_size, 4096). A payload that would run past that limit, has an unknown
 * type, or has a size the kernel never writes (data/parity not a multiple of 8 sectors, flush list
 * not a multiple of 8 bytes) yields 'bad-payload' and ends parsing. (Linux 6.1 does not
 * bounds-check payloads at all, and an unknown type makes its recovery stop scanning at that block.)
 * A valid block allocates nothing but its seq and position.
 */
export function decodeMeta(block: Uint8Array, seed: number, expect: {seq?: bigint; position?: number}, out: MetaColumns): MetaProblem[] {
  out.count = 0
  out.pages = 0
  out.hugeLocation = false
  out.headerRead = block.length >= META_HEADER_SIZE
  if (!out.headerRead) return [{code: 'short', message: `short meta block: ${block.length} bytes, header needs ${META_HEADER_SIZE}`}]
  const problems = decodeHeader(block, seed, expect, out)
  const bad = out.magic === META_MAGIC && out.version === META_VERSION ? decodePayloads(out) : null
  // the header's list may be the shared empty one: a new list, never a push
  return bad ? [...problems, {code: 'bad-payload', message: bad}] : problems
}

const NO_PROBLEMS: readonly MetaProblem[] = Object.freeze([])

/** The header fields into `out`, and the header's problems in the kernel's order of checks. */
function decodeHeader(block: Uint8Array, seed: number, expect: {seq?: bigint; position?: number}, out: MetaColumns): MetaProblem[] {
  const page = out.page
  page.fill(0)
  page.set(block.subarray(0, BLOCK_SIZE))
  const dv = out.dv
  out.magic = dv.getUint32(0, true)
  out.checksum = dv.getUint32(4, true)
  out.version = dv.getUint8(8)
  out.metaSize = dv.getUint32(12, true)
  out.seq = dv.getBigUint64(16, true)
  out.position = dv.getBigUint64(24, true)
  dv.setUint32(4, 0, true)
  out.computedChecksum = crc32cRaw(seed, page)
  dv.setUint32(4, out.checksum, true)
  let problems = NO_PROBLEMS as MetaProblem[]
  const add = (code: MetaProblem['code'], message: string) => {
    if (problems === NO_PROBLEMS) problems = []
    problems.push({code, message})
  }
  if (block.length < BLOCK_SIZE) add('short', `short meta block: ${block.length} bytes, a block is ${BLOCK_SIZE} (checked as zero-padded)`)
  if (out.magic !== META_MAGIC) add('bad-magic', `bad magic ${hex8(out.magic)} (expected ${hex8(META_MAGIC)})`)
  if (out.version !== META_VERSION) add('bad-version', `version ${out.version} (expected ${META_VERSION})`)
  if (out.metaSize > BLOCK_SIZE) add('bad-meta-size', `meta_size ${out.metaSize} exceeds ${BLOCK_SIZE}`)
  if (out.computedChecksum !== out.checksum) add('bad-checksum', `checksum expected ${hex8(out.computedChecksum)} got ${hex8(out.checksum)}`)
  if (expect.seq !== undefined && out.seq !== expect.seq) add('seq-mismatch', `seq ${out.seq} (expected ${expect.seq})`)
  // position: a u64 compared as two halves (no BigInt on the hot path)
  const p = expect.position
  if (p !== undefined && (dv.getUint32(24, true) !== p % 0x100000000 || dv.getUint32(28, true) !== Math.floor(p / 0x100000000)))
    add('position-mismatch', `position ${out.position} (expected ${p})`)
  return problems
}

/** The payloads into `out`'s columns, up to min(meta_size, 4096); the first malformed one ends the parse with its message. */
function decodePayloads(out: MetaColumns): string | null {
  const dv = out.dv
  const limit = Math.min(out.metaSize, BLOCK_SIZE)
  let off = META_HEADER_SIZE
  while (off < limit) {
    if (off + 8 > limit) return `payload at offset ${off} truncated: header runs past ${limit}`
    const type = dv.getUint16(off, true)
    const size = dv.getUint32(off + 4, true)
    const n = out.count
    let end: number
    if (type === PAYLOAD_FLUSH) {
      if (size % 8 !== 0) return `flush payload at offset ${off}: list size ${size} bytes is not a multiple of 8`
      end = off + FLUSH_HEADER_SIZE + size
      if (end > limit) return `flush payload at offset ${off} (${FLUSH_HEADER_SIZE + size} bytes) runs past ${limit}`
      out.at[n] = off + FLUSH_HEADER_SIZE
      out.location[n] = 0
    } else if (type === PAYLOAD_DATA || type === PAYLOAD_PARITY) {
      const what = type === PAYLOAD_DATA ? 'data' : 'parity'
      if (size % BLOCK_SECTORS !== 0) return `${what} payload at offset ${off}: size ${size} sectors is not a multiple of ${BLOCK_SECTORS}`
      end = off + DATA_PARITY_HEADER_SIZE + 4 * (size / BLOCK_SECTORS)
      if (end > limit) return `${what} payload at offset ${off} (${end - off} bytes) runs past ${limit}`
      const hi = dv.getUint32(off + 12, true)
      if (hi >= 0x200000) out.hugeLocation = true
      out.location[n] = dv.getUint32(off + 8, true) + hi * 0x100000000
      out.at[n] = off + DATA_PARITY_HEADER_SIZE
      out.pages += size / BLOCK_SECTORS
    } else return `unknown payload type ${type} at offset ${off}`
    out.type[n] = type
    out.size[n] = size
    out.count = n + 1
    off = end
  }
  return null
}
