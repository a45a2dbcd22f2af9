/**
 * The NBD server against real clients: libnbd's nbdinfo and nbdcopy, qemu's qemu-img and qemu-io.
 * The server runs in this process, so the tools are spawned asynchronously. A missing tool skips its
 * test, unless R5CTL_REQUIRE_INTEROP=1 (CI, whose .ci/run installs libnbd-bin and qemu-utils).
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {promisify} from 'node:util'
import type {ExportSource} from '../../src/serve/export.js'
import {openOverlay} from '../../src/serve/overlay.js'
import {startServer, type NbdServer} from '../../src/serve/server.js'
import {which} from '../helpers/cli.js'

const run = promisify(execFile)
const MiB = 1024 * 1024
const PACKAGE: Record<string, string> = {nbdinfo: 'libnbd-bin', nbdcopy: 'libnbd-bin', 'qemu-img': 'qemu-utils', 'qemu-io': 'qemu-utils'}

function tool(ctx: Mocha.Context, name: string): string {
  const p = which(name)
  if (p) return p
  if (process.env.R5CTL_REQUIRE_INTEROP === '1')
    throw new Error(`${name} is not installed, and R5CTL_REQUIRE_INTEROP=1 says interop tests must run (apt-get install ${PACKAGE[name]})`)
  console.log(`      (skipped: ${name} is not installed; apt-get install ${PACKAGE[name]})`)
  ctx.skip()
  throw new Error('unreachable')
}

async function sh(file: string, args: string[]): Promise<string> {
  try {
    return (await run(file, args, {maxBuffer: 16 * MiB, timeout: 120_000})).stdout
  } catch (error) {
    const e = error as {stderr?: string; message: string}
    throw new Error(`${path.basename(file)} ${args.join(' ')}: ${e.stderr ?? ''}${e.message}`)
  }
}

/** a run whose failure is an answer too: exit status and all output */
async function attempt(file: string, args: string[]): Promise<{ok: boolean; out: string}> {
  try {
    const r = await run(file, args, {maxBuffer: 16 * MiB, timeout: 120_000})
    return {ok: true, out: r.stdout + r.stderr}
  } catch (error) {
    const e = error as {stdout?: string; stderr?: string}
    return {ok: false, out: (e.stdout ?? '') + (e.stderr ?? '')}
  }
}

/** an in-memory export whose bytes differ in every 4-byte word, and that refuses anything but read */
function memSource(size: number): ExportSource & {buf: Buffer} {
  const buf = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i)
  return Object.freeze({size, buf, read: (offset: number, length: number) => buf.subarray(offset, offset + length)})
}

