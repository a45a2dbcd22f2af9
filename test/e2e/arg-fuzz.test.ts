/**
 * Argument fuzzer: every r5ctl command run with seeded hostile flag values and device lists (negative,
 * huge, 2^32/2^53/2^64 neighbours, fractions, hex, exponents, suffix abuse, empty and missing values,
 * unknown and repeated flags; duplicated, mixed, truncated, read-only, linked, spaced, missing paths, a
 * folder, a FIFO, /dev/null). Whatever the arguments, a command must end within a timeout, print no
 * stack trace, exit with a code from docs/exit-codes.md, report a failure as one `r5ctl:` line (plus a
 * hint), and leave every device byte as it was unless it exited 0.
 *
 * R5CTL_FUZZ_CASES (default 2000), R5CTL_FUZZ_SEED (default 1), R5CTL_FUZZ_JOBS (concurrent processes,
 * default 4), R5CTL_FUZZ_TIMEOUT_MS (default 10000) scale it; R5CTL_FUZZ_ONLY=17,42 reruns single cases
 * of the same seed; R5CTL_FUZZ_REPORT=FILE writes the distinct violations there as markdown.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {r5ctl, ok, expectExit, pseudoRandom, sha256File, stackLines, createImages} from '../helpers/cli.js'
import {FixtureWatch, Rng, pool, shellLine, spawnR5ctl, type Spawned} from '../helpers/argfuzz.js'
import {BASE_FLAGS, type CommandSpec} from '../../src/cli/spec.js'

const env = process.env
const CASES = Number(env.R5CTL_FUZZ_CASES ?? 2000)
const SEED = Number(env.R5CTL_FUZZ_SEED ?? 1)
const JOBS = Number(env.R5CTL_FUZZ_JOBS ?? 4)
const TIMEOUT_MS = Number(env.R5CTL_FUZZ_TIMEOUT_MS ?? 10_000)
const ONLY = env.R5CTL_FUZZ_ONLY ? new Set(env.R5CTL_FUZZ_ONLY.split(',').map(Number)) : undefined

/** docs/exit-codes.md; 127 is oclif's for an unknown command only */
const DOCUMENTED = new Set([0, 1, 2, 3, 4, 5, 75, 76])

// ---------------------------------------------------------------------------------------------
// the fixture: four small arrays and the hostile paths, the same in every worker folder

const ARRAYS = {
  /** RAID5, clean, with data; one member's name has a space */
  A: ['j.img', 'a0.img', 'a1.img', 'a2.img', 'a 3.img'],
  /** RAID6, clean: another array for mixed sets */
  B: ['bj.img', 'b0.img', 'b1.img', 'b2.img', 'b3.img'],
  /** RAID4, dirty: a write cut by a simulated power cut */
  C: ['cj.img', 'c0.img', 'c1.img', 'c2.img'],
  /** RAID5 with write-back stripes cached in the journal */
  D: ['dj.img', 'd0.img', 'd1.img', 'd2.img'],
} as const
type ArrayName = keyof typeof ARRAYS
const ARRAY_NAMES = Object.keys(ARRAYS) as ArrayName[]

/** read-only (0444, and immutable where chattr works, since root ignores modes) */
const READ_ONLY = ['ro-a2.img', 'ro-j.img']
const FIXTURE_FILES = [
  ...Object.values(ARRAYS).flat(),
  'in.bin',
  'empty.bin',
  'short.bin',
  'u.undo',
  'at.img',
  'jt.img',
  'zero.img',
  'junk.img',
  ...READ_ONLY,
]
const FIXTURE_LINKS: Record<string, string> = {'la1.img': 'a1.img', 'lj.img': 'j.img', 'ldang.img': 'gone.img'}
const FIXTURE_NAMES = [...FIXTURE_FILES, ...Object.keys(FIXTURE_LINKS), 'emptydir', 'fifo']

/** hostile paths, relative to the worker folder ({W} is the folder itself) */
const PATHS = [
  'nosuch.img',
  'emptydir',
  'emptydir/',
  '/dev/null',
  '/dev/zero',
  '/dev/full',
  'zero.img',
  'junk.img',
  'at.img',
  'jt.img',
  'ro-a2.img',
  'ro-j.img',
  'la1.img',
  'lj.img',
  'ldang.img',
  'in.bin',
  'u.undo',
  '',
  ' ',
  '.',
  '..',
  'a 3.img',
  './a0.img',
  '{W}/a0.img',
  'a0.img/',
  'no such dir/x.img',
  '-',
  'j.img',
  'bj.img',
  'c0.img',
]
/** FIFOs hang an open() without a peer: they get their fixed cases, not random ones, to bound the cost */
const FIFO = 'fifo'

