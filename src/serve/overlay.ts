/**
 * The copy-on-write overlay of `r5ctl serve`: a file that takes every write made through NBD, so
 * that the array's members are never written and the writes survive restarts of the server. The
 * format (docs/serve.md): a header naming the array and the export size, a bitmap of the 4 KiB
 * blocks the overlay holds, and those blocks at a fixed offset in a sparse file. Bitmap pages are
 * written only by flush(), after the data they cover is synced, so that after a crash a set bit
 * always has its block's data behind it.
 */
import * as fs from 'node:fs'
import {crc32c} from '../engine/checksum.js'
import {IoError, UsageError} from '../engine/errors.js'
import {DeviceLock} from '../engine/lock.js'
import type {ExportSource, WritableExport} from './export.js'

export const OVERLAY_MAGIC = 'R5OVRLAY'
export const OVERLAY_VERSION = 2
export const BLOCK = 4096
/** the header occupies the first block; its checked bytes are the first HEADER_BYTES */
const HEADER_BYTES = 128
const UUID_FIELD = 64
/** bits of one bitmap page: 32768 blocks, 128 MiB of the export */
const PAGE_BITS = BLOCK * 8
/** bitmap pages kept in memory beyond the dirty ones, and dirty ones before a flush of its own */
const CLEAN_PAGES = 256
const DIRTY_PAGES = 256

export interface OverlayHeader {
  version: number
  blockSize: number
  size: number
  bitmapOffset: number
  dataOffset: number
  arrayUuid: string
  /**
   * the array's events count when the overlay was made: every r5ctl or md write of superblocks
   * (write, recover, reclaim, assemble) moves it, and the overlay's writes were made over the bytes
   * of that state only
   */
  events: bigint
  /** the bytes under the overlay: a partial block written is completed from them */
  view: OverlayView
}

/** what the overlay lies over: the replayed view of a dirty journal, or the members as they are */
export type OverlayView = 'members' | 'replayed'
const VIEW_CODES: Record<OverlayView, number> = {members: 1, replayed: 2}
const VIEW_NAMES: Record<OverlayView, string> = {
  members: 'the members as they are',
  replayed: 'the replayed view (the journal laid over the members)',
}

/** where the bitmap and the data lie for an export of `size` bytes */
export function overlayLayout(size: number): {bitmapOffset: number; dataOffset: number} {
  const bitmapBytes = Math.ceil(size / BLOCK / 8 / BLOCK) * BLOCK
  return {bitmapOffset: BLOCK, dataOffset: BLOCK + bitmapBytes}
}

export function encodeOverlayHeader(h: OverlayHeader): Buffer {
  const b = Buffer.alloc(BLOCK)
  b.write(OVERLAY_MAGIC, 0, 'latin1')
  b.writeUInt32LE(h.version, 8)
  b.writeUInt32LE(h.blockSize, 12)
  b.writeBigUInt64LE(BigInt(h.size), 16)
  b.writeBigUInt64LE(BigInt(h.bitmapOffset), 24)
  b.writeBigUInt64LE(BigInt(h.dataOffset), 32)
  b.writeUInt32LE(VIEW_CODES[h.view], 40)
  b.write(h.arrayUuid, 48, UUID_FIELD, 'utf8')
  b.writeBigUInt64LE(h.events, 48 + UUID_FIELD)
  b.writeUInt32LE(crc32c(b.subarray(0, HEADER_BYTES - 4)), HEADER_BYTES - 4)
  return b
}

/** the header, or a sentence saying why these bytes are not one */
export function decodeOverlayHeader(b: Buffer): OverlayHeader | string {
  if (b.length < HEADER_BYTES || b.toString('latin1', 0, 8) !== OVERLAY_MAGIC) return 'not an r5ctl overlay file (no R5OVRLAY magic)'
  if (b.readUInt32LE(HEADER_BYTES - 4) !== crc32c(b.subarray(0, HEADER_BYTES - 4))) return 'the overlay header checksum does not match'
  const version = b.readUInt32LE(8)
  if (version !== OVERLAY_VERSION) return `overlay format version ${version}; this r5ctl reads version ${OVERLAY_VERSION}`
  const uuid = b.subarray(48, 48 + UUID_FIELD)
  const end = uuid.indexOf(0)
  const view = (Object.keys(VIEW_CODES) as OverlayView[]).find(v => VIEW_CODES[v] === b.readUInt32LE(40))
  if (!view) return `the overlay header names no view it lies over (${b.readUInt32LE(40)})`
  return {
    view,
    version,
    blockSize: b.readUInt32LE(12),
    size: Number(b.readBigUInt64LE(16)),
    bitmapOffset: Number(b.readBigUInt64LE(24)),
    dataOffset: Number(b.readBigUInt64LE(32)),
    arrayUuid: uuid.toString('utf8', 0, end < 0 ? UUID_FIELD : end),
    events: b.readBigUInt64LE(48 + UUID_FIELD),
  }
}

