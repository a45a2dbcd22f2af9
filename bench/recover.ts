/**
 * r5ctl recover benchmark: replay of a full dirty journal against raw I/O of the same bytes, plus a
 * 1 GiB write against raw I/O, both page-cache and durable, and recover's peak RSS at two journal sizes.
 *
 *   npm run bench:recover                full run (1 GiB of pending log, 1 GiB write, RSS at 256 MiB and 2 GiB journals)
 *   node dist/bench/recover.js --quick   smoke test (256 MiB of log, 256 MiB write, RSS at 64 and 256 MiB journals, 1 run)
 *   node dist/bench/recover.js --profile also profile one recover run (node --cpu-prof) and print the top self times;
 *                                        done anyway when the recover target fails
 *   --runs N      timed runs per row (default 3, median)       --rss-large MiB   second RSS journal size (default 2048)
 *   --keep        keep the image files (the folder is printed)  --json            also print every measurement as JSON
 *   --setup-only DIR   make the dirty set (pristine/, plus work/ as a copy) in DIR, print its devices as JSON and
 *                      stop: for profiling recover by hand (copy pristine/ over work/ before each run)
 *
 * How a full dirty journal is made quickly (setup, never timed): RAID5, 4 members, 512K chunk, a 1152 MiB
 * journal; 768 MiB of random data is written in-process with the engine's writeData and its crash injector
 * ({crashAfter: N}), with fdatasync off (FileDevice.syncOnFlush = false, what --no-flush does). N is found by
 * a first pass of the identical write over devices that count and discard every write request (the image
 * files stay untouched, so the second pass starts from the same state and issues the same requests):
 * N = the index of the closing empty meta block, the last 4 KiB write into the journal ring. Only superblock
 * writes may follow it, and the bench checks that. So the crash happens after every batch's journal and
 * member writes and before the log is closed: the journal holds every stripe of the write pending replay,
 * the members already hold the same bytes ("matching members"). `examine-journal --json` must then report
 * state dirty, ~1 GiB used and one pending data+parity stripe per 4 KiB row of the write.
 *
 * Each timed recover starts from that same dirty state: the pristine set is copied over a work set with
 * dd conv=notrunc (whole files), and every file involved is fsynced (`sync FILE…`) before any timed step,
 * so neither dd nor r5ctl pays for another step's dirty pages. Copies and syncs are not timed.
 *
 * Raw I/O baselines, in the same run (dd bs=1M, page cache):
 *   recover  dd of the journal's used bytes (examine-journal usedBytes, from the tail) to /dev/null, then
 *            dd if=/dev/zero conv=notrunc of exactly the member bytes recover writes (its --json `writes`,
 *            per member) into pre-made copies of the members
 *   write    dd if=/dev/zero conv=notrunc of the journal bytes the r5ctl write reports, then of the member
 *            bytes (one page per stripe per member: data + parity) into pre-made files
 * Durable variants: r5ctl without --no-flush (recover: members fdatasynced at the end, then the closing
 * block and superblocks flushed; write: one journal fdatasync per batch of ≤ 8 MiB, members at the end and
 * at checkpoints) against the same dd commands with conv=notrunc,fsync.
 *
 * r5ctl runs as a child process (node bin/run.js) under GNU time (peak RSS, %M), like a user runs it, so
 * its time includes a fixed cost per invocation (node start-up, modules, opening the devices). The
 * targets are judged on what r5ctl adds per byte: its time minus the same command's fixed cost measured
 * in the same run (recover of the same set once it is clean; write of one page). The ratio of the whole
 * invocation is printed beside. Image files are preallocated (bench/common.ts) so that neither side pays
 * ext4 block allocation.
 */
import {createHash, randomFillSync} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {writeData} from '../src/engine/index.js'
import {DeviceWrapper, FileDevice} from '../src/engine/device.js'
import {SimulatedCrash} from '../src/engine/errors.js'
import {GNU_TIME, MiB, fmtTable, machine, median, preallocate, sha256File, timed, verdict, type Timed} from './common.js'

const PAGE = 4096
const CHUNK = 512 * 1024
const MEMBERS = 4
const DATA_DISKS = MEMBERS - 1
const ROW_BYTES = DATA_DISKS * CHUNK
const TARGET_RECOVER = 1.4
const TARGET_WRITE = 2.0
const TARGET_RSS_MIB = 128
/** "flat": the larger journal's peak RSS at most this much above the smaller one's */
const FLAT_TOLERANCE = 0.1

// ---------------------------------------------------------------------------------------------
// arguments

