/**
 * Packing records into io units and appending them to the ring: a meta block followed by the
 * pages its payloads describe, as many records per unit as the 4 KiB meta block holds, all units
 * of one call written with one request per contiguous run of the ring.
 */
import {DATA_PARITY_HEADER_SIZE, PAYLOAD_FLUSH, encodeMetaBlock, payloadBytes, seqAfter, type Payload} from '../format/meta.js'
import {alignedBuffer} from '../device.js'
import type {MdArray} from '../array.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

export interface LogRecord {
  /** DATA/PARITY payloads get their checksums filled in from `pages`; FLUSH payloads as given */
  payloads: Payload[]
  pages: Uint8Array[]
}

export interface LogCursor {
  head: number
  seq: bigint
}

const META_LIMIT = 4096

/**
 * Bytes a record's payloads take in a meta block. DATA/PARITY payloads arrive without their
 * checksums (they are filled in from the pages), so their size comes from sizeSectors: 16 bytes
 * plus 4 per page — counting the empty checksum list instead once packed 254 parity payloads of
 * 20 bytes into one 4 KiB meta block.
 */
function recordMetaBytes(r: LogRecord): number {
  let bytes = 0
  for (const p of r.payloads) bytes += p.type === PAYLOAD_FLUSH ? payloadBytes(p) : DATA_PARITY_HEADER_SIZE + 4 * (p.sizeSectors / BLOCK_SECTORS)
  return bytes
}

/** Size in bytes the records take in the ring (meta blocks included). */
export function unitsSize(records: LogRecord[]): number {
  let bytes = 0
  let meta = META_LIMIT
  for (const r of records) {
    const mb = recordMetaBytes(r)
    if (meta + mb > META_LIMIT) {
      bytes += PAGE
      meta = 32
    }
    meta += mb
    bytes += r.pages.length * PAGE
  }
  return bytes
}

/** PARITY records of `nParity` pages one meta block holds */
export function parityPerUnit(nParity: number): number {
  return Math.floor((META_LIMIT - 32) / (DATA_PARITY_HEADER_SIZE + 4 * nParity))
}

/**
 * What `count` PARITY records of `nParity` pages each take when appended in one call: the ring bytes
 * (meta blocks included) and the number of io units, by the packing unitsSize uses.
 */
export function parityUnitsSize(count: number, nParity: number): {bytes: number; units: number} {
  const units = Math.ceil(count / parityPerUnit(nParity))
  return {bytes: (units + count * nParity) * PAGE, units}
}

/**
 * Append records at cursor.head with consecutive seqs; returns the new cursor, the last unit's
 * position and the ring position of every page, in record order. The units are laid out in `scratch`
 * when it is large enough (a caller appending many times reuses one buffer).
 */
export function appendRecords(
  arr: MdArray,
  cur: LogCursor,
  records: LogRecord[],
  scratch?: Uint8Array,
): LogCursor & {lastUnit: number; bytes: number; pagePos: number[]} {
  const ring = arr.ring!
  const total = unitsSize(records)
  const buf = scratch && scratch.length >= total ? scratch.fill(0, 0, total) : alignedBuffer(Math.max(total, PAGE))
  let off = 0
  let unitOff = -1
  let payloads: Payload[] = []
  let meta = META_LIMIT
  let seq = cur.seq
  let lastUnit = cur.head
  const close = () => {
    if (unitOff < 0) return
    const pos = ring.add(cur.head, unitOff / 512)
    encodeMetaBlock({seq, position: BigInt(pos), payloads}, arr.seed, buf.subarray(unitOff, unitOff + PAGE))
    lastUnit = pos
    seq = seqAfter(seq)
    payloads = []
  }
  const sums = new Uint32Array(64)
  const pagePos: number[] = []
  for (const r of records) {
    const mb = recordMetaBytes(r)
    if (meta + mb > META_LIMIT) {
      close()
      unitOff = off
      off += PAGE
      meta = 32
    }
    meta += mb
    const base = off
    for (const p of r.pages) {
      buf.set(p, off)
      pagePos.push(ring.add(cur.head, off / 512))
      off += PAGE
    }
    if (r.pages.length > 0) arr.compute.crc.pages(arr.seed, buf.subarray(base, off), sums, 0)
    let k = 0
    for (const p of r.payloads) {
      if (p.type === PAYLOAD_FLUSH) {
        payloads.push(p)
        continue
      }
      const n = p.sizeSectors / BLOCK_SECTORS
      payloads.push({...p, checksums: Array.from(sums.subarray(k, k + n))})
      k += n
    }
  }
  close()
  ring.write(buf.subarray(0, total), cur.head)
  return {head: ring.add(cur.head, total / 512), seq, lastUnit, bytes: total, pagePos}
}
