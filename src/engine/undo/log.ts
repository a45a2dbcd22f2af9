/**
 * Writing undo files (layout in format.ts): UndoLog appends records write-ahead, UndoDevice saves
 * a device's old bytes before it overwrites them, withUndo runs one operation over wrapped devices
 * and seals the file with a checksum of every saved range as the run left it.
 *
 * The guarantees: the old bytes of a write are durable (fdatasync) before the write is issued, one
 * fdatasync covering everything saved for that write request; any failure to write the undo file
 * stops the run before its next device write and names the file; a run that fails before its
 * first device write leaves no undo file (the empty one it created is removed).
 */
import {refuseDuplicateSources, type DeviceSource} from '../array.js'
import {probeDevice} from '../probe.js'
import {DeviceWrapper, isDeviceRef, type BlockDevice} from '../device.js'
import type {RecordFile, RecordFileRef} from '../record-file.js'
import {IoError, RefusedError} from '../errors.js'
import {
  HEADER_BYTES,
  KIND_AFTER,
  KIND_END,
  KIND_OLD,
  MAX_RECORD,
  VERSION,
  crcEnd,
  crcMore,
  crcStart,
  encodeHead,
  encodeHeader,
  type UndoHeader,
} from './format.js'

const BLOCK = 4096

export interface SavedRange {
  device: number
  offset: number
  length: number
}

export class UndoLog {
  private f: RecordFile | null
  private pos = HEADER_BYTES
  private seq = 0
  private unsynced = false
  private failure: IoError | null = null
  /** the run's device writes are over: a failure now only leaves the file unsealed */
  private sealing = false
  readonly ranges: SavedRange[] = []

  /** Creates `file` (never an existing one) and makes its header durable. */
  constructor(
    readonly file: RecordFileRef,
    header: UndoHeader,
  ) {
    try {
      this.f = file.create()
    } catch (caught) {
      // file calls throw Node system errors
      const error = caught as NodeJS.ErrnoException
      if (error.code === 'EEXIST')
        throw new RefusedError('undo file already exists; r5ctl never overwrites it', file.name, 'choose a new file name', 'would-overwrite')
      throw new IoError(`cannot create the undo file: ${error.message}`, file.name, 'choose a writable place for it')
    }
    try {
      this.write([encodeHeader(header)], 0)
      this.sync()
      file.syncName()
    } catch (error) {
      this.abandon()
      throw error
    }
  }

  /** Append the old bytes of device[offset..]; durable only after sync(). */
  saveOld(device: number, offset: number, old: Uint8Array): void {
    const head = encodeHead({kind: KIND_OLD, device, reserved: 0, offset, length: old.length, seq: this.seq++}, [old])
    this.write([head, old], this.pos)
    this.advance(head.length + old.length)
    this.ranges.push({device, offset, length: old.length})
  }

  /** fdatasync what was appended since the last sync (one call for all records of a write request) */
  sync(): void {
    if (this.failure) throw this.failure
    if (!this.unsynced) return
    try {
      this.f?.sync()
    } catch (error) {
      throw this.fail(error)
    }
    this.unsynced = false
  }

  /**
   * The run finished: record a checksum of every saved range as the devices now hold it (`read`
   * reads device i), then the end record. Only a sealed file is complete.
   */
  seal(read: (device: number, buf: Uint8Array, offset: number) => void): void {
    this.sealing = true
    const win = Buffer.alloc(MAX_RECORD)
    let batch: Buffer[] = []
    let batchBytes = 0
    const flushBatch = () => {
      this.write(batch, this.pos)
      this.advance(batchBytes)
      batch = []
      batchBytes = 0
    }
    for (const r of this.ranges) {
      let s = crcStart
      for (let done = 0; done < r.length; done += win.length) {
        const part = win.subarray(0, Math.min(win.length, r.length - done))
        read(r.device, part, r.offset + done)
        s = crcMore(s, part)
      }
      const payload = Buffer.alloc(4)
      payload.writeUInt32LE(crcEnd(s), 0)
      batch.push(
        encodeHead({kind: KIND_AFTER, device: r.device, reserved: 0, offset: r.offset, length: r.length, seq: this.seq++}, [payload]),
        payload,
      )
      batchBytes += 36
      if (batchBytes >= MAX_RECORD) flushBatch()
    }
    batch.push(encodeHead({kind: KIND_END, device: 0, reserved: 0, offset: this.ranges.length, length: 0, seq: this.seq++}, []))
    batchBytes += 32
    flushBatch()
    this.sync()
    this.close()
  }

  /** The run failed: keep what was saved (it undoes what happened); a file with nothing saved is removed. */
  abandon(): void {
    this.close()
    if (this.ranges.length === 0) this.file.remove()
  }

  private close(): void {
    this.f?.close()
    this.f = null
  }

  private advance(bytes: number): void {
    this.pos += bytes
    this.unsynced = true
  }

