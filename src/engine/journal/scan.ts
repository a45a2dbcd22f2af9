/**
 * Walking the live log from journal_tail, the way the kernel's recovery does
 * (r5l_recovery_read_meta_block + r5l_recovery_verify_data_checksum_for_mb in raid5-cache.c):
 * every meta block must have the magic, version 1, meta_size ≤ 4096, a matching checksum, its own
 * position, and seq = previous + 1 (the block at the tail sets the starting seq). The first block
 * that fails is the head of the log, and the reason is reported. An io unit whose data or parity
 * pages do not match their logged checksums also ends the log (the kernel stops there and does not
 * replay that unit).
 *
 * Memory is bounded: one read-ahead window (readAhead) and one io unit's checksums at a time.
 */
import type {Compute} from '../compute.js'
import {
  MetaColumns,
  decodeMeta,
  seqAfter,
  seqAtOrAfter,
  type MetaBlock,
  type MetaProblem,
  PAYLOAD_DATA,
  PAYLOAD_FLUSH,
  PAYLOAD_PARITY,
} from '../format/meta.js'
import {CorruptError} from '../errors.js'
import {alignedBuffer} from '../device.js'
import {BLOCK_SECTORS, PAGE, type Ring} from './ring.js'

export interface PageVerdict {
  payload: number
  /** page index within the payload */
  page: number
  /** ring position (sector) of the page */
  position: number
  expected: number
  actual: number
  ok: boolean
}

export interface ScannedUnit {
  position: number
  seq: bigint
  /** the meta block as objects, made on first use: read it before the next unit */
  readonly meta: MetaBlock
  /** the meta block as decoded (typed arrays), valid until the next unit */
  readonly cols: MetaColumns
  /** number of 4 KiB pages after the meta block */
  pages: number
  verdicts: PageVerdict[]
  /** payload pages of this unit, valid until the next unit is yielded */
  data: Uint8Array
  nextPosition: number
  allPagesOk: boolean
}

export type StopCode = MetaProblem['code'] | 'data-checksum' | 'wrapped' | 'too-large' | 'until-seq'

export interface ScanStop {
  /** ring position where the scan stopped: the head of the live log */
  position: number
  /** the seq a meta block at `position` would need */
  expectedSeq: bigint | null
  code: StopCode
  message: string
}

/**
 * What the payloads of a journal may address: a DATA payload's location is an array sector, a
 * PARITY payload's a stripe's member sector; both are page-aligned sectors inside the array the
 * kernel wrote them for. Set on the ring by openArray (which knows the geometry).
 */
export interface PayloadLimits {
  /** array sectors (DATA locations + size must fit) */
  arraySectors: number
  /** used member sectors (PARITY locations must name a stripe inside them) */
  memberSectors: number
  /** the journal device, named in errors */
  device: string
}

/** The last meta block a walk accepted (for describing where the log ends). */
export interface LastUnit {
  position: number
  seq: bigint
  empty: boolean
  dropped?: boolean
}

/** Where a report says the walk stopped: `reason` is a StopCode, or `end-of-log` with the StopCode as `cause`. */
export interface LogEnd {
  sector: number
  reason: StopCode | 'end-of-log'
  message: string
  cause?: StopCode
}

/** Meta block problems that only say "this block is not the next one of this log". */
const NOT_NEXT_BLOCK: ReadonlySet<StopCode> = new Set<StopCode>([
  'short',
  'bad-magic',
  'bad-version',
  'bad-meta-size',
  'bad-checksum',
  'seq-mismatch',
  'position-mismatch',
])

/**
 * The kernel ends every log at the first block that is not its next meta block: after at least one
 * valid block, that is the normal end of the log (a clean log always ends so), not corruption, and
 * reports say `end-of-log` with the block's problem as the cause. With no valid block at all, or
 * a stop of another kind (a page checksum, a unit too large, a malformed payload, a full ring),
 * the scanner's reason stands.
 */
export function describeStop(stop: ScanStop, last: LastUnit | null): LogEnd {
  if (!last || !NOT_NEXT_BLOCK.has(stop.code)) return {sector: stop.position, reason: stop.code, message: stop.message}
  const what = `${last.empty ? 'empty ' : ''}meta block at sector ${last.position} (seq ${last.seq}${last.dropped ? ', its unit dropped for a bad page checksum' : ''})`
  return {
    sector: stop.position,
    reason: 'end-of-log',
    cause: stop.code,
    message: `the log ends after the ${what}; sector ${stop.position} holds no meta block of this log: ${stop.message}`,
  }
}

