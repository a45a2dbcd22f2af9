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
 * (test/unit/write-fast-meta.test.ts compares the two).
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
 * Decode and validate one meta block. Never throws.
 *
 * Validity follows r5l_recovery_read_meta_block: magic, version, seq = expected, position = where
 * it was read, checksum over the whole page, meta_size <= 4096. A meta_size below 32 is not an
 * error there (the payload loop simply runs zero times), so it is not one here either.
 *
 * `meta` is non-null whenever the 32-byte header could be read. Payloads are parsed only when
 * magic and version are right (otherwise the bytes are not a meta block), up to
 * min(meta_size, 4096). A payload that would run past that limit, has an unknown type, or has a
 * size the kernel never writes (data/parity not a multiple of 8 sectors, flush list not a multiple
 * of 8 bytes) yields 'bad-payload' and ends parsing. (Linux 6.1 does not bounds-check payloads at
 * all, and an unknown type makes its recovery stop scanning at that block.)
 */
export function decodeMetaBlock(
  block: Uint8Array,
  seed: number,
  expect?: {seq?: bigint; position?: bigint},
): {meta: MetaBlock | null; problems: MetaProblem[]; computedChecksum: number} {
  const problems: MetaProblem[] = []
  if (block.length < META_HEADER_SIZE) {
    problems.push({code: 'short', message: `short meta block: ${block.length} bytes, header needs ${META_HEADER_SIZE}`})
    return {meta: null, problems, computedChecksum: 0}
  }
  // Work on a private zero-padded copy: the checksum needs the field zeroed, and a short read
  // must not be indexed past its end.
  const page = new Uint8Array(BLOCK_SIZE)
  page.set(block.subarray(0, BLOCK_SIZE))
  if (block.length < BLOCK_SIZE) {
    problems.push({code: 'short', message: `short meta block: ${block.length} bytes, a block is ${BLOCK_SIZE} (checked as zero-padded)`})
  }
  const dv = new DataView(page.buffer)
  const meta: MetaBlock = {
    magic: dv.getUint32(0, true),
    checksum: dv.getUint32(4, true),
    version: dv.getUint8(8),
    metaSize: dv.getUint32(12, true),
    seq: dv.getBigUint64(16, true),
    position: dv.getBigUint64(24, true),
    payloads: [],
  }
  dv.setUint32(4, 0, true)
  const computedChecksum = crc32cRaw(seed, page)

  const headerOk = meta.magic === META_MAGIC && meta.version === META_VERSION
  if (meta.magic !== META_MAGIC) {
    problems.push({code: 'bad-magic', message: `bad magic ${hex8(meta.magic)} (expected ${hex8(META_MAGIC)})`})
  }
  if (meta.version !== META_VERSION) {
    problems.push({code: 'bad-version', message: `version ${meta.version} (expected ${META_VERSION})`})
  }
  if (meta.metaSize > BLOCK_SIZE) {
    problems.push({code: 'bad-meta-size', message: `meta_size ${meta.metaSize} exceeds ${BLOCK_SIZE}`})
  }
  if (computedChecksum !== meta.checksum) {
    problems.push({code: 'bad-checksum', message: `checksum expected ${hex8(computedChecksum)} got ${hex8(meta.checksum)}`})
  }
  if (expect?.seq !== undefined && meta.seq !== expect.seq) {
    problems.push({code: 'seq-mismatch', message: `seq ${meta.seq} (expected ${expect.seq})`})
  }
  if (expect?.position !== undefined && meta.position !== expect.position) {
    problems.push({code: 'position-mismatch', message: `position ${meta.position} (expected ${expect.position})`})
  }

  if (headerOk) {
    const limit = Math.min(meta.metaSize, BLOCK_SIZE)
    const bad = (message: string): void => {
      problems.push({code: 'bad-payload', message})
    }
    let off = META_HEADER_SIZE
    while (off < limit) {
      if (off + 8 > limit) {
        bad(`payload at offset ${off} truncated: header runs past ${limit}`)
        break
      }
      const type = dv.getUint16(off, true)
      const flags = dv.getUint16(off + 2, true)
      const size = dv.getUint32(off + 4, true)
      if (type === PAYLOAD_FLUSH) {
        const end = off + FLUSH_HEADER_SIZE + size
        if (size % 8 !== 0) {
          bad(`flush payload at offset ${off}: list size ${size} bytes is not a multiple of 8`)
          break
        }
        if (end > limit) {
          bad(`flush payload at offset ${off} (${FLUSH_HEADER_SIZE + size} bytes) runs past ${limit}`)
          break
        }
        const stripes: bigint[] = []
        for (let p = off + FLUSH_HEADER_SIZE; p < end; p += 8) stripes.push(dv.getBigUint64(p, true))
        meta.payloads.push({type: PAYLOAD_FLUSH, flags, stripes})
        off = end
      } else if (type === PAYLOAD_DATA || type === PAYLOAD_PARITY) {
        if (size % BLOCK_SECTORS !== 0) {
          bad(`${type === PAYLOAD_DATA ? 'data' : 'parity'} payload at offset ${off}: size ${size} sectors is not a multiple of ${BLOCK_SECTORS}`)
          break
        }
        const n = size / BLOCK_SECTORS
        const end = off + DATA_PARITY_HEADER_SIZE + 4 * n
        if (end > limit) {
          bad(`${type === PAYLOAD_DATA ? 'data' : 'parity'} payload at offset ${off} (${DATA_PARITY_HEADER_SIZE + 4 * n} bytes) runs past ${limit}`)
          break
        }
        const checksums: number[] = new Array<number>(n)
        for (let i = 0; i < n; i++) checksums[i] = dv.getUint32(off + DATA_PARITY_HEADER_SIZE + 4 * i, true)
        meta.payloads.push({type, flags, sizeSectors: size, location: dv.getBigUint64(off + 8, true), checksums})
        off = end
      } else {
        bad(`unknown payload type ${type} at offset ${off}`)
        break
      }
    }
  }
  return {meta, problems, computedChecksum}
}

