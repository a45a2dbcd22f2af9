/**
 * Commands that walk the journal stay within the 128 MiB peak RSS the design sets for any log
 * size: on a 384 MiB live log, each is run once with the bench's probe (its VmHWM at exit).
 * dump-meta used to build its whole report in memory before printing it: 218 MiB here with --json,
 * 236 MiB as text.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {BIN, ok, expectExit, pseudoRandom, suiteTempDir, run} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/probe.js')
const LIMIT_MIB = 128

/** exit status, stdout bytes and peak RSS of one r5ctl run */
function probed(args: string[], probeFile: string): {status: number | null; stdoutBytes: number; rssMiB: number} {
  const r = run(process.execPath, ['--import', PROBE, BIN, ...args], {env: {...process.env, R5BENCH_PROBE: probeFile}})
  const rssMiB = JSON.parse(fs.readFileSync(probeFile, 'utf8')).maxRssKiB / 1024
  return {status: r.status, stdoutBytes: r.stdout.length, rssMiB}
}

describe('e2e: walking a 384 MiB log stays within 128 MiB of memory', function () {
  this.timeout(300_000)
  const tmp = suiteTempDir('r5ctl-memory-')
  let a: ImageArray

  before(function () {
    a = createImageArray(tmp.file('r5'), {level: 5, raidDevices: 5, size: '128M', journalSize: '512M'})
    fs.writeFileSync(tmp.file('in.bin'), pseudoRandom(384 << 20, 77))
    ok(run(process.execPath, [BIN, 'write', '--journal-mode', 'write-back', '--no-flush', '--offset', '0', '--input', tmp.file('in.bin'), ...a.all]))
    fs.rmSync(tmp.file('in.bin'))
  })

  for (const [name, args, exit] of [
    ['dump-meta --json', ['dump-meta', '--json'], 0],
    ['dump-meta', ['dump-meta'], 0],
    ['examine --journal --json', ['examine-journal', '--json'], 5],
    ['read (the journal replayed in memory)', ['read', '--output', '/dev/null'], 0],
    ['recover --dry-run --json', ['recover', '--dry-run', '--json'], 0],
  ] as const)
    it(`${name}: peak RSS under ${LIMIT_MIB} MiB`, function () {
      const r = probed([...args, ...a.all], tmp.file('probe.json'))
      assert.equal(r.status, exit)
      assert.ok(r.rssMiB < LIMIT_MIB, `peak RSS ${r.rssMiB.toFixed(1)} MiB (stdout ${r.stdoutBytes} bytes)`)
    })

  it('dump-meta --json streamed parses, and lists every meta block the walk passed', function () {
    const j = JSON.parse(expectExit(run(process.execPath, [BIN, 'dump-meta', '--json', ...a.all]), 0).stdout.toString())
    assert.ok(j.walkedBlocks > 100, `${j.walkedBlocks} blocks`)
    assert.equal(j.blocks.length, j.walkedBlocks)
    assert.equal(j.mismatches, 0)
  })
})
