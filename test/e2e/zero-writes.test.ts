/**
 * Zero writes on failure: every writing command (create, write, recover, reclaim, repair, assemble, undo,
 * demo) is run over a table of bad arguments and damaged or wrong device sets. Each case must fail
 * with its documented exit code (docs/exit-codes.md), one `r5ctl:` line on stderr (plus at most a
 * hint) and no stack trace, and must leave every file byte-identical and create no file.
 *
 * The images are small and shared: a case that changes nothing leaves the fixture as it was, so
 * one fingerprint of the whole folder per case is all it costs; a case that does write is
 * reported and the fixture is restored from a pristine copy for the cases after it.
 */
import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {decodeSuperblock, encodeSuperblock, type Superblock} from '../../src/engine/format/superblock.js'
import {
  BIN,
  r5ctl,
  ok,
  expectExit,
  expectErrorLine,
  filesUnder,
  fingerprint,
  pseudoRandom,
  suiteTempDir,
  describeRun,
  type RunResult,
  createImages,
} from '../helpers/cli.js'

const SB_OFFSET = 4096
const DATA_OFFSET = 2048 * 512
const DOCUMENTED = new Set([1, 2, 3, 4, 5, 75])

interface Case {
  /** what the user does, for the report */
  title: string
  args: string[]
  exit: number
}

function readSb(file: string): Superblock {
  const b = Buffer.alloc(4096)
  const fd = fs.openSync(file, 'r')
  fs.readSync(fd, b, 0, 4096, SB_OFFSET)
  fs.closeSync(fd)
  return decodeSuperblock(b).sb
}

function patch(file: string, offset: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, bytes, 0, bytes.length, offset)
  fs.closeSync(fd)
}

/** rewrite superblock fields, with a valid checksum (only the values are wrong) */
function editSb(file: string, change: Partial<Superblock>): void {
  patch(file, SB_OFFSET, encodeSuperblock({...readSb(file), ...change}))
}

/** Make a file unwritable even for root: the immutable attribute (chmod 0444 where we are not root). */
function makeReadOnly(file: string): boolean {
  if (process.getuid?.() !== 0) fs.chmodSync(file, 0o444)
  else if (spawnSync('chattr', ['+i', file]).status !== 0) return false
  try {
    fs.closeSync(fs.openSync(file, 'r+'))
    return false
  } catch {
    return true
  }
}

function unlockAll(dir: string): void {
  for (const f of filesUnder(dir)) spawnSync('chattr', ['-i', f])
}

