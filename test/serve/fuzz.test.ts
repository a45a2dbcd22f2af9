/**
 * The NBD server under hostile input: thousands of seeded random and mutated handshakes, options and
 * requests (oversized lengths, offsets past the end, unknown commands, streams cut anywhere,
 * disconnects mid-request and mid-reply), against a read-only export and an overlay-backed writable
 * one whose base fails some reads. The server must never throw nor log an internal error, must
 * still serve a good client afterwards, and the base must only ever be read.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import type {ExportSource} from '../../src/serve/export.js'
import {openOverlay} from '../../src/serve/overlay.js'
import * as P from '../../src/serve/protocol.js'
import {startServer, type NbdServer} from '../../src/serve/server.js'

const MiB = 1024 * 1024
const SIZE = 8 * MiB
const CASES = 3000

/** mulberry32: the same cases on every run */
function prng(seed: number): {next: () => number; int: (n: number) => number; pick: <T>(xs: readonly T[]) => T} {
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  return {next, int, pick: xs => xs[int(xs.length)]}
}

/**
 * A base that may only be read: any other property is an error recorded (and thrown), and reads of
 * one 64 KiB region fail as a bad member would.
 */
function guardedBase(violations: string[]): ExportSource & {buf: Buffer} {
  const buf = Buffer.alloc(SIZE)
  for (let i = 0; i < SIZE; i += 4) buf.writeUInt32LE((i * 2246822519) >>> 0, i)
  const target = {
    size: SIZE,
    buf,
    read(offset: number, length: number): Uint8Array {
      if (offset < 3 * MiB + 65536 && offset + length > 3 * MiB) throw new Error('simulated member I/O error')
      return buf.subarray(offset, offset + length)
    },
  }
  return new Proxy(target, {
    get(t, prop, receiver) {
      if (prop === 'size' || prop === 'read' || prop === 'buf') return Reflect.get(t, prop, receiver) as unknown
      // the server asks whether write exists to tell a writable export: that answer is "no"
      if (prop === 'write' || prop === 'then') return undefined
      violations.push(`base.${String(prop)} was touched`)
      throw new Error(`base.${String(prop)} must not be used`)
    },
    set(_t, prop) {
      violations.push(`base.${String(prop)} was set`)
      return false
    },
  })
}

function u32(x: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(x >>> 0, 0)
  return b
}

const LENGTHS = [0, 1, 511, 4096, 65536, MiB, 32 * MiB, 32 * MiB + 1, 0x7fffffff, 0xffffffff]

function randomRequest(r: ReturnType<typeof prng>): Buffer {
  const type = r.next() < 0.8 ? r.pick([0, 1, 3, 4, 6, 0, 0, 1]) : r.int(12)
  const length = r.next() < 0.5 ? r.pick(LENGTHS) : r.int(3 * MiB)
  const offset = r.next() < 0.6 ? BigInt(r.int(SIZE)) : r.pick([BigInt(SIZE), BigInt(SIZE - 1), 2n ** 63n, 2n ** 64n - 1n, BigInt(SIZE - 4096)])
  const flags = r.next() < 0.7 ? 0 : r.int(0x10000)
  const head = P.encodeRequest({flags, type, cookie: BigInt(r.int(1e9)), offset, length})
  if (type !== P.CMD.WRITE) return head
  // a write's payload: all of it, part of it, or none
  const payload = Math.min(length, r.pick([length, r.int(70_000), 0]), 2 * MiB)
  return Buffer.concat([head, Buffer.alloc(payload, r.int(256))])
}

/** a plausible client stream: flags, options, then requests */
function validStream(r: ReturnType<typeof prng>): Buffer {
  const parts: Buffer[] = [P.encodeClientFlags(r.pick([1, 3, 3, 3]))]
  if (r.next() < 0.5) parts.push(P.encodeOption(P.OPT.STRUCTURED_REPLY))
  if (r.next() < 0.3) parts.push(P.encodeOption(P.OPT.LIST))
  if (r.next() < 0.3) parts.push(P.encodeOption(P.OPT.INFO, P.encodeInfoRequest(r.pick(['', 'x']), [3, 1, 2])))
  if (r.next() < 0.2) parts.push(P.encodeOption(r.int(20), Buffer.alloc(r.int(100), 7)))
  parts.push(r.next() < 0.8 ? P.encodeOption(P.OPT.GO, P.encodeInfoRequest('', [3])) : P.encodeOption(P.OPT.EXPORT_NAME))
  for (let i = r.int(12); i > 0; i--) parts.push(randomRequest(r))
  if (r.next() < 0.3) parts.push(P.encodeRequest({flags: 0, type: P.CMD.DISC, cookie: 0n, offset: 0n, length: 0}))
  return Buffer.concat(parts)
}

function mutate(b: Buffer, r: ReturnType<typeof prng>): Buffer {
  let out = Buffer.from(b)
  for (let k = r.int(4); k > 0 && out.length > 0; k--) {
    const at = r.int(out.length)
    switch (r.int(5)) {
      case 0:
        out[at] ^= 1 << r.int(8)
        break
      case 1:
        if (at + 4 <= out.length) u32(r.pick([0, 1, 0xffffffff, 0x80000000, OPT_CAP_PLUS, r.int(2 ** 32)])).copy(out, at)
        break
      case 2:
        out = out.subarray(0, at)
        break
      case 3:
        out = Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({length: r.int(40)}, () => r.int(256))), out.subarray(at)])
        break
      default:
        out = Buffer.concat([out, out.subarray(at, at + r.int(200))])
    }
  }
  return out
}
const OPT_CAP_PLUS = 64 * 1024 + 1

