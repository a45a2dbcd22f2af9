/**
 * Flags as src/cli/spec.ts defines them, on both the fast path and oclif's: an empty value is a usage error,
 * never "not given", and a surplus argument to a command without devices is our usage error, not oclif's
 * "not a command" (127).
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, expectExit, expectErrorLine, suiteTempDir, fingerprint} from '../helpers/cli.js'

describe('cli: flag values', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-flags-')
  const devs = () => ['j.img', 'a.img', 'b.img', 'c.img'].map(f => tmp.file(f))

  before(() => {
    expectExit(
      r5ctl([
        'create',
        '--level',
        '5',
        '--raid-devices',
        '3',
        '--chunk',
        '64K',
        '--size',
        '4M',
        '--journal-size',
        '2M',
        '--write-journal',
        ...devs(),
      ]),
      0,
    )
    fs.writeFileSync(tmp.file('in.bin'), Buffer.alloc(8192, 7))
  })

  for (const [what, args] of [
    ["write --undo ''", ['write', '--offset', '0', '--input', 'IN', '--undo', '']],
    ["recover --undo ''", ['recover', '--undo', '']],
    ["read --output ''", ['read', '--offset', '0', '--length', '4K', '--output', '']],
  ] as const) {
    for (const oclif of [false, true]) {
      it(`${what} is refused as a usage error and runs nothing${oclif ? ' (oclif path)' : ''}`, () => {
        const before = fingerprint(devs())
        const argv = args.map(a => (a === 'IN' ? tmp.file('in.bin') : a))
        const r = r5ctl([...argv, ...devs()], {env: oclif ? {R5CTL_NO_FAST_START: '1'} : {}})
        expectExit(r, 2)
        assert.match(expectErrorLine(r), /needs a value/)
        assert.deepEqual(fingerprint(devs()), before)
      })
    }
  }

  for (const oclif of [false, true]) {
    it(`demo with a surplus argument is a usage error (exit 2), not an unknown command${oclif ? ' (oclif path)' : ''}`, () => {
      const r = r5ctl(['demo', 'extra-arg'], {env: oclif ? {R5CTL_NO_FAST_START: '1'} : {}})
      expectExit(r, 2)
      assert.match(expectErrorLine(r), /demo takes no arguments/)
    })
  }
})

describe('cli: help text', function () {
  this.timeout(120000)
  const ids = fs
    .readdirSync(new URL('../../src/impl/', import.meta.url))
    .filter(f => f.endsWith('.js'))
    .map(f => f.slice(0, -3))

  // A description is written as paragraphs; its source line breaks are not the terminal's. Wrapped at
  // 80 columns, a line that is not a paragraph's last is never much shorter than the width.
  it("every command's help wraps its description as paragraphs, not at the source's line breaks", () => {
    const ragged: string[] = []
    for (const id of ids) {
      const r = r5ctl([id, '--help'], {env: {COLUMNS: '80'}})
      expectExit(r, 0)
      const text = r.stdout.toString('utf8')
      const body = text.slice(text.indexOf('DESCRIPTION'), text.indexOf('EXAMPLES'))
      const lines = body.split('\n').slice(1)
      lines.forEach((l, i) => {
        const next = lines.at(i + 1)
        if (next !== undefined && next.trim() !== '' && l.trim() !== '' && l.length < 50) ragged.push(`${id}: ${JSON.stringify(l)}`)
      })
    }
    assert.deepEqual(ragged, [])
  })
})
