/**
 * The operations the bench times, each with its two baselines:
 *   alternative  what a user would run instead: dd/cat of the same data into ONE plain file
 *   floor        dd moving exactly the bytes the operation must move (reads from the real images,
 *                writes into look-alike files), with as many fdatasync barriers per file as the r5ctl
 *                run issued (counted by bench/probe.ts in its untimed warm-up run)
 * Image files are preallocated (every block written once, untimed), as a disk has no holes: otherwise
 * both sides would measure ext4's block allocator. Every step starts with the bench's files fsynced.
 */
import {randomFillSync} from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {run, type Step} from './timer.js'

export const MiB = 1 << 20
const PAGE = 4096
const here = path.dirname(fileURLToPath(import.meta.url))
const RUN_JS = path.resolve(here, '../../bin/run.js')
export const PROBE_JS = path.join(here, 'probe.js')

/** r5ctl as a user runs it: node bin/run.js with default flags (--json only shapes the report) */
export const r5 = (...args: string[]): string[] => [process.execPath, RUN_JS, ...args, '--json']
const r5json = (args: string[], ok = [0]) => JSON.parse(run(r5(...args), undefined, ok).stdout)
const sh = (script: string): string[] => ['sh', '-c', `set -e; ${script}`]
const dd = (args: string) => `dd bs=1M status=none ${args}`
/** one of `n` files' share of `bytes`, in whole pages */
const share = (bytes: number, n: number) => Math.ceil(bytes / n / PAGE) * PAGE

/** every block written once (zeros), so that nobody pays block allocation later */
export function preallocate(file: string, size: number): void {
  const buf = Buffer.alloc(8 * MiB)
  const fd = fs.openSync(file, 'w')
  for (let done = 0; done < size;) done += fs.writeSync(fd, buf, 0, Math.min(buf.length, size - done), done)
  fs.closeSync(fd)
}

/** the first `length` bytes of `from` over `to`, in place */
function copyOver(from: string, to: string, length: number): void {
  const buf = Buffer.alloc(8 * MiB)
  const [src, dst] = [fs.openSync(from, 'r'), fs.openSync(to, fs.existsSync(to) ? 'r+' : 'w')]
  for (let done = 0, n = 1; done < length && n > 0; done += n) {
    n = fs.readSync(src, buf, 0, Math.min(buf.length, length - done), done)
    fs.writeSync(dst, buf, 0, n, done)
  }
  fs.closeSync(src)
  fs.closeSync(dst)
}

/** fsync every file under `dir` (untimed), so that no timed step pays for another step's dirty pages */
export function settle(dir: string): void {
  const files = (fs.readdirSync(dir, {recursive: true}) as string[]).map(f => path.join(dir, f)).filter(f => fs.statSync(f).isFile())
  run(['sync', ...files])
}

export interface ArraySet {
  journal: string
  members: string[]
  devs: string[]
  /** member data offset and journal ring base, bytes */
  dataOffset: number
  ringBase: number
}

/** RAID `level`, `n` members, 64K chunk, an array of exactly `dataBytes`, a `journalBytes` journal */
function makeArray(dir: string, level: 5 | 6, n: number, dataBytes: number, journalBytes: number): ArraySet {
  fs.mkdirSync(dir, {recursive: true})
  const journal = path.join(dir, 'journal.img')
  const members = Array.from({length: n}, (_, i) => path.join(dir, `m${i}.img`))
  const memberSize = MiB + dataBytes / (n - (level === 6 ? 2 : 1)) // create's data offset (1 MiB up to 4G) + data
  preallocate(journal, journalBytes)
  for (const m of members) preallocate(m, memberSize)
  const devs = [journal, ...members]
  const c = r5json([
    'create',
    '-l',
    `${level}`,
    '-n',
    `${n}`,
    '-c',
    '64K',
    '-z',
    `${memberSize}`,
    '--journal-size',
    `${journalBytes}`,
    '--write-journal',
    ...devs,
  ])
  if (c.arraySizeBytes !== dataBytes) throw new Error(`raid${level}: array of ${c.arraySizeBytes} bytes, wanted ${dataBytes}`)
  const ex = r5json(['examine', journal, members[0]])
  return {journal, members, devs, ringBase: ex.devices[0].dataOffsetSector * 512, dataOffset: ex.devices[1].dataOffsetSector * 512}
}

/** the bytes an operation must move: reads from real files, writes to files shaped like `like` */
export interface Moves {
  reads: {file: string; offset: number; bytes: number}[]
  writes: {like: string; bytes: number}[]
}

