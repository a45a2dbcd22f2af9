/**
 * Reading undo files and restoring from them. Nothing is written before everything is known good:
 * the whole file is verified (every record's checksum, order and bounds), the devices are matched
 * to the recorded ones, and every saved range must still hold what the run left (its after
 * checksum) — a range changed since means a later write would be undone, so undo refuses. The file
 * is read in a fixed window (one record at most), never whole.
 */
import {probeDevice} from '../probe.js'
import {refuseDuplicateSources} from '../array.js'
import {type BlockDevice, type DeviceRef} from '../device.js'
import type {RecordFile, RecordFileRef} from '../record-file.js'
import {CorruptError, RefusedError, UsageError} from '../errors.js'
import {
  HEADER_BYTES,
  HEAD_BYTES,
  KIND_AFTER,
  KIND_END,
  KIND_OLD,
  MAX_RECORD,
  crcEnd,
  crcMore,
  crcStart,
  decodeHead,
  decodeHeader,
  payloadBytes,
  type UndoHeader,
} from './format.js'

export interface UndoRange {
  device: number
  offset: number
  length: number
  /** where the old bytes start in the file */
  dataPos: number
  /** crc32c of the old bytes */
  crc: number
  /** crc32c of the range as the run left it; null in an incomplete file */
  after: number | null
}

export interface UndoScan {
  header: UndoHeader
  /** the run sealed the file: every range has its after checksum */
  complete: boolean
  ranges: UndoRange[]
}

/** Reads `file` through a window of at most MAX_RECORD bytes. */
class Reader {
  readonly size: number
  readonly win = Buffer.alloc(MAX_RECORD)
  constructor(readonly f: RecordFile) {
    this.size = f.size
  }
  read(buf: Uint8Array, pos: number): void {
    let done = 0
    while (done < buf.length) {
      const n = this.f.read(buf.subarray(done), pos + done)
      if (n <= 0) throw new Error('unexpected end of file')
      done += n
    }
  }
  /** whether every byte from `pos` to the end of the file is zero */
  zerosFrom(pos: number): boolean {
    for (; pos < this.size; pos += this.win.length) {
      const part = this.win.subarray(0, Math.min(this.win.length, this.size - pos))
      this.read(part, pos)
      if (!part.every(b => b === 0)) return false
    }
    return true
  }
  /** crc state after feeding `length` bytes at `pos` */
  crc(state: number, pos: number, length: number): number {
    for (let done = 0; done < length; done += this.win.length) {
      const part = this.win.subarray(0, Math.min(this.win.length, length - done))
      this.read(part, pos + done)
      state = crcMore(state, part)
    }
    return state
  }
}

function openUndo<T>(file: RecordFileRef, fn: (r: Reader) => T): T {
  let f: RecordFile
  try {
    f = file.openRead()
  } catch (error) {
    throw new UsageError(`cannot read undo file: ${(error as Error).message}`, undefined, file.name)
  }
  try {
    return fn(new Reader(f))
  } finally {
    f.close()
  }
}

/**
 * Verify a whole undo file and list its ranges; throws CorruptError on any damage. An incomplete
 * file may end in a torn record (the run stopped while writing it, before the device write it
 * guarded): that record is left out.
 */
