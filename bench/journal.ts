/**
 * The journal rows: `journal remove` of a clean RAID5 4+1, `journal add` to it afterwards, and
 * `journal replace` of a journal holding a dirty write-back log of `logBytes` of data, which it
 * copies. Each run starts from its pre-state: the first MiB (superblocks, the log's start) of every
 * device put back. The target is absolute (≤ 0.5 s a run); the alternative is `node -e 0` for remove
 * and add (start-up is most of them), and dd copying the live log for replace.
 */
import {randomFillSync} from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {MiB, preallocate, r5, settle, type Op} from './ops.js'
import {run} from './timer.js'

export const JOURNAL_TARGET_SECONDS = 0.5

export function journalOps(dir: string, logBytes: number): Op[] {
  const f = (n: string) => path.join(dir, n)
  const members = [0, 1, 2, 3].map(i => f(`m${i}.img`))
  const [j, j2] = [f('j.img'), f('j2.img')]
  const heads = new Map<string, Buffer>()
  const save = () => {
    for (const d of [j, j2, ...members]) {
      const b = Buffer.alloc(MiB + 64 * 1024)
      const fd = fs.openSync(d, 'r')
      fs.readSync(fd, b, 0, b.length, 0)
      fs.closeSync(fd)
      heads.set(d, b)
    }
  }
  const restore = () => {
    for (const [d, b] of heads) {
      const fd = fs.openSync(d, 'r+')
      fs.writeSync(fd, b, 0, b.length, 0)
      fs.closeSync(fd)
    }
    settle(dir)
  }
  const json = (argv: string[], ok = [0]) => JSON.parse(run(argv, undefined, ok).stdout)
  const node0 = {argv: [process.execPath, '-e', '0']}
  let used = 0
  return [
    {
      name: 'journal remove',
      altName: 'node -e 0',
      setup: () => {
        fs.mkdirSync(dir, {recursive: true})
        const size = ['-z', `${MiB + logBytes}`, '--journal-size', `${2 * MiB + 2 * logBytes}`]
        run(r5('create', '-l', '5', '-n', '4', '-c', '64K', ...size, '--no-flush', '--write-journal', j, ...members))
        preallocate(j2, 2 * MiB + 2 * logBytes)
        save()
      },
      a: {argv: r5('journal', 'remove', j, ...members), before: restore},
      baselines: () => ({alt: node0}),
      check: r => {
        if (r.action !== 'remove') throw new Error(`journal remove reported ${r.action}`)
      },
    },
    {
      name: 'journal add',
      altName: 'node -e 0',
      setup: () => {
        // remove's pre-state, then removed: the array add starts from
        restore()
        run(r5('journal', 'remove', '--no-flush', j, ...members))
        save()
      },
      a: {argv: r5('journal', 'add', j2, ...members), before: restore},
      baselines: () => ({alt: node0}),
      check: r => {
        if (r.newJournal !== j2) throw new Error(`journal add made ${r.newJournal} the journal`)
      },
    },
    {
      name: 'journal replace (dirty log)',
      altName: 'dd log → 1 file, fdatasync',
      setup: () => {
        // add's pre-state (its last timed run left j2 added), j2 added, then a write-back write it keeps in the log
        restore()
        run(r5('journal', 'add', '--no-flush', j2, ...members))
        const input = f('input.bin')
        fs.writeFileSync(input, randomFillSync(Buffer.alloc(logBytes)))
        run(r5('write', '-o', '0', '-i', input, '--journal-mode', 'write-back', '--no-flush', j2, ...members))
        used = json(r5('examine-journal', j2, ...members), [5]).usedBytes
        fs.rmSync(j)
        preallocate(j, 2 * MiB + 2 * logBytes)
        heads.clear()
        save()
      },
      a: {argv: r5('journal', 'replace', j2, j, ...members), before: restore},
      baselines: () => ({
        alt: {
          argv: [
            'sh',
            '-c',
            `dd bs=1M status=none if=${j2} of=${f('alt.bin')} skip=${MiB} count=${used} iflag=skip_bytes,count_bytes conv=fdatasync`,
          ],
          before: () => settle(dir),
        },
      }),
      check: r => {
        if (!(r.copiedLogBytes >= used - 4096)) throw new Error(`journal replace copied ${r.copiedLogBytes} bytes of a ${used}-byte log`)
      },
    },
  ]
}