/** the overlay as openOverlay returns it: a writable export, and how much it holds */
export interface OverlayExport extends WritableExport {
  /** 4 KiB blocks the overlay holds */
  heldBlocks(): number
}

/**
 * Open the overlay at `path` over `base` (creating it when the file is missing or empty), locked
 * against a second writer. Throws UsageError when the file belongs to another array or size.
 */
/** the array an overlay belongs to, its events count (default 0: an export that is no array), and the view it lies over */
export interface OverlayIdentity {
  arrayUuid: string
  events?: bigint
  view: OverlayView
}

export function openOverlay(path: string, base: ExportSource, identity: OverlayIdentity): OverlayExport {
  if (base.size % BLOCK !== 0) throw new Error(`export size ${base.size} is not a multiple of ${BLOCK}`)
  if (Buffer.byteLength(identity.arrayUuid) > UUID_FIELD) throw new UsageError(`array UUID longer than ${UUID_FIELD} bytes`)
  const existed = fs.existsSync(path)
  let fd: number
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
  } catch (error) {
    throw new UsageError(`cannot open the overlay file: ${(error as Error).message}`, undefined, path)
  }
  let lock: DeviceLock | null = null
  let making = false
  try {
    // sparse data at fixed offsets: a FIFO, a device or a folder cannot hold it, and nothing is written to one
    if (!fs.fstatSync(fd).isFile())
      throw new UsageError(`${path} is not a regular file`, 'name a file for the overlay (it is created when missing)', path)
    lock = DeviceLock.acquire(fd, path)
    making = fs.fstatSync(fd).size === 0
    const header = making ? create(fd, path, base.size, identity) : check(fd, path, base.size, identity)
    return new Overlay(fd, lock, base, header)
  } catch (error) {
    // a new overlay that could not be made whole is taken back: a stub would be refused later as cut
    if (making) fs.ftruncateSync(fd, 0)
    lock?.release()
    fs.closeSync(fd)
    if (making && !existed) fs.rmSync(path, {force: true})
    throw error
  }
}

function create(fd: number, path: string, size: number, id: OverlayIdentity): OverlayHeader {
  const header: OverlayHeader = {
    version: OVERLAY_VERSION,
    blockSize: BLOCK,
    size,
    arrayUuid: id.arrayUuid,
    events: id.events ?? 0n,
    view: id.view,
    ...overlayLayout(size),
  }
  try {
    // the writes it holds are the operator's alone, as those of a file made here are
    fs.fchmodSync(fd, 0o600)
    writeFull(fd, encodeOverlayHeader(header), 0)
    // sparse: the bitmap reads as zeroes and blocks cost space only once written
    fs.ftruncateSync(fd, header.dataOffset + size)
    fs.fsyncSync(fd)
    syncDirectory(path)
  } catch (error) {
    throw new IoError(
      `cannot make the overlay file: ${(error as Error).message}`,
      path,
      'free space (or raise the file size limit) and serve again; no overlay was left behind',
    )
  }
  return header
}

