/**
 * Undo files: a way back from every destructive step, as e2undo gives for e2fsprogs. A device
 * wrapper saves the old contents of every 4 KiB block the first time a command overwrites it,
 * into a checksummed file of ours, written ahead of the device write (fdatasync first). The file
 * is marked complete only when the command finishes. `r5ctl undo` verifies everything before it
 * writes a byte and restores bit-identical images.
 *
 * Layout (little-endian):
 *   header, 4096 bytes: magic "R5UNDO01" | version u32 = 1 | flags u32 (1 = complete) |
 *     created ms u64 | array uuid [16] | device count u32 | record count u64 | records crc u32 |
 *     header crc u32 (crc32c of the header with this field 0) | device table: per device
 *     name length u16, name utf-8, size u64, device uuid [16]
 *   records: magic u32 0x4f444e55 | device u16 | pad u16 | offset u64 | length u32 |
 *     crc32c(data) u32 | data
 * Like e2undo's files, an undo file does not survive a crash of the run that writes it: it is
 * only complete when that run ends, and `undo` refuses an incomplete one without --force.
 */
import * as fs from 'node:fs'
import {crc32c} from './checksum.js'
import {DeviceWrapper, type BlockDevice} from './device.js'
import {CorruptError, RefusedError, UsageError} from './errors.js'

const MAGIC = 'R5UNDO01'
const REC_MAGIC = 0x4f444e55
const HEADER = 4096
const BLOCK = 4096

export interface UndoDeviceInfo {name: string; size: number; deviceUuid: Uint8Array}

function crcUpdate(prev: number, buf: Uint8Array): number {
  // chain record checksums: crc32c over (previous crc as 4 bytes || record crc)
  const b = Buffer.alloc(8)
  b.writeUInt32LE(prev >>> 0, 0)
  b.writeUInt32LE(crc32c(buf) >>> 0, 4)
  return crc32c(b)
}

export class UndoLog {
  private fd: number
  private pos = HEADER
  private records = 0n
  private chain = 0

  constructor(readonly file: string, readonly arrayUuid: Uint8Array, readonly devices: UndoDeviceInfo[]) {
    if (fs.existsSync(file)) throw new RefusedError('undo file already exists; r5ctl never overwrites it', file, 'choose a new file name', 'would-overwrite')
    this.fd = fs.openSync(file, 'wx')
    this.writeHeader(false)
  }

  private writeHeader(complete: boolean): void {
    const h = Buffer.alloc(HEADER)
    h.write(MAGIC, 0, 'latin1')
    h.writeUInt32LE(1, 8)
    h.writeUInt32LE(complete ? 1 : 0, 12)
    h.writeBigUInt64LE(BigInt(Date.now()), 16)
    Buffer.from(this.arrayUuid).copy(h, 24)
    h.writeUInt32LE(this.devices.length, 40)
    h.writeBigUInt64LE(this.records, 44)
    h.writeUInt32LE(this.chain >>> 0, 52)
    let o = 60
    for (const d of this.devices) {
      const name = Buffer.from(d.name, 'utf8').subarray(0, 200)
      if (o + 2 + name.length + 8 + 16 > HEADER) throw new UsageError('too many devices for an undo file')
      h.writeUInt16LE(name.length, o); o += 2
      name.copy(h, o); o += name.length
      h.writeBigUInt64LE(BigInt(d.size), o); o += 8
      Buffer.from(d.deviceUuid).copy(h, o); o += 16
    }
    h.writeUInt32LE(crc32c(h) >>> 0, 56)
    fs.writeSync(this.fd, h, 0, HEADER, 0)
    fs.fdatasyncSync(this.fd)
  }

  /** Save old contents ahead of a device write (durable before it returns). */
  save(device: number, offset: number, old: Uint8Array): void {
    const r = Buffer.alloc(24)
    r.writeUInt32LE(REC_MAGIC, 0)
    r.writeUInt16LE(device, 4)
    r.writeBigUInt64LE(BigInt(offset), 8)
    r.writeUInt32LE(old.length, 16)
    r.writeUInt32LE(crc32c(old) >>> 0, 20)
    fs.writevSync(this.fd, [r, old], this.pos)
    fs.fdatasyncSync(this.fd)
    this.pos += 24 + old.length
    this.records++
    this.chain = crcUpdate(this.chain, old)
  }