const NUMBERS = [
  '-1',
  '-4096',
  '-0',
  '',
  '4294967296',
  '4294967295',
  '4294967297',
  '9007199254740992',
  '9007199254740993',
  '18446744073709551616',
  '18446744073709551615',
  '99999999999999999999999999',
  '1.5',
  '4096.5',
  '0.5K',
  '0x10',
  '0x1000',
  '1e3',
  '1e400',
  '3T',
  '99999999T',
  '4KK',
  'K',
  'k',
  '4k',
  '4 K',
  ' 4096',
  '4096 ',
  '+4096',
  'abc',
  'NaN',
  'Infinity',
  '-Infinity',
  '1_000',
  '０',
  '4096\n',
  '4K4',
  '0b101',
  '010',
  '8589934592K',
]
const VALID_NUMBERS = ['0', '4096', '4K', '8K', '64K', '1M', '2M']

/** each string flag's kind of value; integer flags are numbers */
const STRING_FLAG_VALUES: Record<string, {hostile: string[]; valid: string[]}> = {
  offset: {hostile: NUMBERS, valid: VALID_NUMBERS},
  length: {hostile: NUMBERS, valid: VALID_NUMBERS},
  size: {hostile: NUMBERS, valid: ['2M', '4M', '1536K']},
  'journal-size': {hostile: NUMBERS, valid: ['2M', '1280K', '4M']},
  chunk: {hostile: [...NUMBERS, '3K', '6K', '2K', '1G', '8T'], valid: ['4K', '64K', '128K']},
  'until-seq': {hostile: NUMBERS, valid: ['0', '1', '123456']},
  from: {hostile: [...NUMBERS, '3', '4097'], valid: ['0', '8', '64']},
  to: {hostile: [...NUMBERS, '7', '99999999999'], valid: ['64', '128', '1024']},
  level: {
    hostile: ['0', '1', '7', '10', 'raid10', 'linear', '-5', '5.0', '05', 'raid', '', 'RAID5', ' 5', '5 ', '0x5', '1e0'],
    valid: ['4', '5', '6', 'raid5', 'raid6', 'raid4'],
  },
  layout: {
    hostile: ['bogus', '', 'LEFT-SYMMETRIC', 'left-symmetric-6', '-1', '0', '99', 'parity-first'],
    valid: ['left-symmetric', 'right-asymmetric', 'parity-last', 'left-asymmetric'],
  },
  name: {hostile: ['', 'x'.repeat(5000), 'a:b:c', 'ñame', 'two\nlines', '../../etc', '-'], valid: ['r5ctl:fuzz', 'fuzz']},
  uuid: {
    hostile: [
      '',
      'zz',
      '00000000:00000000:00000000:0000000',
      '0123456789abcdef0123456789abcdef0',
      'g0000000:00000000:00000000:00000000',
      '-1',
      '0x10',
    ],
    valid: ['01234567:89abcdef:01234567:89abcdef', '0123456789abcdef0123456789abcdef', '00000000:00000000:00000000:00000000'],
  },
  'journal-mode': {hostile: ['', 'WRITE-BACK', 'write-through ', 'writeback', 'wb', '1'], valid: ['write-through', 'write-back']},
}
const PATH_FLAGS = new Set(['input', 'output', 'undo', 'copy', 'write-journal', 'dir'])
/**
 * Path flags where a FIFO must be refused at once. `--input` and `--output` accept a FIFO (docs/locking.md):
 * opening one waits for its peer, as `cat < fifo` does, so there a wait is the documented behaviour.
 */
const FIFO_REFUSED = new Set([...PATH_FLAGS].filter(f => f !== 'input' && f !== 'output'))

interface Form {
  name: string
  base: string[]
  /** the devices in `base` (a suffix of it), which device mutations replace */
  devices: string[]
  stdin?: boolean
}