export interface Op {
  name: string
  /** what the alternative is, for the table */
  altName: string
  /** untimed, once: make the pre-state */
  setup: () => void
  a: Step
  /** the untimed probed run, when `a` is not r5ctl itself (default: `a` with the probe preloaded) */
  probeArgv?: string[]
  /** the baselines, from the JSON report of the probed r5ctl run */
  baselines: (report: any) => {alt: Step; moves?: Moves}
  /** after the timed runs: throws when the result is wrong */
  check: (report: any) => void
}

/** one size's files: the input, a RAID5 4+1 and a RAID6 4+2 array, and the operations on them */
export function operations(dir: string, B: number): Op[] {
  const input = path.join(dir, 'input.bin')
  {
    const buf = Buffer.alloc(8 * MiB)
    const fd = fs.openSync(input, 'w')
    for (let done = 0; done < B; done += buf.length) fs.writeSync(fd, randomFillSync(buf), 0, Math.min(buf.length, B - done))
    fs.closeSync(fd)
  }
  const f = (name: string) => path.join(dir, name)
  /** a preallocated file of at least `size` bytes */
  const ready = (name: string, size: number) => {
    if (!fs.existsSync(f(name)) || fs.statSync(f(name)).size < size) preallocate(f(name), size)
    return f(name)
  }
  // the whole write-through or write-back log fits: data + parity (+ meta) is about 1.27 x the data
  const s5 = makeArray(f('raid5'), 5, 5, B, Math.ceil((1.5 * B) / MiB) * MiB)
  const s6 = makeArray(f('raid6'), 6, 6, B, 64 * MiB)
  const settled = (restore?: () => void) => () => {
    restore?.()
    settle(dir)
  }

  // pre-states: a snapshot of the journal and every member's superblock area, restored before each run
  // (one op's at a time: the next snapshot overwrites it)
  const snapshot = () => {
    const saved = s5.devs.map(d => ({d, copy: f(`pre.${path.basename(d)}`), len: d === s5.journal ? fs.statSync(d).size : s5.dataOffset}))
    for (const s of saved) copyOver(s.d, s.copy, s.len)
    return () => {
      for (const s of saved) copyOver(s.copy, s.d, s.len)
    }
  }
  let restoreClean = () => {}
  let restoreCrash = () => {}
  let restoreCached = () => {}
  const journalState = () => run(r5('examine-journal', ...s5.devs), undefined, [0, 5]).status
  const clean = () => {
    if (journalState() !== 0) r5json(['recover', '--no-flush', ...s5.devs])
  }
  // setup writes skip fdatasync (--no-flush): the files are fsynced before anything is timed
  const writeInput = (set: ArraySet, ...flags: string[]) => {
    const out = run(r5('write', '-o', '0', '-i', input, '--no-flush', ...flags, ...set.devs), undefined, [0, 75, 76]).stdout
    return out ? JSON.parse(out) : null
  }
  /** after recover, reclaim or a write-through write: a clean journal and the input read back */
  const checkClean = () => {
    if (journalState() !== 0) throw new Error('the journal is not clean')
    run(sh(`${process.execPath} ${RUN_JS} read -o 0 --length ${B} ${s5.devs.join(' ')} | cmp ${input} -`))
  }

  const write = (mode: 'write-through' | 'write-back'): Op => ({
    name: `write (${mode})`,
    altName: 'dd input → 1 file, fdatasync',
    setup: () => {
      clean()
      if (mode === 'write-back') restoreClean = snapshot()
    },
    a: {
      argv: r5('write', '-o', '0', '-i', input, '--journal-mode', mode, ...s5.devs),
      before: settled(mode === 'write-back' ? () => restoreClean() : undefined),
    },
    baselines: r => ({
      alt: {argv: sh(dd(`if=${input} of=${ready('alt.bin', B)} conv=notrunc,fdatasync`)), before: settled()},
      moves: {
        reads: [{file: input, offset: 0, bytes: B}],
        writes: [{like: s5.journal, bytes: r.journalBytes}, ...s5.members.map(m => ({like: m, bytes: mode === 'write-back' ? 0 : share(B, 4)}))],
      },
    }),
    check: r => {
      if (mode === 'write-through') {
        checkClean()
        return
      }
      const j = r5json(['examine-journal', ...s5.devs], [5])
      if (j.stripesPending.dataOnly !== r.stripes) throw new Error(`write-back: ${j.stripesPending.dataOnly} stripes cached, wanted ${r.stripes}`)
    },
  })

  // a read's baselines: cat of the data file, and dd of the member bytes it must read plus the output
  const readOp = (name: string, set: ArraySet, devs: string[], out: string, alt?: Step): Op => {
    const survivors = devs.filter(d => d !== set.journal)
    return {
      name,
      altName: alt ? 'r5ctl read, 0 missing' : 'cat data file > 1 file',
      setup: () => {
        if (set === s5) clean()
        writeInput(set)
      },
      a: {argv: r5('read', '-o', '0', '--length', `${B}`, '--output', f(out), ...devs), before: settled()},
      baselines: () => ({
        alt: alt ?? {argv: sh(`cat ${input} > ${f('alt.out')}`), before: settled()},
        moves: {
          reads: survivors.map(m => ({file: m, offset: set.dataOffset, bytes: share(B, survivors.length)})),
          writes: [{like: f(out), bytes: B}],
        },
      }),
      check: () => {
        run(['cmp', input, f(out)])
        fs.rmSync(f(out))
      },
    }
  }
  const r6read = readOp('raid6 read, 0 missing', s6, s6.devs, 'r6.out')

  // recover and reclaim: read the log, write the replayed bytes
  const replay = (used: number, r: any) => {
    const replayed = r.pagesWritten * PAGE
    const log = `if=${s5.journal} skip=${s5.ringBase} iflag=skip_bytes,count_bytes`
    return {
      alt: {
        argv: sh(
          `${dd(`${log} count=${used} of=/dev/null`)}; ${dd(`${log} count=${replayed} of=${ready('alt.bin', replayed)} conv=notrunc,fdatasync`)}`,
        ),
        before: settled(),
      },
      moves: {
        reads: [{file: s5.journal, offset: s5.ringBase, bytes: used}],
        writes: [{like: s5.journal, bytes: (r.parityLogged ?? 0) * PAGE + PAGE}, ...s5.members.map(m => ({like: m, bytes: share(replayed, 5)}))],
      },
    }
  }
  let crashUsed = 0
  let cachedUsed = 0

  /**
   * serve, whole invocation: start it, nbdcopy the export to a file, SIGTERM it (its JSON report is
   * the script's stdout); against `r5ctl read` of the same dirty array to a file
   */
  const serveOp = (): Op => {
    const sock = f('serve.sock')
    const script = (node: string) =>
      sh(
        `rm -f ${sock}; ${node} ${RUN_JS} serve --json --socket ${sock} ${s5.devs.join(' ')} 2>/dev/null & pid=$!; ` +
          `while [ ! -S ${sock} ]; do sleep 0.01; done; nbdcopy "nbd+unix:///?socket=${sock}" ${f('served.out')}; kill -TERM $pid; wait $pid`,
      )
    return {
      name: 'serve → nbdcopy (dirty journal)',
      altName: 'r5ctl read (dirty journal) > 1 file',
      setup: crash,
      a: {argv: script(process.execPath), before: settled()},
      probeArgv: script(`${process.execPath} --import ${PROBE_JS}`),
      baselines: () => ({
        alt: {argv: r5('read', '-o', '0', '--length', `${B}`, '--output', f('served.alt'), ...s5.devs), before: settled()},
        moves: {reads: [{file: s5.journal, offset: s5.ringBase, bytes: crashUsed}], writes: [{like: f('served.out'), bytes: B}]},
      }),
      check: () => {
        run(['cmp', input, f('served.out')])
        fs.rmSync(f('served.out'))
      },
    }
  }
  /** the whole input logged, none of it on the members: a power cut just before the closing meta block */
  const crash = () => {
    clean()
    // learn how many device writes the write needs, then cut the power just before the closing
    // meta block: that block and one superblock per device are the last writes
    const n = writeInput(s5, '--crash-after', '1000000000').crash.deviceWrites
    writeInput(s5, '--crash-after', `${n - 1 - s5.devs.length}`)
    const j = r5json(['examine-journal', ...s5.devs], [5])
    if (j.stripesPending.dataParity !== B / 4 / PAGE)
      throw new Error(`crash log: ${j.stripesPending.dataParity} stripes pending, wanted ${B / 4 / PAGE}`)
    crashUsed = j.usedBytes
    restoreCrash = snapshot()
  }

  return [
    write('write-through'),
    readOp('read', s5, s5.devs, 'read.out'),
    {
      name: 'recover',
      altName: 'dd log + replayed → 1 file',
      setup: crash,
      a: {argv: r5('recover', ...s5.devs), before: settled(() => restoreCrash())},
      baselines: r => replay(crashUsed, r),
      check: checkClean,
    },
    {
      // the view: the whole input served from the journal, nothing written
      ...readOp('read (dirty journal, replayed)', s5, s5.devs, 'replayed.out'),
      setup: crash,
      // what it must move: the log once, and the output
      baselines: () => ({
        alt: {argv: sh(`cat ${input} > ${f('alt.out')}`), before: settled()},
        moves: {reads: [{file: s5.journal, offset: s5.ringBase, bytes: crashUsed}], writes: [{like: f('replayed.out'), bytes: B}]},
      }),
    },
    write('write-back'),
    {
      name: 'reclaim',
      altName: 'dd log + replayed → 1 file',
      setup: () => {
        clean()
        writeInput(s5, '--journal-mode', 'write-back')
        cachedUsed = r5json(['examine-journal', ...s5.devs], [5]).usedBytes
        restoreCached = snapshot()
      },
      a: {argv: r5('reclaim', ...s5.devs), before: settled(() => restoreCached())},
      baselines: r => replay(cachedUsed, r),
      check: checkClean,
    },
    {
      name: 'check',
      altName: 'dd member bytes → /dev/null',
      setup: () => {
        clean()
        writeInput(s5)
      },
      a: {argv: r5('check', ...s5.devs), before: settled()},
      baselines: () => {
        // every member's data area, read once: what a check must read
        const reads = s5.members.map(m => ({file: m, offset: s5.dataOffset, bytes: share(B, 4)}))
        const cmds = reads.map(r => dd(`if=${r.file} of=/dev/null skip=${r.offset} count=${r.bytes} iflag=skip_bytes,count_bytes`))
        return {alt: {argv: sh(cmds.join('\n')), before: settled()}, moves: {reads, writes: []}}
      },
      check: r => {
        if (r.mismatchCount !== 0) throw new Error(`check found ${r.mismatchCount} mismatches on a clean array`)
      },
    },
    serveOp(),
    r6read,
    readOp('raid6 read, 2 missing', s6, [s6.journal, s6.members[0], ...s6.members.slice(3)], 'r6x.out', r6read.a),
  ]
}

