/**
 * The journal ring: positions are 512-byte sectors relative to the journal device's data_offset,
 * always multiples of BLOCK_SECTORS (8), wrapping at `sizeSectors` (the journal's data_size rounded
 * down to 4 KiB, as the kernel's r5l_init_log does).
 */
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

  /** Write bytes at ring position `pos`, wrapping at the end (one request per contiguous run). */
  write(buf: Uint8Array, pos: number): void {
    const first = Math.min(buf.length, (this.sizeSectors - pos) * 512)
    this.dev.write(buf.subarray(0, first), this.baseBytes + pos * 512)
    if (first < buf.length) this.dev.write(buf.subarray(first), this.baseBytes)
  }
}
