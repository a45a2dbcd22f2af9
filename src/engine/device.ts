/**
 * BlockDevice: the only way engine code touches bytes. A file-backed implementation serves image
 * files and block devices; an in-memory one serves tests. Both count write requests and flushes
 * so that crash injection (a wrapper) and tests can reason about device-write boundaries.
 *
 * A "write request" is one contiguous write to one device: writev() of many pages at one offset
 * counts once, exactly as one bio would.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {IoError, RefusedError, UsageError} from './errors.js'
import {DeviceLock} from './lock.js'
import {deviceIdentity, kindOf, pathKey, refuseKind} from './identity.js'

export interface DeviceStats {
  reads: number
  writes: number
  flushes: number
  bytesRead: number
  bytesWritten: number
}

export interface BlockDevice {
  readonly name: string
  /** size in bytes */
  readonly size: number
  readonly stats: DeviceStats
  /** fill `buf` from byte offset `offset`; reading past the end is an error */
  read(buf: Uint8Array, offset: number): void
  /** scatter read: contiguous device bytes into several buffers, one request */
  readv(bufs: Uint8Array[], offset: number): void
  write(buf: Uint8Array, offset: number): void
  /** gather write: several buffers to contiguous device bytes, one request */
  writev(bufs: Uint8Array[], offset: number): void
  flush(): void
  close(): void
}

export function newStats(): DeviceStats {
  return {reads: 0, writes: 0, flushes: 0, bytesRead: 0, bytesWritten: 0}
}

function total(bufs: Uint8Array[]): number {
  let n = 0
  for (const b of bufs) n += b.length
  return n
}

/**
 * A device that passes everything to `inner`; wrappers (crash injection, undo, test tracers)
 * override only what they change. `write` goes through `writev`, so one override sees every write.
 */
export class DeviceWrapper implements BlockDevice {
  constructor(readonly inner: BlockDevice) {}
  get name(): string {
    return this.inner.name
  }
  get size(): number {
    return this.inner.size
  }
  get stats(): DeviceStats {
    return this.inner.stats
  }
  read(buf: Uint8Array, offset: number): void {
    this.inner.read(buf, offset)
  }
  readv(bufs: Uint8Array[], offset: number): void {
    this.inner.readv(bufs, offset)
  }
  write(buf: Uint8Array, offset: number): void {
    this.writev([buf], offset)
  }
  writev(bufs: Uint8Array[], offset: number): void {
    this.inner.writev(bufs, offset)
  }
  flush(): void {
    this.inner.flush()
  }
  close(): void {
    this.inner.close()
  }
}

/**
 * A device the caller names, which the engine opens when and as it needs it: read-only to look at
 * its superblock, writable once everything is checked (so nothing is locked or written for a set
 * that is refused). The CLI makes them (src/cli/open.ts: FileRef, with its flush policy); the engine
 * sees no path, only `name` for its messages, and never opens anything by name itself.
 */
export interface DeviceRef {
  readonly name: string
  /** equal for every ref that reaches the same bytes (a symlink, a hard link, a loop device over a file) */
  key(): string
  /** whether it exists yet (create makes the ones that do not) */
  exists(): boolean
  /** a UsageError naming it when it does not exist and cannot be made */
  checkCreatable(): void
  /** make it, `size` bytes (all zero), or extend it to that size */
  create(size: number): void
  /** remove what create made (a failed create) */
  remove(): void
  open(opts: {writable: boolean; hold?: boolean}): BlockDevice
}

/** A device as the engine's operations take it: named (opened by the operation) or already open. */
export type DeviceSource = DeviceRef | BlockDevice

export function isDeviceRef(s: DeviceSource): s is DeviceRef {
  return typeof (s as Partial<DeviceRef>).open === 'function'
}

/** An image file or block device by path, opened with FileDevice.open (the one place a path is opened). */
export class FileRef implements DeviceRef {
  constructor(
    readonly name: string,
    private readonly opts: {flush: boolean} = {flush: true},
  ) {}
  key(): string {
    return pathKey(this.name)
  }
  exists(): boolean {
    return fs.existsSync(this.name)
  }
  checkCreatable(): void {
    const dir = path.dirname(this.name)
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
      throw new UsageError(`cannot create ${this.name}: folder ${dir} does not exist`, 'create the folder first', this.name)
  }
  create(size: number): void {
    FileDevice.createSparse(this.name, size)
  }
  remove(): void {
    fs.rmSync(this.name, {force: true})
  }
  open(opts: {writable: boolean; hold?: boolean}): FileDevice {
    return FileDevice.open(this.name, {writable: opts.writable, hold: opts.hold, flush: this.opts.flush})
  }
}

/** writevSync / readvSync accept at most IOV_MAX (1024) buffers per call on Linux. */
const IOV_MAX = 1024

export interface FileOpenOptions {
  writable: boolean
  /**
   * Whether flush() reaches the disk (fdatasync); default true. Off only when the operator asks for
   * page-cache speed on images that can be recreated (--no-flush): ordering is then not guaranteed
   * against a host crash. Flushes are still counted, so crash injection sees the same barriers.
   */
  flush?: boolean
  /** read-only, but held against writers while it is open (a shared lock, O_EXCL on a block device): serve's view must not change under it */
  hold?: boolean
}