/**
 * A meta block that passed every format check (magic, version, checksum, position, seq) but whose
 * payloads address sectors outside the array was not written for this array: replaying it would
 * write outside the members' data areas. Nothing in Linux 6.1 bounds-checks these fields, so
 * there is no kernel rule to follow; offline, the safe answer is to refuse with a corruption
 * error naming the journal, before anything is written.
 */
function checkPayloadLocations(meta: MetaBlock, ring: Ring, position: number): void {
  const lim = ring.payloadLimits
  if (!lim) return
  // hot path (every payload of every unit): plain numbers, no strings unless something is wrong;
  // a location of 2^53 or more is outside any array, and Number() keeps it large
  const payloads = meta.payloads
  const fail = (i: number, what: string): never => {
    throw new CorruptError(
      `io unit at journal sector ${position} (seq ${meta.seq}), payload ${i}: ${what}`,
      lim.device,
      'the log was not written for this array; inspect it with `r5ctl dump-meta`; nothing was written',
      'bad-payload-location',
    )
  }
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i]
    if (p.type === PAYLOAD_FLUSH) continue
    const loc = Number(p.location)
    if (Number.isSafeInteger(loc) && !locationOutside(p.type, loc, p.sizeSectors, lim)) continue
    // outside: say which rule
    if (Number.isSafeInteger(loc) ? loc % BLOCK_SECTORS !== 0 : p.location % BigInt(BLOCK_SECTORS) !== 0n)
      fail(i, `location ${p.location} is not 4 KiB-aligned`)
    if (p.type === PAYLOAD_DATA && loc + Math.max(p.sizeSectors, BLOCK_SECTORS) > lim.arraySectors)
      fail(i, `data for array sectors ${p.location}+${p.sizeSectors} lies outside the array (${lim.arraySectors} sectors)`)
    if (p.type === PAYLOAD_PARITY && loc + BLOCK_SECTORS > lim.memberSectors)
      fail(i, `parity for member sector ${p.location} lies outside the members' data area (${lim.memberSectors} sectors)`)
  }
}

/** The rule, on a safe-integer location: a DATA or PARITY payload that is misaligned or outside `lim`. */
function locationOutside(type: number, loc: number, sizeSectors: number, lim: PayloadLimits): boolean {
  return (
    loc % BLOCK_SECTORS !== 0 ||
    (type === PAYLOAD_DATA && loc + Math.max(sizeSectors, BLOCK_SECTORS) > lim.arraySectors) ||
    (type === PAYLOAD_PARITY && loc + BLOCK_SECTORS > lim.memberSectors)
  )
}

/** checkPayloadLocations over columns: the same rule on plain numbers; on any failure the object form says why */
function checkColumnLocations(cols: MetaColumns, ring: Ring, position: number): void {
  const lim = ring.payloadLimits
  if (!lim) return
  if (cols.hugeLocation) {
    checkPayloadLocations(cols.toMetaBlock(), ring, position)
    return
  }
  const {type, location, size} = cols
  for (let i = 0; i < cols.count; i++) {
    if (type[i] !== PAYLOAD_FLUSH && locationOutside(type[i], location[i], size[i], lim)) {
      checkPayloadLocations(cols.toMetaBlock(), ring, position)
      return
    }
  }
}

/** What a journal's pages are checksummed with: the array's seed (its uuid checksum), by one implementation. An MdArray is one. */
export interface LogSeal {
  readonly seed: number
  readonly compute: Compute
}

/** Checksums of every page of `data`, in `into` when it is long enough (a walk's own scratch), else in a new array. */
function pageSumsOf(seal: LogSeal, data: Uint8Array, into?: Uint32Array): Uint32Array {
  const n = data.length / PAGE
  const sums = into && into.length >= n ? into : new Uint32Array(n)
  seal.compute.crc.pages(seal.seed, data, sums, 0)
  return sums
}

/**
 * Check payload locations (see checkPayloadLocations), then checksum every page of the unit in one
 * call.
 */
function unitPageSums(meta: MetaBlock, data: Uint8Array, seal: LogSeal, ring: Ring, position: number): Uint32Array {
  checkPayloadLocations(meta, ring, position)
  return pageSumsOf(seal, data)
}

/**
 * Compare a unit's page checksums with those in its meta block, page by page in payload order;
 * `visit` returns true to stop early. Returns the verdict it stopped at, or null.
 */
function comparePages(meta: MetaBlock, sums: Uint32Array, ring: Ring, position: number, visit: (v: PageVerdict) => boolean): PageVerdict | null {
  let k = 0
  for (let pi = 0; pi < meta.payloads.length; pi++) {
    const p = meta.payloads[pi]
    if (p.type === PAYLOAD_FLUSH) continue
    const cs = p.checksums
    for (let j = 0; j < cs.length; j++, k++) {
      const expected = cs[j] >>> 0
      const actual = sums[k] >>> 0
      const v = {payload: pi, page: j, position: ring.add(position, BLOCK_SECTORS * (1 + k)), expected, actual, ok: expected === actual}
      if (visit(v)) return v
    }
  }
  return null
}

