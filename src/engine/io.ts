/**
 * The array's data paths: `readArray` (with reconstruction of missing members) and `writeArray`
 * (write-through: parity, log, flush, members, as raid5-cache.c does). Both stream through a
 * fixed window and batch device I/O: a run of contiguous pages is one request.
 */
import {type WriteJob, crc32cPages, writeAsyncAvailable, writeRunsAsync} from './checksum.js'
import {alignedBuffer, checkDeviceRange} from './device.js'
import {IoError, R5Error, UsageError, EXIT} from './errors.js'
import {encodeMetaBlock, encodeDataParityMeta, type DataParityRecords, PAYLOAD_DATA, PAYLOAD_PARITY} from './format/meta.js'
import {missingMembersError, type MdArray} from './array.js'
import {computeP, computeQ, reconstruct} from './parity.js'
import {acquireArena, releaseArena} from './parity-arena.js'
import {planRecovery} from './journal/plan.js'
import {StripePages} from './journal/stripes.js'
import {reclaimLog} from './journal/reclaim.js'
import {BLOCK_SECTORS, PAGE} from './journal/ring.js'

/** bytes of member data moved per window */
export const WINDOW_BYTES = 8 << 20

export type Progress = (done: number, total: number) => void

interface RowLayout {
  pd: number
  qd: number
  dataMembers: number[]
  qSlot: number[]
}

function rowLayout(arr: MdArray, row: number): RowLayout {
  const chunkSectors = arr.sb.chunkSize
  return arr.geometry.stripeInfo(BigInt(row) * BigInt(chunkSectors))
}

export function arraySizeBytes(arr: MdArray): number {
  return Number(arr.geometry.arraySectors) * 512
}

function checkRange(arr: MdArray, offset: number, length: number): void {
  const size = arraySizeBytes(arr)
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE !== 0)
    throw new UsageError(`offset ${offset} must be a non-negative multiple of 4096`)
  if (!Number.isSafeInteger(length) || length < 0) throw new UsageError(`bad length ${length}`)
  if (offset + length > size) throw new UsageError(`range ${offset}+${length} is beyond the end of the array (${size} bytes)`)
}

/**
 * Read `length` bytes of the array at `offset`, handing out views in order to `sink` (one call
 * per window, so the caller can write them with one writev). Views are valid only during the call.
 */
export function readArray(arr: MdArray, offset: number, length: number, sink: (views: Uint8Array[]) => void, progress?: Progress): void {
  checkRange(arr, offset, length)
  if (length === 0) return
  const chunkBytes = arr.sb.chunkSize * 512
  const n = arr.sb.raidDisks
  const D = arr.geometry.dataDisks
  const rowBytes = D * chunkBytes
  const level = arr.sb.level as 4 | 5 | 6
  const rowsPerWindow = Math.max(1, Math.floor(WINDOW_BYTES / (chunkBytes * n)))
  const bufs = Array.from({length: n}, (_, m) => (arr.members[m] ? alignedBuffer(rowsPerWindow * chunkBytes) : null))
  const missing = arr.missingMembers
  const rebuilt = missing.map(() => alignedBuffer(rowsPerWindow * chunkBytes))
  const end = offset + length
  const firstRow = Math.floor(offset / rowBytes)
  const lastRow = Math.floor((end - 1) / rowBytes)
  const pagesPerChunk = chunkBytes / PAGE
  for (let r0 = firstRow; r0 <= lastRow; r0 += rowsPerWindow) {
    const r1 = Math.min(lastRow + 1, r0 + rowsPerWindow)
    const span = (r1 - r0) * chunkBytes
    for (let m = 0; m < n; m++) {
      const b = bufs[m]
      if (b) arr.members[m]!.dev.read(b.subarray(0, span), arr.memberBase(m) + r0 * chunkBytes)
    }
    const views: Uint8Array[] = []
    for (let r = r0; r < r1; r++) {
      const lay = rowLayout(arr, r)
      const rowOff = (r - r0) * chunkBytes
      // chunk of each logical data index, rebuilt when its member is absent
      const chunkOf = (i: number): Uint8Array => {
        const m = lay.dataMembers[i]
        const b = bufs[m]
        if (b) return b.subarray(rowOff, rowOff + chunkBytes)
        return rebuilt[missing.indexOf(m)].subarray(rowOff, rowOff + chunkBytes)
      }
      const rowStart = r * rowBytes
      const needFrom = Math.max(offset, rowStart) - rowStart
      const needTo = Math.min(end, rowStart + rowBytes) - rowStart
      const firstIdx = Math.floor(needFrom / chunkBytes)
      const lastIdx = Math.floor((needTo - 1) / chunkBytes)
      const needsRebuild = missing.some(m => lay.dataMembers.indexOf(m) >= firstIdx && lay.dataMembers.indexOf(m) <= lastIdx)
      if (needsRebuild) rebuildRow(level, lay, bufs, rowOff, missing, rebuilt, D, pagesPerChunk)
      for (let i = firstIdx; i <= lastIdx; i++) {
        const c = chunkOf(i)
        const from = Math.max(needFrom - i * chunkBytes, 0)
        const to = Math.min(needTo - i * chunkBytes, chunkBytes)
        views.push(c.subarray(from, to))
      }
    }
    sink(views)
    progress?.(Math.min(end, r1 * rowBytes) - offset, length)
  }
}