export function scanUndoFile(file: RecordFileRef): UndoScan {
  const bad = (what: string) => new CorruptError(`undo file is damaged: ${what}`, file.name, 'it cannot be used to restore safely', 'bad-undo-file')
  return openUndo(file, rd => {
    if (rd.size < HEADER_BYTES) throw bad('not an r5ctl undo file (shorter than its header)')
    const hb = Buffer.alloc(HEADER_BYTES)
    rd.read(hb, 0)
    const header = decodeHeader(hb)
    if ('problem' in header) {
      if (header.version !== undefined)
        throw new RefusedError(header.problem, file.name, 'restore it with the r5ctl version that wrote it', 'undo-version')
      throw bad(header.problem)
    }
    const ranges: UndoRange[] = []
    const head = Buffer.alloc(HEAD_BYTES)
    let afters = 0
    let pos = HEADER_BYTES
    for (let seq = 0; pos < rd.size; seq++) {
      if (pos + HEAD_BYTES > rd.size) break // torn head
      rd.read(head, pos)
      const h = decodeHead(head)
      if (!h.headOk) {
        if (rd.zerosFrom(pos)) break // a host crash left the file longer than what reached the disk
        throw bad(`record ${seq} at byte ${pos}: head checksum mismatch`)
      }
      const plen = payloadBytes(h.kind, h.length)
      const end = pos + HEAD_BYTES + plen
      if (end > rd.size) break // torn payload
      const problem =
        h.seq !== seq
          ? `sequence ${h.seq} where ${seq} belongs`
          : h.reserved !== 0
            ? 'reserved field set'
            : (recordProblem(h, header, ranges, afters) ?? (crcEnd(rd.crc(crcStart, pos + HEAD_BYTES, plen)) === h.crc ? null : 'checksum mismatch'))
      if (problem) {
        // a host crash may leave the last record's payload unwritten: torn, in an unsealed file only
        if (end === rd.size && problem === 'checksum mismatch' && h.kind === KIND_OLD) break
        throw bad(`record ${seq} at byte ${pos}: ${problem}`)
      }
      if (h.kind === KIND_OLD) ranges.push({device: h.device, offset: h.offset, length: h.length, dataPos: pos + HEAD_BYTES, crc: h.crc, after: null})
      if (h.kind === KIND_AFTER) {
        rd.read(head.subarray(0, 4), pos + HEAD_BYTES)
        ranges[afters++].after = head.readUInt32LE(0)
      }
      if (h.kind === KIND_END) {
        if (end !== rd.size) throw bad(`${rd.size - end} bytes after the end record`)
        return {header, complete: true, ranges}
      }
      pos = end
    }
    for (const r of ranges) r.after = null
    return {header, complete: false, ranges}
  })
}

/** Why a record (checksum good) does not belong where it is, or null. */
function recordProblem(h: ReturnType<typeof decodeHead>, header: UndoHeader, ranges: UndoRange[], afters: number): string | null {
  if (h.kind === KIND_OLD) {
    if (afters > 0) return 'old bytes after the after-checksums'
    const dev = header.devices[h.device]
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the record's device index is read from disk
    if (!dev) return `device ${h.device} of ${header.devices.length}`
    if (h.length === 0 || h.offset + h.length > dev.size) return `range ${h.offset}+${h.length} outside ${dev.name} (${dev.size} bytes)`
    return null
  }
  if (h.kind === KIND_AFTER) {
    const r = ranges[afters]
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the file may hold more after-checksums than ranges
    if (!r || r.device !== h.device || r.offset !== h.offset || r.length !== h.length) return 'after-checksum for a range that was not saved'
    return null
  }
  if (h.kind === KIND_END)
    return h.offset === ranges.length && afters === ranges.length && h.length === 0 ? null : 'end record does not match the records'
  return `unknown kind 0x${h.kind.toString(16)}`
}

export interface UndoResult {
  file: string
  complete: boolean
  dryRun: boolean
  created: string
  devices: {recorded: string; device: string | null; blocks: number; bytes: number}[]
  /** every saved range, in file order: what is (or would be) restored */
  ranges: {device: string; offset: number; length: number}[]
  /** ranges that no longer hold what the run left (restored anyway only with --force) */
  changedRanges: number
  bytesRestored: number
}

/**
 * Match recorded devices to given paths: by device UUID, else by path; the size must agree. Every
 * device given must be one the file recorded, and no two may carry the same device UUID (a copy of
 * one beside it): restoring into the wrong one would roll the set back half-way.
 */
function matchDevices(u: UndoScan, refs: DeviceRef[]): (DeviceRef | null)[] {
  refuseDuplicateSources(refs)
  const probes = refs.map(p => probeDevice(p))
  const zero = (b: Uint8Array) => b.every(x => x === 0)
  const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])
  probes.forEach((p, i) => {
    const twin = p.sb && !zero(p.sb.deviceUuid) ? probes.findIndex(q => q.sb && eq(q.sb.deviceUuid, p.sb!.deviceUuid)) : i
    if (twin !== i)
      throw new RefusedError(
        `same device UUID as ${probes[twin].path}: one of them is a copy of the other`,
        p.path,
        'name only the device the run wrote (leave the copy out); nothing was written',
        'duplicate-device',
      )
  })
  const matched = u.header.devices.map(d => {
    const byUuid = zero(d.deviceUuid) ? undefined : probes.find(p => p.sb && eq(p.sb.deviceUuid, d.deviceUuid) && p.size === d.size)
    const byPath = probes.find(p => p.path === d.name && p.size === d.size)
    const hit = byUuid ?? byPath
    return hit ? refs[probes.indexOf(hit)] : null
  })
  const stranger = refs.find(r => !matched.includes(r))
  if (stranger)
    throw new RefusedError(
      'not a device the undo file recorded',
      stranger.name,
      `name only the devices of the run that wrote it (${u.header.devices.map(d => d.name).join(', ')}); nothing was written`,
      'undo-device-mismatch',
    )
  return matched
}

