/**
 * One NBD client connection of `r5ctl serve`: a state machine from the fixed-newstyle handshake
 * through the transmission phase, calling the export. What to answer is protocol.ts's decision;
 * this file moves bytes and bounds memory: a read or a zeroing is carried out a piece at a time,
 * and no further request is parsed while the client has not taken the replies already queued.
 */
import type * as net from 'node:net'
import {isWritable, type ExportSource, type WritableExport} from './export.js'
import * as P from './protocol.js'
import type {ServeOptions} from './server.js'

/** an option's data beyond this is read and discarded, and the option refused */
export const OPTION_DATA_CAP = 64 * 1024
/** a read or a zeroing is carried out in pieces of this size, so that one request never holds more */
const PIECE = 1024 * 1024
/** output queued on a socket beyond this stops the connection until the client takes it */
const HIGH_WATER = 2 * PIECE
/** as qemu-nbd's: a client that has not negotiated by then is not coming, and must not hold a slot */
export const HANDSHAKE_MS = 10_000
/** how long close() lets a connection finish its current reply */
export const CLOSE_GRACE_MS = 2000

/** Received bytes not yet parsed, kept as the chunks they came in. */
class ByteQueue {
  private chunks: Buffer[] = []
  length = 0

  push(b: Buffer): void {
    this.chunks.push(b)
    this.length += b.length
  }

  /** the next n bytes (n <= length), without a copy when they lie in one chunk */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0)
    const first = this.chunks[0]
    let out: Buffer
    if (first.length >= n) {
      out = first.subarray(0, n)
      this.drop(n)
      return out
    }
    out = Buffer.allocUnsafe(n)
    let at = 0
    while (at < n) {
      const c = this.chunks[0]
      const k = Math.min(c.length, n - at)
      c.copy(out, at, 0, k)
      at += k
      this.drop(k)
    }
    return out
  }

  /** forget the next n bytes (n <= length) */
  drop(n: number): void {
    this.length -= n
    while (n > 0) {
      const c = this.chunks[0]
      if (c.length > n) {
        this.chunks[0] = c.subarray(n)
        return
      }
      n -= c.length
      this.chunks.shift()
    }
  }
}

type Phase =
  | {k: 'flags'}
  | {k: 'option'}
  | {k: 'optionData'; option: number; length: number}
  | {k: 'optionDiscard'; option: number; left: number}
  | {k: 'request'}
  | {k: 'payload'; req: P.Request; offset: number; done: number; error: P.RequestError | null}
  | {k: 'ended'}

/** A piece of work on a request that sends replies; returns whether it has more to do. */
type Job = () => boolean

const ZEROES = Buffer.alloc(PIECE)

export class Connection {
  private readonly input = new ByteQueue()
  private phase: Phase = {k: 'flags'}
  private job: Job | null = null
  private structured = false
  private noZeroes = false
  private waitingDrain = false
  private closing = false
  private inputEnded = false
  private readonly closed: Promise<void>
  private readonly writable: boolean
  private readonly log: (line: string) => void

  constructor(
    id: number,
    private readonly socket: net.Socket,
    private readonly source: ExportSource | WritableExport,
    private readonly exp: P.ExportInfo,
    private readonly options: ServeOptions,
    onClose: () => void,
  ) {
    this.writable = isWritable(source)
    const log = options.onLog ?? (() => undefined)
    this.log = line => log(`connection ${id}: ${line}`)
    this.log('opened')
    this.closed = new Promise(resolve =>
      socket.once('close', () => {
        this.phase = {k: 'ended'}
        this.log('closed')
        onClose()
        resolve()
      }),
    )
    socket.setNoDelay(true)
    // a client vanishing (EPIPE, ECONNRESET) ends its connection only; 'close' follows
    socket.on('error', (e: NodeJS.ErrnoException) =>
      this.log(e.code === 'EPIPE' || e.code === 'ECONNRESET' ? `client went away (${e.code})` : `socket: ${e.message}`),
    )
    socket.on('data', (b: Buffer) => {
      if (this.phase.k === 'ended') return
      this.input.push(b)
      this.pump()
    })
    // a client that half-closes still gets the replies to everything it sent before
    socket.on('end', () => {
      this.inputEnded = true
      this.pump()
    })
    socket.on('drain', () => {
      if (!this.waitingDrain) return
      this.waitingDrain = false
      socket.resume()
      this.pump()
    })
    this.send(P.encodeGreeting())
    // a connection still negotiating after the limit is closed: idle sockets could otherwise hold every slot
    const limit = setTimeout(() => {
      if (this.phase.k === 'request' || this.phase.k === 'ended') return
      this.log('handshake not finished in time: closed')
      socket.destroy()
    }, options.handshakeMs ?? HANDSHAKE_MS)
    socket.once('close', () => clearTimeout(limit))
  }