const argv = process.argv.slice(2)
const flagSet = new Set<string>()
const opt: Record<string, string> = {}
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (['--quick', '--keep', '--json', '--profile'].includes(a)) flagSet.add(a)
  else if (['--runs', '--rss-large', '--setup-only'].includes(a) && i + 1 < argv.length) opt[a] = argv[++i]
  else {
    process.stderr.write(
      `bench/recover: unknown argument ${a} (use --quick, --keep, --json, --profile, --runs N, --rss-large MiB, --setup-only DIR)\n`,
    )
    process.exit(2)
  }
}
const quick = flagSet.has('--quick')
const keep = flagSet.has('--keep')
const wantJson = flagSet.has('--json')
const wantProfile = flagSet.has('--profile')
const RUNS = Number(opt['--runs'] ?? (quick ? 1 : 3))
/** recover array: journal image size, and the write that fills it (a whole number of chunk rows) */
const REC_JOURNAL = (quick ? 288 : 1152) * MiB
const REC_ROWS = quick ? 128 : 512 // 192 / 768 MiB of data = 256 / 1024 MiB of data + parity pages in the log
const WRITE_BYTES = (quick ? 256 : 1024) * MiB
const WRITE_ROWS = Math.ceil(WRITE_BYTES / ROW_BYTES)
let rssJournals = quick ? [64 * MiB, 256 * MiB] : [256 * MiB, Number(opt['--rss-large'] ?? 2048) * MiB]
/** share of an RSS array's journal ring filled by its dirty log */
const RSS_FILL = 0.92

const here = path.dirname(fileURLToPath(import.meta.url))
const RUN_JS = path.resolve(here, '../../bin/run.js')
const started = process.hrtime.bigint()
const say = (s: string) => process.stderr.write(s + '\n')
const notes: string[] = []

// ---------------------------------------------------------------------------------------------
// child processes

const run = (cmd: string, args: string[], o: {ok?: number[]; rss?: boolean} = {}): Timed => timed(cmd, args, o)

/** r5ctl as a user runs it, timed, with peak RSS */
const r5 = (args: string[], o: {ok?: number[]; nodeArgs?: string[]} = {}) =>
  run(process.execPath, [...(o.nodeArgs ?? []), RUN_JS, ...args], {ok: o.ok, rss: true})

/** fsync the given files (untimed), so the next timed step starts with nothing dirty */
const syncFiles = (files: string[]) => {
  run('sync', files)
}

function dd(args: string[]): number {
  return run('dd', [...args, 'bs=1M', 'status=none']).seconds
}

// ---------------------------------------------------------------------------------------------
// arrays

interface ArraySet {
  dir: string
  journal: string
  members: string[]
  devs: string[]
  memberBase: number
  ringBase: number
}

function makeArray(dir: string, journalBytes: number, rows: number): ArraySet {
  fs.mkdirSync(dir, {recursive: true})
  const journal = path.join(dir, 'journal.img')
  const members = Array.from({length: MEMBERS}, (_, i) => path.join(dir, `m${i}.img`))
  const memberSize = MiB + rows * CHUNK // create's data offset (2048 sectors) + the rows
  // every block written once, as on a disk (see preallocate in common.ts)
  preallocate(journal, journalBytes)
  for (const m of members) preallocate(m, memberSize)
  const created = JSON.parse(
    r5([
      'create',
      '--json',
      '--level',
      '5',
      '--raid-devices',
      String(MEMBERS),
      '--chunk',
      '512K',
      '--size',
      String(memberSize),
      '--journal-size',
      String(journalBytes),
      '--name',
      'r5ctl:benchrec',
      '--write-journal',
      journal,
      ...members,
    ]).stdout,
  )
  if (created.arraySizeBytes < rows * ROW_BYTES) throw new Error(`array is ${created.arraySizeBytes} bytes, need ${rows * ROW_BYTES}`)
  const ex = JSON.parse(r5(['examine', '--json', journal, members[0]]).stdout)
  return {
    dir,
    journal,
    members,
    devs: [journal, ...members],
    ringBase: ex.devices[0].dataOffsetSector * 512,
    memberBase: ex.devices[1].dataOffsetSector * 512,
  }
}

/** Counts and discards write requests; reads go to the real file (which therefore never changes). */
class DiscardDevice extends DeviceWrapper {
  constructor(
    inner: FileDevice,
    private index: number,
    private log: {dev: number; off: number; len: number}[],
  ) {
    super(inner)
  }
  override writev(bufs: Uint8Array[], offset: number) {
    let len = 0
    for (const b of bufs) len += b.length
    this.log.push({dev: this.index, off: offset, len})
  }
  override flush() {}
}

interface Dirty {
  crashAfter: number
  totalWrites: number
  dataBytes: number
  sha256: string
  usedBytes: number
  tailSector: number
  stripesPending: number
  metaBlocks: number
  setupSeconds: number
}

/**
 * Fill the journal: write `rows` chunk rows of random data at offset 0 and cut the power just before
 * the log would be closed. Returns what examine-journal then reports.
 */