/** Ranges whose device bytes differ from the after checksum (ranges of devices not given are skipped). */
function changedRanges(u: UndoScan, devs: (BlockDevice | null)[], stopAtFirst: boolean): UndoRange[] {
  const changed: UndoRange[] = []
  const win = Buffer.alloc(MAX_RECORD)
  for (const r of u.ranges) {
    const dev = devs[r.device]
    if (!dev || r.after === null) continue
    let s = crcStart
    for (let done = 0; done < r.length; done += win.length) {
      const part = win.subarray(0, Math.min(win.length, r.length - done))
      dev.read(part, r.offset + done)
      s = crcMore(s, part)
    }
    if (crcEnd(s) === r.after) continue
    changed.push(r)
    if (stopAtFirst) break
  }
  return changed
}

export function undoRestore(file: RecordFileRef, paths: DeviceRef[], opts: {dryRun?: boolean; force?: boolean}): UndoResult {
  const u = scanUndoFile(file)
  if (!u.complete && !opts.force)
    throw new RefusedError(
      'undo file is incomplete: the run that wrote it did not finish',
      file.name,
      'it may still undo what that run did; --force restores what it holds',
      'incomplete-undo',
    )
  const matched = matchDevices(u, paths)
  const used = new Set(u.ranges.map(r => r.device))
  for (const [i, d] of u.header.devices.entries()) {
    if (used.has(i) && matched[i] === null && !opts.force)
      throw new RefusedError(
        `device ${d.name} (${d.size} bytes) recorded in the undo file is not among the devices given`,
        file.name,
        'name every device of the run (by path, or any path to the same device); --force restores only the ones found',
        'undo-device-mismatch',
      )
  }
  // writable (and so locked against other writers) from the check to the last restored byte
  const given = matched.map((p, i) => (p && used.has(i) ? p : null))
  const devs: (BlockDevice | null)[] = []
  let changed: UndoRange[]
  let restored = 0
  try {
    for (const p of given) devs.push(p ? p.open({writable: !opts.dryRun}) : null)
    changed = changedRanges(u, devs, !opts.force)
    if (changed.length > 0 && !opts.force) {
      const r = changed[0]
      throw new RefusedError(
        `${r.length} bytes at byte ${r.offset} changed since the run that wrote ${file.name}; restoring would undo a later write`,
        matched[r.device]!.name,
        'leave it, or --force to restore anyway and lose what was written since',
        'undo-changed',
      )
    }
    if (!opts.dryRun) restored = restore(file, u, devs)
  } finally {
    for (const d of devs) d?.close()
  }
  return {
    file: file.name,
    complete: u.complete,
    dryRun: Boolean(opts.dryRun),
    created: u.header.created.toISOString(),
    devices: u.header.devices.map((d, i) => {
      const recs = u.ranges.filter(r => r.device === i)
      return {recorded: d.name, device: matched[i]?.name ?? null, blocks: recs.length, bytes: recs.reduce((a, r) => a + r.length, 0)}
    }),
    ranges: u.ranges.map(r => ({device: u.header.devices[r.device].name, offset: r.offset, length: r.length})),
    changedRanges: changed.length,
    bytesRestored: restored,
  }
}

/** Write the saved bytes back, one record at a time, in file order; returns the bytes written. */
function restore(file: RecordFileRef, u: UndoScan, devs: (BlockDevice | null)[]): number {
  let restored = 0
  openUndo(file, rd => {
    for (const r of u.ranges) {
      const dev = devs[r.device]
      if (!dev) continue
      if (r.length <= rd.win.length) {
        // read again since the scan: checked once more, so a file changed meanwhile is not written out
        const part = rd.win.subarray(0, r.length)
        rd.read(part, r.dataPos)
        if (crcEnd(crcMore(crcStart, part)) !== r.crc)
          throw new CorruptError(
            `undo file changed while restoring: the record at byte ${r.dataPos} no longer matches its checksum`,
            file.name,
            `${restored} bytes were restored before it; keep the file unchanged and run undo again`,
            'bad-undo-file',
          )
        dev.write(part, r.offset)
      } else
        for (let done = 0; done < r.length; done += rd.win.length) {
          const part = rd.win.subarray(0, Math.min(rd.win.length, r.length - done))
          rd.read(part, r.dataPos + done)
          dev.write(part, r.offset + done)
        }
      restored += r.length
    }
    for (const d of devs) d?.flush()
  })
  return restored
}
