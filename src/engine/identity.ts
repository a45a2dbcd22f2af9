/**
 * Which paths reach the same device, and which files are devices at all. A regular file is its
 * (st_dev, st_ino), so a hard link or a symlink is the same file; a loop device is its backing file
 * (as sysfs names it), so /dev/loopN over a.img is a.img; any other block device is its device
 * number. Only regular files and block devices are devices: a FIFO, directory, socket or character
 * device is refused by name before anything opens it (opening a FIFO would wait for a writer forever).
 */
import * as fs from 'node:fs'
import * as nodePath from 'node:path'
import {IoError, RefusedError} from './errors.js'

export interface Identity {
  /** equal for every path that reaches the same bytes */
  key: string
  /** what the path is: 'regular file', 'block device', 'FIFO', ... */
  kind: string
  /** a loop device's backing file, which is what a lock on the loop device must lock */
  backingFile?: string
}

/** What a stat says the file is, in words for an error message. */
export function kindOf(st: fs.Stats | fs.BigIntStats): string {
  if (st.isFile()) return 'regular file'
  if (st.isBlockDevice()) return 'block device'
  if (st.isFIFO()) return 'FIFO'
  if (st.isDirectory()) return 'directory'
  if (st.isSocket()) return 'socket'
  if (st.isCharacterDevice()) return 'character device'
  return 'special file'
}

/** glibc's gnu_dev_major / gnu_dev_minor */
export function majorMinor(dev: bigint): [bigint, bigint] {
  return [((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn), (dev & 0xffn) | ((dev >> 12n) & ~0xffn)]
}

/** The file a loop device reads and writes, or null for any other block device (or a detached loop). */
function loopBackingFile(rdev: bigint): string | null {
  const [major, minor] = majorMinor(rdev)
  let name: string
  try {
    name = fs.readFileSync(`/sys/dev/block/${major}:${minor}/loop/backing_file`, 'utf8').replace(/\n$/, '')
  } catch {
    return null
  }
  // the kernel keeps the name of a backing file that was deleted, marked so: nothing to compare with
  return name && !name.endsWith(' (deleted)') ? name : null
}

/** The identity of a path that exists, null when it does not (any other stat error is an IoError). */
export function identify(path: string, depth = 0): Identity | null {
  let st: fs.BigIntStats
  try {
    st = fs.statSync(path, {bigint: true})
  } catch (caught) {
    // fs calls throw Node system errors
    const error = caught as NodeJS.ErrnoException
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null
    throw new IoError(`cannot stat: ${error.message}`, path)
  }
  const kind = kindOf(st)
  if (st.isBlockDevice()) {
    const backing = depth < 4 ? loopBackingFile(st.rdev) : null
    let behind: Identity | null = null
    // a backing file this process cannot stat (another mount namespace, no permission) leaves the loop device itself
    try {
      behind = backing ? identify(backing, depth + 1) : null
    } catch {
      /* as above */
    }
    if (behind && (behind.kind === 'regular file' || behind.kind === 'block device'))
      return {key: behind.key, kind, backingFile: behind.backingFile ?? (behind.kind === 'regular file' ? backing! : undefined)}
    return {key: `block ${st.rdev}`, kind}
  }
  return {key: `file ${st.dev}:${st.ino}`, kind}
}

/** The identity of a path given as a device: an IoError naming it unless it is a regular file or block device. */
export function deviceIdentity(path: string): Identity {
  const id = identify(path)
  if (!id) throw new IoError('cannot open: no such file', path, 'check the path')
  refuseKind(id.kind, path)
  return id
}

/** An IoError (exit 1) naming `path` unless `kind` is a regular file or a block device. */
export function refuseKind(kind: string, path: string): void {
  if (kind !== 'regular file' && kind !== 'block device')
    throw new IoError(`is a ${kind}, not a regular file or block device`, path, 'name an image file or a block device')
}

/** The identity key of a path; a path that does not exist yet (create makes it) by its resolved name. */
export function pathKey(path: string): string {
  return identify(path)?.key ?? `path ${nodePath.resolve(path)}`
}

/**
 * A file the command reads from or writes to besides the array (`read --output`, `write --input`)
 * must not be one of the array's devices: refused (exit 3) naming it, before anything is opened.
 */
export function refuseDeviceAsFile(file: string, flag: '--output' | '--input', devices: string[]): void {
  const id = identify(file)
  if (!id) return
  for (const d of devices) {
    if (identify(d)?.key !== id.key) continue
    const same = d === file ? '' : ` (the same device as ${d})`
    const why = flag === '--output' ? 'reading into it would overwrite it' : 'writing the array from its own device is surely a mistake'
    throw new RefusedError(
      `${flag} is one of the array's devices${same}: ${why}`,
      file,
      `name another file for ${flag}`,
      flag === '--output' ? 'output-is-device' : 'input-is-device',
    )
  }
}