/** Number of 4 KiB pages that follow the meta block in the ring (its data and parity pages). */
export function pagesOf(m: MetaBlock): number {
  let sectors = 0
  for (const p of m.payloads) if (p.type !== PAYLOAD_FLUSH) sectors += p.sizeSectors
  return Math.floor(sectors / BLOCK_SECTORS)
}

/**
 * One meta block's payloads as parallel typed arrays, for the replay's hot path: decoding into
 * objects costs a BigInt and an array per payload (about 185 payloads per io unit in a full log),
 * and the walk over a 1 GiB log decodes some 1400 blocks twice. Filled by decodeMetaColumns; one
 * instance is reused for every block, so its contents are valid until the next decode.
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

  /** The same block as decodeMetaBlock returns it (objects, BigInts): for cold paths and errors. */
  toMetaBlock(seed: number): MetaBlock {
    return decodeMetaBlock(this.page, seed).meta!
  }
}

/**
 * decodeMetaBlock's checks for the common case, into reusable columns, without allocating:
 * returns true when the block is valid (magic, version, meta_size ≤ 4096, checksum, seq and
 * position as expected, every payload well-formed). On false, nothing is said about why: call
 * decodeMetaBlock for the problems and their messages (the rules live there; this is only a
 * faster road to the same yes). test/unit/meta-columns.test.ts holds the two to the same answers.
 */
export function decodeMetaColumns(block: Uint8Array, seed: number, expectSeq: bigint | undefined, expectPosition: number, out: MetaColumns): boolean {
  if (block.length < BLOCK_SIZE) return false
  const page = out.page
  page.set(block.subarray(0, BLOCK_SIZE))
  const dv = out.dv
  if (dv.getUint32(0, true) !== META_MAGIC || dv.getUint8(8) !== META_VERSION) return false
  const metaSize = dv.getUint32(12, true)
  if (metaSize > BLOCK_SIZE) return false
  // position: a u64 compared as two halves (no BigInt)
  if (dv.getUint32(24, true) !== expectPosition % 0x100000000 || dv.getUint32(28, true) !== Math.floor(expectPosition / 0x100000000)) return false
  const seq = dv.getBigUint64(16, true)
  if (expectSeq !== undefined && seq !== expectSeq) return false
  const stored = dv.getUint32(4, true)
  dv.setUint32(4, 0, true)
  const computed = crc32cRaw(seed, page)
  dv.setUint32(4, stored, true)
  if (computed !== stored) return false
  out.seq = seq
  let n = 0
  let pages = 0
  let huge = false
  let off = META_HEADER_SIZE
  while (off < metaSize) {
    if (off + 8 > metaSize) return false
    const type = dv.getUint16(off, true)
    const size = dv.getUint32(off + 4, true)
    let end: number
    if (type === PAYLOAD_FLUSH) {
      if (size % 8 !== 0) return false
      end = off + FLUSH_HEADER_SIZE + size
      out.at[n] = off + FLUSH_HEADER_SIZE
      out.location[n] = 0
    } else if (type === PAYLOAD_DATA || type === PAYLOAD_PARITY) {
      if (size % BLOCK_SECTORS !== 0) return false
      end = off + DATA_PARITY_HEADER_SIZE + 4 * (size / BLOCK_SECTORS)
      if (end > metaSize) return false // before the location is read: it may lie past the block
      const hi = dv.getUint32(off + 12, true)
      if (hi >= 0x200000) huge = true
      out.location[n] = dv.getUint32(off + 8, true) + hi * 0x100000000
      out.at[n] = off + DATA_PARITY_HEADER_SIZE
      pages += size / BLOCK_SECTORS
    } else return false
    if (end > metaSize) return false
    out.type[n] = type
    out.size[n] = size
    n++
    off = end
  }
  out.count = n
  out.pages = pages
  out.hugeLocation = huge
  return true
}