/** Rebuild the chunks of absent members for one chunk row, page by page. */
function rebuildRow(
  level: 4 | 5 | 6,
  lay: RowLayout,
  bufs: (Uint8Array | null)[],
  rowOff: number,
  missing: number[],
  rebuilt: Uint8Array[],
  D: number,
  pagesPerChunk: number,
): void {
  const idxOf = (m: number) => (m === lay.pd ? D : m === lay.qd ? D + 1 : lay.dataMembers.indexOf(m))
  const order = [...lay.dataMembers, lay.pd, ...(level === 6 ? [lay.qd] : [])]
  const missIdx = missing.map(idxOf)
  for (let k = 0; k < pagesPerChunk; k++) {
    const pages = order.map(m => {
      const b = bufs[m]
      const o = rowOff + k * PAGE
      if (b) return b.subarray(o, o + PAGE)
      return rebuilt[missing.indexOf(m)].subarray(o, o + PAGE)
    })
    reconstruct(level, pages, lay.qSlot, missIdx)
  }
}

// ---------------------------------------------------------------------------------------------
// write-through

export interface WriteResult {
  bytes: number
  stripes: number
  ioUnits: number
  journalBytes: number
  rmwStripes: number
  rcwStripes: number
  checkpoints: number
  headSector: number
  lastSeq: bigint
  mode: 'write-through' | 'write-back'
  /** cached write-back stripes written out first (write-through after write-back, or a full log) */
  reclaimedStripes: number
  /** bytes acknowledged */
  acknowledged: number
}

/** Fill `buf` completely from the input; returns bytes read (less only at end of input). */
export type Source = (buf: Uint8Array) => number

const META_LIMIT = 4096

/** what writeArray does with one stripe of a row */
const HOW_NONE = 0 // not touched
const HOW_FULL = 1 // every data page new (or write-back: data only)
const HOW_RCW = 2 // reconstruct-write: parity from the new pages and the untouched old ones
const HOW_RMW = 3 // read-modify-write: parity from old parity, old and new touched pages

export interface WriteOptions {
  mode?: 'write-through' | 'write-back'
  progress?: Progress
  /**
   * Bytes of log per batch (one journal write, one flush, then the members). Default 8 MiB: with
   * fdatasync at every batch that is group commit. Without flushes (--no-flush) nothing is amortized
   * and a 2 MiB batch stays in cache from the copy through CRC, parity and the writes (~10 % faster).
   */
  batchBytes?: number
  /** called when the first `bytes` of the write are acknowledged (write-through: on the members; write-back: in the log) */
  onAck?: (bytes: number) => void
  /** `length` is an upper bound: a short read ends the write there, without an error (the result's `bytes` says where) */
  endAtShortInput?: boolean
}

