/**
 * The start-up fast path (src/cli/fast.ts) runs a command line as oclif would, through oclif's own parser
 * with the command class's definitions. Checked here: its parse of a command line is Command#parse's (same
 * flags, argv and args, or both fail), a whole run prints the same and exits the same on both paths, and the
 * lines meant for it really skip oclif's Config. Also: its colours (src/render/colour.ts) are chalk's.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {Chalk} from 'chalk'
import {Config} from '@oclif/core'
import {parseCommandLine} from '../../src/cli/fast.js'
import {coloursAsync} from '../../src/render/colour.js'
import type {R5Command} from '../../src/base-command.js'
import type {CommandImpl} from '../../src/cli/spec.js'
import {BIN, ROOT, r5ctl, run as runProgram, suiteTempDir, type RunResult} from '../helpers/cli.js'

const here = path.dirname(new URL(import.meta.url).pathname)
const implDir = path.join(here, '..', '..', 'src', 'impl')
/** command modules under `dir`, a topic's as `topic/command` */
const modules = (dir: string): string[] =>
  fs
    .readdirSync(dir, {recursive: true, encoding: 'utf8'})
    .filter(f => f.endsWith('.js'))
    .map(f => f.slice(0, -3))
    .sort()
const ids = modules(implDir)

async function load(id: string): Promise<{impl: CommandImpl; cmd: typeof R5Command}> {
  const impl = (await import(`../../src/impl/${id}.js`)) as CommandImpl
  const cmd = (await import(`../../src/commands/${id}.js`)).default as typeof R5Command
  return {impl, cmd}
}

/** Command#parse of the real command class under a loaded Config, as `this.parse(this.ctor)` in run() */
async function oclifParse(config: Config, cmd: typeof R5Command, argv: string[]) {
  const instance = new (cmd as any)([...argv], config)
  try {
    const r = await instance.parse(cmd)
    return {flags: r.flags as Record<string, unknown>, argv: (r.argv as unknown[]).map(String), args: r.args as Record<string, unknown>}
  } catch {
    return null
  }
}

/** A seeded xorshift, so a failure names its case. */
function rng(seed: number) {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
}

function tokenPool(impl: CommandImpl): string[] {
  const pool = ['a.img', 'b.img', 'a.img', '-', '--', '-5', '', 'x', '0', '4K', '--json', '--progress', '--no-flush']
  pool.push('--help', '--nope', '-Z', '--json=1', '--no-json')
  for (const [name, f] of Object.entries(impl.spec.flags)) {
    pool.push(`--${name}`, `--${name}`, `--${name}=3`, `--${name}=`, `--no-${name}`)
    if (f.char) pool.push(`-${f.char}`, `-${f.char}4`, `-${f.char}=4`, `-${f.char}Y`)
    for (const a of f.aliases ?? []) pool.push(`--${a}`)
    if (f.type === 'string' && f.options) pool.push(...f.options)
  }
  return pool
}

/** Hand-picked and seeded random command lines for one command. */
function commandLines(id: string, impl: CommandImpl): string[][] {
  const pool = tokenPool(impl)
  const next = rng(id.length * 7919 + id.charCodeAt(0))
  const lines: string[][] = [[], ['a.img'], ['a.img', 'b.img', 'a.img'], ['--json', 'a.img'], ['a.img', '--', '--json']]
  for (const [name, f] of Object.entries(impl.spec.flags)) {
    const v = f.type === 'integer' ? '3' : f.type === 'string' && f.options ? f.options[0] : 'v'
    lines.push(f.type === 'boolean' ? [`--${name}`, 'a.img'] : [`--${name}`, v, 'a.img'])
    lines.push(f.type === 'boolean' ? ['a.img', `--${name}`] : [`--${name}=${v}`, 'a.img'])
  }
  for (let i = 0; i < 150; i++) lines.push(Array.from({length: Math.floor(next() * 7)}, () => pool[Math.floor(next() * pool.length)]))
  // every required flag present, so that some random lines parse
  const required = Object.entries(impl.spec.flags)
    .filter(([, f]) => f.type !== 'boolean' && f.required)
    .flatMap(([name, f]) => [`--${name}`, f.type === 'integer' ? '4' : '5'])
  for (let i = 0; i < 100; i++) {
    lines.push([...required, 'a.img', ...Array.from({length: Math.floor(next() * 6)}, () => pool[Math.floor(next() * pool.length)])])
  }
  return lines
}

/**
 * A preload that tells, on stderr's last line, whether oclif's Config module was loaded: the fast path never
 * loads it, oclif's path always does.
 */
const PROBE =
  'data:text/javascript,import{createRequire}from"node:module";const r=createRequire("/");process.on("exit",()=>{' +
  'process.stderr.write("\\nOCLIF-CONFIG:"+Object.keys(r.cache).some(k=>k.endsWith("/@oclif/core/lib/config/config.js"))+"\\n")})'