const W_NEW = ['xj.img', 'x0.img', 'x1.img', 'x2.img']
/** one valid command line per command (and per mode where it reaches other code) */
const FORMS: Form[] = [
  {
    name: 'create',
    base: ['create', '--level', '5', '--raid-devices', '3', '--chunk', '64K', '--size', '2M', '--journal-size', '2M', '--write-journal', 'xj.img'],
    devices: W_NEW.slice(1),
  },
  {name: 'write', base: ['write', '--offset', '0', '--input', 'in.bin'], devices: [...ARRAYS.A]},
  {name: 'write-stdin', base: ['write', '--offset', '4096', '--length', '8K'], devices: [...ARRAYS.A], stdin: true},
  {name: 'read', base: ['read', '--offset', '0', '--length', '8K', '--output', 'out.bin'], devices: [...ARRAYS.A]},
  {name: 'read-stdout', base: ['read', '--offset', '4K', '--length', '16K'], devices: [...ARRAYS.A]},
  {name: 'read-dirty', base: ['read', '--output', 'out.bin'], devices: [...ARRAYS.C]},
  {name: 'examine', base: ['examine'], devices: [...ARRAYS.A]},
  {name: 'examine-j', base: ['examine', '--journal'], devices: [...ARRAYS.C]},
  {name: 'examine-journal', base: ['examine-journal'], devices: [...ARRAYS.D]},
  {name: 'dump-meta', base: ['dump-meta'], devices: [...ARRAYS.C]},
  {name: 'dump-meta-copy', base: ['dump-meta', '--copy', 'copy.img'], devices: [...ARRAYS.A]},
  {name: 'recover', base: ['recover'], devices: [...ARRAYS.C]},
  {name: 'recover-dry', base: ['recover', '--dry-run'], devices: [...ARRAYS.C]},
  {name: 'reclaim', base: ['reclaim'], devices: [...ARRAYS.D]},
  {name: 'check', base: ['check'], devices: [...ARRAYS.A]},
  {name: 'check-dirty', base: ['check', '--to', '64'], devices: [...ARRAYS.C]},
  {name: 'repair', base: ['repair'], devices: [...ARRAYS.A]},
  {name: 'repair-dry', base: ['repair', '--dry-run'], devices: [...ARRAYS.B]},
  {name: 'assemble', base: ['assemble'], devices: [...ARRAYS.C]},
  {name: 'undo', base: ['undo', 'u.undo'], devices: [...ARRAYS.A]},
  {name: 'detect', base: ['detect'], devices: [...ARRAYS.A]},
  {name: 'detect-dirty', base: ['detect'], devices: [...ARRAYS.C]},
]
const REPORTS = new Set(['examine', 'examine-j', 'examine-journal', 'dump-meta', 'assemble', 'check', 'check-dirty', 'detect', 'detect-dirty'])

interface Case {
  id: number
  form: string
  argv: string[]
  /** what was hostile about it, for grouping */
  tag: string
  stdin?: boolean
  unknownCommand?: boolean
}

// ---------------------------------------------------------------------------------------------
// case generation

const specs = new Map<string, CommandSpec>()

function commandOf(argv: string[]): string {
  return argv[0]
}

function flagsOf(command: string): [string, CommandSpec['flags'][string]][] {
  return Object.entries({...specs.get(command)!.flags, ...BASE_FLAGS})
}

function valuesFor(flag: string, type: string): {hostile: string[]; valid: string[]} {
  if (PATH_FLAGS.has(flag)) return {hostile: PATHS, valid: ['out.bin', 'new.undo', 'copy.img', 'in.bin']}
  return (
    STRING_FLAG_VALUES[flag] ??
    (type === 'integer' ? {hostile: NUMBERS, valid: ['0', '1', '3', '4', '7']} : {hostile: [...NUMBERS, ...PATHS], valid: ['0']})
  )
}

/** `argv` with flag `--name`'s value set to `value` (added when absent) */
function setFlag(argv: string[], name: string, value: string): string[] {
  const out = [...argv]
  const i = out.indexOf(`--${name}`)
  if (i >= 0) out[i + 1] = value
  else out.splice(1, 0, `--${name}`, value)
  return out
}

function withDevices(form: Form, devices: string[]): string[] {
  return [...form.base, ...devices]
}

/** the values every fixed sweep uses; the rest of NUMBERS and PATHS come up in the random part */
const CORE_NUMBERS = [
  '-1',
  '-0',
  '',
  '4294967296',
  '4294967295',
  '4294967297',
  '9007199254740992',
  '9007199254740993',
  '18446744073709551616',
  '18446744073709551615',
  '99999999999999999999999999',
  '1.5',
  '0.5K',
  '0x10',
  '1e3',
  '3T',
  '99999999T',
  '4KK',
  'K',
  '4k',
  ' 4096',
  '+4096',
  'abc',
  'Infinity',
  '０',
  '4096\n',
]
const CORE_PATHS = [
  'nosuch.img',
  'emptydir',
  '/dev/null',
  '/dev/full',
  'zero.img',
  'junk.img',
  'at.img',
  'jt.img',
  'ro-a2.img',
  'la1.img',
  'ldang.img',
  '',
  'a 3.img',
  'no such dir/x.img',
  '-',
  'j.img',
  'c0.img',
]

function coreValues(flag: string, type: string): string[] {
  const all = valuesFor(flag, type).hostile
  if (all === NUMBERS) return CORE_NUMBERS
  if (all === PATHS) return CORE_PATHS
  return all.filter(v => !NUMBERS.includes(v) || CORE_NUMBERS.includes(v))
}

