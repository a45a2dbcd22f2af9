/**
 * dump-meta: every meta block of the live log (or the whole ring) with its payloads and page
 * checksums, handed out block by block as the log is walked.
 */
import type {EngineOptions} from '../compute.js'
import {openForJournal} from './examine.js'
import {type DeviceSource, type MdArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import {scanLog, hex, verifyUnitPages, describeStop, type ScanStop, type PageVerdict, type LastUnit, type LogEnd} from '../journal/scan.js'
import {BLOCK_SECTORS, PAGE} from '../journal/ring.js'
import {PAYLOAD_DATA, PAYLOAD_FLUSH, PAYLOAD_PARITY, decodeMetaBlock, pagesOf, type MetaBlock} from '../format/meta.js'
import {R5Error, UsageError} from '../errors.js'

export interface DumpPage {
  positionSector: number
  checksum: string
  actual: string
  verdict: 'match' | 'MISMATCH'
}
export type DumpPayload =
  | {type: 'data' | 'parity'; flags: number; locationSector: string; stripeSector: number; sizeSectors: number; pages: DumpPage[]}
  | {type: 'flush'; flags: number; stripeSectors: string[]}
export interface DumpBlock {
  positionSector: number
  seq: string
  metaSize: number
  checksum: string
  pages: number
  payloads: DumpPayload[]
  stale?: boolean
}
/** What is known of a dump before the walk: the journal and where the walk starts. */
export interface DumpHeader {
  journal: string
  arrayUuid: string
  journalTailSector: number
  fromSector: number
}
/** What is known once the walk has ended. */
export interface DumpSummary {
  /** meta blocks the walk passed (before the `stripe` filter; stale ones not counted) */
  walkedBlocks: number
  mismatches: number
  /** the walk started at journal_tail and found no valid meta block there: the kernel would discard the whole log */
  badTail: boolean
  stop: LogEnd
}
/** The blocks listed, in between: the whole report as --json prints it, fields in this order. */
export type DumpReport = DumpHeader & {blocks: DumpBlock[]} & DumpSummary

export interface DumpOptions extends EngineOptions {
  from?: number
  stripe?: number
  all?: boolean
}

/** The whole report in memory: for small journals and tests; the CLI streams (dumpMetaTo). */
export function dumpMeta(paths: DeviceSource[], opts: DumpOptions): DumpReport {
  let header: DumpHeader | undefined
  const blocks: DumpBlock[] = []
  const summary = dumpMetaTo(paths, opts, {
    start: h => (header = h),
    block: b => blocks.push(b),
  })
  return {...header!, blocks, ...summary}
}

/**
 * The dump handed out as it is walked, so that a log of any size costs one unit's worth of memory:
 * `start` once the journal is open, `block` for each meta block listed, in log order (then the
 * stale ones, with `all`); the summary is returned at the end.
 */
export function dumpMetaTo(
  paths: DeviceSource[],
  opts: DumpOptions,
  sink: {start: (h: DumpHeader) => void; block: (b: DumpBlock) => void},
): DumpSummary {
  const arr = openForJournal(paths, opts)
  try {
    const ring = arr.ring!
    const from = opts.from ?? arr.journalTail
    if (from % BLOCK_SECTORS !== 0 || from >= ring.sizeSectors)
      throw new UsageError(`--from ${from} is not a 4 KiB-aligned sector inside the journal (size ${ring.sizeSectors} sectors)`)
    sink.start({journal: arr.journal!.path, arrayUuid: arr.uuid, journalTailSector: arr.journalTail, fromSector: from})
    let stop: ScanStop | undefined
    let mismatches = 0
    let walked = 0
    const add = (position: number, meta: MetaBlock, pages: number, verdicts: PageVerdict[], stale: boolean) => {
      if (!stale) mismatches += verdicts.filter(v => !v.ok).length
      const b = describeUnit(arr, {position, meta, pages, verdicts, stale}, opts.stripe)
      if (b) sink.block(b)
    }
    let last: LastUnit | null = null
    for (const u of scanLog(ring, arr, from, {continueOnDataMismatch: true, onStop: s => (stop = s)})) {
      last = {position: u.position, seq: u.seq, empty: u.meta.payloads.length === 0}
      walked++
      add(u.position, u.meta, u.pages, u.verdicts, false)
    }
    if (opts.all) for (const u of staleUnits(arr, from, stop!.position)) add(u.position, u.meta, u.pages, u.verdicts, true)
    return {
      walkedBlocks: walked,
      mismatches,
      badTail: walked === 0 && from === arr.journalTail,
      stop: describeStop(stop!, last),
    }
  } finally {
    arr.close()
  }
}

interface DumpUnit {
  position: number
  meta: MetaBlock
  pages: number
  verdicts: PageVerdict[]
  stale: boolean
}

/** One unit as dump-meta shows it; null when `stripe` is asked for and the unit does not name it. */
function describeUnit(arr: MdArray, u: DumpUnit, stripe: number | undefined): DumpBlock | null {
  const payloads: DumpPayload[] = u.meta.payloads.map((p, pi) => {
    if (p.type === PAYLOAD_FLUSH) return {type: 'flush', flags: p.flags, stripeSectors: p.stripes.map(String)}
    const stripeSector = p.type === PAYLOAD_DATA ? Number(arr.geometry.mapSector(p.location).memberSector) : Number(p.location)
    const pages: DumpPage[] = u.verdicts
      .filter(v => v.payload === pi)
      .map(v => ({positionSector: v.position, checksum: hex(v.expected), actual: hex(v.actual), verdict: v.ok ? 'match' : 'MISMATCH'}))
    return {
      type: p.type === PAYLOAD_PARITY ? 'parity' : 'data',
      flags: p.flags,
      locationSector: p.location.toString(),
      stripeSector,
      sizeSectors: p.sizeSectors,
      pages,
    }
  })
  const shown =
    stripe === undefined
      ? payloads
      : payloads.filter(p => (p.type === 'flush' ? p.stripeSectors.includes(String(stripe)) : p.stripeSector === stripe))
  if (stripe !== undefined && shown.length === 0) return null
  const b: DumpBlock = {
    positionSector: u.position,
    seq: u.meta.seq.toString(),
    metaSize: u.meta.metaSize,
    checksum: hex(u.meta.checksum),
    pages: u.pages,
    payloads: shown,
  }
  if (u.stale) b.stale = true
  return b
}

/**
 * Stale units: beyond the head, every 4 KiB block that is a well-formed meta block for its own
 * position (magic, version, checksum, position) whatever its seq, with its pages checked; the scan
 * from journal_tail can never reach them. The ring is read in windows from the head round to `from`.
 */
function* staleUnits(arr: MdArray, from: number, head: number): Generator<Omit<DumpUnit, 'stale'>> {
  const ring = arr.ring!
  let left = ring.sizeSectors - ring.distance(from, head)
  let pos = head
  let skipUntil = 0 // sectors from the head to skip (pages of a stale unit just listed)
  const win = alignedBuffer(Math.min(8 << 20, ring.sizeBytes))
  while (left > 0) {
    const len = Math.min(win.length / 512, left, ring.sizeSectors - pos)
    const w = win.subarray(0, len * 512)
    ring.read(w, pos)
    for (let k = 0; k < len; k += BLOCK_SECTORS) {
      const p = pos + k
      const fromHead = ring.distance(head, p)
      if (fromHead < skipUntil) continue
      const u = staleUnitAt(arr, w.subarray(k * 512, k * 512 + PAGE), p)
      if (!u) continue
      yield u
      skipUntil = fromHead + (u.pages + 1) * BLOCK_SECTORS
    }
    left -= len
    pos = ring.add(pos, len)
  }
}

/** The stale unit whose meta block is `blk` at `p`, or null when it is none (or junk pointing outside the array). */
function staleUnitAt(arr: MdArray, blk: Buffer, p: number): Omit<DumpUnit, 'stale'> | null {
  const ring = arr.ring!
  if (blk.readUInt32LE(0) !== 0x6433c509) return null
  const {meta, problems} = decodeMetaBlock(blk, arr.seed, {position: BigInt(p)})
  if (!meta || problems.length > 0) return null
  const pages = pagesOf(meta)
  if ((pages + 1) * BLOCK_SECTORS > ring.sizeSectors) return null
  const data = alignedBuffer(Math.max(pages, 1) * PAGE).subarray(0, pages * PAGE)
  if (pages > 0) ring.read(data, ring.add(p, BLOCK_SECTORS))
  try {
    return {position: p, meta, pages, verdicts: verifyUnitPages(meta, data, arr, ring, p)}
  } catch (error) {
    // a stale block whose payloads point outside the array is junk, not part of any log
    if (error instanceof R5Error && error.code === 'bad-payload-location') return null
    throw error
  }
}