describe('serve clients: nbdinfo, nbdcopy, qemu-img, qemu-io against the server', function () {
  this.timeout(300_000)
  let dir = ''
  let sock = ''
  let server: NbdServer | null = null
  const libnbd = () => `nbd+unix:///?socket=${sock}`
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-serve-clients-'))
    sock = path.join(dir, 's.sock')
  })
  afterEach(async () => {
    await server?.close()
    server = null
    fs.rmSync(dir, {recursive: true, force: true})
  })

  it('nbdinfo --json reports the size, read-only, multi-conn and the block sizes; --list shows name and description', async function () {
    const nbdinfo = tool(this, 'nbdinfo')
    server = await startServer(memSource(64 * MiB), {listen: {socket: sock}, description: 'test export'})
    const info = JSON.parse(await sh(nbdinfo, ['--json', libnbd()]))
    const e = info.exports[0]
    assert.equal(info.protocol, 'newstyle-fixed')
    assert.equal(info.structured, true)
    assert.equal(e['export-size'], 64 * MiB)
    assert.equal(e.is_read_only, true)
    assert.equal(e.can_multi_conn, true)
    assert.equal(e.can_flush, true)
    assert.deepEqual([e.block_size_minimum, e.block_size_preferred, e.block_size_maximum], [1, 4096, 32 * MiB])
    const list = JSON.parse(await sh(nbdinfo, ['--json', '--list', libnbd()]))
    assert.deepEqual(
      list.exports.map((x: any) => [x['export-name'], x.description]),
      [['', 'test export']],
    )
  })

  it('nbdcopy of a 256 MiB export to a file gives the same bytes (throughput printed)', async function () {
    const nbdcopy = tool(this, 'nbdcopy')
    const src = memSource(256 * MiB)
    server = await startServer(src, {listen: {socket: sock}})
    const out = path.join(dir, 'copy.raw')
    const t0 = process.hrtime.bigint()
    await sh(nbdcopy, [libnbd(), out])
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    console.log(`      nbdcopy 256 MiB: ${s.toFixed(2)} s, ${(256 / s).toFixed(0)} MiB/s`)
    assert.ok(fs.readFileSync(out).equals(src.buf))
  })

  it('qemu-img info and qemu-img convert -O raw (nbd:unix:path) see the same size and bytes; TCP works for nbdinfo', async function () {
    const qemuImg = tool(this, 'qemu-img')
    const src = memSource(32 * MiB)
    server = await startServer(src, {listen: {socket: sock}})
    const info = JSON.parse(await sh(qemuImg, ['info', '--output=json', `nbd:unix:${sock}`]))
    assert.equal(info['virtual-size'], 32 * MiB)
    const out = path.join(dir, 'conv.raw')
    await sh(qemuImg, ['convert', '-f', 'raw', '-O', 'raw', `nbd:unix:${sock}`, out])
    assert.ok(fs.readFileSync(out).equals(src.buf))
    await server.close()
    server = await startServer(src, {listen: {host: '127.0.0.1', port: 0}})
    const nbdinfo = tool(this, 'nbdinfo')
    assert.equal((await sh(nbdinfo, ['--size', server.uri])).trim(), String(32 * MiB))
    const out2 = path.join(dir, 'conv2.raw')
    await sh(qemuImg, ['convert', '-f', 'raw', '-O', 'raw', server.uri, out2])
    assert.ok(fs.readFileSync(out2).equals(src.buf))
  })

  it('qemu-io reads with --image-opts and verifies a pattern; a write to a read-only export fails', async function () {
    const qemuIo = tool(this, 'qemu-io')
    const src = memSource(8 * MiB)
    src.buf.fill(0x5c, 65536, 65536 + 8192)
    server = await startServer(src, {listen: {socket: sock}})
    const opts = `driver=nbd,server.type=unix,server.path=${sock}`
    const ok = await sh(qemuIo, ['-r', '--image-opts', opts, '-c', 'read -P 0x5c 65536 8192'])
    assert.match(ok, /read 8192\/8192 bytes at offset 65536/)
    const bad = await attempt(qemuIo, ['-r', '--image-opts', opts, '-c', 'read -P 0x5c 0 512'])
    assert.match(bad.out, /Pattern verification failed/)
    const w = await attempt(qemuIo, ['-f', 'raw', '-c', 'write -P 0xab 0 4096', `nbd:unix:${sock}`])
    assert.ok(!w.ok, w.out)
    assert.match(w.out, /read-only|Operation not permitted|Permission denied/i)
  })

  it('with an overlay: qemu-io writes, nbdcopy and nbdinfo read them back, the base is unchanged, and they survive a restart', async function () {
    const qemuIo = tool(this, 'qemu-io')
    const nbdcopy = tool(this, 'nbdcopy')
    const nbdinfo = tool(this, 'nbdinfo')
    const base = memSource(16 * MiB)
    const pristine = Buffer.from(base.buf)
    const ovl = path.join(dir, 'writes.ovl')
    let overlay = openOverlay(ovl, base, {arrayUuid: 'aaaa:bbbb:cccc:dddd', view: 'members'})
    server = await startServer(overlay, {listen: {socket: sock}})
    assert.equal(JSON.parse(await sh(nbdinfo, ['--json', libnbd()])).exports[0].is_read_only, false)
    await sh(qemuIo, ['-f', 'raw', '-c', 'write -P 0xab 4096 8192', '-c', 'write -P 0xcd 1000 10', '-c', 'flush', `nbd:unix:${sock}`])
    const want = Buffer.from(pristine)
    want.fill(0xab, 4096, 4096 + 8192)
    want.fill(0xcd, 1000, 1010)
    const check = async (tag: string) => {
      const out = path.join(dir, `${tag}.raw`)
      await sh(nbdcopy, [libnbd(), out])
      assert.ok(fs.readFileSync(out).equals(want), `${tag}: nbdcopy reads the writes over the base`)
      fs.rmSync(out)
    }
    await check('before-restart')
    assert.ok(base.buf.equals(pristine), 'the base is never written')
    await server.close()
    overlay.close()
    overlay = openOverlay(ovl, base, {arrayUuid: 'aaaa:bbbb:cccc:dddd', view: 'members'})
    server = await startServer(overlay, {listen: {socket: sock}})
    await check('after-restart')
    assert.ok(base.buf.equals(pristine))
    await server.close()
    server = null
    overlay.close()
  })

  it('nbdcopy into a writable export (4 connections, large writes) and back out round-trips the bytes', async function () {
    const nbdcopy = tool(this, 'nbdcopy')
    const base = memSource(32 * MiB)
    const pristine = Buffer.from(base.buf)
    const overlay = openOverlay(path.join(dir, 'o.ovl'), base, {arrayUuid: 'u', view: 'members'})
    server = await startServer(overlay, {listen: {socket: sock}})
    const input = path.join(dir, 'in.raw')
    const data = Buffer.alloc(32 * MiB)
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(((i * 7919) ^ 0xdeadbeef) >>> 0, i)
    data.fill(0, 5 * MiB, 9 * MiB) // a zero run, which nbdcopy may send as write-zeroes
    fs.writeFileSync(input, data)
    await sh(nbdcopy, [input, libnbd()])
    const out = path.join(dir, 'out.raw')
    await sh(nbdcopy, [libnbd(), out])
    assert.ok(fs.readFileSync(out).equals(data))
    assert.ok(base.buf.equals(pristine))
    await server.close()
    server = null
    overlay.close()
  })
})