function makeDirty(a: ArraySet, rows: number): Dirty {
  const t0 = process.hrtime.bigint()
  const length = rows * ROW_BYTES
  FileDevice.syncOnFlush = false // setup only: page-cache speed, as --no-flush
  // pass 1: the identical write over counting devices, nothing reaches the files
  const log: {dev: number; off: number; len: number}[] = []
  writeData(
    a.devs.map((p, i) => new DiscardDevice(FileDevice.open(p, {writable: false}), i, log)),
    0,
    length,
    buf => buf.length,
  )
  let closing = -1
  for (let i = log.length - 1; i >= 0; i--)
    if (log[i].dev === 0 && log[i].off >= a.ringBase && log[i].len === PAGE) {
      closing = i
      break
    }
  if (closing < 0) throw new Error('counting pass: no closing meta block (a 4 KiB write into the journal ring) found')
  const after = log.slice(closing + 1)
  if (after.some(w => w.off >= Math.min(a.ringBase, a.memberBase)))
    throw new Error(
      `counting pass: data writes follow the closing meta block (${JSON.stringify(after.slice(0, 4))}): the engine's close protocol changed`,
    )
  // pass 2: for real, with the crash injector refusing write number closing+1 (the closing block)
  const h = createHash('sha256')
  let crashed: SimulatedCrash | null = null
  try {
    writeData(
      a.devs,
      0,
      length,
      buf => {
        randomFillSync(buf)
        h.update(buf)
        return buf.length
      },
      {crashAfter: closing},
    )
  } catch (error) {
    if (!(error instanceof SimulatedCrash)) throw error
    crashed = error
  }
  FileDevice.syncOnFlush = true
  if (!crashed) throw new Error(`write with crashAfter ${closing} did not crash`)
  if (crashed.writesDone !== closing) throw new Error(`crash after ${crashed.writesDone} writes, expected ${closing}`)
  const ej = r5(['examine-journal', '--json', ...a.devs], {ok: [5]})
  const j = JSON.parse(ej.stdout)
  const stripes = rows * (CHUNK / PAGE)
  const minUsed = stripes * MEMBERS * PAGE
  if (j.state !== 'dirty' || j.stripesPending.dataParity !== stripes || j.usedBytes < minUsed)
    throw new Error(
      `the journal is not full of pending stripes: state ${j.state}, ${j.stripesPending.dataParity} stripes pending (want ${stripes}), ` +
        `${j.usedBytes} bytes used (want ≥ ${minUsed})`,
    )
  return {
    crashAfter: closing,
    totalWrites: log.length,
    dataBytes: length,
    sha256: h.digest('hex'),
    usedBytes: j.usedBytes,
    tailSector: j.journalTailSector,
    stripesPending: j.stripesPending.dataParity,
    metaBlocks: j.metaBlocks,
    setupSeconds: Number(process.hrtime.bigint() - t0) / 1e9,
  }
}

/** whole-file copy over an existing file (or a new one), untimed */
function copyOver(from: string, to: string): void {
  run('dd', [`if=${from}`, `of=${to}`, 'bs=4M', 'conv=notrunc', 'status=none'])
}

// ---------------------------------------------------------------------------------------------
// CPU profile: self time per function

interface ProfileRow {
  fn: string
  where: string
  ms: number
  pct: number
}

/** coarse areas, to say where the time goes */
function areaOf(fn: string, url: string): string {
  if (fn === '(garbage collector)') return 'garbage collector'
  if (url.includes('/checksum.js')) return 'CRC32C (native call + wrapper)'
  if (!url && ['read', 'readSync', 'readBuffers', 'readv'].includes(fn)) return 'fs read syscalls (native)'
  if (!url && ['writeBuffers', 'writeBuffer', 'writeSync', 'writeString'].includes(fn)) return 'fs write syscalls (native)'
  if (!url && ['fdatasync', 'fsync'].includes(fn)) return 'fdatasync (native)'
  if (url.includes('/dist/src/')) return 'r5ctl JavaScript (engine, command)'
  if (url.startsWith('node:') || url.includes('/node_modules/') || fn === 'compileFunction' || fn === '(root)')
    return 'node internals + oclif (mostly start-up, module loading)'
  return 'other: (program), (idle), misc. native calls'
}

function summariseProfile(file: string, top: number): {rows: ProfileRow[]; areas: {area: string; ms: number; pct: number}[]; totalMs: number} {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    nodes: {id: number; callFrame: {functionName: string; url: string; lineNumber: number}}[]
    samples: number[]
    timeDeltas: number[]
  }
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const self = new Map<string, {fn: string; where: string; us: number}>()
  const areas = new Map<string, number>()
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0 // the time until the next sample belongs to this one
    total += dt
    const cf = byId.get(p.samples[i])!.callFrame
    const fn = cf.functionName || '(anonymous)'
    const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/')}:${cf.lineNumber + 1}` : ''
    const area = areaOf(cf.functionName, cf.url)
    areas.set(area, (areas.get(area) ?? 0) + dt)
    const key = `${fn}@${where}`
    const e = self.get(key) ?? {fn, where, us: 0}
    e.us += dt
    self.set(key, e)
  }
  const rows = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map(e => ({fn: e.fn, where: e.where, ms: e.us / 1000, pct: (100 * e.us) / total}))
  const byArea = [...areas].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({area, ms: us / 1000, pct: (100 * us) / total}))
  return {rows, areas: byArea, totalMs: total / 1000}
}

// ---------------------------------------------------------------------------------------------

const freeBytes = (dir: string) => {
  const s = fs.statfsSync(dir)
  return s.bavail * s.bsize
}