export class FileDevice implements BlockDevice {
  readonly stats = newStats()
  private fd: number
  readonly size: number
  private lock: DeviceLock | null = null
  private constructor(
    readonly name: string,
    fd: number,
    size: number,
    readonly writable: boolean,
    private readonly syncOnFlush: boolean,
  ) {
    this.fd = fd
    this.size = size
  }

  /**
   * Open an image file or block device; anything else is refused by name before it is opened (see
   * identity.ts). Writable: locked (lock.ts), and a block device claimed with O_EXCL. For block
   * devices the size comes from sysfs (/sys/class/block/NAME/size, in 512-byte sectors), else by
   * seeking to the end.
   */
  static open(file: string, opts: FileOpenOptions): FileDevice {
    const id = deviceIdentity(file)
    const block = id.kind === 'block device'
    // O_EXCL on a block device is Linux's exclusive claim: EBUSY while md or a mount holds it.
    // O_NONBLOCK: a path swapped for a FIFO since the stat must not hang the open (it changes
    // nothing for regular files and block devices).
    const flags =
      (opts.writable ? fs.constants.O_RDWR : fs.constants.O_RDONLY) |
      fs.constants.O_NONBLOCK |
      (block && (opts.writable || opts.hold) ? fs.constants.O_EXCL : 0)
    let fd: number
    try {
      fd = fs.openSync(file, flags)
    } catch (caught) {
      // fs calls throw Node system errors
      const error = caught as NodeJS.ErrnoException
      if (error.code === 'EBUSY')
        throw new RefusedError(
          'device is busy (held by the kernel md driver, a mount, or another exclusive user)',
          file,
          'stop the array (mdadm --stop) or unmount it first',
          'in-use',
        )
      throw new IoError(
        `cannot open: ${error.code === 'ENOENT' ? 'no such file' : error.message}`,
        file,
        error.code === 'ENOENT' ? 'check the path' : undefined,
      )
    }
    let dev: FileDevice
    try {
      const st = fs.fstatSync(fd)
      refuseKind(kindOf(st), file)
      dev = new FileDevice(file, fd, st.isBlockDevice() ? blockDeviceSize(file, fd) : st.size, opts.writable, opts.flush ?? true)
      if ((opts.writable || opts.hold) && (!block || id.backingFile)) dev.lock = DeviceLock.acquire(fd, file, id.backingFile, !opts.writable)
    } catch (error) {
      fs.closeSync(fd)
      throw error
    }
    return dev
  }

  /** Create (or extend) a sparse image file of `size` bytes. */
  static createSparse(file: string, size: number): void {
    const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_RDWR, 0o644)
    try {
      if (fs.fstatSync(fd).size < size) fs.ftruncateSync(fd, size)
    } finally {
      fs.closeSync(fd)
    }
  }

  private check(offset: number, len: number, what: 'read' | 'write'): void {
    checkDeviceRange(this, offset, len, what)
  }

  read(buf: Uint8Array, offset: number): void {
    this.check(offset, buf.length, 'read')
    let done = 0
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, offset + done)
      if (n === 0) throw new IoError(`short read at offset ${offset + done}`, this.name)
      done += n
    }
    this.stats.reads++
    this.stats.bytesRead += buf.length
  }

  readv(bufs: Uint8Array[], offset: number): void {
    const len = total(bufs)
    this.check(offset, len, 'read')
    let pos = offset
    for (let i = 0; i < bufs.length; i += IOV_MAX) {
      const chunk = bufs.slice(i, i + IOV_MAX)
      const want = total(chunk)
      const n = fs.readvSync(this.fd, chunk, pos)
      if (n !== want) {
        // rare short read: finish the rest buffer by buffer at the right offsets
        let skip = n
        let p = pos
        for (const b of chunk) {
          if (skip >= b.length) {
            skip -= b.length
            p += b.length
            continue
          }
          this.readRaw(b.subarray(skip), p + skip)
          p += b.length
          skip = 0
        }
      }
      pos += want
    }
    this.stats.reads++
    this.stats.bytesRead += len
  }

  private readRaw(buf: Uint8Array, offset: number): void {
    let done = 0
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, offset + done)
      if (n === 0) throw new IoError(`short read at offset ${offset + done}`, this.name)
      done += n
    }
  }

  write(buf: Uint8Array, offset: number): void {
    this.check(offset, buf.length, 'write')
    let done = 0
    while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, offset + done)
    this.stats.writes++
    this.stats.bytesWritten += buf.length
  }

  writev(bufs: Uint8Array[], offset: number): void {
    const len = total(bufs)
    this.check(offset, len, 'write')
    let pos = offset
    for (let i = 0; i < bufs.length; i += IOV_MAX) {
      const chunk = bufs.length <= IOV_MAX ? bufs : bufs.slice(i, i + IOV_MAX) // no copy in the common case
      const want = chunk === bufs ? len : total(chunk)
      const n = fs.writevSync(this.fd, chunk, pos)
      if (n !== want) {
        // partial write: write the remainder buffer by buffer
        let skip = n
        let p = pos + n
        for (const b of chunk) {
          if (skip >= b.length) {
            skip -= b.length
            continue
          }
          const rest = b.subarray(skip)
          let done = 0
          while (done < rest.length) done += fs.writeSync(this.fd, rest, done, rest.length - done, p + done)
          p += rest.length
          skip = 0
        }
      }
      pos += want
    }
    this.stats.writes++
    this.stats.bytesWritten += len
  }

  flush(): void {
    if (this.syncOnFlush) fs.fdatasyncSync(this.fd)
    this.stats.flushes++
  }

  close(): void {
    this.lock?.release()
    this.lock = null
    if (this.fd >= 0) fs.closeSync(this.fd)
    this.fd = -1
  }
}