/**
 * The fixed cases: for the first form of each command every flag × the core hostile values, every core
 * path in a member slot and in the journal's; for every form the duplicated, mixed and missing devices
 * and a FIFO. Each changes one thing of a valid line, so a violation points at that one thing.
 */
function systematic(): Omit<Case, 'id'>[] {
  const out: Omit<Case, 'id'>[] = []
  const add = (form: Form, argv: string[], tag: string) => out.push({form: form.name, argv, tag, stdin: form.stdin})
  const swept = new Set<string>()
  for (const form of FORMS) {
    const command = commandOf(form.base)
    const base = withDevices(form, form.devices)
    const first = !swept.has(command)
    swept.add(command)
    add(form, base, 'valid')
    for (const [flag, spec] of first ? flagsOf(command) : []) {
      if (spec.type === 'boolean') {
        add(form, [...base, `--${flag}=yes`], `--${flag}=yes`)
        continue
      }
      for (const v of [...coreValues(flag, spec.type), ...(FIFO_REFUSED.has(flag) ? [FIFO] : [])])
        add(form, setFlag(base, flag, v), `--${flag} <${v}>`)
      const valid = valuesFor(flag, spec.type).valid
      add(form, [...base, `--${flag}`], `--${flag} (no value)`)
      add(form, setFlag(base, flag, valid[0]).concat([`--${flag}`, valid[valid.length - 1]]), `--${flag} twice`)
    }
    for (const p of first ? CORE_PATHS : []) {
      add(form, withDevices(form, [p, ...form.devices.slice(1)]), `device[0] <${p}>`)
      add(form, withDevices(form, [...form.devices.slice(0, -1), p]), `device[last] <${p}>`)
    }
    if (first) add(form, withDevices(form, [...form.devices.slice(0, -1), FIFO]), `device[last] <${FIFO}>`)
    add(form, form.base, 'no devices')
    add(form, withDevices(form, [form.devices[0]]), 'one device')
    // duplicated and mixed paths
    const d = form.devices
    add(form, withDevices(form, [...d, d[1]]), 'same path twice')
    add(form, withDevices(form, [...d, `./${d[1]}`]), './x and x')
    add(form, withDevices(form, [...d, `{W}/${d[1]}`]), 'absolute and relative')
    add(form, withDevices(form, [...d, d[0]]), 'journal twice')
    if (d.includes('a1.img')) add(form, withDevices(form, [...d, 'la1.img']), 'symlink to a member and the member')
    if (d.includes('j.img')) add(form, withDevices(form, [...d, 'lj.img']), 'symlink to the journal and the journal')
    add(form, withDevices(form, [...d.slice(0, 2), ...ARRAYS.B.slice(2)]), 'members of two arrays')
    add(form, withDevices(form, [ARRAYS.B[0], ...d.slice(1)]), "another array's journal")
    add(form, withDevices(form, [...d, ...ARRAYS.B]), 'two whole arrays')
    add(form, withDevices(form, [...d].reverse()), 'reversed order')
    // unknown and malformed flags
    for (const f of first ? ['--bogus', '-Z', '--', '---', '--=x', '--json=1', '-fff', '--no-force'] : ['--bogus'])
      add(form, [...base, f], `flag ${f}`)
    add(form, [...base.slice(0, 1), ...form.devices, ...base.slice(1)], 'flags after devices')
  }
  // demo: only the --dir values that fail fast (a working demo takes seconds and 100 MB)
  for (const dir of ['', 'a0.img', '/dev/null', 'fifo', 'la1.img', 'ldang.img/x'])
    out.push({form: 'demo', argv: ['demo', '--dir', dir], tag: `--dir <${dir}>`})
  for (const argv of [
    ['demo', '--dir'],
    ['demo', '--bogus'],
    ['demo', 'extra-arg'],
    ['demo', '--keep=no', '--dir', 'a0.img'],
    ['demo', '--json', '--dir', 'zero.img'],
  ])
    out.push({form: 'demo', argv, tag: argv.slice(1).join(' ')})
  for (const argv of [['exmaine', 'j.img'], ['frobnicate'], [''], ['--bogus'], ['-1'], ['4096']])
    out.push({form: 'unknown', argv, tag: 'unknown command', unknownCommand: true})
  return out
}

/** FIFO stays out: see FIFO */
const RANDOM_PATHS = PATHS