/**
 * Verify the pages of one io unit against the checksums in its meta block. Throws a CorruptError
 * when a payload addresses sectors outside the array (see checkPayloadLocations).
 */
export function verifyUnitPages(meta: MetaBlock, data: Uint8Array, seal: LogSeal, ring: Ring, position: number): PageVerdict[] {
  const sums = unitPageSums(meta, data, seal, ring, position)
  const verdicts: PageVerdict[] = []
  comparePages(meta, sums, ring, position, v => {
    verdicts.push(v)
    return false
  })
  return verdicts
}

/**
 * The page check without a verdict per page (the replay's hot path): payload locations first, then
 * the first page whose checksum mismatches, or null. The verdict for a mismatch comes from the object form, so it reads exactly as the slow path's.
 */
function firstBadPageColumns(
  cols: MetaColumns,
  data: Uint8Array,
  seal: LogSeal,
  ring: Ring,
  position: number,
  scratch: Uint32Array,
): PageVerdict | null {
  checkColumnLocations(cols, ring, position)
  const sums = pageSumsOf(seal, data, scratch)
  const {type, size, at} = cols
  const words = cols.words
  let k = 0
  for (let i = 0; i < cols.count; i++) {
    if (type[i] === PAYLOAD_FLUSH) continue
    const n = size[i] / BLOCK_SECTORS
    let bad = false
    if (words) for (let j = 0, w = at[i] >>> 2; j < n; j++, k++, w++) bad ||= words[w] !== sums[k]
    else for (let j = 0; j < n; j++, k++) bad ||= cols.sum(i, j) !== sums[k]
    if (bad) return comparePages(cols.toMetaBlock(), sums.slice(0, data.length / PAGE), ring, position, v => !v.ok)
  }
  return null
}

/** Where scanLog gets ring bytes from (tests give readers that fail or count). */
export interface LogReader {
  /** `bytes` of the ring from position `pos` (sectors); valid until the next call */
  view(pos: number, bytes: number): Uint8Array
}

/** bytes a walk reads per request by default: io units are small, and one request per unit would be most of the cost */
const READ_BYTES = 4 << 20

/**
 * The walk's reader: one request of up to `readBytes` at a time, served as views (a walk asks for
 * a meta block, then its pages, then the next meta block, all in order). A request never wraps
 * around the ring's end; a view that would is read into a copy of its own.
 */
export function readAhead(ring: Ring, readBytes = READ_BYTES): LogReader {
  let buf = alignedBuffer(Math.max(PAGE, Math.min(readBytes, ring.sizeBytes)))
  let start = -1
  let len = 0
  let copy: Uint8Array = new Uint8Array(0)
  return {
    view(pos, bytes) {
      if (start >= 0 && pos >= start && (pos - start) * 512 + bytes <= len) {
        const off = (pos - start) * 512
        return buf.subarray(off, off + bytes)
      }
      const toEnd = (ring.sizeSectors - pos) * 512
      if (bytes > toEnd) {
        if (copy.length < bytes) copy = alignedBuffer(bytes)
        const v = copy.subarray(0, bytes)
        ring.read(v, pos)
        return v
      }
      if (buf.length < bytes) buf = alignedBuffer(bytes)
      start = pos
      len = Math.min(toEnd, Math.max(bytes, buf.length))
      ring.read(buf.subarray(0, len), pos)
      return buf.subarray(0, bytes)
    },
  }
}

/**
 * Iterate the live log. `onStop` receives why the walk ended. With `continueOnDataMismatch`, a unit
 * with bad page checksums is still yielded (dump-meta shows it) and the walk goes on past it;
 * otherwise (recovery semantics) it ends the log.
 */
