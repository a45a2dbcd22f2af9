/**
 * r5ctl's inputs and outputs behave like a Unix tool's: `write --input` takes a regular file, a pipe, a FIFO or
 * stdin (to the end of the input, or --length bytes) and refuses anything else before touching a device; a
 * closed stdout (`| head`) ends quietly, and a failing one (/dev/full) is one error line, never a stack trace.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {
  BIN,
  r5ctl,
  run,
  ok,
  expectExit,
  expectErrorLine,
  fingerprint,
  pseudoRandom,
  suiteTempDir,
  assertSameBytes,
  type RunResult,
  type RunOptions,
} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const PAGE = 4096
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
/** the r5ctl command line for a shell */
const cli = (args: string[]) => [q(process.execPath), q(BIN), ...args.map(q)].join(' ')
/** run a bash script (pipes, FIFOs and redirections as a user types them) */
const bash = (script: string, opts: RunOptions = {}): RunResult => run('bash', ['-c', script], opts)
/** both ways a command line runs: without oclif's Config (bin/run.js's fast path) and through oclif */
const PATHS: [string, Record<string, string>][] = [
  ['fast path', {}],
  ['oclif path', {R5CTL_NO_FAST_START: '1'}],
]

describe('e2e: inputs and outputs behave like a Unix tool', function () {
  const tmp = suiteTempDir()
  let a: ImageArray
  /** the bytes of a's range [off, off + len) */
  const readBack = (off: number, len: number) => ok(r5ctl(['read', '--offset', String(off), '--length', String(len), ...a.all])).stdout
  const unchanged = (before: Record<string, string>, what: string) => assert.deepEqual(fingerprint(a.all), before, `${what} changed a device`)

  before(function () {
    // 3 data disks of 8 MiB: a 24 MiB array, more than write's read-ahead of stdin
    a = createImageArray(tmp.file('a'), {level: 5, raidDevices: 4, chunk: '64K', size: '8M', journalSize: '4M'})
    // a known background, so that bytes beyond a write's end can be checked to keep their old value
    const bg = tmp.file('background.bin')
    fs.writeFileSync(bg, pseudoRandom(a.sizeBytes, 1))
    ok(r5ctl(['write', '--offset', '0', '--input', bg, ...a.all]))
  })

  describe('write --input accepts a file, a pipe, a FIFO or stdin', function () {
    it('a pipe without --length writes exactly the bytes that arrived, also when they end inside a page', function () {
      const data = pseudoRandom(3 * PAGE + 100, 2)
      const file = tmp.file('pipe.bin')
      fs.writeFileSync(file, data)
      const before = readBack(8 * PAGE, 5 * PAGE)
      ok(bash(`cat ${q(file)} | ${cli(['write', '--offset', String(8 * PAGE), ...a.all])}`))
      const after = readBack(8 * PAGE, 5 * PAGE)
      assertSameBytes(after.subarray(0, data.length), data, 'the written range')
      assertSameBytes(after.subarray(data.length), before.subarray(data.length), "the bytes after the input's end")
    })

    it('stdin without --length writes everything that arrived', function () {
      const data = pseudoRandom(5 * PAGE, 3)
      ok(r5ctl(['write', '--offset', String(64 * PAGE), ...a.all], {input: data}))
      assertSameBytes(readBack(64 * PAGE, data.length), data, 'the written range')
    })

    it('a FIFO given as --input is read to its end', function () {
      const data = pseudoRandom(7 * PAGE + 1, 4)
      const file = tmp.file('fifo.bin')
      const fifo = tmp.file('fifo')
      fs.writeFileSync(file, data)
      ok(run('mkfifo', [fifo]))
      ok(bash(`cat ${q(file)} > ${q(fifo)} & ${cli(['write', '--offset', String(128 * PAGE), '--input', fifo, ...a.all])}; s=$?; wait; exit $s`))
      assertSameBytes(readBack(128 * PAGE, data.length), data, 'the written range')
    })

    it('a file whose size reads as 0 (/proc) is read to its end', function () {
      const file = '/proc/sys/kernel/ostype'
      const data = fs.readFileSync(file)
      assert.ok(data.length > 0 && fs.statSync(file).size === 0, `${file}: expected content with size 0`)
      ok(r5ctl(['write', '--offset', String(256 * PAGE), '--input', file, ...a.all]))
      assertSameBytes(readBack(256 * PAGE, data.length), data, 'the written range')
    })

    it("a pipe longer than write's read-ahead, ending inside a page, is written to its end", function () {
      const data = pseudoRandom(12 * 1024 * 1024 + 123, 5)
      const file = tmp.file('long.bin')
      fs.writeFileSync(file, data)
      const off = 1 << 20
      const before = readBack(off, data.length + PAGE)
      ok(bash(`cat ${q(file)} | ${cli(['write', '--offset', String(off), ...a.all])}`))
      const after = readBack(off, data.length + PAGE)
      assertSameBytes(after.subarray(0, data.length), data, 'the written range')
      assertSameBytes(after.subarray(data.length), before.subarray(data.length), "the bytes after the input's end")
      const j = ok(r5ctl(['examine-journal', ...a.all]))
      assert.match(j.stdout.toString(), /State : clean/)
    })

    it('a pipe with --length that ends early fails with exit 1, says how many bytes arrived, and writes nothing', function () {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['write', '--offset', '0', '--length', String(16 * PAGE), ...a.all], {input: pseudoRandom(10 * PAGE + 5, 6)}), 1)
      assert.match(expectErrorLine(r), new RegExp(`input ended after ${10 * PAGE + 5} of ${16 * PAGE} bytes`))
      unchanged(before, 'a short input')
    })

    it('a pipe longer than the room up to the end of the array is refused and writes nothing', function () {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['write', '--offset', String(a.sizeBytes - 2 * PAGE), ...a.all], {input: pseudoRandom(2 * PAGE + 1, 7)}), 2)
      assert.match(expectErrorLine(r), /beyond the end of the array/)
      unchanged(before, 'an input longer than the array')
    })

    it('a pipe longer than the whole array fails, and leaves the journal clean', function () {
      const data = pseudoRandom(a.sizeBytes + 1, 8)
      const file = tmp.file('huge.bin')
      fs.writeFileSync(file, data)
      const r = expectExit(bash(`cat ${q(file)} | ${cli(['write', '--offset', '0', ...a.all])}`), 2)
      assert.match(expectErrorLine(r), /input is longer than the \d+ bytes from offset 0 to the end of the array/)
      const j = ok(r5ctl(['examine-journal', ...a.all]))
      assert.match(j.stdout.toString(), /State : clean/)
      fs.rmSync(file)
    })
  })

  describe('write --input refuses what is not a file or a pipe, before any device write', function () {
    it('a directory: exit 2, naming it, every device unchanged', function () {
      const before = fingerprint(a.all)
      const dir = tmp.file('a-directory')
      fs.mkdirSync(dir)
      const r = expectExit(r5ctl(['write', '--offset', '0', '--input', dir, ...a.all]), 2)
      expectErrorLine(r, {device: dir})
      unchanged(before, 'write --input DIR')
    })

    it('a character device (/dev/zero): exit 2, naming it, every device unchanged', function () {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['write', '--offset', '0', '--input', '/dev/zero', ...a.all]), 2)
      expectErrorLine(r, {device: '/dev/zero'})
      unchanged(before, 'write --input /dev/zero')
    })

    it('standard input that is a character device (/dev/null): exit 2, every device unchanged', function () {
      const before = fingerprint(a.all)
      const r = expectExit(bash(`${cli(['write', '--offset', '0', ...a.all])} < /dev/null`), 2)
      expectErrorLine(r, {device: 'standard input'})
      unchanged(before, 'write < /dev/null')
    })
  })

  for (const [name, env] of PATHS) {
    describe(`standard output (${name})`, function () {
      it('read | head ends quietly with exit 0', function () {
        const status = tmp.file(`status-${name}`)
        const err = tmp.file(`stderr-${name}`)
        ok(bash(`{ ${cli(['read', ...a.all])} 2> ${q(err)}; echo $? > ${q(status)}; } | head -c 10 > /dev/null`, {env}))
        assert.equal(fs.readFileSync(err, 'utf8'), '', 'stderr')
        assert.equal(fs.readFileSync(status, 'utf8').trim(), '0', 'exit status of read')
      })

      for (const args of [['read', '--length', '1M'], ['examine'], ['examine', '--json'], ['dump-meta'], ['examine-journal', '--json']]) {
        it(`${args.join(' ')} > /dev/full: one line "cannot write standard output: no space left on device", exit 1`, function () {
          const r = expectExit(bash(`${cli([...args, ...a.all])} > /dev/full`, {env}), 1)
          assert.equal(expectErrorLine(r), 'r5ctl: cannot write standard output: no space left on device')
        })
      }
    })
  }
})
