/** Synchronous full reads and writes on file descriptors, robust to pipes (EAGAIN, short counts). */
import * as fs from 'node:fs'

const sleeper = new Int32Array(new SharedArrayBuffer(4))
function pause(): void { Atomics.wait(sleeper, 0, 0, 2) }

export function readFully(fd: number, buf: Uint8Array): number {
  let done = 0
  while (done < buf.length) {
    let n: number
    try {
      n = fs.readSync(fd, buf, done, buf.length - done, null)
    } catch (e: any) {
      if (e.code === 'EAGAIN') { pause(); continue }
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
      } catch (e: any) {
        if (e.code === 'EAGAIN') { pause(); continue }
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
      if (n >= v.length) { n -= v.length; pos += v.length; continue }
      let done = n
      n = 0
      while (done < v.length) done += fs.writeSync(fd, v, done, v.length - done, pos + done)
      pos += v.length
    }
  }
  return pos - position
}
