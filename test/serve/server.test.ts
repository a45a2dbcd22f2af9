/**
 * The NBD server (serve/server.ts, serve/connection.ts) through a raw client written here from
 * proto.md: handshake and options, reads in simple and structured replies, errors that leave the
 * connection serving, writes and flushes on a writable export, pipelining, several connections,
 * back-pressure, the socket file's mode and a clean close().
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import {RefusedError, UsageError} from '../../src/engine/errors.js'
import type {ExportSource, WritableExport} from '../../src/serve/export.js'
import * as P from '../../src/serve/protocol.js'
import {startServer, type NbdServer} from '../../src/serve/server.js'

const MiB = 1024 * 1024

/** A client socket with exact-length reads. */
export class RawClient {
  private buf = Buffer.alloc(0)
  private pending: Buffer[] = []
  private pendingBytes = 0
  private want: {n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void} | null = null
  private ended = false
  readonly closed: Promise<void>

  constructor(readonly sock: net.Socket) {
    sock.on('data', (b: Buffer) => {
      this.pending.push(b)
      this.pendingBytes += b.length
      this.wake()
    })
    sock.on('error', () => undefined)
    this.closed = new Promise(resolve =>
      sock.on('close', () => {
        this.ended = true
        this.wake()
        resolve()
      }),
    )
  }

  static connect(to: string | {port: number; host: string}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = typeof to === 'string' ? net.connect(to) : net.connect(to.port, to.host)
      s.once('connect', () => resolve(new RawClient(s)))
      s.once('error', reject)
    })
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = {n, resolve, reject}
      this.wake()
    })
  }

  /** whether the server closed the connection (all its bytes read) */
  async eof(): Promise<boolean> {
    await this.closed
    return this.buf.length + this.pendingBytes === 0
  }

  write(b: Uint8Array): void {
    this.sock.write(b)
  }

  destroy(): void {
    this.sock.destroy()
  }

  private wake(): void {
    const w = this.want
    if (!w) return
    // chunks are joined only once a read can be satisfied, so large replies are not copied over and over
    if (this.buf.length + this.pendingBytes >= w.n || this.ended) {
      this.buf = Buffer.concat([this.buf, ...this.pending])
      this.pending = []
      this.pendingBytes = 0
    }
    if (this.buf.length >= w.n) {
      this.want = null
      const out = this.buf.subarray(0, w.n)
      this.buf = this.buf.subarray(w.n)
      w.resolve(out)
    } else if (this.ended) {
      this.want = null
      w.reject(new Error(`connection closed with ${this.buf.length} of ${w.n} bytes`))
    }
  }
}

export interface OptionReply {
  type: number
  data: Buffer
}

export async function optionReply(c: RawClient, option: number): Promise<OptionReply> {
  const h = P.decodeOptionReplyHeader(await c.read(20))
  assert.equal(h.magic, P.OPTION_REPLY_MAGIC)
  assert.equal(h.option, option)
  return {type: h.type, data: await c.read(h.length)}
}

/** all replies to an option until its final one (ACK or an error) */
export async function optionReplies(c: RawClient, option: number): Promise<OptionReply[]> {
  const out: OptionReply[] = []
  for (;;) {
    const r = await optionReply(c, option)
    out.push(r)
    if (r.type !== P.REP.INFO && r.type !== P.REP.SERVER) return out
  }
}

/** greeting, client flags, optionally structured replies, then GO for `name` */
export async function handshake(c: RawClient, opts: {structured?: boolean; name?: string} = {}): Promise<{size: number; flags: number}> {
  const g = P.decodeGreeting(await c.read(P.GREETING_BYTES))
  assert.ok(g, 'greeting magic')
  c.write(P.encodeClientFlags(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES))
  if (opts.structured) {
    c.write(P.encodeOption(P.OPT.STRUCTURED_REPLY))
    assert.equal((await optionReply(c, P.OPT.STRUCTURED_REPLY)).type, P.REP.ACK)
  }
  c.write(P.encodeOption(P.OPT.GO, P.encodeInfoRequest(opts.name ?? '', [P.INFO.BLOCK_SIZE])))
  const replies = await optionReplies(c, P.OPT.GO)
  assert.equal(replies.at(-1)?.type, P.REP.ACK, `GO answered ${replies.at(-1)?.type}`)
  const exp = replies.find(r => r.data.readUInt16BE(0) === P.INFO.EXPORT)!
  return {size: Number(exp.data.readBigUInt64BE(2)), flags: exp.data.readUInt16BE(10)}
}

