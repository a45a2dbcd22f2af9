/**
 * Exclusive access: a second writer on a set that a first writer holds is refused with exit 3 and
 * the first completes intact; readers are never locked out; a killed writer leaves no lock behind,
 * and of many writers racing for it exactly one goes ahead; users exclude each other, whatever
 * umask the first of them ran with.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as os from 'node:os'
import {BIN, r5ctl, run, expectExit, expectErrorLine, suiteTempDir, pseudoRandom, fingerprint, createImages} from '../helpers/cli.js'
import {createImageArray} from '../helpers/array.js'
import {startHolder, race, release} from '../helpers/holders.js'

describe('e2e: exclusive access for writers', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-lock-')
  /** how many flock write locks a process holds (/proc/locks) */
  const locksOf = (pid: number) =>
    fs
      .readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .filter(l => new RegExp(`FLOCK\\s+\\S+\\s+WRITE\\s+${pid}\\s`).test(l)).length
  const devs = () => ['j.img', 'a.img', 'b.img', 'c.img', 'd.img'].map(f => tmp.file(f))

  before(() => {
    expectExit(createImages(devs(), {size: '160M', journalSize: '48M'}), 0)
    fs.writeFileSync(tmp.file('big.bin'), pseudoRandom(120 << 20, 7))
  })

  it('refuses a second writer with exit 3 while the first completes intact', async () => {
    const first = spawn(process.execPath, [BIN, 'write', '--offset', '0', '--input', tmp.file('big.bin'), ...devs()], {
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const done = new Promise<number>(resolve => first.on('exit', code => resolve(code ?? -1)))
    // wait until the first writer holds its locks
    const t0 = Date.now()
    while (locksOf(first.pid!) < 5 && Date.now() - t0 < 20000) await new Promise(r => setTimeout(r, 20))
    assert.equal(locksOf(first.pid!), 5, 'the first writer locks every device')
    const second = r5ctl(['write', '--offset', '0', '--length', '4096', '--input', tmp.file('big.bin'), ...devs()])
    expectExit(second, 3)
    const line = expectErrorLine(second)
    assert.match(line, new RegExp(`in use by another writer \\(pid ${first.pid}: r5ctl write --offset 0 `))
    // readers are not locked out
    expectExit(r5ctl(['examine', ...devs()]), 0)
    assert.equal(await done, 0, 'the first writer completes')
    const out = tmp.file('back.bin')
    expectExit(r5ctl(['read', '--offset', '0', '--length', String(120 << 20), '--output', out, ...devs()]), 0)
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(tmp.file('big.bin'))), 'the first write is intact')
  })

  it('lets a writer go ahead after the previous one was killed holding its locks', async () => {
    const dead = startHolder(devs())
    assert.deepEqual(await race([dead]), ['won'])
    dead.proc.kill('SIGKILL')
    await dead.exited
    const before = fingerprint(devs())
    expectExit(r5ctl(['write', '--offset', '0', '--length', '4096', '--input', tmp.file('big.bin'), ...devs()]), 0)
    assert.notDeepEqual(fingerprint(devs()), before)
  })

  it('lets exactly one of eight writers through when they race for a lock whose owner was killed', async function () {
    this.timeout(300000) // 54 node processes on what may be a busy machine
    const target = [tmp.file('a.img')]
    for (let round = 0; round < 6; round++) {
      const dead = startHolder(target)
      assert.deepEqual(await race([dead]), ['won'])
      dead.proc.kill('SIGKILL')
      await dead.exited
      const racers = Array.from({length: 8}, () => startHolder(target))
      const answers = await race(racers)
      await release(racers)
      const won = answers.filter(a => a === 'won').length
      assert.equal(won, 1, `round ${round}: ${won} writers went ahead: ${JSON.stringify(answers)}`)
      for (const a of answers) if (a !== 'won') assert.match(a, /^refused 3 /)
    }
  })
})

describe('e2e: writers of different users', function () {
  this.timeout(120000)
  const NOBODY = 65534
  let dir = ''
  let devs: string[] = []

  before(function () {
    if (process.getuid?.() !== 0) this.skip() // running as another user needs root
    // a folder every user may enter, holding images that user nobody owns
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-users-'))
    fs.chmodSync(dir, 0o755)
    devs = createImageArray(path.join(dir, 'arr'), {level: 5, raidDevices: 3, size: '4M', journalSize: '2M'}).all
    fs.chmodSync(path.join(dir, 'arr'), 0o755)
    fs.writeFileSync(path.join(dir, 'in.bin'), pseudoRandom(8192, 3))
    for (const f of [...devs, path.join(dir, 'in.bin')]) fs.chownSync(f, NOBODY, NOBODY)
  })
  after(() => {
    if (dir) fs.rmSync(dir, {recursive: true, force: true})
  })

  it('lets another user write after root wrote with a strict umask, and each excludes the other', async () => {
    const args = ['write', '--offset', '0', '--input', path.join(dir, 'in.bin'), ...devs]
    // root's run, with umask 077, is the first to lock anything
    expectExit(run('sh', ['-c', 'umask 077 && exec "$0" "$@"', process.execPath, BIN, ...args]), 0)
    expectExit(r5ctl(args, {uid: NOBODY, gid: NOBODY}), 0)
    // two users still exclude each other, both ways
    for (const [holderUid, otherUid] of [
      [0, NOBODY],
      [NOBODY, 0],
    ]) {
      const h = startHolder(devs, {uid: holderUid, gid: holderUid})
      assert.deepEqual(await race([h]), ['won'])
      const second = r5ctl(args, {uid: otherUid, gid: otherUid})
      await release([h])
      expectExit(second, 3)
      assert.match(expectErrorLine(second), /in use/)
    }
  })
})