function randomCase(rng: Rng): Omit<Case, 'id'> {
  const form = rng.pick(FORMS)
  const command = commandOf(form.base)
  const devices = [...form.devices]
  let flags = form.base.slice(1)
  const tags: string[] = []
  const n = 1 + rng.int(4)
  for (let k = 0; k < n; k++) {
    switch (rng.int(9)) {
      case 0:
      case 1:
      case 2: {
        // a hostile (or valid) value for some flag
        const [flag, spec] = rng.pick(flagsOf(command))
        if (spec.type === 'boolean') {
          flags.push(rng.chance(0.8) ? `--${flag}` : `--${flag}=${rng.pick(['no', 'false', '1', ''])}`)
          tags.push(`--${flag}`)
          break
        }
        const vals = valuesFor(flag, spec.type)
        const v = rng.chance(0.75) ? rng.pick(vals.hostile) : rng.pick(vals.valid)
        flags = setFlag(['x', ...flags], flag, v).slice(1)
        tags.push(`--${flag} <${v}>`)
        break
      }
      case 3: {
        // a hostile path in a device slot
        const i = rng.int(devices.length + 1)
        const p = rng.pick(RANDOM_PATHS)
        devices.splice(i, rng.chance(0.7) ? 1 : 0, p)
        tags.push(`device <${p}>`)
        break
      }
      case 4: {
        // a duplicate in some spelling
        const d = rng.pick(devices.length ? devices : ['j.img'])
        const spelled = rng.pick([d, `./${d}`, `{W}/${d}`, d === 'a1.img' ? 'la1.img' : d === 'j.img' ? 'lj.img' : d])
        devices.splice(rng.int(devices.length + 1), 0, spelled)
        tags.push('duplicate')
        break
      }
      case 5: {
        // mix in another array's device
        const other = ARRAYS[rng.pick(ARRAY_NAMES)]
        devices.splice(rng.int(devices.length + 1), rng.int(2), rng.pick(other))
        tags.push('mixed arrays')
        break
      }
      case 6: {
        // drop devices
        devices.splice(rng.int(devices.length), 1 + rng.int(2))
        tags.push('fewer devices')
        break
      }
      case 7: {
        // flag syntax: unknown, missing value, --json
        const f = rng.pick(['--bogus', '--json', '--json', '--progress', '--no-flush', '-x', '--', `--${rng.pick(flagsOf(command))[0]}`])
        flags.push(f)
        tags.push(`flag ${f}`)
        break
      }
      default: // order: devices before flags
        tags.push('devices first')
    }
  }
  const argv = tags.includes('devices first') ? [command, ...devices, ...flags] : [command, ...flags, ...devices]
  return {form: form.name, argv, tag: tags.join(', '), stdin: form.stdin}
}

function generate(): Case[] {
  const rng = new Rng(SEED)
  const list = systematic()
  while (list.length < CASES) list.push(randomCase(rng))
  return list.map((c, id) => ({...c, id}))
}

// ---------------------------------------------------------------------------------------------
// checking one result

interface Violation {
  kind: 'hang' | 'signal' | 'exit code' | 'stack trace' | 'error format' | 'changed on failure'
  c: Case
  r: Spawned
  detail: string
}

function firstLines(s: string, n = 3): string {
  return s.split('\n').filter(Boolean).slice(0, n).join(' | ').slice(0, 400)
}

function check(c: Case, r: Spawned, changed: string[]): Violation[] {
  const v: Violation[] = []
  const add = (kind: Violation['kind'], detail: string) => v.push({kind, c, r, detail})
  if (r.timedOut) add('hang', `asleep without using CPU after ${TIMEOUT_MS} ms (killed)`)
  else if (r.status === null) add('signal', `killed by ${r.signal}`)
  else if (!(DOCUMENTED.has(r.status) || (r.status === 127 && c.unknownCommand))) add('exit code', `exit ${r.status} is not in docs/exit-codes.md`)
  const stack = stackLines(r.stderr)
  if (stack.length) add('stack trace', stack.slice(0, 2).join(' | '))
  const json = flagGiven(c.argv, '--json')
  if (!r.timedOut && r.status !== null && r.status !== 0 && r.status !== 127) {
    if (json) {
      try {
        const j = JSON.parse(r.stdout)
        if (j?.error && j.error.exitCode !== r.status) add('error format', `JSON error.exitCode ${j.error.exitCode} but exit ${r.status}`)
        if (j?.error && stackLines(String(j.error.message)).length) add('stack trace', `in JSON error.message: ${j.error.message.slice(0, 200)}`)
      } catch {
        if (!REPORTS.has(c.form) || r.stdout.trim() === '')
          add('error format', `--json, exit ${r.status}, but stdout is not JSON: ${JSON.stringify(r.stdout.slice(0, 200))}`)
      }
    } else {
      const lines = r.stderr
        .replace(/\n$/, '')
        .split('\n')
        .filter(l => l !== '')
      const silentReport = REPORTS.has(c.form) && lines.length === 0
      const shaped = lines.length >= 1 && lines.length <= 2 && /^r5ctl: \S/.test(lines[0]) && (lines.length === 1 || lines[1].startsWith('hint: '))
      if (!silentReport && !shaped) add('error format', `stderr is not one "r5ctl: ..." line (+ hint): ${JSON.stringify(r.stderr.slice(0, 300))}`)
    }
  }
  if (changed.length && r.status !== 0 && !documentedPartialWrite(c, r))
    add('changed on failure', `exit ${r.status ?? r.signal} but changed: ${changed.join(', ')}`)
  return v
}