describe('e2e: a failing writing command writes nothing (zero-writes table)', function () {
  this.timeout(300000)
  /** the fixture folder the cases run in, and its pristine copy */
  let w = ''
  // (registered before suiteTempDir's: the immutable image must be unlocked before the folder goes)
  after(() => {
    if (w) unlockAll(w)
  })
  const tmp = suiteTempDir('r5ctl-zero-')
  const cases: Case[] = []
  let pristine = ''
  let roOk = false

  const set = (dir: string) => ['j.img', 'm0.img', 'm1.img', 'm2.img'].map(f => path.join(w, dir, f))
  const create = (dir: string) => ok(createImages(set(dir), {size: '2M', journalSize: '1536K', name: `r5ctl:${dir}`}))

  before(function () {
    w = tmp.file('w')
    pristine = tmp.file('pristine')
    fs.mkdirSync(w)
    for (const d of ['a', 'b', 'd', 'u']) {
      fs.mkdirSync(path.join(w, d))
      create(d)
    }
    const input = path.join(w, 'in.bin')
    fs.writeFileSync(input, pseudoRandom(128 * 1024, 11))
    const A = set('a')
    const v = (name: string) => path.join(w, 'v', name)
    fs.mkdirSync(path.join(w, 'v'))
    // events of a fresh array; the writes below move the set on
    fs.copyFileSync(A[2], v('m1-stale.img'))
    fs.copyFileSync(A[0], v('j-stale.img'))
    fs.mkdirSync(path.join(w, 'new'))
    for (const dir of ['a', 'b']) for (const off of ['0', '128K']) ok(r5ctl(['write', '--offset', off, '--input', input, ...set(dir)]))
    // d: a dirty journal (power cut in the middle of a write)
    expectExit(r5ctl(['write', '--offset', '0', '--input', input, '--crash-after', '7', ...set('d')]), 75)
    // u: an undo file of a recover
    expectExit(r5ctl(['write', '--offset', '0', '--input', input, '--crash-after', '7', ...set('u')]), 75)
    ok(r5ctl(['recover', '--undo', path.join(w, 'u', 'recover.undo'), ...set('u')]))
    fs.writeFileSync(path.join(w, 'u', 'garbage.undo'), pseudoRandom(8192, 5))
    const [aj, , am1] = A
    const variant = (src: string, name: string, damage: (f: string) => void) => {
      fs.copyFileSync(src, v(name))
      damage(v(name))
    }
    variant(am1, 'm1-csum.img', f => patch(f, SB_OFFSET + 170, Buffer.from([readSbByte(f, 170) ^ 1])))
    variant(am1, 'm1-magic.img', f => patch(f, SB_OFFSET, Buffer.alloc(4)))
    variant(am1, 'm1-trunc.img', f => fs.truncateSync(f, 1536 * 1024))
    variant(aj, 'j-csum.img', f => patch(f, SB_OFFSET + 0xd0, Buffer.from([readSbByte(f, 0xd0) ^ 1])))
    variant(aj, 'j-magic.img', f => patch(f, SB_OFFSET, Buffer.alloc(4)))
    variant(aj, 'j-tail-out.img', f => editSb(f, {journalTail: 1n << 40n}))
    variant(aj, 'j-tail-odd.img', f => editSb(f, {journalTail: readSb(f).journalTail + 3n}))
    variant(aj, 'j-no-meta.img', f => patch(f, DATA_OFFSET + Number(readSb(f).journalTail) * 512, Buffer.alloc(4096)))
    variant(am1, 'm1-copy.img', () => {})
    variant(am1, 'm1-chunk.img', f => editSb(f, {chunkSize: 256}))
    variant(am1, 'm1-level.img', f => editSb(f, {level: 1}))
    variant(am1, 'm1-spare.img', f => editSb(f, {devNumber: 9})) // dev_roles[9] does not exist: a spare
    for (const [dir, events] of [
      ['max', 0xffffffffffffffffn],
      ['max1', 0xfffffffffffffffen],
    ] as const) {
      fs.mkdirSync(path.join(w, dir))
      A.forEach((f, i) => {
        fs.copyFileSync(f, set(dir)[i])
        editSb(set(dir)[i], {events})
      })
    }
    // superblocks with what r5ctl does not handle, on every device of the set
    const features: [string, (sb: Superblock) => Partial<Superblock>][] = [
      ['nojf', () => ({featureMap: 0})],
      ['bitmap', sb => ({featureMap: sb.featureMap | 0x1, bitmapOffset: 8})],
      ['reshape', sb => ({featureMap: sb.featureMap | 0x4, reshapePosition: 64n, deltaDisks: 1})],
      ['ppl', sb => ({featureMap: sb.featureMap | 0x400})],
      ['clustered', sb => ({featureMap: sb.featureMap | 0x100})],
    ]
    for (const [dir, change] of features) {
      fs.mkdirSync(path.join(w, dir))
      A.forEach((f, i) => {
        fs.copyFileSync(f, set(dir)[i])
        editSb(set(dir)[i], change(readSb(f)))
      })
    }
    // a member the kernel was still rebuilding: in sync only up to its recovery_offset
    variant(am1, 'm1-recovering.img', f => editSb(f, {featureMap: readSb(f).featureMap | 0x2, journalTail: 64n}))
    fs.linkSync(am1, v('m1-link.img'))
    fs.mkdirSync(path.join(w, 'dir.img'))
    fs.writeFileSync(path.join(w, 'plain.txt'), 'not a device\n')
    fs.cpSync(w, pristine, {recursive: true})
    // after the pristine copy: the attribute would not copy, and the copy must stay removable
    variant(A[1], 'm0-readonly.img', () => {})
    roOk = makeReadOnly(v('m0-readonly.img'))
    fs.copyFileSync(v('m0-readonly.img'), path.join(pristine, 'v', 'm0-readonly.img'))
    buildCases()
  })

  function readSbByte(file: string, off: number): number {
    const b = Buffer.alloc(1)
    const fd = fs.openSync(file, 'r')
    fs.readSync(fd, b, 0, 1, SB_OFFSET + off)
    fs.closeSync(fd)
    return b[0]
  }

  function buildCases(): void {
    const A = set('a')
    const [aj, am0, am1, am2] = A
    const B = set('b')
    const D = set('d')
    const v = (name: string) => path.join(w, 'v', name)
    const input = path.join(w, 'in.bin')
    const swap = (devs: string[], from: string, to: string) => devs.map(d => (d === from ? to : d))
    const add = (title: string, args: string[], exit: number) => cases.push({title, args, exit})

    // ---- damaged or wrong device sets, for every command that opens an array to write
    const writers: [string, string[]][] = [
      ['write', ['write', '--offset', '0', '--input', input]],
      ['recover', ['recover']],
      ['reclaim', ['reclaim']],
      ['assemble', ['assemble']],
      ['repair', ['repair']],
    ]
    const sets: [string, string[], Record<string, number | undefined>][] = [
      ['a member with a bad superblock checksum', swap(A, am1, v('m1-csum.img')), {all: 4}],
      ['a member without md magic', swap(A, am1, v('m1-magic.img')), {all: 4}],
      ['a truncated member', swap(A, am1, v('m1-trunc.img')), {all: 4}],
      ['a journal with a bad superblock checksum', swap(A, aj, v('j-csum.img')), {all: 4}],
      ['a journal without md magic', swap(A, aj, v('j-magic.img')), {all: 4}],
      ['journal_tail beyond the journal', swap(A, aj, v('j-tail-out.img')), {all: 4}],
      ['journal_tail not on a 4 KiB block', swap(A, aj, v('j-tail-odd.img')), {all: 4}],
      ['no valid meta block at journal_tail', swap(A, aj, v('j-no-meta.img')), {all: 4}],
      ['a member of another array', swap(A, am1, B[2]), {all: 3}],
      ['the journal of another array', swap(A, aj, B[0]), {all: 3}],
      ['a copied member (two devices claim one slot)', [...A, v('m1-copy.img')], {all: 3}],
      ['a stale member (events behind the set)', swap(A, am1, v('m1-stale.img')), {all: 3}],
      ['a member whose chunk size disagrees', swap(A, am1, v('m1-chunk.img')), {all: 4}],
      ['a member with raid level 1', swap(A, am1, v('m1-level.img')), {all: 4}],
      ['a member that is a spare', swap(A, am1, v('m1-spare.img')), {all: 3}],
      // one member missing: recover, reclaim and assemble replay onto the others (as the kernel does degraded)
      ['a member missing', [aj, am0, am2], {write: 3, repair: 3}],
      ['two members missing (RAID5)', [aj, am0], {all: 3}],
      // repair runs without the journal only with --force (the first step after a journal died, docs/runbooks/journal-died.md)
      ['the journal missing', [am0, am1, am2], {all: 3}],
      ['events counter at 2^64-1', set('max'), {all: 4}],
      ['events counter at 2^64-2 (a write needs more than one update)', set('max1'), {write: 4}],
      // an array without a journal: repair works on it, the journal's writers refuse it
      ['superblocks without the journal feature', set('nojf'), {write: 3, recover: 3, reclaim: 3, assemble: 3}],
      ['a write-intent bitmap', set('bitmap'), {all: 3}],
      ['a reshape in progress', set('reshape'), {all: 3}],
      ['a partial parity log (PPL)', set('ppl'), {all: 3}],
      ['a clustered array', set('clustered'), {all: 3}],
      ['a member still being rebuilt (recovery_offset)', swap(A, am1, v('m1-recovering.img')), {all: 3}],
      ['a device that does not exist', [...A.slice(0, 3), path.join(w, 'nosuch.img')], {all: 1}],
      ['a folder given as a device', swap(A, am2, path.join(w, 'dir.img')), {all: 1}],
      ['a text file given as a device', swap(A, am2, path.join(w, 'plain.txt')), {all: 4}],
      ['a device given twice', [...A, am1], {all: 2}],
      ['no devices at all', [], {all: 2}],
      ['a dirty journal (write refuses to append)', D, {write: 5, repair: 5}],
      ['a dirty journal with a member missing', [D[0], D[1], D[3]], {write: 3, repair: 3}],
      ['a dirty journal with two members missing (RAID5)', [D[0], D[1]], {all: 3}],
      ['a stale journal', swap(A, aj, v('j-stale.img')), {all: 3}],
    ]
    if (roOk) sets.push(['a read-only member image', swap(A, am0, v('m0-readonly.img')), {all: 1}])
    for (const [what, devs, codes] of sets) {
      for (const [cmd, args] of writers) {
        const exit = codes[cmd] ?? codes.all
        if (exit !== undefined) add(`${cmd}: ${what}`, [...args, ...devs], exit)
      }
    }

    // ---- create
    const fresh = (n: number) => Array.from({length: n}, (_, i) => path.join(w, 'new', `n${i}.img`))
    const mk = (extra: string[], devs = [path.join(w, 'new', 'j.img'), ...fresh(3)]) => [
      'create',
      '--level',
      '5',
      '--raid-devices',
      '3',
      '--size',
      '2M',
      '--journal-size',
      '1536K',
      ...extra,
      '--write-journal',
      ...devs,
    ]
    const createBad: [string, string[], number][] = [
      ['--level 7', ['--level', '7'], 2],
      ['--level 5.5', ['--level', '5.5'], 2],
      ['--level raid1', ['--level', 'raid1'], 2],
      ['--level 0x5', ['--level', '0x5'], 2],
      ['--raid-devices 3.0', ['--raid-devices', '3.0'], 2],
      ['--raid-devices 1e1', ['--raid-devices', '1e1'], 2],
      ['--raid-devices 300', ['--raid-devices', '300'], 2],
      ['--raid-devices 4 with three members', ['--raid-devices', '4'], 2],
      ['--chunk 3T', ['--chunk', '3T'], 2],
      ['--chunk 4T', ['--chunk', '4T'], 2],
      ['--chunk 8T', ['--chunk', '8T'], 2],
      ['--chunk 6K', ['--chunk', '6K'], 2],
      ['--chunk 2K', ['--chunk', '2K'], 2],
      ['--chunk 64.5K', ['--chunk', '64.5K'], 2],
      ['--chunk 0', ['--chunk', '0'], 2],
      ['--chunk 64X', ['--chunk', '64X'], 2],
      ['--chunk 4294967296K', ['--chunk', '4294967296K'], 2],
      ['--size 1.5M', ['--size', '1.5M'], 2],
      ['--size 1e6', ['--size', '1e6'], 2],
      ['--size 0x100000', ['--size', '0x100000'], 2],
      ['--size 99999999999999999999', ['--size', '99999999999999999999'], 2],
      ['--size 16384T', ['--size', '16384T'], 2],
      ['--size 1M (too small)', ['--size', '1M'], 2],
      ['--journal-size 1M (too small)', ['--journal-size', '1M'], 2],
      ['--journal-size 1.5M', ['--journal-size', '1.5M'], 2],
      ['--name of 33 bytes', ['--name', 'n'.repeat(33)], 2],
      ['--name of 17 two-byte characters', ['--name', 'ü'.repeat(17)], 2],
      ['--uuid not a uuid', ['--uuid', 'nope'], 2],
      ['--layout bogus', ['--layout', 'bogus'], 2],
      ['--journal-mode bogus', ['--journal-mode', 'bogus'], 2],
      ['an unknown flag', ['--bogus'], 2],
    ]
    for (const [what, extra, exit] of createBad) add(`create ${what}`, mk(extra), exit)
    add(
      'create: a member in a folder that does not exist',
      mk([], [path.join(w, 'new', 'j.img'), fresh(1)[0], fresh(2)[1], path.join(w, 'nofolder', 'x.img')]),
      2,
    )
    add('create: a file that does not exist without --size', ['create', '--level', '5', '--raid-devices', '3', '--write-journal', ...fresh(4)], 2)
    add('create: an existing array without --force', ['create', '--level', '5', '--raid-devices', '3', '--write-journal', ...A], 3)
    add(
      'create --force: a member too small (truncated image)',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--chunk', '1M', '--write-journal', aj, am0, v('m1-trunc.img'), am2],
      2,
    )
    add(
      'create --force: the same member twice',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--write-journal', aj, am0, am1, am1],
      2,
    )
    add(
      'create --force: a member named twice by two paths',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--write-journal', aj, am0, am1, path.join(w, 'a', '..', 'a', 'm1.img')],
      2,
    )
    add(
      'create --force: a member named twice through a hard link',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--write-journal', aj, am0, am1, path.join(w, 'v', 'm1-link.img')],
      2,
    )
    add(
      'create --force: a folder as a member',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--write-journal', aj, am0, am1, path.join(w, 'dir.img')],
      1,
    )
    add(
      'create --force: --name of 33 bytes over an existing array',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--name', 'x'.repeat(33), '--write-journal', ...A],
      2,
    )
    add(
      'create --force: --chunk 3T over an existing array',
      ['create', '--force', '--level', '5', '--raid-devices', '3', '--chunk', '3T', '--write-journal', ...A],
      2,
    )
    if (roOk) {
      add(
        'create --force: a read-only existing member among new files',
        [
          'create',
          '--force',
          '--level',
          '5',
          '--raid-devices',
          '3',
          '--size',
          '2M',
          '--journal-size',
          '1536K',
          '--write-journal',
          path.join(w, 'new', 'j.img'),
          fresh(1)[0],
          v('m0-readonly.img'),
          fresh(3)[2],
        ],
        1,
      )
    }

    // ---- write: arguments
    const wr = (extra: string[], devs = A) => ['write', ...extra, ...devs]
    const writeBad: [string, string[], number][] = [
      ['--offset 1', ['--offset', '1', '--input', input], 2],
      ['--offset -4096', ['--offset=-4096', '--input', input], 2],
      ['--offset 4096.0', ['--offset', '4096.0', '--input', input], 2],
      ['--offset 4K.5', ['--offset', '4K.5', '--input', input], 2],
      ['--offset 1e3', ['--offset', '1e3', '--input', input], 2],
      ['--offset 0x1000', ['--offset', '0x1000', '--input', input], 2],
      ['--offset empty', ['--offset=', '--input', input], 2],
      ['--offset 2^53+1', ['--offset', '9007199254740993', '--input', input], 2],
      ['--offset 99999999999999999999', ['--offset', '99999999999999999999', '--input', input], 2],
      ['--offset beyond the array', ['--offset', '64M', '--input', input], 2],
      ['--offset 16E', ['--offset', '16E', '--input', input], 2],
      ['--length beyond the array', ['--offset', '0', '--length', '64M', '--input', input], 2],
      ['--length -1', ['--offset', '0', '--length=-1', '--input', input], 2],
      ['--length 1.5K', ['--offset', '0', '--length', '1.5K', '--input', input], 2],
      ['--length larger than the input', ['--offset', '0', '--length', '256K', '--input', input], 2],
      ['--input that does not exist', ['--offset', '0', '--input', path.join(w, 'nosuch.bin')], 2],
      ['stdin without --length', ['--offset', '0'], 2],
      ['--crash-after -1', ['--offset', '0', '--input', input, '--crash-after=-1'], 2],
      ['--crash-after 1.5', ['--offset', '0', '--input', input, '--crash-after', '1.5'], 2],
      ['--crash-after 2^53', ['--offset', '0', '--input', input, '--crash-after', '9007199254740992'], 2],
      ['--crash-after abc', ['--offset', '0', '--input', input, '--crash-after', 'abc'], 2],
      ['--crash-seed without --crash-after', ['--offset', '0', '--input', input, '--crash-seed', '1'], 2],
      ['--crash-seed 2^32', ['--offset', '0', '--input', input, '--crash-after', '3', '--crash-seed', '4294967296'], 2],
      ['--journal-mode bogus', ['--offset', '0', '--input', input, '--journal-mode', 'bogus'], 2],
      ['no --offset', ['--input', input], 2],
      ['an unknown flag', ['--offset', '0', '--input', input, '--bogus'], 2],
    ]
    for (const [what, extra, exit] of writeBad) add(`write ${what}`, wr(extra), exit)

    // ---- recover / reclaim / assemble: arguments
    for (const seq of ['-1', '1.5', 'abc', '18446744073709551616', '0x10'])
      add(`recover --until-seq ${seq}`, ['recover', `--until-seq=${seq}`, ...D], 2)
    add('recover --bogus', ['recover', '--bogus', ...D], 2)
    add('reclaim --bogus', ['reclaim', '--bogus', ...A], 2)
    add('assemble --bogus', ['assemble', '--bogus', ...D], 2)

    // ---- undo
    const U = set('u')
    const undoFile = path.join(w, 'u', 'recover.undo')
    add('undo: a damaged undo file', ['undo', path.join(w, 'u', 'garbage.undo'), ...U], 4)
    add('undo: an undo file that does not exist', ['undo', path.join(w, 'u', 'nosuch.undo'), ...U], 2)
    add('undo: the devices of another array', ['undo', undoFile, ...A], 3)
    add('undo: no devices', ['undo', undoFile], 2)
    add('undo: an unknown flag', ['undo', '--bogus', undoFile, ...U], 2)

    // ---- demo
    add('demo --dir on a plain file', ['demo', '--dir', path.join(w, 'plain.txt')], 1)
    add('demo --bogus', ['demo', '--bogus'], 2)
  }

  /** r5ctl in a child process without waiting for it (the table runs a few cases at once) */
  function r5ctlAsync(args: string[], lockDir: string): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', R5CTL_LOCK_DIR: lockDir}
      delete env.FORCE_COLOR
      delete env.R5CTL_DEBUG
      const child = spawn(process.execPath, [BIN, ...args], {cwd: w, env, stdio: ['ignore', 'pipe', 'pipe']})
      const out: Buffer[] = []
      const err: Buffer[] = []
      child.stdout.on('data', (b: Buffer) => out.push(b))
      child.stderr.on('data', (b: Buffer) => err.push(b))
      child.on('error', reject)
      child.on('close', (status, signal) =>
        resolve({status, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), cmd: ['r5ctl', ...args].join(' ')}),
      )
    })
  }

  it('every case fails with its documented exit code and one error line, and changes no byte of any file', async function () {
    this.timeout(900000)
    assert.ok(cases.length >= 100, `only ${cases.length} cases`)
    const failures: string[] = []
    const all = () => filesUnder(w)
    // every file: size and times (a write changes mtime); the files the cases name: also sha256
    const stamp = (files: string[], named: Set<string>) =>
      Object.fromEntries(
        files.map(f => {
          const st = fs.statSync(f, {bigint: true})
          return [f, `${st.size}:${st.mtimeNs}:${st.ctimeNs}${named.has(f) ? `:${fingerprint([f])[f]}` : ''}`]
        }),
      )
    const namedBy = (cs: Case[]) =>
      new Set(cs.flatMap(c => c.args.map(a => path.resolve(w, a))).filter(f => fs.existsSync(f) && fs.statSync(f).isFile()))
    // a few cases at once, each with its own lock folder; a case refused because a neighbour held a
    // device's lock runs again alone, and a batch that changed a file is run again one case at a time
    const locks = [0, 1, 2, 3].map(i => tmp.file(`locks${i}`))
    const runBatch = async (batch: Case[]): Promise<{changed: boolean; lines: string[]; busy: Case[]}> => {
      const named = namedBy(batch)
      const files = all()
      const before = stamp(files, named)
      const results = await Promise.all(batch.map((c, i) => r5ctlAsync(c.args, locks[i])))
      const lines: string[] = []
      // a neighbour held a device's lock: that case runs again on its own
      const busy =
        batch.length > 1 ? batch.filter((c, i) => results[i].status === 3 && c.exit !== 3 && /in use by another writer/.test(results[i].stderr)) : []
      const problemsOf: string[][] = results.map(() => [])
      results.forEach((r, i) => {
        const c = batch[i]
        const problems = problemsOf[i]
        if (r.status !== c.exit) problems.push(`exit ${r.status}, expected ${c.exit}`)
        if (!DOCUMENTED.has(r.status ?? -1)) problems.push(`exit ${r.status} is not a documented code`)
        try {
          expectErrorLine(r)
        } catch (error) {
          problems.push((error as Error).message.split('\n')[0])
        }
      })
      const now = all()
      const created = now.filter(f => !files.includes(f))
      const after = stamp(
        files.filter(f => now.includes(f)),
        named,
      )
      const changed = files.filter(f => before[f] !== after[f])
      if (created.length || changed.length) {
        const what = [...created.map(f => `created ${path.relative(w, f)}`), ...changed.map(f => `changed ${path.relative(w, f)}`)].join(', ')
        // restore the fixture
        for (const f of created) fs.rmSync(f, {recursive: true, force: true})
        for (const f of changed) fs.copyFileSync(path.join(pristine, path.relative(w, f)), f)
        if (batch.length === 1) problemsOf[0].push(what)
        else return {changed: true, lines, busy: []}
      }
      results.forEach((r, i) => {
        if (problemsOf[i].length && !busy.includes(batch[i]))
          lines.push(`${batch[i].title}: ${problemsOf[i].join('; ')}\n    ${describeRun(r).split('\n').slice(0, 2).join('\n    ')}`)
      })
      return {changed: false, lines, busy}
    }
    const t0 = Date.now()
    for (let i = 0; i < cases.length; i += locks.length) {
      const batch = cases.slice(i, i + locks.length)
      const r = await runBatch(batch)
      if (!r.changed) {
        failures.push(...r.lines)
        for (const c of r.busy) failures.push(...(await runBatch([c])).lines)
        continue
      }
      for (const c of batch) failures.push(...(await runBatch([c])).lines)
    }
    console.log(
      `    ${cases.length} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s${roOk ? '' : ' (no read-only image: chattr +i unavailable)'}`,
    )
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed:\n${failures.join('\n')}`)
  })
})