export function writeArray(arr: MdArray, offset: number, length: number, source: Source, opts: WriteOptions = {}): WriteResult {
  const progress = opts.progress
  checkRange(arr, offset, length)
  if (arr.missingMembers.length > 0) throw missingMembersError(arr.uuid, arr.missingMembers, 'writing needs every member')
  const ring = arr.ring!
  const wb = opts.mode === 'write-back'
  let plan = planRecovery(arr)
  if (plan.fromLog.size > 0 || plan.skipped.length > 0)
    throw new R5Error(
      `journal is dirty: ${plan.dataParityStripes} stripe(s) with data and parity pending replay`,
      EXIT.DIRTY,
      arr.journal!.path,
      'replay it first with `r5ctl recover`',
      'dirty',
    )
  const level = arr.sb.level as 4 | 5 | 6
  const nParity = level === 6 ? 2 : 1
  const n = arr.sb.raidDisks
  const D = arr.geometry.dataDisks
  const chunkSectors = arr.sb.chunkSize
  const chunkBytes = chunkSectors * 512
  const pagesPerChunk = chunkBytes / PAGE
  const rowBytes = D * chunkBytes
  // Every check before the first device write (reclaim, the log's opening block, superblocks).
  // A batch is at most a quarter of the ring (so a checkpoint or reclaim always makes room for the
  // next one) and holds two of the largest stripes.
  const batchLimit = Math.min(Math.max(16 * PAGE, opts.batchBytes ?? WINDOW_BYTES), Math.floor(ring.sizeBytes / 4 / PAGE) * PAGE)
  const maxStripeBytes = (1 + D + nParity) * PAGE
  if (batchLimit < 2 * maxStripeBytes) {
    throw new UsageError(
      `journal too small for one stripe of this array: a write needs a journal of at least ${(8 * maxStripeBytes) / 1024} KiB of data area`,
      'recreate the array with a larger --journal-size',
      arr.journal!.path,
    )
  }
  let reclaimed = 0
  if (plan.dataOnly.size > 0 && !wb) {
    // cached write-back stripes must reach the members before write-through parity is computed
    reclaimed = reclaimLog(arr).dataOnlyStripes
    plan = planRecovery(arr)
  }
  /** the pages cached in the live log (write-back): where a partial page's other bytes are newest (none after a reclaim) */
  let cached = plan.dataOnly
  let head: number
  let tail: number
  let seq: bigint
  let lastUnitOnMembers: number
  if (plan.dataOnly.size > 0) {
    // write-back with cached stripes: the live log continues
    head = plan.stop.position
    tail = plan.tailSector
    seq = plan.stopSeq
    lastUnitOnMembers = -1
  } else {
    // Open the log as the kernel does at array start: an empty meta block at the head with
    // seq + 10000 becomes the tail, so nothing stale beyond the head can ever continue our log.
    tail = plan.stop.position
    ring.write(encodeMetaBlock({seq: plan.newSeq, position: BigInt(tail), payloads: []}, arr.seed), tail)
    arr.journal!.dev.flush()
    arr.writeSuperblocks(tail)
    head = ring.add(tail, BLOCK_SECTORS)
    seq = plan.newSeq + 1n
    lastUnitOnMembers = tail
  }
  const res: WriteResult = {
    bytes: 0,
    stripes: 0,
    ioUnits: 0,
    journalBytes: 0,
    rmwStripes: 0,
    rcwStripes: 0,
    checkpoints: 0,
    headSector: head,
    lastSeq: seq - 1n,
    mode: wb ? 'write-back' : 'write-through',
    reclaimedStripes: reclaimed,
    acknowledged: 0,
  }
  if (length === 0) return res

  // The batch: io units laid out exactly as they go into the ring, in `log`. Everything about the
  // batch is kept in preallocated typed arrays (no object per page or stripe): that bookkeeping,
  // not the I/O, used to dominate the time of a large write.
  const maxPages = batchLimit / PAGE

  // One arena holds the log, the row's input, every member's old chunk of the row (rmw/rcw reads)
  // and three scratch pages (RAID6 rmw), so that parity is computed in place, straight into the
  // log, and data pages are copied within one buffer (copyWithin: no view per page).
  // Write-through on plain files: a batch's member pages are written on the CRC addon's helper thread
  // while the next batch is laid out, so the log has two regions, used in turn (see postMembers).
  const memberFds = arr.members.map(m => m!.dev.writeFd?.() ?? -1)
  const asyncMembers = !wb && writeAsyncAvailable && memberFds.every(fd => fd >= 0)
  const regions = asyncMembers ? 2 : 1
  const rowInBase = regions * batchLimit
  const oldBase = rowInBase + rowBytes
  const scratchBase = oldBase + n * chunkBytes
  const arena = acquireArena(scratchBase + 3 * PAGE)
  const bytes = arena.bytes
  /** the current batch's region of the arena: `log` starts at arena offset logBase */
  let region = 0
  let logBase = 0
  let log = bytes.subarray(0, batchLimit)
  /** arena offset of member m's old page k (valid for the pages read for the current row) */
  const oldAt = (m: number, k: number) => oldBase + m * chunkBytes + k * PAGE
  const S0 = scratchBase
  const S1 = scratchBase + PAGE
  const S2 = scratchBase + 2 * PAGE
  // one view per log page of each region, made once: member writes pass them to writev
  const regionViews: Uint8Array[][] = Array.from({length: regions}, (_, g) => {
    const v: Uint8Array[] = new Array<Uint8Array>(maxPages)
    for (let i = 0; i < maxPages; i++) v[i] = bytes.subarray(g * batchLimit + i * PAGE, g * batchLimit + (i + 1) * PAGE)
    return v
  })
  let pageView = regionViews[0]
  // checksum of every log page (meta pages' entries are computed too, and ignored)
  const sums = new Uint32Array(maxPages)
  // the batch's payloads (at most one per page), in log order
  const recs: DataParityRecords = {
    type: new Uint8Array(maxPages),
    location: new Float64Array(maxPages),
    firstSum: new Int32Array(maxPages),
    pages: new Uint8Array(maxPages),
  }
  let nRecs = 0
  // the batch's closed io units: meta block offset in `log`, end of its payload range in `recs`
  const unitOff = new Int32Array(maxPages)
  const unitRecEnd = new Int32Array(maxPages)
  let nUnits = 0
  // Member writes per slot: byte offset on the member (from its data offset) and log page. Within a
  // batch each member's offsets strictly increase (rows ascend, then pages in a row, one page per
  // stripe per member), so runs coalesce without sorting.
  const mwOff = Array.from({length: n}, () => new Float64Array(maxPages))
  const mwPage = Array.from({length: n}, () => new Int32Array(maxPages))
  const mwCount = new Int32Array(n)
  const memberBase = Array.from({length: n}, (_, m) => arr.memberBase(m))
  let logLen = 0
  let unitStart = -1 // offset of the open io unit's meta block in `log`
  let unitMetaSize = 32
  let batchLastUnitPos = -1
  let consumed = 0
  let completedBytes = 0
  let shortInput = -1

  // Meta blocks are encoded when the batch is written, not when a unit closes: by then the
  // checksums of all its pages come from one call, and head and seq are final (a full log in
  // write-back moves both; see flushBatch). `seq` is the seq of the batch's first unit until then.
  const closeUnit = () => {
    if (unitStart < 0) return
    unitOff[nUnits] = unitStart
    unitRecEnd[nUnits] = nRecs
    nUnits++
    res.ioUnits++
    unitStart = -1
    unitMetaSize = 32
  }
  const openUnit = () => {
    unitStart = logLen
    logLen += PAGE
  }
  const stampUnits = () => {
    crc32cPages(arr.seed, log.subarray(0, logLen), sums, 0)
    let from = 0
    for (let u = 0; u < nUnits; u++) {
      const pos = ring.add(head, unitOff[u] / 512)
      encodeDataParityMeta(pageView[unitOff[u] / PAGE], arr.seed, seq, pos, recs, from, unitRecEnd[u], sums)
      from = unitRecEnd[u]
      batchLastUnitPos = pos
      seq++
    }
  }
  /**
   * The batch's member writes, in slot order, one request per contiguous run (crash injection counts
   * requests): run(m, i, j) is member m's pages mwPage[m][i..j) at member offset mwOff[m][i]. The lists
   * are empty afterwards.
   */
  const forEachMemberRun = (run: (m: number, i: number, j: number) => void) => {
    for (let m = 0; m < n; m++) {
      const cnt = mwCount[m]
      const offs = mwOff[m]
      let i = 0
      while (i < cnt) {
        let j = i + 1
        while (j < cnt && offs[j] === offs[j - 1] + PAGE) j++
        run(m, i, j)
        i = j
      }
      mwCount[m] = 0
    }
  }
  const writeMembers = () =>
    forEachMemberRun((m, i, j) => {
      const bufs: Uint8Array[] = new Array<Uint8Array>(j - i)
      for (let x = i; x < j; x++) bufs[x - i] = pageView[mwPage[m][x]]
      arr.members[m]!.dev.writev(bufs, memberBase[m] + mwOff[m][i])
    })
  // The helper's write job for the last batch: its runs (fd, offset, from, count), pages and member
  // slots, one set per region (a job reads its region's pages until it is awaited).
  let memberJob: WriteJob | null = null
  let jobRegion = 0
  const jobRuns = Array.from({length: regions}, () => new Float64Array(4 * maxPages))
  const jobPages = Array.from({length: regions}, () => new Int32Array(maxPages))
  const jobSlot = Array.from({length: regions}, () => new Int32Array(maxPages))
  /** this batch's member pages as one write job on the helper (same runs, in the same order, as writeMembers) */
  const postMembers = () => {
    const runs = jobRuns[region]
    const pages = jobPages[region]
    const slot = jobSlot[region]
    let nRuns = 0
    let nPages = 0
    forEachMemberRun((m, i, j) => {
      const dev = arr.members[m]!.dev
      const at = memberBase[m] + mwOff[m][i]
      checkDeviceRange(dev, at, (j - i) * PAGE, 'write') // as FileDevice.writev would: the helper writes the fd directly
      pages.set(mwPage[m].subarray(i, j), nPages)
      runs[4 * nRuns] = memberFds[m]
      runs[4 * nRuns + 1] = at
      runs[4 * nRuns + 2] = nPages
      runs[4 * nRuns + 3] = j - i
      slot[nRuns++] = m
      nPages += j - i
      dev.stats.writes++
      dev.stats.bytesWritten += (j - i) * PAGE
    })
    memberJob = writeRunsAsync(log, pages, runs, nRuns)
    jobRegion = region
  }
  /** wait for the last batch's member writes; a failure is an IoError naming the member */
  const awaitMembers = () => {
    const job = memberJob
    if (!job) return
    memberJob = null
    try {
      job.wait(job.pages)
    } catch (caught) {
      const error = caught as (Error & {pages?: unknown}) | undefined
      // a failed run: `pages` counts the runs written before it
      if (typeof error?.pages !== 'number') throw caught
      throw new IoError(error.message, arr.members[jobSlot[jobRegion][error.pages]]!.dev.name)
    }
  }
  const flushMembers = () => {
    awaitMembers()
    for (const d of arr.members) d!.dev.flush()
  }
  const flushBatch = () => {
    closeUnit()
    if (logLen === 0) return
    const sectors = logLen / 512
    // keep room for the closing empty meta block
    if (ring.distance(tail, head) + sectors + BLOCK_SECTORS >= ring.sizeSectors) {
      if (wb) {
        // a full log: write the cached stripes out (parity, members, flush payloads), then go on
        // right after the closing block reclaim leaves at the tail, with the seq it hands out
        // (the batch's meta blocks are stamped below, for that new place)
        const r = reclaimLog(arr)
        res.reclaimedStripes += r.dataOnlyStripes
        cached = new StripePages(n) // all on the members now, and their log places are reused
        tail = r.journalTailSector
        head = ring.add(tail, BLOCK_SECTORS)
        seq = r.nextSeq
      } else {
        // checkpoint: everything up to the last unit is on the members; make it durable, move the tail
        flushMembers() // (awaits the helper's member writes first)
        arr.writeSuperblocks(lastUnitOnMembers)
        tail = lastUnitOnMembers
      }
      res.checkpoints++
      if (ring.distance(tail, head) + sectors + BLOCK_SECTORS >= ring.sizeSectors)
        throw new UsageError('journal too small for this write batch', undefined, arr.journal!.path)
    }
    stampUnits()
    ring.write(log.subarray(0, logLen), head)
    arr.journal!.dev.flush()
    res.journalBytes += logLen
    if (asyncMembers) {
      // the last batch's member writes are done before this one's start (one job at a time), and this
      // batch's run on the helper while the next is laid out in the other region
      awaitMembers()
      postMembers()
      region ^= 1
      logBase = region * batchLimit
      log = bytes.subarray(logBase, logBase + batchLimit)
      pageView = regionViews[region]
    } else writeMembers()
    head = ring.add(head, sectors)
    lastUnitOnMembers = batchLastUnitPos
    logLen = 0
    nUnits = 0
    nRecs = 0
    res.acknowledged = completedBytes
    opts.onAck?.(completedBytes)
  }

  try {
    // Current content of the last page when the write ends inside it (the rest of it is kept).
    const tailOf = (end: number): Uint8Array | null => {
      if (end % PAGE === 0) return null
      const page = alignedBuffer(PAGE)
      oldPageContent(arr, cached, Math.floor((offset + end) / PAGE), page)
      return page
    }
    const totalPages = Math.ceil(length / PAGE)
    let tailPage = tailOf(length)

    const rowIn = bytes.subarray(rowInBase, rowInBase + rowBytes)
    const ppc = pagesPerChunk
    // per stripe of the row: what to do (none, full, rcw, rmw) and how many data pages it touches
    const how = new Uint8Array(ppc)
    const touchedCount = new Int32Array(ppc)
    const readLo = new Int32Array(n)
    const readHi = new Int32Array(n)
    /** data indices of the row in member order: the kernel logs a stripe's pages by device */
    const byMember = new Int32Array(D)
    /** arena offset of data index i's page in the current stripe (in the log's current region) */
    const logOf = new Int32Array(D)
    /** parity sources (arena offsets) and their syndrome slots */
    const src = new Int32Array(2 * D + 1)
    const slots = new Int32Array(D)
    const startPage = offset / PAGE
    const endPage = startPage + totalPages
    const firstRow = Math.floor(offset / rowBytes)
    let lastRow = Math.floor((endPage * PAGE - 1) / rowBytes)
    for (let r = firstRow; r <= lastRow; r++) {
      const lay = rowLayout(arr, r)
      const dm = lay.dataMembers
      const rowPage0 = r * D * ppc
      // page index p = i·ppc + k within the row's data is touched when from <= p < to
      const from = Math.max(startPage, rowPage0) - rowPage0
      let to = Math.min(endPage, rowPage0 + D * ppc) - rowPage0
      // user data for this row
      let inBytes = Math.min((to - from) * PAGE, length - consumed)
      const got = source(rowIn.subarray(0, inBytes))
      if (got !== inBytes && !opts.endAtShortInput) {
        // short input: what came before this row is written and the log is closed normally below
        shortInput = consumed + got
        break
      }
      if (got !== inBytes) {
        // the input ends inside this row, and so does the write (its last page keeps the old bytes after the end)
        length = consumed + got
        if (got === 0) break
        inBytes = got
        to = from + Math.ceil(got / PAGE)
        lastRow = r
        tailPage = tailOf(length)
      }
      if (tailPage && consumed + inBytes === length) rowIn.set(tailPage.subarray(length % PAGE), inBytes)
      consumed += inBytes
      for (let i = 0; i < D; i++) {
        // insertion sort by member (D is small)
        let x = i
        while (x > 0 && dm[byMember[x - 1]] > dm[i]) {
          byMember[x] = byMember[x - 1]
          x--
        }
        byMember[x] = i
      }
      // decide rmw or rcw per stripe, and what to read from each member
      readLo.fill(ppc)
      readHi.fill(-1)
      for (let k = 0; k < ppc; k++) {
        let t = 0
        for (let i = 0; i < D; i++) {
          const p = i * ppc + k
          if (p >= from && p < to) t++
        }
        touchedCount[k] = t
        how[k] = t === 0 ? HOW_NONE : HOW_FULL
        if (t === 0 || t === D || wb) continue // write-back logs data only: no parity yet
        const rmwReads = t + nParity
        const rcwReads = D - t
        if (rcwReads <= rmwReads) {
          how[k] = HOW_RCW
          for (let i = 0; i < D; i++) {
            const p = i * ppc + k
            if (p < from || p >= to) {
              const m = dm[i]
              if (k < readLo[m]) readLo[m] = k
              if (k > readHi[m]) readHi[m] = k
            }
          }
        } else {
          how[k] = HOW_RMW
          for (let i = 0; i < D; i++) {
            const p = i * ppc + k
            if (p >= from && p < to) {
              const m = dm[i]
              if (k < readLo[m]) readLo[m] = k
              if (k > readHi[m]) readHi[m] = k
            }
          }
          for (let x = 0; x < nParity; x++) {
            const m = x === 0 ? lay.pd : lay.qd
            if (k < readLo[m]) readLo[m] = k
            if (k > readHi[m]) readHi[m] = k
          }
        }
      }
      for (let m = 0; m < n; m++) {
        if (readHi[m] < 0) continue
        const lo = readLo[m]
        const hi = readHi[m]
        arr.members[m]!.dev.read(bytes.subarray(oldAt(m, lo), oldAt(m, hi + 1)), memberBase[m] + r * chunkBytes + lo * PAGE)
      }
      for (let k = 0; k < ppc; k++) {
        const kind = how[k]
        if (kind === HOW_NONE) continue
        const t = touchedCount[k]
        const np = wb ? 0 : nParity
        const stripeBytes = (t + np) * PAGE
        const payloadMeta = t * 20 + (wb ? 0 : 16 + 4 * nParity)
        if (unitStart >= 0 && unitMetaSize + payloadMeta > META_LIMIT) closeUnit()
        if (logLen + stripeBytes + (unitStart < 0 ? PAGE : 0) > batchLimit) flushBatch()
        if (unitStart < 0) openUnit()
        const base = logLen
        const page0 = base / PAGE
        const memberOff = r * chunkBytes + k * PAGE
        // data pages in member order, each a DATA payload; write-through also sends them to the members
        let j = 0
        for (let x = 0; x < D; x++) {
          const i = byMember[x]
          const p = i * ppc + k
          if (p < from || p >= to) continue
          const dst = base + j * PAGE
          const at = rowInBase + (p - from) * PAGE
          bytes.copyWithin(logBase + dst, at, at + PAGE)
          logOf[i] = logBase + dst
          recs.type[nRecs] = PAYLOAD_DATA
          recs.location[nRecs] = (rowPage0 + p) * BLOCK_SECTORS
          recs.firstSum[nRecs] = page0 + j
          recs.pages[nRecs] = 1
          nRecs++
          if (!wb) {
            const m = dm[i]
            mwOff[m][mwCount[m]] = memberOff
            mwPage[m][mwCount[m]++] = page0 + j
          }
          j++
        }
        if (!wb) {
          // parity right behind the data pages, computed in place in the log
          const pOff = logBase + base + t * PAGE
          const qOff = pOff + PAGE
          if (kind === HOW_RMW) {
            res.rmwStripes++
            // P = old P ⊕ Σ (old D_i ⊕ new D_i) over the touched i: one XOR of 1 + 2t pages
            let z = 0
            src[z++] = oldAt(lay.pd, k)
            for (let i = 0; i < D; i++) {
              const p = i * ppc + k
              if (p < from || p >= to) continue
              src[z++] = oldAt(dm[i], k)
              src[z++] = logOf[i]
            }
            arena.p(src, pOff, PAGE, z)
            if (level === 6) {
              // Q = old Q ⊕ Σ g^slot_i·new D_i ⊕ Σ g^slot_i·old D_i (multiplication distributes over ⊕);
              // the two syndromes go to scratch pages, their P side to a third
              let c = 0
              for (let i = 0; i < D; i++) {
                const p = i * ppc + k
                if (p < from || p >= to) continue
                src[c] = logOf[i]
                slots[c++] = lay.qSlot[i]
              }
              arena.pq(src, slots, S0, S1, PAGE, c)
              c = 0
              for (let i = 0; i < D; i++) {
                const p = i * ppc + k
                if (p < from || p >= to) continue
                src[c++] = oldAt(dm[i], k)
              }
              arena.pq(src, slots, S0, S2, PAGE, c)
              src[0] = oldAt(lay.qd, k)
              src[1] = S1
              src[2] = S2
              arena.p(src, qOff, PAGE, 3)
            }
          } else {
            if (kind === HOW_RCW) res.rcwStripes++
            for (let i = 0; i < D; i++) {
              const p = i * ppc + k
              src[i] = p >= from && p < to ? logOf[i] : oldAt(dm[i], k)
            }
            if (level === 6) arena.pq(src, lay.qSlot, pOff, qOff, PAGE, D)
            else arena.p(src, pOff, PAGE, D)
          }
          recs.type[nRecs] = PAYLOAD_PARITY
          recs.location[nRecs] = r * chunkSectors + k * BLOCK_SECTORS
          recs.firstSum[nRecs] = page0 + t
          recs.pages[nRecs] = nParity
          nRecs++
          mwOff[lay.pd][mwCount[lay.pd]] = memberOff
          mwPage[lay.pd][mwCount[lay.pd]++] = page0 + t
          if (level === 6) {
            mwOff[lay.qd][mwCount[lay.qd]] = memberOff
            mwPage[lay.qd][mwCount[lay.qd]++] = page0 + t + 1
          }
        }
        unitMetaSize += payloadMeta
        logLen += stripeBytes
        res.stripes++
      }
      completedBytes = consumed
      progress?.(consumed, length)
    }
    flushBatch()
  } catch (error) {
    try {
      awaitMembers() // the helper may still be writing from the arena
    } catch {
      // the first error is the one to report
    }
    throw error
  } finally {
    releaseArena(arena)
  }
  res.bytes = length
  if (wb) {
    // write-back: acknowledged once in the log; the stripes stay cached until reclaim
    res.headSector = head
    res.lastSeq = seq - 1n
    if (shortInput >= 0) throwShort(shortInput, consumed, length)
    return res
  }
  // Close the log: members durable, then an empty meta block at the head, then the tail moves to
  // it (superblocks last). A kernel that assembles this set finds a clean log.
  flushMembers()
  const empty = encodeMetaBlock({seq, position: BigInt(head), payloads: []}, arr.seed)
  ring.write(empty, head)
  arr.journal!.dev.flush()
  arr.writeSuperblocks(head)
  res.lastSeq = seq
  res.headSector = ring.add(head, BLOCK_SECTORS)
  res.bytes = length
  res.journalBytes += PAGE
  if (shortInput >= 0) throwShort(shortInput, consumed, length)
  return res
}

