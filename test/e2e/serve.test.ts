/**
 * `r5ctl serve` on image files, judged by real NBD clients (nbdinfo, nbdcopy from libnbd-bin;
 * qemu-img, qemu-io from qemu-utils): the export is the replayed view, byte for byte what `recover`
 * then `read` gives on a copy, whole or with a member left out; no image changes; writes go to the
 * --overlay file only and outlive a restart; SIGTERM ends it with exit 0; bad arguments are refused
 * before it listens.
 */
import assert from 'node:assert/strict'
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {BIN, childEnv, expectExit, fingerprint, ok, pseudoRandom, r5ctl, requireTool, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const KiB = 1024

interface Served {
  uri: string
  socket: string
  /** SIGTERM, then what the process printed and its exit status */
  stop(signal?: NodeJS.Signals): Promise<{status: number | null; stdout: string; stderr: string}>
}

/** every serve a test started and has not seen end: killed after each test, so a failed one leaves none running */
const running = new Set<ChildProcess>()

/** start `r5ctl serve` on a socket in `dir`; resolves once it says it is serving */
function serve(dir: string, name: string, args: string[]): Promise<Served> {
  const socket = path.join(dir, `${name}.sock`)
  const child = spawn(process.execPath, [BIN, 'serve', '--socket', socket, ...args], {env: childEnv(), stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  running.add(child)
  const exited = new Promise<number | null>(resolve =>
    child.on('exit', code => {
      running.delete(child)
      resolve(code)
    }),
  )
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (/serving .* at (nbd\+unix:\S+)/.test(stderr))
        resolve({
          uri: /at (nbd\+unix:\S+)/.exec(stderr)![1],
          socket,
          stop: async (signal = 'SIGTERM') => {
            child.kill(signal)
            const status = await exited
            return {status, stdout, stderr}
          },
        })
    })
    void exited.then(code => reject(new Error(`serve exited ${code} before serving: ${stderr}`)))
  })
}

/** copies of the array's images in `dir` */
function copyOf(a: ImageArray, dir: string): string[] {
  fs.mkdirSync(dir, {recursive: true})
  return a.all.map(f => {
    const c = path.join(dir, path.basename(f))
    fs.copyFileSync(f, c)
    return c
  })
}