  complete(): void {
    this.writeHeader(true)
    fs.closeSync(this.fd)
  }

  /** the command failed: keep what was saved (it still undoes what happened), unmarked */
  abandon(): void {
    try { fs.closeSync(this.fd) } catch { /* closed */ }
  }
}

/** Wraps one device: the first overwrite of every 4 KiB block saves the old block first. */
export class UndoDevice extends DeviceWrapper {
  private saved = new Set<number>()

  constructor(inner: BlockDevice, private log: UndoLog, private index: number) {
    super(inner)
  }

  override writev(bufs: Uint8Array[], offset: number): void {
    let len = 0
    for (const b of bufs) len += b.length
    const first = Math.floor(offset / BLOCK)
    const last = Math.floor((offset + len - 1) / BLOCK)
    let runStart = -1
    const flushRun = (end: number) => {
      if (runStart < 0) return
      const from = runStart * BLOCK
      const to = Math.min(end * BLOCK, this.inner.size)
      const old = new Uint8Array(to - from)
      this.inner.read(old, from)
      this.log.save(this.index, from, old)
      runStart = -1
    }
    for (let b = first; b <= last; b++) {
      if (this.saved.has(b)) { flushRun(b); continue }
      this.saved.add(b)
      if (runStart < 0) runStart = b
    }
    flushRun(last + 1)
    this.inner.writev(bufs, offset)
  }
}

export interface UndoFile {
  complete: boolean
  created: Date
  arrayUuid: Uint8Array
  devices: UndoDeviceInfo[]
  records: {device: number; offset: number; length: number; dataOffset: number}[]
}

/** Read and verify an undo file completely; throws CorruptError on any damage. */
export function readUndoFile(file: string): UndoFile {
  let buf: Buffer
  try { buf = fs.readFileSync(file) } catch (e) { throw new UsageError(`cannot read undo file: ${(e as Error).message}`, undefined, file) }
  const bad = (what: string) => new CorruptError(`undo file is damaged: ${what}`, file, 'it cannot be used to restore safely', 'bad-undo-file')
  if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== MAGIC) throw bad('not an r5ctl undo file (bad magic)')
  const h = Buffer.from(buf.subarray(0, HEADER))
  const stored = h.readUInt32LE(56)
  h.writeUInt32LE(0, 56)
  if ((crc32c(h) >>> 0) !== stored) throw bad('header checksum mismatch')
  const complete = (h.readUInt32LE(12) & 1) === 1
  const n = h.readUInt32LE(40)
  const count = h.readBigUInt64LE(44)
  const chainWant = h.readUInt32LE(52)
  const devices: UndoDeviceInfo[] = []
  let o = 60
  for (let i = 0; i < n; i++) {
    const l = h.readUInt16LE(o); o += 2
    const name = h.toString('utf8', o, o + l); o += l
    const size = Number(h.readBigUInt64LE(o)); o += 8
    const deviceUuid = new Uint8Array(h.subarray(o, o + 16)); o += 16
    devices.push({name, size, deviceUuid})
  }
  const records: UndoFile['records'] = []
  let pos = HEADER
  let chain = 0
  while (pos + 24 <= buf.length) {
    if (buf.readUInt32LE(pos) !== REC_MAGIC) break
    const device = buf.readUInt16LE(pos + 4)
    const offset = Number(buf.readBigUInt64LE(pos + 8))
    const length = buf.readUInt32LE(pos + 16)
    const crc = buf.readUInt32LE(pos + 20)
    if (pos + 24 + length > buf.length) break
    const data = buf.subarray(pos + 24, pos + 24 + length)
    if ((crc32c(data) >>> 0) !== crc) throw bad(`record ${records.length} checksum mismatch`)
    if (device >= n) throw bad(`record ${records.length} names device ${device} of ${n}`)
    records.push({device, offset, length, dataOffset: pos + 24})
    chain = crcUpdate(chain, data)
    pos += 24 + length
  }
  if (complete && (BigInt(records.length) !== count || (chain >>> 0) !== chainWant)) throw bad('record count or chain checksum does not match the header')
  return {complete, created: new Date(Number(h.readBigUInt64LE(16))), arrayUuid: new Uint8Array(h.subarray(24, 40)), devices, records}
}
