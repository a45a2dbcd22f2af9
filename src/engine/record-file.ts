/**
 * The undo file's access: a file of records the engine writes and reads back, named by the CLI
 * (RecordFileRef) and opened (RecordFile). Not a BlockDevice: it is created new or read whole,
 * never locked as an array device is.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {pathKey} from './identity.js'

/**
 * A file of records the engine writes and reads back (the undo file), named by the CLI: created new,
 * never an existing one, or opened to read. Errors are Node's (the caller says what they mean).
 */
export class RecordFileRef {
  constructor(readonly name: string) {}
  /** what the path is, by identity (a device given by another path is the same file) */
  key(): string {
    return pathKey(this.name)
  }
  /** create it, failing with EEXIST when it exists */
  create(): RecordFile {
    return new RecordFile(fs.openSync(this.name, 'wx'))
  }
  /** open it to read; a directory, FIFO or device is refused as not a file (never read, nor waited on) */
  openRead(): RecordFile {
    const fd = fs.openSync(this.name, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd)
      throw new Error('is not a regular file')
    }
    return new RecordFile(fd)
  }
  /** remove it; gone already is fine */
  remove(): void {
    fs.rmSync(this.name, {force: true})
  }
  /** make its name survive a host crash: fsync of its folder (best effort: the file's own fdatasync still holds) */
  syncName(): void {
    let fd = -1
    try {
      fd = fs.openSync(path.dirname(path.resolve(this.name)), 'r')
      fs.fsyncSync(fd)
    } catch {
      /* a folder that cannot be opened or synced */
    } finally {
      if (fd >= 0) fs.closeSync(fd)
    }
  }
}

/** An open RecordFileRef: positioned reads and writes, fdatasync. */
export class RecordFile {
  constructor(private fd: number) {}
  get size(): number {
    return fs.fstatSync(this.fd).size
  }
  /** bytes written, maybe fewer than given */
  writev(bufs: Uint8Array[], pos: number): number {
    return fs.writevSync(this.fd, bufs, pos)
  }
  /** bytes read, 0 at the end */
  read(buf: Uint8Array, pos: number): number {
    return fs.readSync(this.fd, buf, 0, buf.length, pos)
  }
  sync(): void {
    fs.fdatasyncSync(this.fd)
  }
  close(): void {
    if (this.fd < 0) return
    try {
      fs.closeSync(this.fd)
    } catch {
      /* closed */
    }
    this.fd = -1
  }
}
