/**
 * What `write` reads: --input (a regular file, or a pipe, FIFO or stdin) opened and checked before any device
 * is touched, and a stream read ahead in bounded memory, so that an input that ends early, or that is longer
 * than the room in the array, is found before the write when it fits the read-ahead.
 */
import * as fs from 'node:fs'
import {isatty} from 'node:tty'
import {R5Error, UsageError, EXIT} from '../engine/errors.js'
import type {Source} from '../engine/index.js'
import {readFully} from '../render/stdio.js'

/** bytes of a stream read ahead of what the write consumed */
const READ_AHEAD = 8 << 20
const READ_CHUNK = 1 << 20

export interface Input {
  /** the bytes to write; undefined: up to the end of the input (which must fit the array) */
  length: number | undefined
  source: Source
  /** a short read ends the write (the input's end, or input that ended before `length`: see `check`) */
  endAtShortInput: boolean
  /** after a write that went `written` bytes: throws when the input did not match (ended early, or is longer) */
  check(written: number, offset: number): void
  close(): void
}

/** Open `name` ('-' is stdin) for a write of `length` bytes (undefined: the whole input). */
export function openInput(name: string, length: number | undefined): Input {
  const label = name === '-' ? 'standard input' : name
  let fd = 0
  if (name !== '-') {
    try {
      fd = fs.openSync(name, 'r')
    } catch (error) {
      throw new UsageError(`cannot open input: ${(error as Error).message}`, undefined, name)
    }
  }
  const close = () => {
    if (fd !== 0) fs.closeSync(fd)
  }
  try {
    const st = fs.fstatSync(fd)
    // (stdin may be a socket: node hands a child its stdin as one end of a socketpair)
    const kind = st.isDirectory()
      ? 'a directory'
      : st.isCharacterDevice()
        ? isatty(fd)
          ? 'a terminal'
          : 'a character device'
        : st.isSocket() && fd !== 0
          ? 'a socket'
          : undefined
    if (kind) throw new UsageError(`${label} is ${kind}, not a file or a pipe`, 'give a regular file, a pipe or a FIFO', label)
    // a regular file of known size; a size of 0 may be a /proc or /sys file whose content is produced on reading
    if (st.isFile() && st.size > 0) {
      if (length !== undefined && length > st.size)
        throw new UsageError(`--length ${length} but ${label} has only ${st.size} bytes`, undefined, label)
      return {length: length ?? st.size, source: buf => readFully(fd, buf), endAtShortInput: false, check() {}, close}
    }
    return streamInput(fd, label, length, close)
  } catch (error) {
    close()
    throw error
  }
}

/** A pipe, FIFO, stdin or size-0 file: read ahead, then `length` bytes or to its end. */
function streamInput(fd: number, label: string, length: number | undefined, close: () => void): Input {
  const ahead = new ReadAhead(fd)
  // at most `length` bytes are taken from the input, so that what follows stays for the next reader
  const want = length ?? Number.POSITIVE_INFINITY
  ahead.fill(Math.min(want, READ_AHEAD + 1))
  if (ahead.eof && ahead.buffered < want) {
    // the whole input is here: its length is known before the write
    if (length !== undefined) throw shortInput(ahead.buffered, length, 0, label)
    length = ahead.buffered
  }
  const exact = length
  return {
    length,
    endAtShortInput: true,
    source(buf) {
      ahead.fill(Math.min(buf.length + READ_AHEAD, want - ahead.taken))
      // input that will not reach `length`: end the write before the rows it cannot complete
      if (exact !== undefined && ahead.eof && ahead.taken + ahead.buffered < exact) return 0
      return ahead.take(buf)
    },
    check(written, offset) {
      if (exact !== undefined) {
        if (written < exact) throw shortInput(ahead.taken + ahead.buffered, exact, written, label)
        return
      }
      // to the end of the input: it ended before the array did, unless there is a byte more
      ahead.fill(1)
      if (ahead.buffered > 0)
        throw new UsageError(
          `input is longer than the ${written} bytes from offset ${offset} to the end of the array; the first ${written} ` +
            'bytes were written and the journal is clean',
          'give --length, or a smaller input',
          label,
        )
    },
    close,
  }
}

function shortInput(got: number, length: number, written: number, label: string): R5Error {
  const what = written === 0 ? 'nothing was written' : `the first ${written} bytes were written and the journal is clean`
  return new R5Error(`input ended after ${got} of ${length} bytes; ${what}`, EXIT.FAILED, label, 'give --length matching the input', 'short-input')
}

/** Bytes read from `fd` ahead of their use, in a buffer that grows to twice the largest read-ahead asked for. */
class ReadAhead {
  private buf = Buffer.alloc(0)
  private start = 0
  private end = 0
  /** bytes handed out */
  taken = 0
  eof = false

  constructor(private readonly fd: number) {}

  get buffered(): number {
    return this.end - this.start
  }

  /** read until `n` bytes are buffered or the input ends */
  fill(n: number): void {
    if (this.eof || this.buffered >= n) return
    if (this.start + n > this.buf.length) {
      // move the buffered bytes to the front (into a larger buffer when needed): each byte moves about once
      const next = n > this.buf.length ? Buffer.allocUnsafe(2 * n) : this.buf
      this.buf.copy(next, 0, this.start, this.end)
      this.buf = next
      this.end -= this.start
      this.start = 0
    }
    // in reads of at most 1 MiB: /proc and /sys files fail larger ones (ENOMEM)
    for (let want = this.start + n - this.end; want > 0 && !this.eof;) {
      const ask = Math.min(want, READ_CHUNK)
      const got = readFully(this.fd, this.buf.subarray(this.end, this.end + ask))
      this.end += got
      want -= got
      if (got < ask) this.eof = true
    }
  }

  /** hand out up to dst.length buffered bytes */
  take(dst: Uint8Array): number {
    const k = Math.min(dst.length, this.buffered)
    dst.set(this.buf.subarray(this.start, this.start + k))
    this.start += k
    this.taken += k
    return k
  }
}
