/**
 * Synchronous full reads and writes on file descriptors, robust to pipes (EAGAIN, short counts), and the one
 * writer of standard output (writeStdout): every command's text, JSON and data go through it.
 */
import * as fs from 'node:fs'
import {IoError} from '../engine/errors.js'

const sleeper = new Int32Array(new SharedArrayBuffer(4))
function pause(): void {
  Atomics.wait(sleeper, 0, 0, 2)
}

export function readFully(fd: number, buf: Uint8Array): number {
  let done = 0
  while (done < buf.length) {
    let n: number
    try {
      n = fs.readSync(fd, buf, done, buf.length - done, null)
    } catch (caught) {
      const e = caught as NodeJS.ErrnoException
      if (e.code === 'EAGAIN') {
        pause()
        continue
      }
      if (e.code === 'EOF') break
      throw e
    }
    if (n === 0) break
    done += n
  }
  return done
}

export function writeAll(fd: number, views: Uint8Array[]): void {
  for (const v of views) {
    let done = 0
    while (done < v.length) {
      try {
        done += fs.writeSync(fd, v, done, v.length - done)
      } catch (caught) {
        const e = caught as NodeJS.ErrnoException
        if (e.code === 'EAGAIN') {
          pause()
          continue
        }
        throw e
      }
    }
  }
}

/** Write views to a regular file at `position`: one writev per window (≤1024 views), short counts finished. */
export function writeViewsAt(fd: number, views: Uint8Array[], position: number): number {
  let pos = position
  for (let i = 0; i < views.length; i += 1024) {
    const part = views.slice(i, i + 1024)
    let n = fs.writevSync(fd, part, pos)
    for (const v of part) {
      if (n >= v.length) {
        n -= v.length
        pos += v.length
        continue
      }
      let done = n
      n = 0
      while (done < v.length) done += fs.writeSync(fd, v, done, v.length - done, pos + done)
      pos += v.length
    }
  }
  return pos - position
}

/** Standard output was closed by its reader (`r5ctl read | head`): the command ends quietly, as `cat` does. */
export class StdoutClosed extends Error {
  constructor() {
    super('standard output closed')
    this.name = 'StdoutClosed'
  }
}

/** Standard output cannot be written (ENOSPC on /dev/full, EIO): reported on stderr, since stdout is unusable. */
export class StdoutError extends IoError {}

/** set once stdout failed: nothing more is written to it (a JSON error object would fail the same way) */
let stdoutFailed = false

/**
 * A reader that went away (`| head`, `2>&1 | true`) is not an error of the command: EPIPE on stdout or
 * stderr is ignored, so that the exit code stays the one the command decided (an unhandled 'error'
 * event would end the process with 1). Anything else still throws.
 */
export function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount('error') > 0) continue
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an emitter may emit 'error' with no value
      if (err && err.code === 'EPIPE') return
      throw err
    })
  }
}

export const stdoutUsable = (): boolean => !stdoutFailed

/**
 * Write text or data to standard output synchronously (fd 1, whatever it is: terminal, file, pipe), so
 * that nothing is left queued at exit and an error surfaces here: StdoutClosed for EPIPE, StdoutError else.
 */
export function writeStdout(data: string | Uint8Array[]): void {
  if (stdoutFailed) return
  try {
    writeAll(1, typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data)
  } catch (caught) {
    const error = caught as NodeJS.ErrnoException | undefined
    stdoutFailed = true
    // later writers of process.stdout (oclif flushes it at exit) would fail the same way, with a stack trace
    process.stdout.write = () => true
    if (error?.code === 'EPIPE') throw new StdoutClosed()
    // "ENOSPC: no space left on device, write" -> "no space left on device"
    const what = /^[A-Z0-9_]+: (.*?)(, \w+)?$/.exec(String(error?.message))?.[1] ?? String(error?.code ?? error)
    throw new StdoutError(`cannot write standard output: ${what}`)
  }
}
