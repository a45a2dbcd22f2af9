/**
 * Exclusive access for writers: an flock(2) LOCK_EX on the device's own file. An image file is
 * locked through the descriptor it is written by; a loop device through its backing file, so
 * a.img and /dev/loopN over it exclude each other. The kernel drops the lock when its process
 * ends however it ends, so there is never a stale lock to take over, no lock folder that a umask or
 * another user's permissions can spoil, and two users exclude each other whenever both can open
 * the file. Node has no flock(); fs-ext provides it (docs/locking.md says why that library).
 * Block devices are additionally opened with O_EXCL, which Linux turns into an exclusive claim
 * (EBUSY while the kernel's md driver, a mount or another such opener holds it), as mdadm does.
 * Readers never lock.
 */
import * as fs from 'node:fs'
import {createRequire} from 'node:module'
import {IoError, RefusedError} from './errors.js'
import {majorMinor} from './identity.js'

type Flock = (fd: number, flags: 'exnb' | 'shnb' | 'un') => void

/** fs-ext's flockSync, loaded when a writer first needs it (readers never load the native module) */
function flockSync(device: string): Flock {
  try {
    return (createRequire(import.meta.url)('fs-ext') as {flockSync: Flock}).flockSync
  } catch (error) {
    throw new IoError(
      `cannot lock for writing: the fs-ext module that provides flock() is not built (${(error as Error).message.split('\n')[0]})`,
      device,
      'reinstall r5ctl (npm ci builds it); nothing was written',
    )
  }
}

/** Who holds an flock on the file with this stat, from /proc/locks: "pid N: command" and whether it is a writer's, or null. */
function holder(st: fs.BigIntStats): {who: string; writer: boolean} | null {
  const [major, minor] = majorMinor(st.dev)
  let locks: string
  try {
    locks = fs.readFileSync('/proc/locks', 'utf8')
  } catch {
    return null
  }
  for (const line of locks.split('\n')) {
    const m = /^\d+:\s+FLOCK\s+\S+\s+(READ|WRITE)\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line)
    if (!m || BigInt(`0x${m[3]}`) !== major || BigInt(`0x${m[4]}`) !== minor || BigInt(m[5]) !== st.ino) continue
    let cmd = ''
    try {
      const argv = fs.readFileSync(`/proc/${m[2]}/cmdline`, 'utf8').split('\0').filter(Boolean)
      // node bin/run.js ARGS... reads better as r5ctl ARGS...
      cmd = (/(\/run\.js|r5ctl)$/.test(argv[1] ?? '') ? ['r5ctl', ...argv.slice(2)] : argv).join(' ').slice(0, 300)
    } catch {
      /* the process ended meanwhile, or /proc hides it */
    }
    return {who: `pid ${m[2]}${cmd ? `: ${cmd}` : ''}`, writer: m[1] === 'WRITE'}
  }
  return null
}

export class DeviceLock {
  /** `fd` holds the lock; `owned` when it was opened for the lock alone (a loop device's backing file) */
  private constructor(
    private fd: number,
    private readonly owned: boolean,
  ) {}

  /**
   * Lock the regular file open as `fd` (`lockFile` instead when given: a loop device's backing file,
   * opened here); throws RefusedError (exit 3) naming `device` while another descriptor holds it.
   * `shared`: a reader's hold (serve) that keeps writers out and lets other holders in.
   */
  static acquire(fd: number, device: string, lockFile?: string, shared = false): DeviceLock {
    const flock = flockSync(device)
    const owned = lockFile !== undefined
    // O_NONBLOCK: opening a path that was swapped for a FIFO must not wait for a writer
    const lfd = owned ? fs.openSync(lockFile, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK) : fd
    try {
      flock(lfd, shared ? 'shnb' : 'exnb')
    } catch (caught) {
      // fs calls throw Node system errors
      const error = caught as NodeJS.ErrnoException
      const st = fs.fstatSync(lfd, {bigint: true})
      if (owned) fs.closeSync(lfd)
      if (error.code !== 'EAGAIN' && error.code !== 'EWOULDBLOCK') throw new IoError(`cannot lock: ${error.message}`, device)
      const h = holder(st)
      if (h && !h.writer)
        throw new RefusedError(
          `held by a reader that keeps writers out (${h.who})`,
          device,
          'stop it first (r5ctl serve ends on Ctrl-C or SIGTERM)',
          'in-use',
        )
      throw new RefusedError(
        `in use by another writer${h ? ` (${h.who})` : ''}`,
        device,
        'wait for it to finish: its lock goes away with its process',
        'in-use',
      )
    }
    return new DeviceLock(lfd, owned)
  }

  /** Unlock; closing the device's descriptor would drop the lock as well. */
  release(): void {
    if (this.fd < 0) return
    if (this.owned) fs.closeSync(this.fd)
    else
      try {
        flockSync('')(this.fd, 'un')
      } catch {
        /* the descriptor is closed already: so is the lock */
      }
    this.fd = -1
  }
}
