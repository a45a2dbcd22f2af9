/**
 * Machine output that mdadm users already parse (examine --export / --brief, checked against
 * mdadm itself), and copying a journal off a device into an image that replays the same.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, expectExit, expectErrorLine, suiteTempDir, pseudoRandom, run, requireTool, createImages} from '../helpers/cli.js'

function kv(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .filter(l => l.includes('='))
      .map(l => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
}

describe('e2e: --export/--brief and dump-meta --copy', function () {
  this.timeout(120000)
  const tmp = suiteTempDir('r5ctl-export-')
  const devs = () => ['j.img', 'a.img', 'b.img', 'c.img', 'd.img'].map(f => tmp.file(f))

  before(() => {
    expectExit(createImages(devs(), {size: '32M', journalSize: '16M', name: 'r5ctl:exp'}), 0)
    fs.writeFileSync(tmp.file('in.bin'), pseudoRandom(3 << 20, 11))
  })

  it('examine --export carries the same values as mdadm --examine --export, plus MD_ROLE', function () {
    const mdadm = requireTool(this, 'mdadm')
    for (const [i, dev] of devs().slice(1).entries()) {
      const ours = kv(expectExit(r5ctl(['examine', '--export', dev]), 0).stdout.toString())
      const theirs = kv(run(mdadm, ['--examine', '--export', dev]).stdout.toString())
      for (const k of ['MD_LEVEL', 'MD_DEVICES', 'MD_NAME', 'MD_UUID', 'MD_UPDATE_TIME', 'MD_DEV_UUID', 'MD_EVENTS'])
        assert.equal(ours[k], theirs[k], `${k} of ${dev}`)
      assert.equal(ours.MD_ROLE, String(i))
    }
    const j = kv(r5ctl(['examine', '--export', devs()[0]]).stdout.toString())
    assert.equal(j.MD_ROLE, 'journal')
    assert.ok(Number(j.MD_JOURNAL_TAIL) >= 0)
  })

  it('examine --brief prints the ARRAY line mdadm prints', function () {
    const mdadm = requireTool(this, 'mdadm')
    const ours = r5ctl(['examine', '--brief', ...devs().slice(1)])
      .stdout.toString()
      .trim()
    const theirs = run(mdadm, ['--examine', '--brief', devs()[1]]).stdout.toString().trim().split('\n')[0]
    assert.equal(ours.replace(/\s+/g, ' '), theirs.replace(/\s+/g, ' '))
  })

  it('dump-meta --copy saves the live log into an image that replays to the same members', () => {
    const w = r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), '--crash-after', '9', ...devs()])
    expectExit(w, 75)
    const saved = tmp.file('saved-journal.img')
    expectExit(r5ctl(['dump-meta', '--copy', saved, devs()[0]]), 0)
    const ej = JSON.parse(r5ctl(['examine-journal', '--json', saved]).stdout.toString())
    assert.equal(ej.state, 'dirty')
    // replay from the copy onto copies of the members, and from the original onto the originals
    const copies = devs()
      .slice(1)
      .map((d, i) => {
        const c = tmp.file(`copy${i}.img`)
        fs.copyFileSync(d, c)
        return c
      })
    expectExit(r5ctl(['recover', saved, ...copies]), 0)
    expectExit(r5ctl(['recover', ...devs()]), 0)
    // the data areas (from the 1 MiB data offset) are identical; superblocks differ only in their update time
    const DATA = 1 << 20
    devs()
      .slice(1)
      .forEach((d, i) =>
        assert.ok(fs.readFileSync(d).subarray(DATA).equals(fs.readFileSync(copies[i]).subarray(DATA)), `member ${i} replays the same`),
      )
    // never overwrites
    const again = r5ctl(['dump-meta', '--copy', saved, devs()[0]])
    expectExit(again, 3)
    expectErrorLine(again, {device: saved})
  })

  it('examine-journal --export and assemble --export/--brief give key=value lines', () => {
    const ej = kv(r5ctl(['examine-journal', '--export', ...devs()]).stdout.toString())
    assert.equal(ej.MD_JOURNAL_STATE, 'clean')
    const as = kv(r5ctl(['assemble', '--export', '--readonly', ...devs()]).stdout.toString())
    assert.equal(as.MD_LEVEL, 'raid5')
    assert.equal(as.MD_DEVICES, '4')
    assert.equal(as.MD_JOURNAL_STATE, 'clean')
    assert.match(
      r5ctl(['assemble', '--brief', '--readonly', ...devs()]).stdout.toString(),
      /^ARRAY \/dev\/md\/exp\s+metadata=1\.2 UUID=[0-9a-f:]{35} name=r5ctl:exp/,
    )
  })
})