export function request(type: number, cookie: number, offset: number, length: number, flags = 0): Buffer {
  return P.encodeRequest({flags, type, cookie: BigInt(cookie), offset: BigInt(offset), length})
}

/** a simple reply; its data when `dataLength` is given and there is no error */
export async function simpleReply(c: RawClient, dataLength = 0): Promise<{error: number; cookie: number; data: Buffer}> {
  const r = P.decodeSimpleReply(await c.read(P.SIMPLE_REPLY_BYTES))
  assert.equal(r.magic, P.SIMPLE_REPLY_MAGIC)
  const data = r.error === 0 && dataLength > 0 ? await c.read(dataLength) : Buffer.alloc(0)
  return {error: r.error, cookie: Number(r.cookie), data}
}

/** the chunks of one structured reply assembled: data at its offsets (from `base`), the error if any */
export async function structuredRead(
  c: RawClient,
  base: number,
  length: number,
): Promise<{error: number; cookie: number; data: Buffer; chunks: number}> {
  const data = Buffer.alloc(length)
  let error = 0
  let cookie = -1
  let covered = 0
  for (let chunks = 1; ; chunks++) {
    const h = P.decodeChunkHeader(await c.read(P.STRUCTURED_HEADER_BYTES))
    assert.equal(h.magic, P.STRUCTURED_REPLY_MAGIC)
    cookie = Number(h.cookie)
    const payload = await c.read(h.length)
    if (h.type === P.REPLY_TYPE.OFFSET_DATA) {
      const at = Number(payload.readBigUInt64BE(0)) - base
      assert.ok(at >= 0 && at + h.length - 8 <= length, 'data chunk within the request')
      payload.copy(data, at, 8)
      covered += h.length - 8
    } else if (h.type === P.REPLY_TYPE.ERROR) error = payload.readUInt32BE(0)
    else assert.equal(h.type, P.REPLY_TYPE.NONE)
    if (h.flags & P.REPLY_FLAG_DONE) {
      if (!error) assert.equal(covered, length, 'data chunks cover the request')
      return {error, cookie, data, chunks}
    }
  }
}

export function patternSource(size: number): ExportSource & {buf: Buffer; reads: number} {
  const buf = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) buf.writeUInt32LE(i ^ 0x5a5a5a5a, i)
  const s = {
    size,
    buf,
    reads: 0,
    read(offset: number, length: number): Uint8Array {
      s.reads++
      return buf.subarray(offset, offset + length)
    },
  }
  return Object.seal(s)
}

class MemWritable implements WritableExport {
  flushes = 0
  writes = 0
  constructor(readonly buf: Buffer) {}
  get size(): number {
    return this.buf.length
  }
  read(offset: number, length: number): Uint8Array {
    return Buffer.from(this.buf.subarray(offset, offset + length))
  }
  write(offset: number, data: Uint8Array): void {
    this.writes++
    this.buf.set(data, offset)
  }
  flush(): void {
    this.flushes++
  }
  close(): void {
    /* nothing held */
  }
}