/** a flag before `--` (after it, it is a device name) */
function flagGiven(argv: string[], flag: string): boolean {
  const end = argv.indexOf('--')
  return (end < 0 ? argv : argv.slice(0, end)).includes(flag)
}

/**
 * exit 75 is a simulated power cut, 76 a write that completed before its --crash-after point, and input
 * that ends early (exit 1) or overflows the array (exit 2) is written up to there (docs/exit-codes.md)
 */
function documentedPartialWrite(c: Case, r: Spawned): boolean {
  if (commandOf(c.argv) !== 'write') return false
  const out = r.stderr + r.stdout
  return (
    r.status === 75 || r.status === 76 || (r.status === 1 && /input ended after/.test(out)) || (r.status === 2 && /input is longer than/.test(out))
  )
}

function normalized(s: string): string {
  return s
    .replace(/'[^']*'|"[^"]*"|`[^`]*`/g, 'Q')
    .replace(/\([^()]*\)$/, '(DEV)')
    .replace(/-?\d[\d.,]*/g, 'N')
    .replace(/\s+/g, ' ')
    .slice(0, 160)
}

function signature(v: Violation): string {
  const cmd = v.c.form
  if (v.kind === 'hang' || v.kind === 'signal') return `${v.kind}|${cmd}|${v.c.tag.replace(/<[^>]*fifo[^>]*>/, '<fifo>')}`
  if (v.kind === 'changed on failure') return `${v.kind}|${cmd}|${v.r.status}|${normalized(firstLines(v.r.stderr, 1))}`
  return `${v.kind}|${cmd}|${v.r.status}|${normalized(v.detail)}`
}

function repro(c: Case): string {
  // a long run of one character (a 5000-byte --name) is spelled as the shell command that makes it
  const long = new Map<string, string>()
  const argv = c.argv.map((a, i) => {
    if (a.length <= 64 || !/^(.)\1*$/s.test(a)) return a
    long.set(`LONG${i}`, `"$(printf '%${a.length}s' '' | tr ' ' '${a[0]}')"`)
    return `LONG${i}`
  })
  let line = shellLine(['r5ctl', ...argv]).replaceAll('{W}', '"$PWD"')
  for (const [k, v] of long) line = line.replace(k, v)
  return `${line}${c.stdin ? '  (stdin: 16 KiB)' : ''}`
}

function describeViolation(v: Violation): string {
  return (
    `#${v.c.id} [${v.c.tag}] \`${repro(v.c)}\`\n      exit ${v.r.timedOut ? 'none (killed)' : (v.r.status ?? v.r.signal)}; ${v.detail}` +
    (v.kind !== 'error format' && v.r.stderr ? `\n      stderr: ${JSON.stringify(firstLines(v.r.stderr))}` : '')
  )
}

// ---------------------------------------------------------------------------------------------