/** start-up: examine of one member and the journal, against `node -e 0` */
export function startupOp(dir: string): Op {
  const set = makeArray(path.join(dir, 'startup'), 5, 5, 4 * MiB, 4 * MiB)
  return {
    name: 'examine (start-up)',
    altName: 'node -e 0',
    setup: () => {},
    a: {argv: r5('examine', set.members[0], set.journal)},
    baselines: () => ({alt: {argv: [process.execPath, '-e', '0']}}),
    check: () => {},
  }
}

/**
 * The floor: one shell running dd, reads first, then per written file its bytes in as many segments as
 * r5ctl issued fdatasync calls on it (`syncs`, by path), each segment made durable: one dd with
 * oflag=dsync and a segment-sized block (one O_DSYNC write per barrier) up to 64 MiB per segment, or
 * one dd conv=fdatasync per segment above that. A barrier orders at least one page, so a file that
 * got barriers gets at least a page per barrier; files r5ctl synced that the moves do not name count too.
 */
export function floorStep(dir: string, moves: Moves, syncs: Record<string, number>): Step {
  const writes = [...moves.writes]
  for (const p of Object.keys(syncs)) if (!writes.some(w => w.like === p)) writes.push({like: p, bytes: 0})
  const cmds = moves.reads.map(r => dd(`if=${r.file} of=/dev/null skip=${r.offset} count=${r.bytes} iflag=skip_bytes,count_bytes`))
  fs.mkdirSync(dir, {recursive: true})
  for (const w of writes) {
    const k = syncs[w.like] ?? 0
    const seg = Math.ceil(Math.max(w.bytes / Math.max(k, 1), k ? PAGE : 0) / PAGE) * PAGE
    if (seg === 0) continue
    const t = path.join(dir, path.basename(w.like))
    if (!fs.existsSync(t) || fs.statSync(t).size < seg * Math.max(k, 1)) preallocate(t, seg * Math.max(k, 1))
    if (k === 0) cmds.push(dd(`if=/dev/zero of=${t} count=${seg} iflag=count_bytes conv=notrunc`))
    else if (seg <= 64 * MiB) cmds.push(`dd status=none if=/dev/zero of=${t} bs=${seg} count=${k} oflag=dsync conv=notrunc`)
    else
      for (let i = 0; i < k; i++)
        cmds.push(dd(`if=/dev/zero of=${t} seek=${i * seg} count=${seg} oflag=seek_bytes iflag=count_bytes conv=notrunc,fdatasync`))
  }
  return {argv: sh(cmds.join('\n')), before: () => settle(path.dirname(dir))}
}