/** run a client; its stdout */
function client(tool: string, args: string[]): string {
  const r = spawnSync(tool, args, {encoding: 'utf8', timeout: 60_000})
  assert.equal(r.status, 0, `${tool} ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

describe('e2e: serve exports the replayed array over NBD to real clients', function () {
  this.timeout(180_000)
  const tmp = suiteTempDir('r5ctl-serve-')
  let a: ImageArray
  let ref: Buffer
  let nbdcopy: string

  afterEach(function () {
    for (const child of running) child.kill('SIGKILL')
  })

  before(function () {
    nbdcopy = requireTool(this, 'nbdcopy')
    a = createImageArray(tmp.file('arr'), {level: 5, raidDevices: 4, chunk: '16K', size: '3M', journalSize: '2M'})
    fs.writeFileSync(tmp.file('old.bin'), pseudoRandom(a.sizeBytes, 21))
    ok(r5ctl(['write', '--offset', '0', '--input', tmp.file('old.bin'), ...a.all]))
    // a write-back write: its data only in the journal, the members behind it
    fs.writeFileSync(tmp.file('new.bin'), pseudoRandom(200 * KiB, 22))
    ok(r5ctl(['write', '--journal-mode', 'write-back', '--offset', '40K', '--input', tmp.file('new.bin'), ...a.all]))
    expectExit(r5ctl(['examine-journal', ...a.all]), 5)
    // the reference: recover on copies, then read
    const copies = copyOf(a, tmp.file('ref'))
    ok(r5ctl(['recover', ...copies]))
    ref = ok(r5ctl(['read', ...copies])).stdout
    assert.ok(!ref.equals(fs.readFileSync(tmp.file('old.bin'))), 'the journal changes what is read')
  })

  it('nbdinfo sees the size, read-only; nbdcopy and qemu-img copy the replayed bytes, with a member left out too; SIGTERM ends it with exit 0; no image changed', async function () {
    const before = fingerprint(a.all)
    for (const [k, devs] of [a.all, a.all.filter(d => d !== a.members[1])].entries()) {
      const s = await serve(tmp.path, `ro${k}`, devs)
      const info = JSON.parse(client(requireTool(this, 'nbdinfo'), ['--json', s.uri])) as {exports: {'export-size': number; is_read_only: boolean}[]}
      assert.equal(info.exports[0]['export-size'], a.sizeBytes)
      assert.equal(info.exports[0].is_read_only, true)
      const out = tmp.file(`copy${k}.bin`)
      client(nbdcopy, [s.uri, out])
      assert.ok(fs.readFileSync(out).equals(ref), 'nbdcopy = recover + read')
      const q = tmp.file(`qemu${k}.bin`)
      client(requireTool(this, 'qemu-img'), ['convert', '-f', 'raw', '-O', 'raw', `nbd:unix:${s.socket}`, q])
      assert.ok(fs.readFileSync(q).equals(ref), 'qemu-img convert = recover + read')
      const end = await s.stop()
      assert.equal(end.status, 0, end.stderr)
      assert.match(end.stderr, /journal dirty: \d+ stripes? served from the journal/)
      assert.ok(!fs.existsSync(s.socket), 'the socket is removed')
    }
    assert.deepEqual(fingerprint(a.all), before)
  })

  it('--overlay: qemu-io writes land in the overlay, read back through nbdcopy, outlive a restart; the images never change', async function () {
    const qemuIo = requireTool(this, 'qemu-io')
    const before = fingerprint(a.all)
    const ovl = tmp.file('fsck.ovl')
    let s = await serve(tmp.path, 'rw', ['--overlay', ovl, ...a.all])
    client(qemuIo, ['-f', 'raw', '-c', 'write -P 0xab 4096 10000', `nbd:unix:${s.socket}`])
    const want = Buffer.from(ref)
    want.fill(0xab, 4096, 4096 + 10000)
    const check = (what: string) => {
      const out = tmp.file('ovl-copy.bin')
      client(nbdcopy, [s.uri, out])
      assert.ok(fs.readFileSync(out).equals(want), what)
    }
    check('the written bytes read back, the rest is the replayed view')
    assert.equal((await s.stop()).status, 0)
    s = await serve(tmp.path, 'rw2', ['--overlay', ovl, ...a.all])
    check('after a restart on the same overlay')
    assert.equal((await s.stop()).status, 0)
    assert.deepEqual(fingerprint(a.all), before)
    const ovlBefore = fs.readFileSync(ovl)
    // made over the replayed view: over the members as they are (--no-replay), its partial blocks would mix the two
    const nr = expectExit(r5ctl(['serve', '--no-replay', '--socket', tmp.file('nr.sock'), '--overlay', ovl, ...a.all], {timeout: 10_000}), 2)
    assert.match(nr.stderr, /made over the replayed view/)
    // once the array changes under it (recover, on copies), the overlay's writes no longer fit it: refused, untouched
    const copies = copyOf(a, tmp.file('changed'))
    ok(r5ctl(['recover', ...copies]))
    const r = expectExit(r5ctl(['serve', '--socket', tmp.file('changed.sock'), '--overlay', ovl, ...copies], {timeout: 10_000}), 2)
    assert.match(r.stderr, /at events \d+; the array is at events \d+ now/)
    assert.ok(fs.readFileSync(ovl).equals(ovlBefore), 'the overlay is untouched')
  })

  it('SIGTERM or SIGINT the moment it says it is serving ends it cleanly (exit 0, socket removed), every time', async function () {
    for (let k = 0; k < 6; k++) {
      const s = await serve(tmp.path, `quick${k}`, a.all)
      const end = await s.stop(k % 2 ? 'SIGINT' : 'SIGTERM')
      assert.equal(end.status, 0, `run ${k}: ${end.stderr}`)
      assert.ok(!fs.existsSync(s.socket))
    }
  })

  it('writers are kept out while it serves (recover, write: exit 3, naming serve), readers are not; once it stops they go on', async function () {
    const copies = copyOf(a, tmp.file('held'))
    const s = await serve(tmp.path, 'held', copies)
    const before = fingerprint(copies)
    const r = expectExit(r5ctl(['recover', ...copies]), 3)
    assert.match(r.stderr, /held by a reader that keeps writers out \(pid \d+: r5ctl serve /)
    expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('new.bin'), ...copies]), 3)
    assert.ok(ok(r5ctl(['read', ...copies])).stdout.equals(ref), 'a read goes on beside it')
    const second = await serve(tmp.path, 'held2', copies)
    assert.equal((await second.stop()).status, 0, 'a second serve shares the hold')
    assert.deepEqual(fingerprint(copies), before)
    assert.equal((await s.stop()).status, 0)
    ok(r5ctl(['recover', ...copies]))
  })

  it('refused before listening, exit 2, nothing created: --socket with --listen, a bad --listen, an overlay of another array', async function () {
    const before = fingerprint(a.all)
    const sock = tmp.file('never.sock')
    expectExit(r5ctl(['serve', '--socket', sock, '--listen', '10809', ...a.all]), 2)
    expectExit(r5ctl(['serve', '--listen', 'localhost:99999', ...a.all]), 2)
    // a path longer than a Unix socket can hold, a folder that is not there, an overlay that is a FIFO
    const long = path.join(tmp.path, 'x'.repeat(120) + '.sock')
    assert.match(expectExit(r5ctl(['serve', '--socket', long, ...a.all], {timeout: 10_000}), 2).stderr, /at most 107/)
    assert.ok(!fs.existsSync(long.slice(0, 107)) && fs.readdirSync(tmp.path).every(f => !f.startsWith('xxxx')), 'no socket bound at a cut path')
    assert.match(expectExit(r5ctl(['serve', '--socket', tmp.file('no', 'such', 's.sock'), ...a.all]), 2).stderr, /is not a directory/)
    // a refusal to listen leaves no overlay file behind, new or empty before
    const plain = tmp.file('plain.txt')
    fs.writeFileSync(plain, 'not a socket')
    const fresh = tmp.file('fresh.ovl')
    expectExit(r5ctl(['serve', '--socket', plain, '--overlay', fresh, ...a.all]), 2)
    assert.ok(!fs.existsSync(fresh), 'no overlay made')
    const empty = tmp.file('empty.ovl')
    fs.writeFileSync(empty, '')
    expectExit(r5ctl(['serve', '--socket', plain, '--overlay', empty, ...a.all]), 2)
    assert.equal(fs.statSync(empty).size, 0, 'the empty file is left empty')
    const fifo = tmp.file('ovl.fifo')
    spawnSync('mkfifo', [fifo])
    assert.match(expectExit(r5ctl(['serve', '--socket', sock, '--overlay', fifo, ...a.all], {timeout: 10_000}), 2).stderr, /is not a regular file/)
    const other = createImageArray(tmp.file('other'), {level: 5, raidDevices: 3, chunk: '16K', size: '3M', journalSize: '2M'})
    const ovl = tmp.file('other.ovl')
    fs.writeFileSync(ovl, '')
    // an overlay made for the other array (by a serve stopped at once), then offered to this one
    const made = await (await serve(tmp.path, 'other', ['--overlay', ovl, ...other.all])).stop()
    assert.ok(fs.statSync(ovl).size > 0, `the overlay was made: ${made.stderr}`)
    const ovlBefore = fs.readFileSync(ovl)
    const r = expectExit(r5ctl(['serve', '--socket', sock, '--overlay', ovl, ...a.all]), 2)
    assert.match(r.stderr, /overlay/)
    assert.ok(fs.readFileSync(ovl).equals(ovlBefore), 'the overlay is untouched')
    assert.ok(!fs.existsSync(sock))
    assert.deepEqual(fingerprint(a.all), before)
  })
})