describe('e2e: argument fuzzer (every command × hostile values and paths)', function () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-argfuzz-'))
  const template = path.join(root, 'template')
  const stdinData = pseudoRandom(16 * 1024, 99)
  const results: {c: Case; r: Spawned; changed: string[]; extra: string[]}[] = []
  const violations: Violation[] = []
  let immutable = false
  const workerDirs: string[] = []

  before(async function () {
    for (const id of [
      'create',
      'write',
      'read',
      'examine',
      'examine-journal',
      'dump-meta',
      'recover',
      'reclaim',
      'check',
      'repair',
      'assemble',
      'undo',
      'demo',
      'detect',
    ])
      specs.set(id, (await import(`../../src/impl/${id}.js`)).spec as CommandSpec)
    this.timeout(0)
    buildTemplate(template)
    const hashes = new Map(FIXTURE_FILES.map(n => [n, sha256File(path.join(template, n))]))
    const cases = generate().filter(c => !ONLY || ONLY.has(c.id))
    const watches: FixtureWatch[] = []
    for (let i = 0; i < JOBS; i++) {
      const dir = path.join(root, `w${i}`)
      copyFixture(template, dir)
      immutable = makeReadOnly(dir) || immutable
      workerDirs.push(dir)
      fs.mkdirSync(path.join(root, `locks${i}`))
      watches.push(new FixtureWatch(dir, FIXTURE_NAMES, template, hashes))
    }
    const t0 = Date.now()
    await pool(cases, JOBS, async (c, slot) => {
      const dir = workerDirs[slot]
      const argv = c.argv.map(a => a.replaceAll('{W}', dir))
      const r = await spawnR5ctl(argv, {
        cwd: dir,
        env: {R5CTL_LOCK_DIR: path.join(root, `locks${slot}`)},
        input: c.stdin ? stdinData : undefined,
        timeoutMs: TIMEOUT_MS,
      })
      const changed = watches[slot].changed()
      if (changed.length) watches[slot].restore(changed.filter(n => n !== FIFO))
      if (changed.includes(FIFO)) restoreFifo(dir)
      const extra = watches[slot].sweep()
      results.push({c, r, changed, extra})
      violations.push(...check(c, r, changed))
      // a long run leaves what it found so far
      if (env.R5CTL_FUZZ_REPORT && results.length % 100 === 0) fs.writeFileSync(env.R5CTL_FUZZ_REPORT, reportMarkdown(results.length))
    })
    const secs = (Date.now() - t0) / 1000
    results.sort((x, y) => x.c.id - y.c.id)
    violations.sort((x, y) => x.c.id - y.c.id)
    const codes = new Map<string, number>()
    for (const {r} of results) {
      const k = r.timedOut ? 'timeout' : String(r.status ?? r.signal)
      codes.set(k, (codes.get(k) ?? 0) + 1)
    }
    console.log(
      `    ${results.length} cases (${systematic().length} fixed, the rest random; seed ${SEED}, ${JOBS} at a time, ${secs.toFixed(1)} s; read-only images ${immutable ? 'immutable' : 'mode 0444 only'}); exit codes: ` +
        [...codes]
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => `${k}×${n}`)
          .join(' '),
    )
    if (env.R5CTL_FUZZ_REPORT) fs.writeFileSync(env.R5CTL_FUZZ_REPORT, reportMarkdown(results.length))
  })

  after(() => {
    for (const dir of workerDirs) for (const f of READ_ONLY) spawnSync('chattr', ['-i', path.join(dir, f)])
    if (env.R5CTL_KEEP_TMP === '1') console.log(`    (kept ${root})`)
    else fs.rmSync(root, {recursive: true, force: true})
  })

  function distinct(kind: Violation['kind']): Violation[] {
    const seen = new Map<string, Violation>()
    for (const v of violations) if (v.kind === kind && !seen.has(signature(v))) seen.set(signature(v), v)
    return [...seen.values()]
  }

  function expectNone(kind: Violation['kind']) {
    const all = violations.filter(v => v.kind === kind)
    const first = distinct(kind)
    assert.ok(
      all.length === 0,
      `${all.length} case(s) violate "${kind}", ${first.length} distinct; one command line each (run in the fixture folder):\n    ` +
        first.map(describeViolation).join('\n    '),
    )
  }

  function reportMarkdown(total: number): string {
    const lines = [`# Argument fuzzer findings (seed ${SEED}, ${total} cases)`, '']
    for (const kind of ['hang', 'signal', 'exit code', 'stack trace', 'changed on failure', 'error format'] as const) {
      const d = distinct(kind)
      if (!d.length) continue
      lines.push(`## ${kind} (${violations.filter(v => v.kind === kind).length} cases, ${d.length} distinct)`, '')
      for (const v of d) lines.push(`- ${describeViolation(v).replace(/\n\s+/g, '\n  ')}`)
      lines.push('')
    }
    // not failures of this test, but worth a look: hostile numbers a command took, files a failure left behind
    const accepted = results.filter(x => x.r.status === 0 && /^--[\w-]+ <.*>$/s.test(x.c.tag) && NUMBERS.includes(/<(.*)>$/s.exec(x.c.tag)![1]))
    if (accepted.length) {
      lines.push(`## accepted hostile numbers (exit 0; ${accepted.length} cases)`, '')
      for (const x of accepted) lines.push(`- #${x.c.id} \`${repro(x.c)}\``)
      lines.push('')
    }
    const leftovers = results.filter(x => x.r.status !== 0 && x.extra.length)
    if (leftovers.length) {
      lines.push(`## files left behind by a failed command (${leftovers.length} cases)`, '')
      for (const x of leftovers.slice(0, 40)) lines.push(`- #${x.c.id} \`${repro(x.c)}\` exit ${x.r.status ?? x.r.signal}: ${x.extra.join(', ')}`)
      lines.push('')
    }
    return lines.join('\n')
  }

  it('runs at least the configured number of cases, spread over every command', function () {
    if (ONLY) this.skip()
    assert.ok(results.length >= CASES, `${results.length} cases`)
    for (const form of [...FORMS.map(f => f.name), 'demo', 'unknown'])
      assert.ok(results.filter(x => x.c.form === form).length >= 5, `too few cases for ${form}`)
  })
  it('every command ends within the timeout', () => expectNone('hang'))
  it('no command dies of a signal', () => expectNone('signal'))
  it('every exit code is documented (127 only for an unknown command)', () => expectNone('exit code'))
  it('no stack trace on stderr or in a JSON error', () => expectNone('stack trace'))
  it('a failure is one `r5ctl:` line (+ hint) on stderr, or a JSON error with its exit code', () => expectNone('error format'))
  it('no device byte changes unless the command exited 0', () => expectNone('changed on failure'))
})