export function* scanLog(
  ring: Ring,
  seal: LogSeal,
  tail: number,
  opts: {
    continueOnDataMismatch?: boolean
    /**
     * The kernel's recovery (r5c_recovery_flush_log) drops an io unit whose pages mismatch and
     * advances by the meta block alone (meta_total_blocks is still 8 sectors at that point), so
     * the next read lands on the unit's first page and normally ends the log there.
     */
    kernelSkipOnDataMismatch?: (unit: {position: number; seq: bigint; message: string}) => void
    firstSeq?: bigint
    onStop: (s: ScanStop) => void
    maxUnits?: number
    /** stop after the meta block with this seq (recover --until-seq) */
    untilSeq?: bigint
    /** where the bytes come from (default: readAhead) */
    reader?: LogReader
    /** with the default reader, bytes per request */
    readBytes?: number
    /** false: no per-page verdicts (units carry an empty list; allPagesOk still tells) */
    verdicts?: boolean
    /**
     * Decode meta blocks into these reusable columns (units carry `cols`; `meta` is decoded only
     * when read). The replay's hot path: no object or BigInt per payload.
     */
    columns?: MetaColumns
  },
): Generator<ScannedUnit> {
  const reader = opts.reader ?? readAhead(ring, opts.readBytes)
  const cols = opts.columns ?? new MetaColumns()
  const wantVerdicts = opts.verdicts !== false
  // the page checksums of the unit in hand, reused unit after unit
  let sums = new Uint32Array(256)
  const empty: Uint8Array = new Uint8Array(0)
  let pos = tail
  let expectSeq: bigint | undefined = opts.firstSeq
  let walked = 0
  let units = 0
  for (;;) {
    if (walked >= ring.sizeSectors) {
      opts.onStop({position: pos, expectedSeq: expectSeq ?? null, code: 'wrapped', message: 'scanned the whole ring without finding the head'})
      return
    }
    if (opts.maxUnits !== undefined && units >= opts.maxUnits) return
    const problems = decodeMeta(reader.view(pos, PAGE), seal.seed, {seq: expectSeq, position: pos}, cols)
    if (problems.length > 0) {
      opts.onStop({position: pos, expectedSeq: expectSeq ?? null, code: problems[0].code, message: problems[0].message})
      return
    }
    const seq = cols.seq
    const pages = cols.pages
    if ((pages + 1) * BLOCK_SECTORS + walked > ring.sizeSectors) {
      opts.onStop({position: pos, expectedSeq: seq, code: 'too-large', message: `io unit of ${pages} pages does not fit in the log`})
      return
    }
    const data = pages > 0 ? reader.view(ring.add(pos, BLOCK_SECTORS), pages * PAGE) : empty
    if (sums.length < pages) sums = new Uint32Array(pages)
    const {verdicts, bad} = checkPages(cols, data, seal, ring, pos, wantVerdicts, sums)
    const allPagesOk = bad === null
    const nextPosition = ring.add(pos, BLOCK_SECTORS * (1 + pages))
    if (bad && opts.kernelSkipOnDataMismatch) {
      opts.kernelSkipOnDataMismatch({
        position: pos,
        seq,
        message: `page at sector ${bad.position} has checksum ${hex(bad.actual)}, logged ${hex(bad.expected)}`,
      })
      walked += BLOCK_SECTORS
      pos = ring.add(pos, BLOCK_SECTORS)
      expectSeq = seqAfter(seq)
      continue
    }
    if (bad && !opts.continueOnDataMismatch) {
      opts.onStop({
        position: pos,
        expectedSeq: seq,
        code: 'data-checksum',
        message: `page at sector ${bad.position} of the io unit with seq ${seq} has checksum ${hex(bad.actual)}, logged ${hex(bad.expected)}`,
      })
      return
    }
    yield new ColumnUnit(pos, seq, cols, pages, verdicts, data, nextPosition, allPagesOk)
    units++
    walked += BLOCK_SECTORS * (1 + pages)
    pos = nextPosition
    expectSeq = seqAfter(seq)
    if (opts.untilSeq !== undefined && seqAtOrAfter(seq, opts.untilSeq)) {
      opts.onStop({position: pos, expectedSeq: expectSeq, code: 'until-seq', message: `stopped after seq ${seq} as asked (--until-seq)`})
      return
    }
  }
}

/** A unit's page checksums: every verdict (when wanted) and the first bad page, or null. */
function checkPages(
  cols: MetaColumns,
  data: Uint8Array,
  seal: LogSeal,
  ring: Ring,
  pos: number,
  wantVerdicts: boolean,
  scratch: Uint32Array,
): {verdicts: PageVerdict[]; bad: PageVerdict | null} {
  if (!wantVerdicts) return {verdicts: [], bad: firstBadPageColumns(cols, data, seal, ring, pos, scratch)}
  const verdicts = verifyUnitPages(cols.toMetaBlock(), data, seal, ring, pos)
  return {verdicts, bad: verdicts.find(v => !v.ok) ?? null}
}

/** A unit decoded into columns; its object form is made only if asked for (before the next unit). */
class ColumnUnit implements ScannedUnit {
  private objects: MetaBlock | null = null
  constructor(
    readonly position: number,
    readonly seq: bigint,
    readonly cols: MetaColumns,
    readonly pages: number,
    readonly verdicts: PageVerdict[],
    readonly data: Uint8Array,
    readonly nextPosition: number,
    readonly allPagesOk: boolean,
  ) {}

  get meta(): MetaBlock {
    return (this.objects ??= this.cols.toMetaBlock())
  }
}

export function hex(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0')
}