function check(fd: number, path: string, size: number, id: OverlayIdentity): OverlayHeader {
  const arrayUuid = id.arrayUuid
  const b = Buffer.alloc(BLOCK)
  fs.readSync(fd, b, 0, BLOCK, 0)
  const h = decodeOverlayHeader(b)
  const hint = 'use another overlay file, or delete this one to discard the writes it holds'
  if (typeof h === 'string') throw new UsageError(`${path}: ${h}`, hint, path)
  if (h.arrayUuid !== arrayUuid) throw new UsageError(`${path} holds writes to array ${h.arrayUuid}, not to array ${arrayUuid}`, hint, path)
  if (h.events !== (id.events ?? 0n))
    throw new UsageError(
      `${path} was made over array ${arrayUuid} at events ${h.events}; the array is at events ${id.events ?? 0n} now (it was written or recovered since), so the overlay's writes were made over other bytes`,
      'use a new overlay file (or put the array back as it was, with the undo file of what changed it)',
      path,
    )
  if (h.size !== size) throw new UsageError(`${path} was made for an export of ${h.size} bytes; this export has ${size}`, hint, path)
  if (h.view !== id.view)
    throw new UsageError(
      `${path} was made over ${VIEW_NAMES[h.view]}; served now ${id.view === 'members' ? 'are' : 'is'} ${VIEW_NAMES[id.view]}: its partial blocks were completed from the other bytes`,
      `serve ${h.view === 'replayed' ? 'with the journal and without --no-replay' : 'with --no-replay (or as it was served then)'}, or use a new overlay file`,
      path,
    )
  const layout = overlayLayout(size)
  if (h.blockSize !== BLOCK || h.bitmapOffset !== layout.bitmapOffset || h.dataOffset !== layout.dataOffset)
    throw new UsageError(`${path}: the header's block size or offsets are not those of this format version`, hint, path)
  if (fs.fstatSync(fd).size < h.dataOffset + size) throw new UsageError(`${path} is shorter than its header says: it was cut`, hint, path)
  return h
}

/** a new file's directory entry must be durable too, or a crash could lose the whole overlay */
function syncDirectory(path: string): void {
  const slash = path.lastIndexOf('/')
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? '/' : '.'
  const dfd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(dfd)
  } finally {
    fs.closeSync(dfd)
  }
}

function writeFull(fd: number, b: Uint8Array, position: number): void {
  for (let at = 0; at < b.length;) at += fs.writeSync(fd, b, at, b.length - at, position + at)
}

function readFull(fd: number, b: Uint8Array, position: number): void {
  for (let at = 0; at < b.length;) {
    const n = fs.readSync(fd, b, at, b.length - at, position + at)
    if (n === 0) throw new Error(`overlay file ends before byte ${position + b.length}`)
    at += n
  }
}

interface Page {
  bits: Buffer
  dirty: boolean
}

class Overlay implements OverlayExport {
  readonly size: number
  /** bitmap pages read or changed, in least-recently-used order (a Map keeps insertion order) */
  private readonly pages = new Map<number, Page>()
  private dirty = 0
  private closed = false

  constructor(
    private readonly fd: number,
    private readonly lock: DeviceLock,
    private readonly base: ExportSource,
    private readonly h: OverlayHeader,
  ) {
    this.size = base.size
  }

  read(offset: number, length: number): Uint8Array {
    this.checkRange(offset, length)
    const runs = this.runs(offset, length)
    if (runs.length === 1 && !runs[0].held) return this.base.read(offset, length)
    const out = Buffer.allocUnsafe(length)
    for (const r of runs) {
      const piece = out.subarray(r.start - offset, r.end - offset)
      if (r.held) readFull(this.fd, piece, this.h.dataOffset + r.start)
      else piece.set(this.base.read(r.start, r.end - r.start))
    }
    return out
  }

  write(offset: number, data: Uint8Array): void {
    this.checkRange(offset, data.length)
    if (data.length === 0) return
    const end = offset + data.length
    const first = Math.floor(offset / BLOCK)
    const last = Math.ceil(end / BLOCK) - 1
    // whole blocks go straight in; a block written in part is completed from what it holds now
    const headPartial = offset % BLOCK !== 0 || end < (first + 1) * BLOCK
    const tailPartial = end % BLOCK !== 0 && (last > first || !headPartial)
    if (headPartial) this.writePartial(first, offset, data.subarray(0, Math.min(data.length, (first + 1) * BLOCK - offset)))
    const wholeFrom = headPartial ? first + 1 : first
    const wholeTo = tailPartial ? last : last + 1
    if (wholeTo > wholeFrom)
      writeFull(this.fd, data.subarray(wholeFrom * BLOCK - offset, wholeTo * BLOCK - offset), this.h.dataOffset + wholeFrom * BLOCK)
    if (tailPartial && last > first) this.writePartial(last, last * BLOCK, data.subarray(last * BLOCK - offset))
    for (let b = first; b <= last; b++) this.mark(b)
    if (this.dirty > DIRTY_PAGES) this.flush()
  }

