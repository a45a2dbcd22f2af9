/**
 * Exclusive access for writers. Node has no flock(), so image files get an advisory lock of our
 * own: a lock file per device identity (st_dev, st_ino) in a lock folder, created with O_EXCL and
 * holding the owner's pid and command; a lock whose pid is gone is stale and taken over. Block
 * devices are additionally opened with O_EXCL, which Linux turns into an exclusive claim (it fails
 * with EBUSY while the kernel's md driver or a mount holds the device), as mdadm does. Readers
 * never lock.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {RefusedError} from './errors.js'

export function lockDir(): string {
  return process.env.R5CTL_LOCK_DIR ?? path.join(os.tmpdir(), 'r5ctl-locks')
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error: any) {
    return error.code === 'EPERM'
  }
}

export class DeviceLock {
  private constructor(readonly file: string) {}

  /** Take the lock for an open file descriptor's device; throws RefusedError (exit 3) when held. */
  static acquire(fd: number, device: string): DeviceLock {
    const st = fs.fstatSync(fd)
    const dir = lockDir()
    fs.mkdirSync(dir, {recursive: true, mode: 0o1777})
    const file = path.join(dir, `${st.dev}-${st.ino}.lock`)
    const me = `${process.pid} ${new Date().toISOString()} ${process.argv.slice(2).join(' ')}`.slice(0, 400)
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const lfd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o644)
        fs.writeSync(lfd, me)
        fs.closeSync(lfd)
        return new DeviceLock(file)
      } catch (error: any) {
        if (error.code !== 'EEXIST') throw error
        let owner = ''
        try { owner = fs.readFileSync(file, 'utf8') } catch { continue }
        const pid = Number(owner.split(' ')[0])
        if (pid === process.pid) return new DeviceLock('') // this process already holds it
        if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
          const [, since, ...cmd] = owner.split(' ')
          throw new RefusedError(`in use by r5ctl (pid ${pid}, since ${since}: ${cmd.join(' ')})`, device,
            'wait for it to finish; if that process is gone, remove ' + file, 'in-use')
        }
        // stale: its owner died without releasing it
        try { fs.unlinkSync(file) } catch { /* raced with another taker */ }
      }
    }
    throw new RefusedError('in use by another r5ctl process', device, 'try again', 'in-use')
  }

  release(): void {
    if (this.file) try { fs.unlinkSync(this.file) } catch { /* already gone */ }
  }
}