/**
 * The I/O that a replay cannot avoid, done in-process with nothing else: read the used log in 4 MiB
 * windows and write its pages to the members with 4 KiB iovecs (a member's pages in the log are
 * interleaved with the other members', so they cannot be written as one run), pages dealt to the
 * members in turn as a write-through log holds them. No meta block is parsed, nothing is checked.
 * This is the floor for a replay that reads and writes on one thread; r5ctl reads the next window on
 * the CRC addon's helper thread while it writes the last one, so it can come in under it. dd's raw
 * baseline reads into a cache-hot buffer and writes from /dev/zero.
 */
function ioFloor(journal: string, members: string[], logStart: number, logBytes: number, memberBase: number): number {
  const W = 4 << 20
  // page-aligned, as the engine's buffers are (alignedBuffer in device.ts): the kernel's copy from a
  // misaligned source runs about 1.5x slower
  const buf = Buffer.from(new WebAssembly.Memory({initial: W / 65536}).buffer, 0, W)
  const j = fs.openSync(journal, 'r')
  const ms = members.map(m => fs.openSync(m, 'r+'))
  const at = members.map(() => memberBase)
  const t0 = process.hrtime.bigint()
  for (let off = 0; off < logBytes; off += W) {
    const len = Math.min(W, logBytes - off)
    fs.readSync(j, buf, 0, len, logStart + off)
    for (let m = 0; m < ms.length; m++) {
      const views: Uint8Array[] = []
      for (let p = m * 4096; p + 4096 <= len; p += ms.length * 4096) views.push(buf.subarray(p, p + 4096))
      for (let i = 0; i < views.length; i += 1024) {
        const part = views.slice(i, i + 1024)
        fs.writevSync(ms[m], part, at[m])
        at[m] += part.length * 4096
      }
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  fs.closeSync(j)
  for (const fd of ms) fs.closeSync(fd)
  return seconds
}

/** --setup-only DIR: the dirty set and a work copy, nothing timed */
function setupOnly(dir: string): void {
  const P = makeArray(path.join(dir, 'pristine'), REC_JOURNAL, REC_ROWS)
  const dirty = makeDirty(P, REC_ROWS)
  const work = path.join(dir, 'work')
  fs.mkdirSync(work, {recursive: true})
  const workDevs = P.devs.map(d => path.join(work, path.basename(d)))
  for (let i = 0; i < P.devs.length; i++) copyOver(P.devs[i], workDevs[i])
  process.stdout.write(JSON.stringify({pristine: P.devs, work: workDevs, dirty}, null, 2) + '\n')
}

function main() {
  if (opt['--setup-only']) {
    setupOnly(path.resolve(opt['--setup-only']))
    return
  }
  const facts = machine()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'r5bench-rec-'))
  say(
    `r5ctl recover bench${quick ? ' --quick' : ''}: ${facts.date}, ${facts.nproc} CPUs (${facts.cpu}), ${facts.memoryGiB} GiB RAM, ` +
      `load ${facts.loadAverage.join(' ')}, kernel ${facts.kernel}, node ${facts.node}, ${os.tmpdir()} on ${facts.tmpFs}; folder ${root}`,
  )
  if (!GNU_TIME) notes.push('GNU time is missing: no peak RSS figures')
  try {
    // =========================================================================================
    // 1. a full dirty journal
    say(
      `setting up: raid5, ${MEMBERS} members, 512K chunk, journal ${REC_JOURNAL / MiB} MiB, ${(REC_ROWS * ROW_BYTES) / MiB} MiB written and crashed before the log is closed`,
    )
    const P = makeArray(path.join(root, 'pristine'), REC_JOURNAL, Math.max(REC_ROWS, WRITE_ROWS))
    const dirty = makeDirty(P, REC_ROWS)
    say(
      `  crash after ${dirty.crashAfter} of ${dirty.totalWrites} write requests; journal: ${(dirty.usedBytes / MiB).toFixed(1)} MiB used, ` +
        `${dirty.stripesPending} stripes pending, ${dirty.metaBlocks} meta blocks (${dirty.setupSeconds.toFixed(1)} s)`,
    )
    const plan = JSON.parse(r5(['recover', '--dry-run', '--json', ...P.devs]).stdout) as {
      state: string
      pagesWritten: number
      logBytesScanned: number
      writes: {slot: number; offsetSector: number; pages: number; source: string}[]
    }
    if (plan.state !== 'would-replay') throw new Error(`recover --dry-run says ${plan.state}`)
    // what recover writes, per member: [first byte, bytes]
    const perSlot = Array.from({length: MEMBERS}, () => ({lo: Infinity, hi: 0, bytes: 0}))
    for (const w of plan.writes) {
      const s = perSlot[w.slot]
      s.lo = Math.min(s.lo, w.offsetSector * 512)
      s.hi = Math.max(s.hi, w.offsetSector * 512 + w.pages * PAGE)
      s.bytes += w.pages * PAGE
    }
    const recMemberBytes = perSlot.reduce((x, s) => x + s.bytes, 0)
    if (perSlot.some(s => s.hi - s.lo !== s.bytes))
      notes.push('recover writes a member in more than one run; dd writes the same number of bytes as one run')

    // work set (recover runs here) and the dd copies of the members
    const W: ArraySet = {
      ...P,
      dir: path.join(root, 'work'),
      journal: path.join(root, 'work', 'journal.img'),
      members: P.members.map(m => path.join(root, 'work', path.basename(m))),
    }
    W.devs = [W.journal, ...W.members]
    fs.mkdirSync(W.dir)
    const restore = () => {
      for (let i = 0; i < P.devs.length; i++) copyOver(P.devs[i], W.devs[i])
      syncFiles(W.devs)
    }
    const ddMembers = P.members.map((_m, i) => path.join(root, `dd-m${i}.img`))
    for (let i = 0; i < MEMBERS; i++) copyOver(P.members[i], ddMembers[i])
    const ddJournalRead = [
      `if=${P.journal}`,
      'of=/dev/null',
      `skip=${P.ringBase + dirty.tailSector * 512}`,
      `count=${dirty.usedBytes}`,
      'iflag=skip_bytes,count_bytes',
    ]
    const rawRecover = (durable: boolean) => {
      let s = dd(ddJournalRead)
      for (let i = 0; i < MEMBERS; i++) {
        s += dd([
          'if=/dev/zero',
          `of=${ddMembers[i]}`,
          `seek=${P.memberBase + perSlot[i].lo}`,
          `count=${perSlot[i].bytes}`,
          'oflag=seek_bytes',
          'iflag=count_bytes',
          `conv=notrunc${durable ? ',fsync' : ''}`,
        ])
      }
      return s
    }
    const recoverOnce = (durable: boolean, nodeArgs?: string[]) => {
      const t = r5(['recover', '--json', ...(durable ? [] : ['--no-flush']), ...W.devs], {nodeArgs})
      const r = JSON.parse(t.stdout)
      if (r.state !== 'replayed' || r.pagesWritten < plan.pagesWritten)
        throw new Error(`recover: ${r.state}, ${r.pagesWritten} pages (plan: ${plan.pagesWritten})`)
      return t
    }
    // fixed cost of one invocation (node start-up, modules, opening the devices): --version, recover
    // of the same set once it is clean (the extent walk finds one empty meta block), a write of one page
    const startupRuns: {seconds: number; rssKiB: number | null}[] = []
    const fixedRec: number[] = []
    const fixedWrite: number[] = []
    const startup = () => {
      const t = r5(['--version'])
      startupRuns.push(t)
      return t
    }
    const fixedRecover = () => {
      const t = r5(['recover', '--json', '--no-flush', ...W.devs])
      if (JSON.parse(t.stdout).state !== 'clean') throw new Error('fixed-cost recover: the set is not clean')
      fixedRec.push(t.seconds)
    }

    say(`timing recover: ${RUNS} run(s) per row; every run starts from a fresh copy of the dirty set`)
    restore()
    const allFiles = [...W.devs, ...ddMembers, P.journal]
    syncFiles(allFiles)
    rawRecover(false) // warm-up: dd targets allocated and cached
    const rec = {
      raw: [] as number[],
      r5: [] as number[],
      rss: [] as number[],
      rawD: [] as number[],
      r5D: [] as number[],
      rssD: [] as number[],
      floor: [] as number[],
    }
    for (let i = 0; i < RUNS; i++) {
      restore()
      syncFiles(allFiles)
      rec.raw.push(rawRecover(false))
      syncFiles(ddMembers)
      rec.floor.push(ioFloor(P.journal, ddMembers, P.ringBase + dirty.tailSector * 512, dirty.usedBytes, P.memberBase))
      syncFiles(ddMembers)
      const t = recoverOnce(false)
      rec.r5.push(t.seconds)
      if (t.rssKiB) rec.rss.push(t.rssKiB)
      startup()
      fixedRecover()
    }
    for (let i = 0; i < RUNS; i++) {
      restore()
      syncFiles(allFiles)
      rec.rawD.push(rawRecover(true))
      const t = recoverOnce(true)
      rec.r5D.push(t.seconds)
      if (t.rssKiB) rec.rssD.push(t.rssKiB)
      startup()
    }
    // correctness (untimed): the replayed set is clean and holds the data that was written
    const ej = JSON.parse(r5(['examine-journal', '--json', ...W.devs]).stdout)
    const readBack = path.join(root, 'readback.bin')
    r5(['read', '--offset', '0', '--length', String(dirty.dataBytes), '--output', readBack, ...W.devs])
    const verified = ej.state === 'clean' && sha256File(readBack, dirty.dataBytes) === dirty.sha256
    fs.rmSync(readBack)
    if (!verified) notes.push(`after recover: journal ${ej.state}, read-back MISMATCH or dirty`)

    // =========================================================================================
    // 2. write 1 GiB, page cache and durable, against dd (on the work set, clean after recover)
    say(`timing write: ${WRITE_BYTES / MiB} MiB of random data on the same array (journal ${REC_JOURNAL / MiB} MiB)`)
    const input = path.join(root, 'input.bin')
    {
      const buf = Buffer.alloc(8 * MiB)
      const fd = fs.openSync(input, 'w')
      for (let done = 0; done < WRITE_BYTES; done += buf.length) fs.writeSync(fd, randomFillSync(buf), 0, Math.min(buf.length, WRITE_BYTES - done))
      fs.closeSync(fd)
    }
    const r5write = (durable: boolean) => {
      const t = r5(['write', '--json', '--offset', '0', '--input', input, ...(durable ? [] : ['--no-flush']), ...W.devs])
      return {...t, result: JSON.parse(t.stdout) as {journalBytes: number; stripes: number; checkpoints: number; ioUnits: number}}
    }
    syncFiles([...W.devs, input])
    const warm = r5write(false)
    const Jw = warm.result.journalBytes
    // member bytes: every data page once plus one parity page per stripe, spread evenly by the rotating layout
    const wMemberBytes = Math.ceil((WRITE_BYTES + warm.result.stripes * PAGE) / MEMBERS / PAGE) * PAGE
    const ddWJournal = path.join(root, 'dd-journal.img')
    const ddWTargets = [{file: ddWJournal, bytes: Jw}, ...ddMembers.map(f => ({file: f, bytes: wMemberBytes}))]
    const rawWrite = (durable: boolean) => {
      let s = 0
      for (const t of ddWTargets)
        s += dd(['if=/dev/zero', `of=${t.file}`, `count=${t.bytes}`, 'iflag=count_bytes', `conv=notrunc${durable ? ',fsync' : ''}`])
      return s
    }
    rawWrite(false) // creates the journal target
    const wFiles = [...W.devs, ...ddWTargets.map(t => t.file)]
    const wr = {
      raw: [] as number[],
      r5: [] as number[],
      rss: [] as number[],
      rawD: [] as number[],
      r5D: [] as number[],
      rssD: [] as number[],
      checkpoints: warm.result.checkpoints,
      ioUnits: warm.result.ioUnits,
      stripes: warm.result.stripes,
    }
    for (let i = 0; i < RUNS; i++) {
      syncFiles(wFiles)
      wr.raw.push(rawWrite(false))
      syncFiles(wFiles)
      const t = r5write(false)
      wr.r5.push(t.seconds)
      if (t.rssKiB) wr.rss.push(t.rssKiB)
      syncFiles(wFiles)
      wr.rawD.push(rawWrite(true))
      syncFiles(wFiles)
      const d = r5write(true)
      wr.r5D.push(d.seconds)
      if (d.rssKiB) wr.rssD.push(d.rssKiB)
      startup()
      fixedWrite.push(r5(['write', '--json', '--no-flush', '--offset', '0', '--length', '4096', '--input', input, ...W.devs]).seconds)
    }

    // =========================================================================================
    // 3. where recover's time goes (when the target fails, or on request)
    const st = median(startupRuns.map(s => s.seconds))
    const fRec = median(fixedRec)
    const fWrite = median(fixedWrite)
    const recRatio = median(rec.r5) / median(rec.raw)
    const recRatioEx = (median(rec.r5) - fRec) / median(rec.raw)
    let profile: (ReturnType<typeof summariseProfile> & {seconds: number}) | null = null
    if (wantProfile || recRatioEx > TARGET_RECOVER || recRatio > TARGET_RECOVER) {
      say('profiling one recover run (node --cpu-prof)')
      const profDir = path.join(root, 'prof')
      restore()
      syncFiles(allFiles)
      const t = recoverOnce(false, ['--cpu-prof', `--cpu-prof-dir=${profDir}`])
      const f = fs.readdirSync(profDir).find(x => x.endsWith('.cpuprofile'))
      if (f) profile = {...summariseProfile(path.join(profDir, f), 16), seconds: t.seconds}
    }

    // the work set and copies are no longer needed: free the space before the RSS arrays
    for (const d of [W.dir, P.dir]) fs.rmSync(d, {recursive: true, force: true})
    for (const f of [...ddMembers, ddWJournal, input]) fs.rmSync(f, {force: true})

    // =========================================================================================
    // 4. peak RSS of recover at two journal sizes
    const rssRows: {journalMiB: number; dataMiB: number; usedMiB: number; stripes: number; seconds: number; rssKiB: number | null}[] = []
    const largest = rssJournals[rssJournals.length - 1]
    const need = 2.2 * largest + 64 * MiB
    if (freeBytes(root) < need) {
      notes.push(`only ${(freeBytes(root) / 2 ** 30).toFixed(1)} GiB free in ${os.tmpdir()}: RSS measured at 1 GiB instead of ${largest / MiB} MiB`)
      rssJournals = [rssJournals[0], 1024 * MiB]
    }
    for (const J of rssJournals) {
      const rows = Math.floor(((J - MiB) * RSS_FILL) / (MEMBERS * CHUNK))
      say(`peak RSS: journal ${J / MiB} MiB, ${(rows * ROW_BYTES) / MiB} MiB written and crashed`)
      const A = makeArray(path.join(root, `rss-${J / MiB}`), J, rows)
      const d = makeDirty(A, rows)
      const t = r5(['recover', '--json', '--no-flush', ...A.devs])
      const r = JSON.parse(t.stdout)
      if (r.state !== 'replayed') throw new Error(`recover (RSS ${J / MiB} MiB): ${r.state}`)
      rssRows.push({
        journalMiB: J / MiB,
        dataMiB: (rows * ROW_BYTES) / MiB,
        usedMiB: d.usedBytes / MiB,
        stripes: d.stripesPending,
        seconds: t.seconds,
        rssKiB: t.rssKiB,
      })
      fs.rmSync(A.dir, {recursive: true, force: true})
    }
    // the 1 GiB recover above, for a third point
    const recRss = Math.max(...rec.rss, 0) || null

    // =========================================================================================
    // report
    const GB = (bytes: number, s: number) => (bytes / 1e9 / s).toFixed(2)
    // judged: r5ctl's time minus the same command's fixed cost, against the raw I/O
    const row = (what: string, t: number, bytes: number, base: number | null, fixed: number, target?: number): string[] => {
      const ratio = base === null ? '' : (t / base).toFixed(2)
      const ex = base === null ? '' : ((t - fixed) / base).toFixed(2)
      return [
        what,
        t.toFixed(3),
        GB(bytes, t),
        ratio,
        ex,
        target === undefined || base === null ? '' : `<= ${target.toFixed(1)}x`,
        target === undefined || base === null ? '' : verdict((t - fixed) / base <= target),
      ]
    }
    const recBytes = dirty.usedBytes // GB/s of journal (log) bytes replayed
    const wBytes = WRITE_BYTES // GB/s of user data
    const rr = median(rec.raw)
    const rrD = median(rec.rawD)
    const wrr = median(wr.raw)
    const wrrD = median(wr.rawD)
    const head = ['operation', 'seconds', 'GB/s', 'ratio', 'ratio minus fixed cost', 'target', 'result']
    const recRows = [
      [
        `raw: dd journal ${(dirty.usedBytes / MiB).toFixed(1)} MiB -> /dev/null + dd members 4 x ${(perSlot[0].bytes / MiB).toFixed(1)} MiB`,
        rr.toFixed(3),
        GB(recBytes, rr),
        '1.00',
        '1.00',
        '',
        '',
      ],
      row('r5ctl recover --no-flush', median(rec.r5), recBytes, rr, fRec, TARGET_RECOVER),
      [`durable raw: the same dd, member writes conv=fsync`, rrD.toFixed(3), GB(recBytes, rrD), '1.00', '1.00', '', ''],
      row('durable: r5ctl recover (members fdatasynced at the end)', median(rec.r5D), recBytes, rrD, fRec),
      ['fixed cost: r5ctl recover of the clean set, median', fRec.toFixed(3), '', '', '', '', ''],
      [
        `context: node I/O floor (log in 4 MiB windows, member pages as 4 KiB iovecs, no checks)`,
        median(rec.floor).toFixed(3),
        GB(recBytes, median(rec.floor)),
        (median(rec.floor) / rr).toFixed(2),
        (median(rec.floor) / rr).toFixed(2),
        '',
        '',
      ],
      ['context: r5ctl --version (node start-up + CLI), median', st.toFixed(3), '', '', '', '', ''],
    ]
    const wRows = [
      [
        `raw: dd journal ${(Jw / MiB).toFixed(1)} MiB + members 4 x ${(wMemberBytes / MiB).toFixed(1)} MiB`,
        wrr.toFixed(3),
        GB(wBytes, wrr),
        '1.00',
        '1.00',
        '',
        '',
      ],
      row('r5ctl write --no-flush', median(wr.r5), wBytes, wrr, fWrite, TARGET_WRITE),
      [`durable raw: the same dd with conv=fsync`, wrrD.toFixed(3), GB(wBytes, wrrD), '1.00', '1.00', '', ''],
      row('durable: r5ctl write (journal fdatasync per batch)', median(wr.r5D), wBytes, wrrD, fWrite),
      ['fixed cost: r5ctl write --no-flush of one page, median', fWrite.toFixed(3), '', '', '', '', ''],
    ]
    const rssSmall = rssRows[0]?.rssKiB ?? null
    const rssLarge = rssRows[rssRows.length - 1]?.rssKiB ?? null
    const mib = (k: number | null) => (k ? (k / 1024).toFixed(1) : 'n/a')
    const flat = rssSmall !== null && rssLarge !== null && rssLarge <= rssSmall * (1 + FLAT_TOLERANCE)
    const rssTable = rssRows.map(r => [
      `r5ctl recover --no-flush, journal ${r.journalMiB} MiB (${r.usedMiB.toFixed(0)} MiB of log, ${r.stripes} stripes; ` +
        `${r.seconds.toFixed(2)} s, ${GB(r.usedMiB * MiB, r.seconds)} GB/s)`,
      mib(r.rssKiB),
      `<= ${TARGET_RSS_MIB}`,
      verdict(r.rssKiB !== null && r.rssKiB / 1024 <= TARGET_RSS_MIB),
    ])
    rssTable.push([`context: the timed recovers above (journal ${REC_JOURNAL / MiB} MiB), max`, mib(recRss), '', ''])
    rssTable.push([`context: r5ctl --version`, mib(Math.max(...startupRuns.map(s => s.rssKiB ?? 0)) || null), '', ''])

    const total = Number(process.hrtime.bigint() - started) / 1e9
    const out: string[] = []
    out.push(`r5ctl recover bench${quick ? ' --quick' : ''} — ${facts.date}`)
    out.push(
      `machine: ${facts.nproc} CPUs (${facts.cpu}), ${facts.memoryGiB} GiB RAM (${facts.freeMemoryGiB} free at the start), kernel ${facts.kernel}, node ${facts.node}, ` +
        `images on ${facts.tmpFs} (${os.tmpdir()}); load average ${facts.loadAverage.join(' ')} at the start, ${os
          .loadavg()
          .map(x => x.toFixed(2))
          .join(' ')} at the end`,
    )
    out.push(
      `recover: raid5, ${MEMBERS} members, 512K chunk, journal ${REC_JOURNAL / MiB} MiB; ${dirty.dataBytes / MiB} MiB written, power cut after ${dirty.crashAfter} ` +
        `of ${dirty.totalWrites} write requests (before the closing meta block): ${(dirty.usedBytes / MiB).toFixed(1)} MiB of log, ${dirty.metaBlocks} meta blocks, ` +
        `${dirty.stripesPending} stripes pending; recover writes ${(recMemberBytes / MiB).toFixed(1)} MiB to the members (${plan.pagesWritten} pages) and scans ` +
        `${(plan.logBytesScanned / MiB).toFixed(1)} MiB; after recover: journal ${ej.state}, read-back ${verified ? 'verified (sha256)' : 'MISMATCH'}`,
    )
    out.push(`${RUNS} run(s) per row, median; GB/s = log bytes replayed / s; every file fsynced before each timed step; copies not timed`)
    out.push('')
    out.push(fmtTable(head, recRows))
    out.push('')
    out.push(
      `write: ${WRITE_BYTES / MiB} MiB of random data at offset 0 on the same array: ${(Jw / MiB).toFixed(1)} MiB of journal, ${wr.ioUnits} io units, ` +
        `${wr.stripes} stripes, ${wr.checkpoints} checkpoint(s); GB/s = user data / s`,
    )
    out.push('')
    out.push(fmtTable(head, wRows))
    out.push('')
    out.push(fmtTable(['peak RSS (GNU time %M)', 'MiB', 'target', 'result'], rssTable))
    out.push(
      `RSS flat (the ${rssRows[rssRows.length - 1]?.journalMiB} MiB journal within ${FLAT_TOLERANCE * 100} % of the ${rssRows[0]?.journalMiB} MiB one): ${verdict(flat)}`,
    )
    if (profile) {
      out.push('')
      out.push(
        `CPU profile of one recover --no-flush (${profile.seconds.toFixed(2)} s wall, ${profile.totalMs.toFixed(0)} ms sampled, start-up included), top self times:`,
      )
      out.push(
        fmtTable(
          ['function', 'where', 'ms', '%'],
          profile.rows.map(r => [r.fn, r.where, r.ms.toFixed(0), r.pct.toFixed(1)]),
        ),
      )
      out.push('')
      out.push(
        fmtTable(
          ['by area (self time)', 'ms', '%'],
          profile.areas.map(a => [a.area, a.ms.toFixed(0), a.pct.toFixed(1)]),
        ),
      )
    }
    for (const n of notes) out.push(`note: ${n}`)
    out.push(`total bench time ${total.toFixed(1)} s`)
    process.stdout.write(out.join('\n') + '\n')
    if (wantJson) {
      process.stdout.write(
        JSON.stringify(
          {
            machine: facts,
            quick,
            runs: RUNS,
            dirty,
            recoverPlan: {pagesWritten: plan.pagesWritten, logBytesScanned: plan.logBytesScanned, memberBytes: recMemberBytes},
            seconds: {startup: startupRuns.map(s => s.seconds), fixedRecover: fixedRec, fixedWrite, recover: rec, write: wr},
            journalBytesWritten: Jw,
            memberBytesPerMember: wMemberBytes,
            ratios: {
              recover: recRatio,
              recoverMinusFixed: recRatioEx,
              recoverDurable: median(rec.r5D) / rrD,
              recoverDurableMinusFixed: (median(rec.r5D) - fRec) / rrD,
              write: median(wr.r5) / wrr,
              writeMinusFixed: (median(wr.r5) - fWrite) / wrr,
              writeDurable: median(wr.r5D) / wrrD,
              writeDurableMinusFixed: (median(wr.r5D) - fWrite) / wrrD,
            },
            rss: rssRows,
            rssFlat: flat,
            profile,
            verified,
            notes,
            totalSeconds: total,
          },
          null,
          2,
        ) + '\n',
      )
    }
    if (!verified) process.exitCode = 1
  } finally {
    if (!keep) fs.rmSync(root, {recursive: true, force: true})
    else say(`kept ${root}`)
  }
}

main()