  flush(): void {
    if (this.closed) return
    // the data first: a bitmap bit must never be durable before the block it vouches for
    fs.fdatasyncSync(this.fd)
    if (this.dirty === 0) return
    for (const [index, page] of this.pages) {
      if (!page.dirty) continue
      writeFull(this.fd, page.bits, this.h.bitmapOffset + index * BLOCK)
      page.dirty = false
    }
    this.dirty = 0
    fs.fdatasyncSync(this.fd)
    this.evict()
  }

  close(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.lock.release()
    fs.closeSync(this.fd)
  }

  heldBlocks(): number {
    // read straight from the file, a MiB at a time, so that counting does not churn the page cache;
    // pages changed since the last flush are counted from memory
    const pages = Math.ceil(this.size / BLOCK / PAGE_BITS)
    const scratch = Buffer.alloc(Math.min(pages, 256) * BLOCK)
    let n = 0
    for (let p = 0; p < pages; p += 256) {
      const count = Math.min(256, pages - p)
      readFull(this.fd, scratch.subarray(0, count * BLOCK), this.h.bitmapOffset + p * BLOCK)
      for (let i = 0; i < count; i++) {
        const bits = this.pages.get(p + i)?.bits ?? scratch.subarray(i * BLOCK, (i + 1) * BLOCK)
        for (const byte of bits) n += POPCOUNT[byte]
      }
    }
    return n
  }

  private checkRange(offset: number, length: number): void {
    if (this.closed) throw new Error('overlay is closed')
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.size)
      throw new RangeError(`[${offset}, ${offset + length}) is outside the export's ${this.size} bytes`)
  }

  private writePartial(block: number, at: number, part: Uint8Array): void {
    const start = block * BLOCK
    const b = Buffer.alloc(BLOCK)
    if (this.held(block)) readFull(this.fd, b, this.h.dataOffset + start)
    else b.set(this.base.read(start, BLOCK))
    b.set(part, at - start)
    writeFull(this.fd, b, this.h.dataOffset + start)
  }

  /** [offset, offset + length) cut where the overlay's holding changes */
  private runs(offset: number, length: number): {start: number; end: number; held: boolean}[] {
    const runs: {start: number; end: number; held: boolean}[] = []
    const end = offset + length
    for (let b = Math.floor(offset / BLOCK); b * BLOCK < end || runs.length === 0; b++) {
      const held = this.held(b)
      const start = Math.max(offset, b * BLOCK)
      const stop = Math.min(end, (b + 1) * BLOCK)
      const prev = runs.at(-1)
      if (prev?.held === held) prev.end = stop
      else runs.push({start, end: stop, held})
      if (length === 0) break
    }
    return runs
  }

  private held(block: number): boolean {
    const bit = block % PAGE_BITS
    return (this.page(Math.floor(block / PAGE_BITS)).bits[bit >> 3] & (1 << (bit & 7))) !== 0
  }

  private mark(block: number): void {
    const bit = block % PAGE_BITS
    const page = this.page(Math.floor(block / PAGE_BITS))
    if (!page.dirty) {
      page.dirty = true
      this.dirty++
    }
    page.bits[bit >> 3] |= 1 << (bit & 7)
  }

  private page(index: number): Page {
    let page = this.pages.get(index)
    if (page) {
      this.pages.delete(index)
    } else {
      page = {bits: Buffer.alloc(BLOCK), dirty: false}
      readFull(this.fd, page.bits, this.h.bitmapOffset + index * BLOCK)
    }
    this.pages.set(index, page)
    this.evict()
    return page
  }

  /** forget the least recently used clean pages beyond CLEAN_PAGES (dirty ones wait for flush) */
  private evict(): void {
    let excess = this.pages.size - this.dirty - CLEAN_PAGES
    for (const [index, page] of this.pages) {
      if (excess <= 0) break
      if (page.dirty) continue
      this.pages.delete(index)
      excess--
    }
  }
}

/** set bits of each byte value */
const POPCOUNT = Uint8Array.from({length: 256}, (_, x) => {
  let n = 0
  for (; x; x &= x - 1) n++
  return n
})
