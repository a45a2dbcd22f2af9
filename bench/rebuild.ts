/**
 * The rebuild row: a RAID5 of 4 members, each `member` bytes of random data (parity made by create),
 * slot 1 left out and rebuilt onto a preallocated file. Its floor reads the three survivors' data
 * areas and writes one member's bytes with dd; the alternative copies one member with dd. Before each
 * run the survivors' and the new file's superblock areas are put back, so every run rebuilds all of it.
 */
import {randomFillSync} from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {MiB, preallocate, r5, settle, type Op} from './ops.js'
import {run} from './timer.js'

const OFFSET = MiB

/** `bytes` of random data from `offset` of a new file */
function randomFile(file: string, offset: number, bytes: number): void {
  const buf = Buffer.alloc(8 * MiB)
  const fd = fs.openSync(file, 'w')
  fs.writeSync(fd, Buffer.alloc(offset), 0, offset, 0)
  for (let done = 0; done < bytes; done += buf.length) fs.writeSync(fd, randomFillSync(buf), 0, Math.min(buf.length, bytes - done), offset + done)
  fs.closeSync(fd)
}

export function rebuildOp(dir: string, member: number): Op {
  const f = (n: string) => path.join(dir, n)
  const members = [0, 1, 2, 3].map(i => f(`m${i}.img`))
  const survivors = [f('j.img'), members[0], members[2], members[3]]
  const target = f('new.img')
  const saved = [...survivors, target].map(d => ({d, copy: Buffer.alloc(0)}))
  const restore = () => {
    for (const s of saved) {
      const fd = fs.openSync(s.d, 'r+')
      fs.writeSync(fd, s.copy, 0, s.copy.length, 0)
      fs.closeSync(fd)
    }
    settle(dir)
  }
  const dd = (args: string) => `dd bs=1M status=none ${args}`
  return {
    name: 'rebuild 1 of 4 members',
    altName: 'dd 1 member → 1 file, fdatasync',
    setup: () => {
      fs.mkdirSync(dir, {recursive: true})
      for (const m of members) randomFile(m, OFFSET, member)
      preallocate(f('j.img'), 64 * MiB)
      preallocate(target, OFFSET + member)
      const sizeArgs = ['-z', `${OFFSET + member}`, '--journal-size', `${64 * MiB}`]
      run(r5('create', '-l', '5', '-n', '4', '-c', '64K', ...sizeArgs, '--no-flush', '--write-journal', f('j.img'), ...members))
      fs.rmSync(members[1])
      // only the superblock areas are kept: the bench's own RSS is inherited by what it spawns
      for (const s of saved) {
        s.copy = Buffer.alloc(OFFSET)
        const fd = fs.openSync(s.d, 'r')
        fs.readSync(fd, s.copy, 0, OFFSET, 0)
        fs.closeSync(fd)
      }
    },
    a: {argv: r5('rebuild', '--slot', '1', target, ...survivors), before: restore},
    baselines: () => {
      const reads = survivors.slice(1).map(file => ({file, offset: OFFSET, bytes: member}))
      const alt = {argv: ['sh', '-c', dd(`if=${members[0]} of=${f('alt.bin')} skip=${OFFSET} iflag=skip_bytes conv=fdatasync`)], before: restore}
      return {alt, moves: {reads, writes: [{like: target, bytes: member}]}}
    },
    check: r => {
      if (r.bytesWritten !== member) throw new Error(`rebuild wrote ${r.bytesWritten} bytes, the member has ${member}`)
    },
  }
}