/**
 * The current content of array page `page`, into `out` (one page): its newest copy cached in the
 * live log when a write-back write put it there and it is not on the members yet (`cached`: the
 * plan's data-only pages, the last logged position of each), else the member's. Every write that
 * covers part of a page keeps the rest from here. Write-through reads its rmw/rcw pages from the
 * members directly: it reclaims the cached stripes first, so `cached` is empty for it.
 */
export function oldPageContent(arr: MdArray, cached: StripePages, page: number, out: Uint8Array): void {
  const loc = {member: 0, memberSector: 0}
  arr.geometry.locate(page * BLOCK_SECTORS, loc)
  const logPos = cached.at(loc.memberSector, loc.member)
  if (logPos >= 0) arr.ring!.read(out, logPos)
  else arr.members[loc.member]!.dev.read(out, arr.memberBase(loc.member) + loc.memberSector * 512)
}

function throwShort(got: number, written: number, length: number): never {
  throw new R5Error(
    `input ended after ${got} of ${length} bytes; the first ${written} bytes were written and the journal is clean`,
    EXIT.FAILED,
    undefined,
    'give --length matching the input',
    'short-input',
  )
}

/** Recompute parity for every stripe (create without --assume-clean). */
export function syncParity(arr: MdArray, progress?: Progress): void {
  const level = arr.sb.level as 4 | 5 | 6
  const n = arr.sb.raidDisks
  const chunkBytes = arr.sb.chunkSize * 512
  const pagesPerChunk = chunkBytes / PAGE
  const rows = Number(arr.sb.size) / arr.sb.chunkSize
  const rowsPerWindow = Math.max(1, Math.floor(WINDOW_BYTES / (chunkBytes * n)))
  const bufs = Array.from({length: n}, () => alignedBuffer(rowsPerWindow * chunkBytes))
  for (let r0 = 0; r0 < rows; r0 += rowsPerWindow) {
    const r1 = Math.min(rows, r0 + rowsPerWindow)
    const span = (r1 - r0) * chunkBytes
    for (let m = 0; m < n; m++) arr.members[m]!.dev.read(bufs[m].subarray(0, span), arr.memberBase(m) + r0 * chunkBytes)
    for (let r = r0; r < r1; r++) {
      const lay = rowLayout(arr, r)
      const o = (r - r0) * chunkBytes
      for (let k = 0; k < pagesPerChunk; k++) {
        const po = o + k * PAGE
        const data = lay.dataMembers.map(m => bufs[m].subarray(po, po + PAGE))
        computeP(data, bufs[lay.pd].subarray(po, po + PAGE))
        if (level === 6) computeQ(data, lay.qSlot, bufs[lay.qd].subarray(po, po + PAGE))
      }
    }
    // parity moves around, so write whole windows back for simplicity: one request per member
    for (let m = 0; m < n; m++) arr.members[m]!.dev.write(bufs[m].subarray(0, span), arr.memberBase(m) + r0 * chunkBytes)
    progress?.(r1, rows)
  }
  for (const d of arr.members) d!.dev.flush()
}