function blockDeviceSize(file: string, fd: number): number {
  try {
    const real = fs.realpathSync(file)
    const sectors = fs.readFileSync(`/sys/class/block/${path.basename(real)}/size`, 'utf8')
    return Number(sectors.trim()) * 512
  } catch {
    // no sysfs entry (e.g. inside a container): find the end by reading backwards in powers of two
    let lo = 0
    let hi = 1
    const b = Buffer.alloc(1)
    const readable = (off: number) => {
      try {
        return fs.readSync(fd, b, 0, 1, off) === 1
      } catch {
        return false
      }
    }
    while (readable(hi)) {
      lo = hi
      hi *= 2
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (readable(mid)) lo = mid
      else hi = mid
    }
    return lo + 1
  }
}

/** A device in memory; for tests and for crash sweeps that must be fast. */
export class MemDevice implements BlockDevice {
  readonly stats = newStats()
  readonly data: Uint8Array

  constructor(
    readonly name: string,
    readonly size: number,
    data?: Uint8Array,
  ) {
    this.data = data ?? new Uint8Array(size)
  }

  read(buf: Uint8Array, offset: number): void {
    if (offset < 0 || offset + buf.length > this.size)
      throw new IoError(`read beyond end of device (offset ${offset} + ${buf.length} > size ${this.size})`, this.name)
    buf.set(this.data.subarray(offset, offset + buf.length))
    this.stats.reads++
    this.stats.bytesRead += buf.length
  }

  readv(bufs: Uint8Array[], offset: number): void {
    let p = offset
    for (const b of bufs) {
      if (p + b.length > this.size) throw new IoError(`read beyond end of device`, this.name)
      b.set(this.data.subarray(p, p + b.length))
      p += b.length
    }
    this.stats.reads++
    this.stats.bytesRead += p - offset
  }

  write(buf: Uint8Array, offset: number): void {
    if (offset < 0 || offset + buf.length > this.size)
      throw new IoError(`write beyond end of device (offset ${offset} + ${buf.length} > size ${this.size})`, this.name)
    this.data.set(buf, offset)
    this.stats.writes++
    this.stats.bytesWritten += buf.length
  }

  writev(bufs: Uint8Array[], offset: number): void {
    const len = total(bufs)
    if (offset < 0 || offset + len > this.size) throw new IoError(`write beyond end of device`, this.name)
    let p = offset
    for (const b of bufs) {
      this.data.set(b, p)
      p += b.length
    }
    this.stats.writes++
    this.stats.bytesWritten += len
  }

  flush(): void {
    this.stats.flushes++
  }
  close(): void {}
}

/**
 * A request of `len` bytes at `offset` must lie inside the device: else an IoError naming it.
 */
function checkDeviceRange(dev: BlockDevice, offset: number, len: number, what: 'read' | 'write'): void {
  if (offset < 0 || offset + len > dev.size)
    throw new IoError(`${what} beyond end of device (offset ${offset} + ${len} > size ${dev.size}); the image may be truncated`, dev.name)
}

/** WebAssembly pages are 64 KiB; below this size a buffer is not worth a memory of its own */
const WASM_PAGE = 64 * 1024

/**
 * An I/O buffer whose first byte is page-aligned in the process's address space.
 *
 * The kernel copies to and from user memory fastest when the user address is page aligned (whole
 * pages, no split cache lines), for single buffers and for iovecs of 4 KiB pages alike. An ArrayBuffer's store comes from malloc, whose alignment JavaScript cannot see (16 bytes past
 * a page for large blocks, anything 16-aligned for small ones), so no fixed offset into it is safe.
 * A WebAssembly.Memory is always page-aligned: buffers of 64 KiB and more live in one of their own
 * (its address-space reservation is released by GC like any buffer). Smaller ones, used for single
 * pages and headers where the copy cost does not matter, keep a plain ArrayBuffer.
 */
export function alignedBuffer(size: number): Buffer {
  if (size >= WASM_PAGE) {
    const mem = new WebAssembly.Memory({initial: Math.ceil(size / WASM_PAGE)})
    return Buffer.from(mem.buffer, 0, size)
  }
  const raw = new ArrayBuffer(size + 4096)
  return Buffer.from(raw, 64, size)
}