  /** pwritev all of `bufs` at `at`: a short write is retried, so a full disk shows as its error */
  private write(bufs: Uint8Array[], at: number): void {
    if (this.failure) throw this.failure
    try {
      let rest = bufs
      let pos = at
      while (rest.length > 0) {
        const n = this.f!.writev(rest, pos)
        if (n <= 0) throw Object.assign(new Error('nothing written'), {code: 'ENOSPC'})
        pos += n
        rest = dropBytes(rest, n)
      }
    } catch (error) {
      throw this.fail(error)
    }
  }

  private fail(error: unknown): IoError {
    const e = error as NodeJS.ErrnoException
    this.failure ??= this.sealing
      ? new IoError(
          `cannot write the undo file (${e.code ?? e.message}): the run finished, but its undo file is incomplete`,
          this.file.name,
          'make room for the undo file; `r5ctl undo --force FILE DEV...` still restores what the run changed',
        )
      : new IoError(
          `cannot write the undo file (${e.code ?? e.message}): the run stopped before its next device write`,
          this.file.name,
          'make room for the undo file; `r5ctl undo --force FILE DEV...` restores what the run changed before it stopped',
        )
    return this.failure
  }
}

function dropBytes(bufs: Uint8Array[], n: number): Uint8Array[] {
  let i = 0
  while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length
  const rest = bufs.slice(i)
  if (n > 0) rest[0] = rest[0].subarray(n)
  return rest
}

/**
 * Wraps one device: the first overwrite of every 4 KiB block below `saveBelow` (bytes) saves the old
 * block first; writes beyond it are not saved.
 */
export class UndoDevice extends DeviceWrapper {
  private saved = new Set<number>()

  constructor(
    inner: BlockDevice,
    private log: UndoLog,
    private index: number,
    private saveBelow = Infinity,
  ) {
    super(inner)
  }

  override writev(bufs: Uint8Array[], offset: number): void {
    let len = 0
    for (const b of bufs) len += b.length
    if (len > 0) {
      let runStart = -1
      const last = Math.floor((offset + len - 1) / BLOCK)
      for (let b = Math.floor(offset / BLOCK); b <= last + 1; b++) {
        const fresh = b <= last && b * BLOCK < this.saveBelow && !this.saved.has(b)
        if (fresh && runStart < 0) runStart = b
        if (!fresh && runStart >= 0) {
          this.saveRun(runStart * BLOCK, Math.min(b * BLOCK, this.inner.size))
          runStart = -1
        }
      }
    }
    this.log.sync()
    this.inner.writev(bufs, offset)
  }

  /** the inner device belongs to withUndo, which reads it back to seal the log */
  override close(): void {
    /* kept open */
  }

  private saveRun(from: number, to: number): void {
    for (let at = from; at < to; at += MAX_RECORD) {
      const old = Buffer.alloc(Math.min(MAX_RECORD, to - at))
      this.inner.read(old, at)
      this.log.saveOld(this.index, at, old)
      for (let b = at / BLOCK; b < (at + old.length) / BLOCK; b++) this.saved.add(b)
    }
  }
}

/** The undo file must not be one of the devices it protects (by any path: identity.ts). */
function refuseUndoOnDevice(file: RecordFileRef, paths: DeviceSource[]): void {
  const target = file.key()
  for (const p of paths)
    if (isDeviceRef(p) && p.key() === target)
      throw new RefusedError('the undo file is one of the devices', p.name, 'put the undo file somewhere else', 'undo-is-device')
}

/**
 * Run `fn` over undo-wrapped devices when `file` is given. On success the log is sealed (complete);
 * on failure it keeps what was saved, and is removed when nothing was. `saveBelow(i)`: device i's
 * writes are saved only below that byte (a new member's superblock, not the bytes rebuilt onto it).
 */
export function withUndo<T>(
  paths: DeviceSource[],
  file: RecordFileRef | undefined,
  fn: (sources: DeviceSource[]) => T,
  saveBelow: (i: number) => number = () => Infinity,
): T {
  if (!file) return fn(paths)
  refuseDuplicateSources(paths)
  refuseUndoOnDevice(file, paths)
  const probes = paths.map(p => probeDevice(p))
  const existing = paths.map(p => !isDeviceRef(p) || p.exists())
  const log = new UndoLog(file, {
    version: VERSION,
    created: new Date(),
    arrayUuid: probes.find(p => p.sb)?.sb?.setUuid ?? new Uint8Array(16),
    devices: probes.map(p => ({name: p.path, size: p.size, deviceUuid: p.sb?.deviceUuid ?? new Uint8Array(16)})),
  })
  const opened: (BlockDevice | null)[] = []
  try {
    for (const [i, p] of paths.entries()) opened.push(existing[i] && isDeviceRef(p) ? p.open({writable: true}) : null)
    const inner = paths.map((p, i) => opened[i] ?? (isDeviceRef(p) ? null : p))
    const sources = paths.map((p, i) => (inner[i] ? new UndoDevice(inner[i], log, i, saveBelow(i)) : p))
    const r = fn(sources)
    log.seal((i, buf, offset) => inner[i]!.read(buf, offset))
    return r
  } catch (error) {
    log.abandon()
    throw error
  } finally {
    for (const d of opened) d?.close()
  }
}