// ---------------------------------------------------------------------------------------------
// fixture building

function buildTemplate(dir: string): void {
  fs.mkdirSync(dir, {recursive: true})
  const at = (...names: string[]) => names.map(n => path.join(dir, n))
  const create = (level: number, names: readonly string[]) =>
    ok(createImages(at(...names), {size: '2M', journalSize: '2M', level, name: `r5ctl:fuzz${level}`}))
  create(5, ARRAYS.A)
  create(6, ARRAYS.B)
  create(4, ARRAYS.C)
  create(5, ARRAYS.D)
  fs.writeFileSync(path.join(dir, 'in.bin'), pseudoRandom(64 * 1024, 1))
  fs.writeFileSync(path.join(dir, 'empty.bin'), '')
  fs.writeFileSync(path.join(dir, 'short.bin'), pseudoRandom(1000, 2))
  const input = path.join(dir, 'in.bin')
  ok(r5ctl(['write', '--offset', '0', '--input', input, ...at(...ARRAYS.A)]))
  ok(r5ctl(['write', '--offset', '64K', '--input', input, '--undo', path.join(dir, 'u.undo'), ...at(...ARRAYS.A)]))
  ok(r5ctl(['write', '--offset', '0', '--input', input, ...at(...ARRAYS.B)]))
  expectExit(r5ctl(['write', '--offset', '0', '--input', input, '--crash-after', '8', ...at(...ARRAYS.C)]), 75)
  expectExit(r5ctl(['examine', '--journal', ...at(...ARRAYS.C)]), 5)
  ok(r5ctl(['write', '--offset', '0', '--input', input, '--journal-mode', 'write-back', ...at(...ARRAYS.D)]))
  expectExit(r5ctl(['examine', '--journal', ...at(...ARRAYS.D)]), 5)
  fs.copyFileSync(path.join(dir, 'a1.img'), path.join(dir, 'at.img'))
  fs.truncateSync(path.join(dir, 'at.img'), 1 << 20)
  fs.copyFileSync(path.join(dir, 'j.img'), path.join(dir, 'jt.img'))
  fs.truncateSync(path.join(dir, 'jt.img'), 512 << 10)
  fs.writeFileSync(path.join(dir, 'zero.img'), '')
  fs.writeFileSync(path.join(dir, 'junk.img'), pseudoRandom(2 << 20, 3))
  fs.copyFileSync(path.join(dir, 'a2.img'), path.join(dir, 'ro-a2.img'))
  fs.copyFileSync(path.join(dir, 'j.img'), path.join(dir, 'ro-j.img'))
  for (const [link, target] of Object.entries(FIXTURE_LINKS)) fs.symlinkSync(target, path.join(dir, link))
  fs.mkdirSync(path.join(dir, 'emptydir'))
}

/** the template's files and links into a worker folder, plus its own FIFO (cpSync copies no FIFOs) */
function copyFixture(template: string, dir: string): void {
  fs.mkdirSync(dir)
  for (const n of FIXTURE_FILES) fs.copyFileSync(path.join(template, n), path.join(dir, n))
  for (const [link, target] of Object.entries(FIXTURE_LINKS)) fs.symlinkSync(target, path.join(dir, link))
  fs.mkdirSync(path.join(dir, 'emptydir'))
  restoreFifo(dir)
}

function restoreFifo(dir: string): void {
  fs.rmSync(path.join(dir, FIFO), {recursive: true, force: true})
  const r = spawnSync('mkfifo', [path.join(dir, FIFO)])
  assert.equal(r.status, 0, `mkfifo: ${r.stderr.toString()}`)
}

/** mode 0444, and immutable when chattr can (root writes through a mode); true when immutable */
function makeReadOnly(dir: string): boolean {
  let all = true
  for (const f of READ_ONLY) {
    fs.chmodSync(path.join(dir, f), 0o444)
    all = spawnSync('chattr', ['+i', path.join(dir, f)]).status === 0 && all
  }
  return all
}
