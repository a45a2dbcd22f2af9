/**
 * The start-up fast path (src/cli/fast.ts) must parse exactly as oclif does whenever it accepts a command
 * line, and its colours (src/render/colour.ts) must be chalk's. Both are compared with the real thing here:
 * every command's flags under hand-picked and seeded random command lines.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {Chalk} from 'chalk'
import {Parser} from '@oclif/core'
import {parse} from '../../src/cli/fast.js'
import {coloursAsync} from '../../src/render/colour.js'
import {R5Command} from '../../src/base-command.js'
import type {CommandImpl} from '../../src/cli/spec.js'

const here = path.dirname(new URL(import.meta.url).pathname)
const implDir = path.join(here, '..', '..', 'src', 'impl')
const ids = fs
  .readdirSync(implDir)
  .filter(f => f.endsWith('.js'))
  .map(f => f.slice(0, -3))
  .sort()

async function load(id: string): Promise<{impl: CommandImpl; cmd: typeof R5Command}> {
  const impl = (await import(`../../src/impl/${id}.js`)) as CommandImpl
  const cmd = (await import(`../../src/commands/${id}.js`)).default as typeof R5Command
  return {impl, cmd}
}

async function oclifParse(cmd: typeof R5Command, argv: string[]) {
  const {Flags} = await import('@oclif/core')
  const flags = {json: Flags.boolean({description: 'Format output as json.', helpGroup: 'GLOBAL'}), ...cmd.baseFlags, ...cmd.flags}
  try {
    const r = await Parser.parse([...argv], {flags, args: cmd.args, strict: cmd.strict, context: {} as any, '--': true} as any)
    return {flags: r.flags as Record<string, unknown>, argv: r.argv.map(String), args: r.args as Record<string, unknown>}
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
  const pool = [
    'a.img',
    'b.img',
    'j.img',
    'a.img',
    '-',
    '--',
    '-5',
    '',
    'x',
    '0',
    '7',
    '-1',
    '4K',
    '1.5',
    'write-back',
    'write-through',
    '--json',
    '--progress',
    '--no-flush',
    '--help',
    '--nope',
    '-Z',
    '--json=1',
    '--no-json',
  ]
  for (const [name, f] of Object.entries(impl.spec.flags)) {
    pool.push(`--${name}`, `--${name}`, `--${name}=3`, `--${name}=`, `--no-${name}`)
    if (f.char) pool.push(`-${f.char}`, `-${f.char}`, `-${f.char}4`, `-${f.char}=4`, `-${f.char}Y`, `-${f.char}-`)
    for (const a of f.aliases ?? []) pool.push(`--${a}`)
    if (f.type === 'string' && f.options) pool.push(...f.options)
  }
  return pool
}

describe('start-up fast path', () => {
  it('knows every command', () => {
    assert.deepEqual(
      ids,
      fs
        .readdirSync(path.join(here, '..', '..', 'src', 'commands'))
        .filter(f => f.endsWith('.js'))
        .map(f => f.slice(0, -3))
        .sort(),
    )
  })

  for (const id of ids) {
    it(`parses ${id} command lines exactly as oclif, or leaves them to oclif`, async () => {
      const {impl, cmd} = await load(id)
      const pool = tokenPool(impl)
      const next = rng(id.length * 7919 + id.charCodeAt(0))
      const lines: string[][] = [[], ['a.img'], ['a.img', 'b.img', 'a.img'], ['--json', 'a.img']]
      for (const [name, f] of Object.entries(impl.spec.flags)) {
        const v = f.type === 'integer' ? '3' : f.type === 'string' && f.options ? f.options[0] : 'v'
        lines.push(
          f.type === 'boolean' ? [`--${name}`, 'a.img'] : [`--${name}`, v, 'a.img'],
          f.type === 'boolean' ? ['a.img', `--${name}`] : [`--${name}=${v}`, 'a.img'],
        )
      }
      for (let i = 0; i < 400; i++) {
        const n = Math.floor(next() * 7)
        lines.push(Array.from({length: n}, () => pool[Math.floor(next() * pool.length)]))
      }
      // every required flag present, so that some random lines are accepted
      const required = Object.entries(impl.spec.flags)
        .filter(([, f]) => f.type !== 'boolean' && f.required)
        .flatMap(([name, f]) => [`--${name}`, f.type === 'integer' ? '4' : '5'])
      for (let i = 0; i < 200; i++) {
        const n = Math.floor(next() * 6)
        lines.push([...required, 'a.img', ...Array.from({length: n}, () => pool[Math.floor(next() * pool.length)])])
      }
      let accepted = 0
      for (const line of lines) {
        const fast = parse(impl.spec, line)
        if (!fast) continue
        accepted++
        const ref = await oclifParse(cmd, line)
        assert.ok(ref, `fast path accepted what oclif rejects: ${id} ${JSON.stringify(line)}`)
        assert.deepEqual(fast.flags, ref.flags, `flags of ${id} ${JSON.stringify(line)}`)
        assert.deepEqual(fast.argv, ref.argv, `argv of ${id} ${JSON.stringify(line)}`)
        assert.deepEqual(
          fast.args,
          Object.fromEntries(Object.entries(ref.args).filter(([, v]) => v !== undefined)),
          `args of ${id} ${JSON.stringify(line)}`,
        )
      }
      assert.ok(accepted >= 30, `only ${accepted} command lines of ${id} took the fast path`)
    })
  }

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