  /** end after the current reply (or at once before transmission), within CLOSE_GRACE_MS */
  shutdown(): Promise<void> {
    this.closing = true
    if (!this.job || this.phase.k !== 'request') this.end()
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS)
    return this.closed.finally(() => clearTimeout(timer))
  }

  /** a clean end: what is queued goes out, then the socket closes (or is destroyed if the client lingers) */
  private end(): void {
    if (this.phase.k === 'ended') return
    this.phase = {k: 'ended'}
    this.job = null
    this.socket.end()
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref()
  }

  /** a hard disconnect: nothing more is read, parsed or sent */
  private kill(): void {
    this.phase = {k: 'ended'}
    this.job = null
    this.socket.destroy()
  }

  private send(b: Uint8Array): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(b)
  }

  /** do all that the received bytes allow, until the client must take replies first */
  private pump(): void {
    try {
      while (this.phase.k !== 'ended') {
        if (this.socket.writableLength > HIGH_WATER) {
          this.waitingDrain = true
          this.socket.pause()
          return
        }
        if (this.job) {
          if (!this.job()) this.job = null
          continue
        }
        if (this.closing && this.phase.k === 'request') {
          this.end()
          return
        }
        if (!this.step()) {
          if (this.inputEnded) this.end()
          return
        }
      }
    } catch (error) {
      // a bug here must cost this connection only
      this.log(`internal error: ${(error as Error).stack ?? String(error)}`)
      this.kill()
    }
  }

  /** one step of the phase, or false when more input is needed */
  private step(): boolean {
    const ph = this.phase
    const q = this.input
    switch (ph.k) {
      case 'flags':
        if (q.length < 4) return false
        return this.clientFlags(q.take(4).readUInt32BE(0))
      case 'option':
        if (q.length < P.OPTION_HEADER_BYTES) return false
        return this.optionHeader(P.decodeOptionHeader(q.take(P.OPTION_HEADER_BYTES)))
      case 'optionData':
        if (q.length < ph.length) return false
        return this.option(ph.option, q.take(ph.length))
      case 'optionDiscard': {
        const n = Math.min(ph.left, q.length)
        q.drop(n)
        ph.left -= n
        if (ph.left > 0) return false
        this.send(P.encodeOptionError(ph.option, P.REP.ERR_TOO_BIG, `option data over ${OPTION_DATA_CAP} bytes`))
        this.phase = {k: 'option'}
        return true
      }
      case 'request':
        if (q.length < P.REQUEST_BYTES) return false
        return this.request(P.decodeRequest(q.take(P.REQUEST_BYTES)))
      case 'payload':
        return this.payload(ph)
      case 'ended':
        return false
    }
  }

  private clientFlags(flags: number): boolean {
    if ((flags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) !== 0 || !(flags & P.FLAG_C_FIXED_NEWSTYLE)) {
      this.log(`client flags 0x${flags.toString(16)}: not a fixed-newstyle client, closing`)
      this.end()
      return false
    }
    this.noZeroes = (flags & P.FLAG_C_NO_ZEROES) !== 0
    this.phase = {k: 'option'}
    return true
  }

  private optionHeader(h: P.OptionHeader): boolean {
    if (h.magic !== P.IHAVEOPT) {
      this.log('bad option magic, closing')
      this.end()
      return false
    }
    if (h.length <= OPTION_DATA_CAP) this.phase = {k: 'optionData', option: h.option, length: h.length}
    else if (h.option === P.OPT.EXPORT_NAME) {
      // no error reply exists for NBD_OPT_EXPORT_NAME
      this.log(`export name of ${h.length} bytes, closing`)
      this.end()
      return false
    } else this.phase = {k: 'optionDiscard', option: h.option, left: h.length}
    return true
  }

  private option(option: number, data: Buffer): boolean {
    if (this.closing && option !== P.OPT.ABORT) {
      this.send(P.encodeOptionError(option, P.REP.ERR_SHUTDOWN, 'the server is shutting down'))
      this.end()
      return false
    }
    const out = P.answerOption(option, data, this.exp, {structured: this.structured, noZeroes: this.noZeroes})
    for (const r of out.replies) this.send(r)
    if (out.structured) this.structured = true
    if (out.then === 'close') {
      if (option === P.OPT.EXPORT_NAME) this.log('unknown export name requested, closing')
      this.end()
      return false
    }
    if (out.then === 'transmit') {
      this.log(`transmission: ${this.writable ? 'writable' : 'read-only'}, ${this.structured ? 'structured' : 'simple'} replies`)
      this.phase = {k: 'request'}
    } else this.phase = {k: 'option'}
    return true
  }

  private request(r: P.Request): boolean {
    if (r.magic !== P.REQUEST_MAGIC) {
      this.log(`bad request magic 0x${r.magic.toString(16)}, closing`)
      this.end()
      return false
    }
    if (r.type === P.CMD.DISC) {
      this.end()
      return false
    }
    const err = P.requestError(r, {size: this.exp.size, writable: this.writable})
    if (r.type === P.CMD.WRITE) {
      // the payload follows whatever the answer; error or not, it is consumed before the reply
      this.phase = {k: 'payload', req: r, offset: err ? 0 : Number(r.offset), done: 0, error: err}
      return true
    }
    if (err) this.replyError(r, err)
    else if (r.type === P.CMD.READ) this.job = this.readJob(r.cookie, Number(r.offset), r.length)
    else if (r.type === P.CMD.FLUSH) this.reply(r, this.flush())
    else this.job = this.zeroJob(r, Number(r.offset), r.length)
    return true
  }

  /** take what has arrived of a write's payload; write it in whole 4 KiB blocks as they complete */
  private payload(ph: Extract<Phase, {k: 'payload'}>): boolean {
    const left = ph.req.length - ph.done
    if (left > 0) {
      let n = Math.min(left, this.input.length, PIECE)
      if (n === 0) return false
      if (ph.error) this.input.drop(n)
      else {
        const start = ph.offset + ph.done
        if (n < left) {
          // short of the payload's end, stop at a block boundary so the overlay need not read-modify-write
          const aligned = Math.floor((start + n) / 4096) * 4096 - start
          if (aligned <= 0) return false
          n = aligned
        }
        ph.error = this.write(start, this.input.take(n))
      }
      ph.done += n
      if (ph.done < ph.req.length) return true
    }
    this.phase = {k: 'request'}
    this.reply(ph.req, ph.error ?? this.fua(ph.req))
    return true
  }

  private write(offset: number, data: Uint8Array): P.RequestError | null {
    try {
      ;(this.source as WritableExport).write(offset, data)
      this.options.onWrite?.(data.length)
      return null
    } catch (error) {
      this.log(`write of ${data.length} bytes at ${offset} failed: ${(error as Error).message}`)
      return {error: P.NBD_EIO, message: `write failed: ${(error as Error).message}`}
    }
  }

  private flush(): P.RequestError | null {
    if (!this.writable) return null
    try {
      ;(this.source as WritableExport).flush()
      return null
    } catch (error) {
      this.log(`flush failed: ${(error as Error).message}`)
      return {error: P.NBD_EIO, message: `flush failed: ${(error as Error).message}`}
    }
  }

  private fua(r: P.Request): P.RequestError | null {
    return r.flags & P.CMD_FLAG.FUA ? this.flush() : null
  }

  private reply(r: P.Request, err: P.RequestError | null): void {
    if (err) this.replyError(r, err)
    else this.send(P.encodeSimpleReply(0, r.cookie))
  }

  private replyError(r: P.Request, err: P.RequestError): void {
    this.send(this.structured ? P.encodeErrorChunk(r.cookie, err.error, err.message) : P.encodeSimpleReply(err.error, r.cookie))
  }

  /** a read answered a piece at a time: OFFSET_DATA chunks, or a simple reply and its data */
  private readJob(cookie: bigint, offset: number, length: number): Job {
    let done = 0
    return () => {
      if (length === 0) {
        this.send(this.structured ? P.encodeNoneChunk(cookie) : P.encodeSimpleReply(0, cookie))
        return false
      }
      const n = Math.min(PIECE, length - done)
      let data: Uint8Array
      try {
        data = this.source.read(offset + done, n)
        if (data.length !== n) throw new Error(`the export returned ${data.length} bytes for ${n}`)
      } catch (error) {
        return this.readFailed(cookie, offset + done, n, error as Error, done > 0)
      }
      if (this.structured) this.send(P.encodeOffsetDataHeader(cookie, offset + done, n, done + n === length))
      else if (done === 0) this.send(P.encodeSimpleReply(0, cookie))
      this.send(data)
      done += n
      this.options.onRead?.(n)
      return done < length
    }
  }

  private readFailed(cookie: bigint, offset: number, n: number, error: Error, headerSent: boolean): false {
    this.log(`read of ${n} bytes at ${offset} failed: ${error.message}`)
    const message = `read at ${offset} failed: ${error.message}`
    if (this.structured) this.send(P.encodeErrorChunk(cookie, P.NBD_EIO, message))
    else if (!headerSent) this.send(P.encodeSimpleReply(P.NBD_EIO, cookie))
    // a simple reply already promised its data: proto.md requires a disconnect; what was queued
    // before the error goes out, nothing after it
    else this.end()
    return false
  }

  /** WRITE_ZEROES and TRIM: both write zeroes to the overlay, a piece at a time */
  private zeroJob(r: P.Request, offset: number, length: number): Job {
    let done = 0
    return () => {
      const n = Math.min(PIECE, length - done)
      const err = n > 0 ? this.write(offset + done, ZEROES.subarray(0, n)) : null
      done += n
      if (err || done >= length) {
        this.reply(r, err ?? this.fua(r))
        return false
      }
      return true
    }
  }
}