describe('start-up fast path', function () {
  this.timeout(300000)
  let config: Config

  before(async () => {
    config = await Config.load(ROOT)
  })

  it('knows every command', () => {
    assert.deepEqual(ids, modules(path.join(here, '..', '..', 'src', 'commands')))
    assert.ok(ids.includes('journal/add'), 'commands in a topic are listed')
  })

  for (const id of ids) {
    it(`parses ${id} command lines as Command#parse does`, async () => {
      const {impl, cmd} = await load(id)
      let accepted = 0
      for (const line of commandLines(id, impl)) {
        const fast = await parseCommandLine(impl.spec, line, {})
        const ref = await oclifParse(config, cmd, line)
        assert.deepEqual(fast, ref, `${id} ${JSON.stringify(line)}`)
        if (fast) accepted++
      }
      assert.ok(accepted >= 30, `only ${accepted} command lines of ${id} parsed`)
    })
  }

  describe('whole runs on both paths', () => {
    const tmp = suiteTempDir('r5ctl-fast-')
    const run = (argv: string[], oclif: boolean): RunResult & {sawConfig: boolean} => {
      const env = {R5CTL_NO_FAST_START: oclif ? '1' : undefined, DEBUG: undefined, NODE_ENV: undefined}
      const r = runProgram(process.execPath, ['--import', PROBE, BIN, ...argv], {cwd: tmp.path, env})
      const m = /\n?OCLIF-CONFIG:(true|false)\n$/.exec(r.stderr)
      assert.ok(m, `no probe line: ${r.stderr}`)
      return {...r, stderr: r.stderr.slice(0, m.index), sawConfig: m[1] === 'true'}
    }

    before(() => {
      const r = r5ctl(
        ['create', '--level', '5', '--raid-devices', '3', '--chunk', '64K', '--size', '4M', '--journal-size', '2M'].concat([
          '--write-journal',
          'j.img',
          'a.img',
          'b.img',
          'c.img',
        ]),
        {cwd: tmp.path},
      )
      assert.equal(r.status, 0, r.stderr)
    })

    // [command line, whether the fast path runs it]
    const cases: [string[], boolean][] = [
      [['examine', 'a.img'], true],
      [['examine', '--json', 'a.img', 'b.img'], true],
      [['examine', 'a.img', '--', 'b.img'], true],
      [['examine-journal', '--json', 'j.img', 'a.img', 'b.img', 'c.img'], true],
      [['examine', 'missing.img'], true],
      [['examine', '--json', 'missing.img'], true],
      [['read', '--offset', '', 'j.img', 'a.img', 'b.img', 'c.img'], true],
      [['--version'], true],
      [['journal', 'remove', '--dry-run', '--json', 'j.img', 'a.img', 'b.img', 'c.img'], true],
      [['journal', 'add', 'j.img', 'a.img', 'b.img', 'c.img'], true],
      [['journal', 'replace', '--dry-run', 'a.img', 'x.img', 'j.img', 'b.img', 'c.img'], true],
      [['journal', 'nope', 'j.img'], false],
      [['journal', 'add', '--help'], false],
      [['examine', '--nope', 'a.img'], false],
      [['write', 'j.img', 'a.img'], false],
      [['write', '--journal-mode', 'sideways', '-o', '0', 'j.img'], false],
      [['undo'], false],
      [['examine', '--help'], false],
      [['no-such-command'], false],
    ]
    for (const [argv, fast] of cases) {
      it(`${argv.join(' ')}: the same output and exit code${fast ? ', without oclif' : ', both through oclif'}`, () => {
        const a = run(argv, false)
        const b = run(argv, true)
        assert.equal(a.sawConfig, !fast, `fast path ${fast ? 'not taken' : 'taken'}: ${a.stderr}`)
        assert.ok(b.sawConfig)
        assert.equal(a.status, b.status, `exit codes: ${a.stderr} / ${b.stderr}`)
        assert.equal(a.stderr, b.stderr)
        assert.equal(a.stdout.toString('utf8'), b.stdout.toString('utf8'))
      })
    }
  })

  it('colours: plain text at level 0, chalk itself at level 1', async () => {
    const samples = [
      '',
      'x',
      'two words',
      'a\nb',
      'a\r\nb\nc\n',
      '\n',
      'in \u001b[31mred\u001b[39m and \u001b[1mbold\u001b[22m',
      '\u001b[2mdim\u001b[22m\nnext',
      42,
    ]
    for (const lvl of [0, 1] as const) {
      const mine = await coloursAsync(lvl)
      const ref = new Chalk({level: lvl})
      for (const style of ['red', 'green', 'yellow', 'bold', 'dim'] as const) {
        for (const s of samples) assert.equal(mine[style](s), ref[style](s as string), `${style} level ${lvl} ${JSON.stringify(s)}`)
        assert.equal(mine[style]('a', 'b'), ref[style]('a', 'b'))
        assert.equal(mine[style](mine.red('x\ny')), ref[style](ref.red('x\ny')))
      }
    }
  })
})