/** one hostile client: its bytes in random pieces, then a cut, a half-close or a short wait */
async function hostile(sock: string, bytes: Buffer, r: ReturnType<typeof prng>): Promise<void> {
  const c = net.connect(sock)
  c.on('error', () => undefined)
  c.on('data', () => undefined)
  await new Promise<void>(resolve => c.once('connect', resolve).once('error', () => resolve()))
  for (let at = 0; at < bytes.length;) {
    const n = 1 + r.int(Math.min(bytes.length - at, r.pick([1, 17, 4096, 300_000])))
    c.write(bytes.subarray(at, at + n))
    at += n
  }
  const how = r.int(3)
  if (how === 0) c.destroy()
  else {
    if (how === 1) c.end()
    await new Promise<void>(resolve => {
      const t = setTimeout(resolve, how === 1 ? 150 : 5)
      c.once('close', () => {
        clearTimeout(t)
        resolve()
      })
    })
    c.destroy()
  }
}

/** a well-behaved client reads 64 KiB at `offset` and returns it */
async function goodRead(sock: string, offset: number): Promise<Buffer> {
  const c = net.connect(sock)
  const chunks: Buffer[] = []
  c.on('data', (b: Buffer) => chunks.push(b))
  await new Promise(resolve => c.once('connect', resolve))
  c.write(Buffer.concat([P.encodeClientFlags(3), P.encodeOption(P.OPT.GO, P.encodeInfoRequest('', []))]))
  const greetingAndGo = P.GREETING_BYTES + 20 + 12 + 20 + 14 + 20 // greeting, INFO_EXPORT, BLOCK_SIZE, ACK
  const need = async (n: number) => {
    for (let i = 0; i < 500 && Buffer.concat(chunks).length < n; i++) await new Promise(res => setTimeout(res, 10))
    return Buffer.concat(chunks)
  }
  await need(greetingAndGo)
  c.write(P.encodeRequest({flags: 0, type: P.CMD.READ, cookie: 42n, offset: BigInt(offset), length: 65536}))
  const all = await need(greetingAndGo + 16 + 65536)
  c.destroy()
  const reply = P.decodeSimpleReply(all.subarray(greetingAndGo))
  assert.deepEqual([reply.magic, reply.error, reply.cookie], [P.SIMPLE_REPLY_MAGIC, 0, 42n])
  return all.subarray(greetingAndGo + 16, greetingAndGo + 16 + 65536)
}

describe('serve fuzz: hostile clients never break the server', function () {
  this.timeout(120_000)
  let dir = ''
  const servers: NbdServer[] = []
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close()
    fs.rmSync(dir, {recursive: true, force: true})
  })

  for (const writable of [false, true]) {
    it(`${CASES} seeded cases against a ${writable ? 'writable (overlay)' : 'read-only'} export`, async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-serve-fuzz-'))
      const sock = path.join(dir, 's.sock')
      const violations: string[] = []
      const base = guardedBase(violations)
      const pristine = Buffer.from(base.buf)
      const overlay = writable ? openOverlay(path.join(dir, 'o.ovl'), base, {arrayUuid: 'fuzz', view: 'members'}) : null
      const logs: string[] = []
      const uncaught: unknown[] = []
      const onUncaught = (e: unknown) => uncaught.push(e)
      process.on('uncaughtException', onUncaught)
      try {
        const server = await startServer(overlay ?? base, {listen: {socket: sock}, onLog: l => logs.push(l), maxConnections: 64})
        servers.push(server)
        const r = prng(writable ? 7 : 3)
        const t0 = Date.now()
        for (let i = 0; i < CASES; i += 25) {
          await Promise.all(
            Array.from({length: 25}, () => {
              const kind = r.int(10)
              const bytes =
                kind === 0 ? Buffer.from(Array.from({length: r.int(300)}, () => r.int(256))) : kind < 4 ? validStream(r) : mutate(validStream(r), r)
              return hostile(sock, bytes, r)
            }),
          )
        }
        const elapsed = Date.now() - t0
        assert.ok(elapsed < 60_000, `${CASES} cases took ${elapsed} ms`)
        assert.deepEqual(uncaught, [])
        assert.deepEqual(violations, [])
        assert.deepEqual(
          logs.filter(l => l.includes('internal error')),
          [],
        )
        // the cases reach deep: most connections get to the transmission phase, and I/O errors happen
        const transmitting = logs.filter(l => l.includes(': transmission:')).length
        assert.ok(transmitting > CASES * 0.3, `only ${transmitting} of ${CASES} connections reached transmission`)
        assert.ok(
          logs.some(l => l.includes('simulated member I/O error')),
          'no read hit the failing region',
        )
        const good = await goodRead(sock, MiB)
        if (!writable) assert.ok(good.equals(pristine.subarray(MiB, MiB + 65536)))
        for (let i = 0; i < 300 && server.connections > 0; i++) await new Promise(res => setTimeout(res, 10))
        assert.equal(server.connections, 0, 'every hostile connection was closed')
        assert.ok(base.buf.equals(pristine), 'the base was never written')
      } finally {
        process.off('uncaughtException', onUncaught)
        overlay?.close()
      }
    })
  }
})