describe('serve server: NBD over a Unix socket with a raw client', function () {
  this.timeout(60_000)
  let dir = ''
  let sock = ''
  let server: NbdServer | null = null
  const logs: string[] = []
  const start = async (src: ExportSource, extra: {exportName?: string; description?: string} = {}) => {
    server = await startServer(src, {listen: {socket: sock}, onLog: l => logs.push(l), ...extra})
    return server
  }
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-serve-'))
    sock = path.join(dir, 'nbd.sock')
    logs.length = 0
  })
  afterEach(async () => {
    await server?.close()
    server = null
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('greets with NBDMAGIC, IHAVEOPT and fixed-newstyle + no-zeroes; the socket file is 0600; the URI names it', async function () {
    const s = await start(patternSource(MiB))
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600)
    assert.ok(fs.statSync(sock).isSocket())
    assert.equal(s.uri, `nbd+unix:///?socket=${sock}`)
    const c = await RawClient.connect(sock)
    const g = await c.read(18)
    assert.equal(g.toString('latin1', 0, 8), 'NBDMAGIC')
    assert.equal(g.toString('latin1', 8, 16), 'IHAVEOPT')
    assert.equal(g.readUInt16BE(16), 3)
    c.destroy()
  })

  it('LIST, INFO and GO describe the one export; an unknown name gets ERR_UNKNOWN and the handshake goes on', async function () {
    await start(patternSource(2 * MiB), {exportName: 'md0', description: 'replayed view'})
    const c = await RawClient.connect(sock)
    await c.read(18)
    c.write(P.encodeClientFlags(3))
    c.write(P.encodeOption(P.OPT.LIST))
    const list = await optionReplies(c, P.OPT.LIST)
    assert.deepEqual(
      list.map(r => r.type),
      [P.REP.SERVER, P.REP.ACK],
    )
    assert.equal(list[0].data.readUInt32BE(0), 3)
    assert.equal(list[0].data.toString('utf8', 4), 'md0replayed view')
    c.write(P.encodeOption(P.OPT.GO, P.encodeInfoRequest('md1', [])))
    const unknown = await optionReplies(c, P.OPT.GO)
    assert.deepEqual(
      unknown.map(r => r.type),
      [P.REP.ERR_UNKNOWN],
    )
    c.write(P.encodeOption(P.OPT.INFO, P.encodeInfoRequest('md0', [P.INFO.NAME, P.INFO.DESCRIPTION, P.INFO.BLOCK_SIZE])))
    const info = await optionReplies(c, P.OPT.INFO)
    assert.equal(info.at(-1)?.type, P.REP.ACK)
    const byType = new Map(info.slice(0, -1).map(r => [r.data.readUInt16BE(0), r.data]))
    assert.equal(Number(byType.get(P.INFO.EXPORT)!.readBigUInt64BE(2)), 2 * MiB)
    assert.equal(byType.get(P.INFO.EXPORT)!.readUInt16BE(10), P.TF.HAS_FLAGS | P.TF.READ_ONLY | P.TF.SEND_FLUSH | P.TF.CAN_MULTI_CONN)
    assert.equal(byType.get(P.INFO.NAME)!.toString('utf8', 2), 'md0')
    assert.equal(byType.get(P.INFO.DESCRIPTION)!.toString('utf8', 2), 'replayed view')
    const bs = byType.get(P.INFO.BLOCK_SIZE)!
    assert.deepEqual([bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)], [1, 4096, 32 * MiB])
    // bad lengths, data where none belongs, an option this server lacks
    c.write(P.encodeOption(P.OPT.GO, Buffer.from([0, 0, 0, 9, 1, 2])))
    assert.equal((await optionReply(c, P.OPT.GO)).type, P.REP.ERR_INVALID)
    c.write(P.encodeOption(P.OPT.LIST, Buffer.from('x')))
    assert.equal((await optionReply(c, P.OPT.LIST)).type, P.REP.ERR_INVALID)
    c.write(P.encodeOption(P.OPT.SET_META_CONTEXT, Buffer.alloc(8)))
    assert.equal((await optionReply(c, P.OPT.SET_META_CONTEXT)).type, P.REP.ERR_UNSUP)
    c.write(P.encodeOption(P.OPT.STARTTLS))
    assert.equal((await optionReply(c, P.OPT.STARTTLS)).type, P.REP.ERR_UNSUP)
    // the default export ('') is the one export as well
    c.write(P.encodeOption(P.OPT.GO, P.encodeInfoRequest('', [])))
    assert.equal((await optionReplies(c, P.OPT.GO)).at(-1)?.type, P.REP.ACK)
    c.write(request(P.CMD.READ, 7, 4096, 16))
    assert.deepEqual((await simpleReply(c, 16)).data, patternSource(2 * MiB).buf.subarray(4096, 4112))
    c.destroy()
  })

  it('an option over the 64 KiB cap is read, discarded and refused with ERR_TOO_BIG; ABORT is acknowledged and closes', async function () {
    await start(patternSource(MiB))
    const c = await RawClient.connect(sock)
    await c.read(18)
    c.write(P.encodeClientFlags(1))
    c.write(P.encodeOption(P.OPT.INFO, Buffer.alloc(200_000, 0xee)))
    assert.equal((await optionReply(c, P.OPT.INFO)).type, P.REP.ERR_TOO_BIG)
    c.write(P.encodeOption(P.OPT.ABORT))
    assert.equal((await optionReply(c, P.OPT.ABORT)).type, P.REP.ACK)
    assert.ok(await c.eof())
  })

  it('EXPORT_NAME answers size and flags, with or without the 124 zeroes; an unknown name closes', async function () {
    await start(patternSource(MiB), {exportName: 'x'})
    for (const [flags, bytes] of [
      [3, 10],
      [1, 134],
    ]) {
      const c = await RawClient.connect(sock)
      await c.read(18)
      c.write(P.encodeClientFlags(flags))
      c.write(P.encodeOption(P.OPT.EXPORT_NAME, Buffer.from('x')))
      const r = await c.read(bytes)
      assert.equal(Number(r.readBigUInt64BE(0)), MiB)
      assert.equal(r.readUInt16BE(8) & P.TF.READ_ONLY, P.TF.READ_ONLY)
      assert.ok(r.subarray(10).every(b => b === 0))
      c.write(request(P.CMD.READ, 1, 0, 8))
      assert.equal((await simpleReply(c, 8)).error, 0)
      c.write(request(P.CMD.DISC, 2, 0, 0))
      assert.ok(await c.eof())
    }
    const bad = await RawClient.connect(sock)
    await bad.read(18)
    bad.write(P.encodeClientFlags(3))
    bad.write(P.encodeOption(P.OPT.EXPORT_NAME, Buffer.from('nope')))
    assert.ok(await bad.eof())
  })

  for (const structured of [false, true]) {
    it(`reads (${structured ? 'structured' : 'simple'} replies) return the source's bytes; past the end or over 32 MiB: EINVAL, and the connection serves on`, async function () {
      const src = patternSource(8 * MiB)
      await start(src)
      const c = await RawClient.connect(sock)
      await handshake(c, {structured})
      const read = async (cookie: number, off: number, len: number) => {
        c.write(request(P.CMD.READ, cookie, off, len))
        const r = structured ? await structuredRead(c, off, len) : await simpleReply(c, len)
        assert.equal(r.cookie, cookie)
        return r
      }
      for (const [off, len] of [
        [0, 4096],
        [5, 3 * MiB + 17], // several pieces of a MiB
        [8 * MiB - 1, 1],
        [0, 8 * MiB],
      ]) {
        const r = await read(off, off, len)
        assert.equal(r.error, 0)
        assert.ok(r.data.equals(src.buf.subarray(off, off + len)), `bytes at ${off}+${len}`)
      }
      assert.equal((await read(1, 8 * MiB - 4096, 8192)).error, P.NBD_EINVAL)
      assert.equal((await read(2, 2 ** 52, 512)).error, P.NBD_EINVAL)
      c.write(P.encodeRequest({flags: 0, type: P.CMD.READ, cookie: 3n, offset: 0xffffffffffffff00n, length: 4096}))
      assert.equal((structured ? await structuredRead(c, 0, 0) : await simpleReply(c)).error, P.NBD_EINVAL)
      assert.equal((await read(4, 0, 32 * MiB + 1)).error, P.NBD_EINVAL)
      assert.equal((await read(5, 0, 0)).error, 0)
      c.write(request(P.CMD.READ, 6, 0, 4096, P.CMD_FLAG.DF))
      assert.equal((structured ? await structuredRead(c, 0, 4096) : await simpleReply(c, 4096)).error, P.NBD_EINVAL)
      c.write(request(P.CMD.BLOCK_STATUS, 7, 0, 4096))
      assert.equal((structured ? await structuredRead(c, 0, 0) : await simpleReply(c)).error, P.NBD_EINVAL)
      c.write(request(99, 8, 0, 0))
      assert.equal((structured ? await structuredRead(c, 0, 0) : await simpleReply(c)).error, P.NBD_EINVAL)
      const ok = await read(9, 4096, 4096)
      assert.ok(ok.data.equals(src.buf.subarray(4096, 8192)))
      c.write(request(P.CMD.FLUSH, 10, 0, 0))
      assert.equal((await simpleReply(c)).error, 0, 'flush on a read-only export is a no-op')
      c.destroy()
    })
  }

  it('a write on a read-only export is EPERM, its payload consumed, and the next request is served', async function () {
    const src = patternSource(MiB)
    await start(src)
    const c = await RawClient.connect(sock)
    const {flags} = await handshake(c)
    assert.equal(flags & P.TF.READ_ONLY, P.TF.READ_ONLY)
    const before = Buffer.from(src.buf)
    c.write(Buffer.concat([request(P.CMD.WRITE, 1, 0, 10_000), Buffer.alloc(10_000, 0xff), request(P.CMD.READ, 2, 0, 64)]))
    assert.deepEqual(await simpleReply(c), {error: P.NBD_EPERM, cookie: 1, data: Buffer.alloc(0)})
    const r = await simpleReply(c, 64)
    assert.equal(r.cookie, 2)
    assert.ok(r.data.equals(before.subarray(0, 64)))
    for (const type of [P.CMD.TRIM, P.CMD.WRITE_ZEROES]) {
      c.write(request(type, 3, 0, 4096))
      assert.equal((await simpleReply(c)).error, P.NBD_EPERM)
    }
    assert.ok(src.buf.equals(before))
    c.destroy()
  })

  it('an export whose read throws answers EIO for that request; the connection and the server live on', async function () {
    const src = patternSource(MiB)
    const failing: ExportSource = {
      size: MiB,
      read(offset, length) {
        if (offset === 8192) throw new Error('member 2: EIO')
        return src.read(offset, length)
      },
    }
    await start(failing)
    for (const structured of [false, true]) {
      const c = await RawClient.connect(sock)
      await handshake(c, {structured})
      c.write(Buffer.concat([request(P.CMD.READ, 1, 8192, 4096), request(P.CMD.READ, 2, 0, 4096)]))
      const bad = structured ? await structuredRead(c, 8192, 4096) : await simpleReply(c, 4096)
      assert.equal(bad.error, P.NBD_EIO)
      const good = structured ? await structuredRead(c, 0, 4096) : await simpleReply(c, 4096)
      assert.equal(good.cookie, 2)
      assert.ok(good.data.equals(src.buf.subarray(0, 4096)))
      c.destroy()
    }
    assert.ok(logs.some(l => l.includes('member 2: EIO')))
  })

  it('a read failing after its first MiB: a structured reply ends in an error chunk and serves on; a simple one can only disconnect', async function () {
    const src = patternSource(4 * MiB)
    const bad = 1.5 * MiB
    await start({size: src.size, read: (o, l) => (o <= bad && o + l > bad ? assert.fail('member 1: EIO') : src.read(o, l))})
    const s = await RawClient.connect(sock)
    await handshake(s, {structured: true})
    s.write(Buffer.concat([request(P.CMD.READ, 1, 0, 2 * MiB), request(P.CMD.READ, 2, 0, 4096)]))
    const first = P.decodeChunkHeader(await s.read(P.STRUCTURED_HEADER_BYTES))
    assert.deepEqual([first.type, first.flags, first.length], [P.REPLY_TYPE.OFFSET_DATA, 0, MiB + 8])
    await s.read(first.length)
    const err = P.decodeChunkHeader(await s.read(P.STRUCTURED_HEADER_BYTES))
    assert.deepEqual([err.type, err.flags], [P.REPLY_TYPE.ERROR, P.REPLY_FLAG_DONE])
    const payload = await s.read(err.length)
    assert.equal(payload.readUInt32BE(0), P.NBD_EIO)
    assert.match(payload.toString('utf8', 6), /read at 1048576 failed: member 1: EIO/)
    assert.equal((await structuredRead(s, 0, 4096)).cookie, 2)
    s.destroy()
    const c = await RawClient.connect(sock)
    await handshake(c)
    c.write(request(P.CMD.READ, 3, 0, 2 * MiB))
    assert.equal((await simpleReply(c)).error, 0)
    await c.read(MiB)
    assert.ok(await c.eof(), 'the connection is cut rather than the data faked')
  })

  it('pipelined requests in one write are all answered in order; two connections at once are served side by side', async function () {
    const src = patternSource(4 * MiB)
    await start(src)
    const a = await RawClient.connect(sock)
    const b = await RawClient.connect(sock)
    await Promise.all([handshake(a), handshake(b, {structured: true})])
    const reqs = Array.from({length: 64}, (_, i) => [i + 100, ((i * 37) % 1000) * 4096, 4096 * (1 + (i % 5))] as const)
    a.write(Buffer.concat(reqs.map(([ck, off, len]) => request(P.CMD.READ, ck, off, len))))
    b.write(Buffer.concat(reqs.map(([ck, off, len]) => request(P.CMD.READ, ck, off, len))))
    const readAll = async (c: RawClient, structured: boolean) => {
      for (const [ck, off, len] of reqs) {
        const r = structured ? await structuredRead(c, off, len) : await simpleReply(c, len)
        assert.equal(r.cookie, ck)
        assert.ok(r.data.equals(src.buf.subarray(off, off + len)), `cookie ${ck}`)
      }
    }
    await Promise.all([readAll(a, false), readAll(b, true)])
    a.destroy()
    b.destroy()
  })

  it('a client that half-closes after its requests still gets every reply, then the end of the connection', async function () {
    const src = patternSource(4 * MiB)
    await start(src)
    const c = await RawClient.connect(sock)
    await handshake(c)
    c.write(Buffer.concat([request(P.CMD.READ, 1, 0, 3 * MiB), request(P.CMD.READ, 2, 4096, 100)]))
    c.sock.end()
    const a = await simpleReply(c, 3 * MiB)
    const b = await simpleReply(c, 100)
    assert.deepEqual([a.cookie, b.cookie], [1, 2])
    assert.ok(a.data.equals(src.buf.subarray(0, 3 * MiB)))
    assert.ok(await c.eof())
  })

  it('a client that does not take its replies stops the server reading its requests (back-pressure), then gets them all', async function () {
    const src = patternSource(16 * MiB)
    await start(src)
    const c = await RawClient.connect(sock)
    await handshake(c)
    const n = 128 // 128 MiB of replies asked for at once
    c.sock.pause()
    c.write(Buffer.concat(Array.from({length: n}, (_, i) => request(P.CMD.READ, i, (i % 16) * MiB, MiB))))
    await new Promise(r => setTimeout(r, 500))
    assert.ok(src.reads < 24, `${src.reads} reads of 1 MiB done for a client that read nothing`)
    c.sock.resume()
    for (let i = 0; i < n; i++) {
      const r = await simpleReply(c, MiB)
      assert.equal(r.cookie, i)
      if (i % 37 === 0) assert.ok(r.data.equals(src.buf.subarray((i % 16) * MiB, ((i % 16) + 1) * MiB)))
    }
    c.destroy()
  })

  it('writes, FUA, flush, write-zeroes and trim on a writable export; past the end ENOSPC, over 32 MiB EINVAL with the payload consumed', async function () {
    const exp = new MemWritable(Buffer.alloc(4 * MiB, 0x11))
    await start(exp)
    const c = await RawClient.connect(sock)
    const {flags} = await handshake(c, {structured: true})
    const want = P.TF.HAS_FLAGS | P.TF.SEND_FLUSH | P.TF.SEND_FUA | P.TF.SEND_TRIM | P.TF.SEND_WRITE_ZEROES | P.TF.CAN_MULTI_CONN
    assert.equal(flags, want)
    const data = Buffer.alloc(3 * MiB + 123, 0xab)
    c.write(Buffer.concat([request(P.CMD.WRITE, 1, 1000, data.length), data]))
    assert.deepEqual(await simpleReply(c), {error: 0, cookie: 1, data: Buffer.alloc(0)})
    assert.ok(exp.buf.subarray(1000, 1000 + data.length).every(x => x === 0xab))
    assert.equal(exp.buf[999], 0x11)
    assert.equal(exp.flushes, 0)
    c.write(Buffer.concat([request(P.CMD.WRITE, 2, 0, 4, P.CMD_FLAG.FUA), Buffer.from('abcd')]))
    assert.equal((await simpleReply(c)).error, 0)
    assert.equal(exp.flushes, 1, 'FUA flushed before the reply')
    c.write(request(P.CMD.FLUSH, 3, 0, 0))
    assert.equal((await simpleReply(c)).error, 0)
    assert.equal(exp.flushes, 2)
    c.write(request(P.CMD.WRITE_ZEROES, 4, 8192, 2 * MiB + 5, P.CMD_FLAG.NO_HOLE))
    assert.equal((await simpleReply(c)).error, 0)
    assert.ok(exp.buf.subarray(8192, 8192 + 2 * MiB + 5).every(x => x === 0))
    c.write(request(P.CMD.TRIM, 5, 3 * MiB, 4096))
    assert.equal((await simpleReply(c)).error, 0)
    c.write(Buffer.concat([request(P.CMD.WRITE, 6, 4 * MiB - 10, 20), Buffer.alloc(20, 0xcc)]))
    assert.equal((await structuredRead(c, 0, 0)).error, P.NBD_ENOSPC)
    const huge = 32 * MiB + 4096
    c.write(request(P.CMD.WRITE, 7, 0, huge))
    for (let i = 0; i < huge; i += MiB) c.write(Buffer.alloc(Math.min(MiB, huge - i), 0xdd))
    assert.equal((await structuredRead(c, 0, 0)).error, P.NBD_EINVAL)
    c.write(request(P.CMD.READ, 8, 0, 8))
    const r = await structuredRead(c, 0, 8)
    assert.equal(r.cookie, 8)
    assert.equal(r.data.toString('latin1', 0, 4), 'abcd')
    assert.ok(!exp.buf.includes(0xcc) && !exp.buf.includes(0xdd), 'refused writes changed nothing')
    c.destroy()
  })

  it('close() ends idle and negotiating connections, resolves, and removes the socket file', async function () {
    const s = await start(patternSource(MiB))
    const a = await RawClient.connect(sock)
    await handshake(a)
    const b = await RawClient.connect(sock)
    await b.read(18)
    assert.equal(s.connections, 2)
    await s.close()
    server = null
    assert.ok(await a.eof())
    assert.ok(await b.eof())
    assert.ok(!fs.existsSync(sock))
  })

  it('close() removes its own socket only: a file put at the path since, or the socket of a second server there, is left alone', async function () {
    const s = await start(patternSource(MiB))
    fs.unlinkSync(sock)
    fs.writeFileSync(sock, 'precious')
    await s.close()
    server = null
    assert.equal(fs.readFileSync(sock, 'utf8'), 'precious', 'a file that is not its socket is not removed')
    fs.unlinkSync(sock)
    const first = await startServer(patternSource(MiB), {listen: {socket: sock}})
    fs.unlinkSync(sock)
    const second = await startServer(patternSource(MiB), {listen: {socket: sock}})
    await first.close()
    const c = await RawClient.connect(sock)
    await handshake(c)
    c.destroy()
    await second.close()
    assert.ok(!fs.existsSync(sock), 'the second removes its own')
  })

  it('close() does not wait for ever on a client that stops taking a large reply: it is cut after the grace period', async function () {
    const s = await start(patternSource(32 * MiB))
    const c = await RawClient.connect(sock)
    await handshake(c)
    c.sock.pause()
    c.write(request(P.CMD.READ, 1, 0, 32 * MiB))
    await new Promise(r => setTimeout(r, 200))
    const t0 = Date.now()
    await s.close()
    server = null
    const took = Date.now() - t0
    assert.ok(took >= 1500 && took < 5000, `close() took ${took} ms`)
    c.destroy()
  })

  it('connections beyond maxConnections are closed on arrival, and logged; the open ones go on', async function () {
    server = await startServer(patternSource(MiB), {listen: {socket: sock}, maxConnections: 2, onLog: l => logs.push(l)})
    const a = await RawClient.connect(sock)
    const b = await RawClient.connect(sock)
    await Promise.all([handshake(a), handshake(b)])
    const c = await RawClient.connect(sock)
    assert.ok(await c.eof(), 'the third connection gets no greeting')
    assert.ok(logs.some(l => l.includes('2 are open already')))
    a.write(request(P.CMD.READ, 1, 0, 8))
    assert.equal((await simpleReply(a, 8)).error, 0)
    a.destroy()
    b.destroy()
  })

  it('a connection that does not finish its handshake in time is closed, so idle sockets cannot hold every slot; one in transmission may idle', async function () {
    server = await startServer(patternSource(MiB), {listen: {socket: sock}, maxConnections: 2, handshakeMs: 300, onLog: l => logs.push(l)})
    const served = await RawClient.connect(sock)
    await handshake(served)
    const silent = await RawClient.connect(sock)
    await silent.read(P.GREETING_BYTES)
    // the silent one is cut after the limit, and its slot takes a new client
    assert.ok(await silent.eof(), 'the connection that never answered the greeting is closed')
    assert.ok(
      logs.some(l => l.includes('handshake not finished')),
      logs.join('\n'),
    )
    const next = await RawClient.connect(sock)
    await handshake(next)
    await new Promise(r => setTimeout(r, 500))
    served.write(request(P.CMD.READ, 1, 0, 8))
    assert.equal((await simpleReply(served, 8)).error, 0, 'a connection in transmission may idle past the limit')
    served.destroy()
    next.destroy()
  })

  it('a stale socket is replaced; a live one or a file that is not a socket is refused and left alone', async function () {
    // a listener killed without removing its socket
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`])
    await new Promise(r => child.stdout.once('data', r))
    child.kill('SIGKILL')
    await new Promise(r => child.once('exit', r))
    assert.ok(fs.statSync(sock).isSocket())
    const s = await start(patternSource(MiB))
    await assert.rejects(startServer(patternSource(MiB), {listen: {socket: sock}}), RefusedError)
    await s.close()
    server = null
    const plain = path.join(dir, 'file')
    fs.writeFileSync(plain, 'keep me')
    await assert.rejects(startServer(patternSource(MiB), {listen: {socket: plain}}), UsageError)
    assert.equal(fs.readFileSync(plain, 'utf8'), 'keep me')
  })

  it('listens on TCP too (port 0: any free port), and reports the port', async function () {
    server = await startServer(patternSource(MiB), {listen: {host: '127.0.0.1', port: 0}})
    const addr = server.address as {host: string; port: number}
    assert.ok(addr.port > 0)
    assert.equal(server.uri, `nbd://127.0.0.1:${addr.port}/`)
    const c = await RawClient.connect(addr)
    await handshake(c)
    c.write(request(P.CMD.READ, 1, 0, 4))
    assert.equal((await simpleReply(c, 4)).error, 0)
    c.destroy()
    await assert.rejects(startServer(patternSource(MiB), {listen: {host: '127.0.0.1', port: addr.port}}), RefusedError)
    await assert.rejects(startServer(patternSource(MiB), {listen: {socket: path.join(dir, 'no-such-dir', 's')}}), UsageError)
  })
})
