/**
 * The undo file's layout (version 2): encoders and decoders of its header and records, and the
 * checksums that cover every field. log.ts writes files, restore.ts reads them.
 *
 * All integers little-endian. crc32c is the Castagnoli CRC (checksum.ts).
 *
 *   header, 4096 bytes, written once before the first record:
 *     0 magic "R5UNDO01" | 8 version u32 = 2 | 12 reserved u32 = 0 | 16 created, ms since 1970, u64 |
 *     24 array uuid [16] | 40 device count u32 | 44 header crc u32 (crc32c of the 4096 bytes with
 *     this field 0) | 48 device table: per device, name length u16, name utf-8, size u64,
 *     device uuid [16] (zero when the device had no superblock)
 *   then records, each a 32-byte head and a payload:
 *     0 kind u32 | 4 device u16 (index into the device table) | 6 reserved u16 = 0 | 8 byte offset u64 |
 *     16 length u32 | 20 payload crc u32 (crc32c of the payload) | 24 sequence u32 (0, 1, 2, ... over
 *     all records of the file) | 28 head crc u32 (crc32c of head bytes 0-27)
 *   A head is checked on its own, so a damaged length or offset is told apart from a payload the
 *   file ends inside (the torn last record of a run that stopped while writing it).
 *   kinds, in this order in a complete file:
 *     "UNDO" old bytes: the device's bytes [offset, offset+length) before the run wrote them;
 *            payload = those bytes. Durable (fdatasync) before the device write that replaces them.
 *     "UNDA" after: one per old-bytes record, same order, device, offset and length; payload =
 *            crc32c u32 of those device bytes as the run left them (read back at its end).
 *     "UNDE" end: offset = number of old-bytes records, length 0, no payload; nothing follows.
 * A file without its end record is incomplete: its run failed or was cut off. Records never
 * overlap: each device block is saved once, the first time the run overwrites it.
 */
import {crc32cRaw} from '../checksum.js'

export const MAGIC = 'R5UNDO01'
export const VERSION = 2
export const HEADER_BYTES = 4096
export const HEAD_BYTES = 32
/** old bytes are split into records of at most this many bytes: the reader's memory window */
export const MAX_RECORD = 1 << 20

export const KIND_OLD = 0x4f444e55 // "UNDO"
export const KIND_AFTER = 0x41444e55 // "UNDA"
export const KIND_END = 0x45444e55 // "UNDE"

export interface UndoDeviceInfo {
  name: string
  size: number
  deviceUuid: Uint8Array
}

export interface UndoHeader {
  version: number
  created: Date
  arrayUuid: Uint8Array
  devices: UndoDeviceInfo[]
}

export interface RecordHead {
  kind: number
  device: number
  reserved: number
  offset: number
  length: number
  /** crc32c of the payload */
  crc: number
  seq: number
  /** the head's own checksum matches */
  headOk: boolean
}

/** crc32c state helpers: start, update with more bytes, finish */
export const crcStart = 0xffffffff
export function crcMore(state: number, buf: Uint8Array): number {
  return crc32cRaw(state, buf)
}
export function crcEnd(state: number): number {
  return ~state >>> 0
}

export function encodeHeader(h: UndoHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES)
  b.write(MAGIC, 0, 'latin1')
  b.writeUInt32LE(h.version, 8)
  b.writeBigUInt64LE(BigInt(h.created.getTime()), 16)
  Buffer.from(h.arrayUuid).copy(b, 24, 0, 16)
  b.writeUInt32LE(h.devices.length, 40)
  let o = 48
  for (const d of h.devices) {
    const name = Buffer.from(d.name, 'utf8')
    if (o + 2 + name.length + 8 + 16 > HEADER_BYTES) return tooMany()
    b.writeUInt16LE(name.length, o)
    o += 2
    name.copy(b, o)
    o += name.length
    b.writeBigUInt64LE(BigInt(d.size), o)
    o += 8
    Buffer.from(d.deviceUuid).copy(b, o, 0, 16)
    o += 16
  }
  b.writeUInt32LE(crcEnd(crcMore(crcStart, b)), 44)
  return b
}

function tooMany(): never {
  throw new RangeError('the device names do not fit in an undo file header')
}

/** Why a header cannot be used, or the header. `version` is reported before anything else is trusted. */
export function decodeHeader(b: Uint8Array): UndoHeader | {problem: string; version?: number} {
  const h = Buffer.from(b.buffer, b.byteOffset, b.length)
  if (h.length < HEADER_BYTES || h.toString('latin1', 0, 8) !== MAGIC) return {problem: 'not an r5ctl undo file (bad magic)'}
  const version = h.readUInt32LE(8)
  if (version !== VERSION) return {problem: `undo file format version ${version}; this r5ctl reads version ${VERSION}`, version}
  const copy = Buffer.from(h.subarray(0, HEADER_BYTES))
  const stored = copy.readUInt32LE(44)
  copy.writeUInt32LE(0, 44)
  if (crcEnd(crcMore(crcStart, copy)) !== stored) return {problem: 'header checksum mismatch'}
  const n = copy.readUInt32LE(40)
  const devices: UndoDeviceInfo[] = []
  let o = 48
  for (let i = 0; i < n; i++) {
    if (o + 2 > HEADER_BYTES) return {problem: 'device table overruns the header'}
    const l = copy.readUInt16LE(o)
    o += 2
    if (o + l + 24 > HEADER_BYTES) return {problem: 'device table overruns the header'}
    const name = copy.toString('utf8', o, o + l)
    o += l
    const size = Number(copy.readBigUInt64LE(o))
    o += 8
    const deviceUuid = new Uint8Array(copy.subarray(o, o + 16))
    o += 16
    devices.push({name, size, deviceUuid})
  }
  return {version, created: new Date(Number(copy.readBigUInt64LE(16))), arrayUuid: new Uint8Array(copy.subarray(24, 40)), devices}
}

/** The head of a record whose payload is `payload` (given in pieces). */
export function encodeHead(r: Omit<RecordHead, 'crc' | 'headOk'>, payload: Uint8Array[]): Buffer {
  const b = Buffer.alloc(HEAD_BYTES)
  b.writeUInt32LE(r.kind, 0)
  b.writeUInt16LE(r.device, 4)
  b.writeUInt16LE(r.reserved, 6)
  b.writeBigUInt64LE(BigInt(r.offset), 8)
  b.writeUInt32LE(r.length, 16)
  let s = crcStart
  for (const p of payload) s = crcMore(s, p)
  b.writeUInt32LE(crcEnd(s), 20)
  b.writeUInt32LE(r.seq, 24)
  b.writeUInt32LE(crcEnd(crcMore(crcStart, b.subarray(0, 28))), 28)
  return b
}

export function decodeHead(b: Uint8Array): RecordHead {
  const h = Buffer.from(b.buffer, b.byteOffset, HEAD_BYTES)
  return {
    kind: h.readUInt32LE(0),
    device: h.readUInt16LE(4),
    reserved: h.readUInt16LE(6),
    offset: Number(h.readBigUInt64LE(8)),
    length: h.readUInt32LE(16),
    crc: h.readUInt32LE(20),
    seq: h.readUInt32LE(24),
    headOk: crcEnd(crcMore(crcStart, h.subarray(0, 28))) === h.readUInt32LE(28),
  }
}

/** payload bytes of a record of this kind and length */
export function payloadBytes(kind: number, length: number): number {
  return kind === KIND_OLD ? length : kind === KIND_AFTER ? 4 : 0
}
