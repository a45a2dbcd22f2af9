/**
 * The journal ring: positions are 512-byte sectors relative to the journal device's data_offset,
 * always multiples of BLOCK_SECTORS (8), wrapping at `sizeSectors` (the journal's data_size rounded
 * down to 4 KiB, as the kernel's r5l_init_log does).
 */
import {type PageSumsJob, crc32cPagesAsync} from '../checksum.js'
import type {BlockDevice} from '../device.js'
import type {PayloadLimits} from './scan.js'

export const BLOCK_SECTORS = 8
export const PAGE = 4096

export class Ring {
  /** bounds for payload locations, checked on every io unit a scan reads (set by openArray) */
  payloadLimits: PayloadLimits | null = null

  constructor(
    readonly dev: BlockDevice,
    /** byte offset of sector 0 of the ring on the device */
    readonly baseBytes: number,
    readonly sizeSectors: number,
  ) {}

  get sizeBytes(): number {
    return this.sizeSectors * 512
  }

  add(pos: number, sectors: number): number {
    let p = pos + sectors
    while (p >= this.sizeSectors) p -= this.sizeSectors
    return p
  }

  /** sectors from `from` forward to `to` */
  distance(from: number, to: number): number {
    return to >= from ? to - from : to + this.sizeSectors - from
  }

  /** Read `buf.length` bytes starting at ring position `pos`, wrapping at the end (≤ 2 requests). */
  read(buf: Uint8Array, pos: number): void {
    const first = Math.min(buf.length, (this.sizeSectors - pos) * 512)
    this.dev.read(buf.subarray(0, first), this.baseBytes + pos * 512)
    if (first < buf.length) this.dev.read(buf.subarray(first), this.baseBytes)
  }

  /**
   * Read `buf.length` bytes at ring position `pos` and checksum its 4 KiB pages with `seed` into
   * sums[0..], on the device's helper thread when it has one (BlockDevice.readPagesAsync) and the range
   * does not wrap; otherwise read() here, then crc32cPagesAsync. buf and sums must not be touched until
   * wait(pages) returns; read errors may be thrown by read() here or by wait().
   */
  readPagesAsync(buf: Uint8Array, pos: number, seed: number, sums: Uint32Array): PageSumsJob {
    const dev = this.dev
    if (dev.readPagesAsync && buf.length <= (this.sizeSectors - pos) * 512) return dev.readPagesAsync(buf, this.baseBytes + pos * 512, seed, sums)
    this.read(buf, pos)
    return crc32cPagesAsync(seed, buf, sums)
  }

  /** Write bytes at ring position `pos`, wrapping at the end (one request per contiguous run). */
  write(buf: Uint8Array, pos: number): void {
    const first = Math.min(buf.length, (this.sizeSectors - pos) * 512)
    this.dev.write(buf.subarray(0, first), this.baseBytes + pos * 512)
    if (first < buf.length) this.dev.write(buf.subarray(first), this.baseBytes)
  }
}
