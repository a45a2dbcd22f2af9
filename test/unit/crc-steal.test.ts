/**
 * Work stealing in the checksum addon: a wait for pages of a job the helper thread has not taken yet
 * runs those pages on the waiting thread and posts the rest again for the helper (native
 * helper_steal). Pinned to one CPU (taskset), the JS thread nearly always reaches its wait before the
 * helper runs, so the stolen prefix, the re-posted rest and the hand-over between them are what is
 * exercised. Every result is checked against the pure-JS reference (crc32cRawReference) and the file
 * read through fs.readSync: partial waits of increasing size on checksum and read jobs, a job
 * superseded half-stolen, and a read that fails (end of file) inside the stolen part and after it.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {readAsyncAvailable} from '../../src/engine/checksum.js'
import {which} from '../helpers/cli.js'
import {skipWithoutNative} from '../helpers/addon.js'

const here = path.dirname(fileURLToPath(import.meta.url)) // dist/test/unit
const CHECKSUM = path.resolve(here, '../../src/engine/checksum.js')

// the child: every check throws; prints "ok <checks>" at the end
const CHILD = `
const fs = require('node:fs'), os = require('node:os'), path = require('node:path')
const assert = require('node:assert/strict')
import(${JSON.stringify(CHECKSUM)}).then(c => {
  const PAGE = 4096
  let checks = 0
  const ref = (seed, buf, i) => c.crc32cRawReference(seed, buf.subarray(i * PAGE, (i + 1) * PAGE))
  const fill = (n, s) => { const b = new Uint8Array(n * PAGE); let x = s; for (let i = 0; i < b.length; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24 } return b }
  const prefix = (what, seed, buf, out, k) => { for (let i = 0; i < k; i++) { assert.equal(out[i], ref(seed, buf, i), what + ': page ' + i); checks++ } }
  // checksum jobs: waits of growing size, each time the prefix is final
  for (const n of [1, 63, 64, 65, 1000, 4096]) {
    const buf = fill(n, n), out = new Uint32Array(n).fill(0xdeadbeef), seed = 0x1234 + n
    const job = c.crc32cPagesAsync(seed, buf, out)
    for (const k of [1, 2, 64, 65, 129, Math.floor(n / 2), n]) {
      const kk = Math.min(k, n)
      job.wait(kk)
      prefix('pages ' + n + ' wait ' + kk, seed, buf, out, kk)
    }
  }
  // a job stolen in part, then superseded by the next one: both complete and right
  {
    const a = fill(2000, 7), b = fill(300, 8), oa = new Uint32Array(2000), ob = new Uint32Array(300)
    const ja = c.crc32cPagesAsync(1, a, oa)
    ja.wait(10)
    const jb = c.crc32cPagesAsync(2, b, ob)
    jb.wait(300)
    prefix('superseded', 1, a, oa, 2000)
    prefix('successor', 2, b, ob, 300)
  }
  // read jobs on a file: growing waits; a read that ends inside the stolen part, and after it
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-steal-'))
  try {
    const file = path.join(dir, 'f.img'), data = fill(3000, 99)
    fs.writeFileSync(file, data)
    const fd = fs.openSync(file, 'r')
    for (const [pos, n, waits] of [[0, 3000, [1, 65, 700, 3000]], [PAGE * 5 + 512, 2000, [3, 2000]]]) {
      const buf = new Uint8Array(n * PAGE), out = new Uint32Array(n)
      const job = c.readPagesAsync(fd, pos, buf, 5, out, 0)
      for (const k of waits) {
        job.wait(k)
        assert.deepEqual(Buffer.from(buf.subarray(0, k * PAGE)), Buffer.from(data.subarray(pos, pos + k * PAGE)), 'read bytes ' + k); checks++
        prefix('read sums ' + k, 5, buf, out, k)
      }
    }
    for (const [start, endsAfter] of [[2990, 10], [2900, 100]]) {
      // n pages from page 'start': the file ends after 'endsAfter' of them
      const n = 200, buf = new Uint8Array(n * PAGE), out = new Uint32Array(n)
      const job = c.readPagesAsync(fd, start * PAGE, buf, 6, out, 0)
      job.wait(Math.min(endsAfter, 5))
      assert.throws(() => job.wait(n), e => e.code === 'ESHORT' && e.pages === endsAfter, 'short read after ' + endsAfter); checks++
      prefix('before the end', 6, buf, out, endsAfter)
    }
    fs.closeSync(fd)
  } finally {
    fs.rmSync(dir, {recursive: true, force: true})
  }
  console.log('ok ' + checks)
}).catch(e => { console.error(e && e.stack || e); process.exit(1) })
`

describe('checksum addon: a waiting thread steals what the helper has not started', function () {
  this.timeout(120000)
  before(function () {
    skipWithoutNative(this, readAsyncAvailable, 'helper thread')
  })

  for (const pinned of [true, false]) {
    it(
      pinned ? 'pinned to one CPU: stolen prefixes, re-posted rests and failed reads give the reference results' : 'on every CPU: the same checks',
      function () {
        const taskset = which('taskset')
        if (pinned && !taskset) this.skip()
        const argv = pinned ? [taskset!, '-c', '0', process.execPath, '-e', CHILD] : [process.execPath, '-e', CHILD]
        const r = spawnSync(argv[0], argv.slice(1), {encoding: 'utf8', env: {...process.env, R5CTL_CRC: ''}})
        assert.equal(r.status, 0, `child failed:\n${r.stderr}`)
        const m = /^ok (\d+)$/m.exec(r.stdout)
        assert.ok(m && Number(m[1]) > 10000, `child said: ${r.stdout}`)
      },
    )
  }
})
