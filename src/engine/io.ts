/**
 * The array's data paths: `readArray` (with reconstruction of missing members) and `writeArray`
 * (write-through: parity, log, flush, members, as raid5-cache.c does). Both stream through a
 * fixed window and batch device I/O: a run of contiguous pages is one request.
 */
import {crc32cPages} from './checksum.js'
import {alignedBuffer} from './device.js'
import {R5Error, RefusedError, UsageError, EXIT} from './errors.js'
import {encodeMetaBlock, type Payload, PAYLOAD_DATA, PAYLOAD_PARITY} from './format/meta.js'
import type {MdArray} from './array.js'
import {computeP, computeQ, gfPow2, mulInto, reconstruct, xorInto} from './parity.js'
import {planRecovery, writeCoalesced} from './journal/recover.js'
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
  if (offset + length > size)
    throw new UsageError(`range ${offset}+${length} is beyond the end of the array (${size} bytes)`)
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
    progress?.(Math.min(end, (r1) * rowBytes) - offset, length)
  }
}

/** Rebuild the chunks of absent members for one chunk row, page by page. */
function rebuildRow(level: 4 | 5 | 6, lay: RowLayout, bufs: (Uint8Array | null)[], rowOff: number, missing: number[],
  rebuilt: Uint8Array[], D: number, pagesPerChunk: number): void {
  const idxOf = (m: number) => (m === lay.pd ? D : m === lay.qd ? D + 1 : lay.dataMembers.indexOf(m))
  const order = [...lay.dataMembers, lay.pd, ...(level === 6 ? [lay.qd] : [])]
  const missIdx = missing.map(idxOf)
  for (let k = 0; k < pagesPerChunk; k++) {
    const pages = order.map((m, j) => {
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

export interface WriteOptions {
  mode?: 'write-through' | 'write-back'
  progress?: Progress
  /** called when the first `bytes` of the write are acknowledged (write-through: on the members; write-back: in the log) */
  onAck?: (bytes: number) => void
}

export function writeArray(arr: MdArray, offset: number, length: number, source: Source, opts: WriteOptions = {}): WriteResult {
  const progress = opts.progress
  checkRange(arr, offset, length)
  if (arr.missingMembers.length > 0) throw new RefusedError('writing needs every member', arr.all()[0].path)
  const ring = arr.ring!
  const wb = opts.mode === 'write-back'
  let plan = planRecovery(arr)
  if (plan.fromLog.size > 0 || plan.skipped.length > 0)
    throw new R5Error(`journal is dirty: ${plan.dataParityStripes} stripe(s) with data and parity pending replay`, EXIT.DIRTY, arr.journal!.path,
      'replay it first with `r5ctl recover`', 'dirty')
  let reclaimed = 0
  if (plan.dataOnly.size > 0 && !wb) {
    // cached write-back stripes must reach the members before write-through parity is computed
    reclaimed = reclaimLog(arr).dataOnlyStripes
    plan = planRecovery(arr)
  }
  let head: number
  let tail: number
  let seq: bigint
  let lastUnitOnMembers: number
  if (plan.dataOnly.size > 0) {
    // write-back with cached stripes: the live log continues
    head = plan.stopSector
    tail = plan.tailSector
    seq = plan.stopSeq
    lastUnitOnMembers = -1
  } else {
    // Open the log as the kernel does at array start: an empty meta block at the head with
    // seq + 10000 becomes the tail, so nothing stale beyond the head can ever continue our log.
    tail = plan.stopSector
    ring.write(encodeMetaBlock({seq: plan.newSeq, position: BigInt(tail), payloads: []}, arr.seed), tail)
    arr.journal!.dev.flush()
    arr.writeSuperblocks(tail)
    head = ring.add(tail, BLOCK_SECTORS)
    seq = plan.newSeq + 1n
    lastUnitOnMembers = tail
  }
  const level = arr.sb.level as 4 | 5 | 6
  const nParity = level === 6 ? 2 : 1
  const n = arr.sb.raidDisks
  const D = arr.geometry.dataDisks
  const chunkSectors = arr.sb.chunkSize
  const chunkBytes = chunkSectors * 512
  const pagesPerChunk = chunkBytes / PAGE
  const rowBytes = D * chunkBytes
  const res: WriteResult = {bytes: 0, stripes: 0, ioUnits: 0, journalBytes: 0, rmwStripes: 0, rcwStripes: 0, checkpoints: 0, headSector: head,
    lastSeq: seq - 1n, mode: wb ? 'write-back' : 'write-through', reclaimedStripes: reclaimed, acknowledged: 0}
  if (length === 0) return res

  // the batch: io units laid out exactly as they go into the ring
  const batchLimit = Math.max(16 * PAGE, Math.min(WINDOW_BYTES, Math.floor(ring.sizeBytes / 4 / PAGE) * PAGE))
  const maxStripeBytes = (1 + D + nParity) * PAGE
  if (batchLimit < 2 * maxStripeBytes) throw new UsageError('journal too small for one stripe of this array', undefined, arr.journal!.path)
  const log = alignedBuffer(batchLimit)
  let logLen = 0
  let unitStart = -1 // offset of the open io unit's meta block in `log`
  let unitPayloads: Payload[] = []
  let unitMetaSize = 32
  let batchLastUnitPos = -1
  const memberWrites: {slot: number; off: number; view: Uint8Array}[] = []
  const sums = new Uint32Array(D + 2)

  const closeUnit = () => {
    if (unitStart < 0) return
    const pos = ring.add(head, unitStart / 512)
    encodeMetaBlock({seq, position: BigInt(pos), payloads: unitPayloads}, arr.seed, log.subarray(unitStart, unitStart + PAGE))
    unitOffsets.push({off: unitStart, payloads: unitPayloads})
    batchLastUnitPos = pos
    seq++
    res.ioUnits++
    unitStart = -1
    unitPayloads = []
    unitMetaSize = 32
  }
  const unitOffsets: {off: number; payloads: Payload[]}[] = []
  const restamp = () => {
    for (const u of unitOffsets) {
      const pos = ring.add(head, u.off / 512)
      encodeMetaBlock({seq, position: BigInt(pos), payloads: u.payloads}, arr.seed, log.subarray(u.off, u.off + PAGE))
      batchLastUnitPos = pos
      seq++
    }
  }
  const openUnit = () => {
    unitStart = logLen
    logLen += PAGE
  }
  const flushMembers = () => {
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
        // right after the closing block reclaim leaves at the tail
        const r = reclaimLog(arr)
        res.reclaimedStripes += r.dataOnlyStripes
        tail = r.journalTailSector
        head = ring.add(tail, BLOCK_SECTORS)
        seq = r.nextSeq
        // the open batch was built for the old head: re-stamp its meta blocks for the new place
        restamp()
      } else {
        // checkpoint: everything up to the last unit is on the members; make it durable, move the tail
        flushMembers()
        arr.writeSuperblocks(lastUnitOnMembers)
        tail = lastUnitOnMembers
      }
      res.checkpoints++
      if (ring.distance(tail, head) + sectors + BLOCK_SECTORS >= ring.sizeSectors)
        throw new UsageError('journal too small for this write batch', undefined, arr.journal!.path)
    }
    ring.write(log.subarray(0, logLen), head)
    arr.journal!.dev.flush()
    res.journalBytes += logLen
    // members: one request per contiguous run
    writeCoalesced(arr, memberWrites)
    memberWrites.length = 0
    head = ring.add(head, sectors)
    lastUnitOnMembers = batchLastUnitPos
    logLen = 0
    unitOffsets.length = 0
    res.acknowledged = completedBytes
    opts.onAck?.(completedBytes)
  }

  // Old content of the last page when the length is not a page multiple (the rest of it is kept).
  const totalPages = Math.ceil(length / PAGE)
  let tailPage: Uint8Array | null = null
  if (length % PAGE !== 0) {
    tailPage = alignedBuffer(PAGE)
    const t = tailPage
    readArray(arr, offset + (totalPages - 1) * PAGE, PAGE, views => { let o = 0; for (const v of views) { t.set(v, o); o += v.length } })
  }

  const rowIn = alignedBuffer(rowBytes)
  const old = Array.from({length: n}, () => alignedBuffer(chunkBytes))
  const tmp = alignedBuffer(PAGE)
  const startPage = offset / PAGE
  const endPage = startPage + totalPages
  const firstRow = Math.floor(offset / rowBytes)
  const lastRow = Math.floor((endPage * PAGE - 1) / rowBytes)
  let consumed = 0
  let completedBytes = 0
  let shortInput = -1
  for (let r = firstRow; r <= lastRow; r++) {
    const lay = rowLayout(arr, r)
    const rowPage0 = r * D * pagesPerChunk
    const from = Math.max(startPage, rowPage0) - rowPage0 // page index within the row's data
    const to = Math.min(endPage, rowPage0 + D * pagesPerChunk) - rowPage0
    // user data for this row
    const inBytes = Math.min((to - from) * PAGE, length - consumed)
    const got = source(rowIn.subarray(0, inBytes))
    if (got !== inBytes) {
      // short input: what came before this row is written and the log is closed normally below
      shortInput = consumed + got
      break
    }
    if (tailPage && consumed + inBytes === length) rowIn.set(tailPage.subarray(length % PAGE), inBytes)
    consumed += inBytes
    const newPage = (i: number, k: number) => {
      const p = i * pagesPerChunk + k - from
      return rowIn.subarray(p * PAGE, (p + 1) * PAGE)
    }
    // which stripes (k) and data indices are touched
    const touched = (i: number, k: number) => {
      const p = i * pagesPerChunk + k
      return p >= from && p < to
    }
    // decide rmw or rcw per stripe, and what to read from each member
    const how: ('rmw' | 'rcw' | 'full')[] = []
    const readLo = new Array<number>(n).fill(Infinity)
    const readHi = new Array<number>(n).fill(-1)
    const want = (m: number, k: number) => { readLo[m] = Math.min(readLo[m], k); readHi[m] = Math.max(readHi[m], k) }
    const ks: number[] = []
    for (let k = 0; k < pagesPerChunk; k++) {
      let t = 0
      for (let i = 0; i < D; i++) if (touched(i, k)) t++
      how.push('full')
      if (t === 0) continue
      ks.push(k)
      if (t === D || wb) continue // write-back logs data only: no parity yet
      const rmwReads = t + nParity
      const rcwReads = D - t
      if (rcwReads <= rmwReads) {
        how[k] = 'rcw'
        for (let i = 0; i < D; i++) if (!touched(i, k)) want(lay.dataMembers[i], k)
      } else {
        how[k] = 'rmw'
        for (let i = 0; i < D; i++) if (touched(i, k)) want(lay.dataMembers[i], k)
        want(lay.pd, k)
        if (level === 6) want(lay.qd, k)
      }
    }
    for (let m = 0; m < n; m++) {
      if (readHi[m] < 0) continue
      const lo = readLo[m]
      const hi = readHi[m]
      arr.members[m]!.dev.read(old[m].subarray(lo * PAGE, (hi + 1) * PAGE), arr.memberBase(m) + r * chunkBytes + lo * PAGE)
    }
    const oldPage = (m: number, k: number) => old[m].subarray(k * PAGE, (k + 1) * PAGE)
    for (const k of ks) {
      const tIdx: number[] = []
      for (let i = 0; i < D; i++) if (touched(i, k)) tIdx.push(i)
      const np = wb ? 0 : nParity
      const stripeBytes = (tIdx.length + np) * PAGE
      const payloadMeta = tIdx.length * 20 + (wb ? 0 : 16 + 4 * nParity)
      if (unitStart >= 0 && unitMetaSize + payloadMeta > META_LIMIT) closeUnit()
      if (logLen + stripeBytes + (unitStart < 0 ? PAGE : 0) > log.length) flushBatch()
      if (unitStart < 0) openUnit()
      // data pages in member order, as the kernel logs them
      const byMember = [...tIdx].sort((a, b) => lay.dataMembers[a] - lay.dataMembers[b])
      const base = logLen
      const memberSector = r * chunkSectors + k * BLOCK_SECTORS
      byMember.forEach((i, j) => {
        const dst = log.subarray(base + j * PAGE, base + (j + 1) * PAGE)
        dst.set(newPage(i, k))
      })
      const pOff = base + tIdx.length * PAGE
      const P = wb ? null : log.subarray(pOff, pOff + PAGE)
      const Q = level === 6 && !wb ? log.subarray(pOff + PAGE, pOff + 2 * PAGE) : null
      const logged = (i: number) => { const j = byMember.indexOf(i); return log.subarray(base + j * PAGE, base + (j + 1) * PAGE) }
      if (!P) {
        // write-back: data only
      } else if (how[k] === 'rmw') {
        res.rmwStripes++
        P.set(oldPage(lay.pd, k))
        if (Q) Q.set(oldPage(lay.qd, k))
        for (const i of tIdx) {
          tmp.set(oldPage(lay.dataMembers[i], k))
          xorInto(tmp, logged(i))
          xorInto(P, tmp)
          if (Q) mulInto(Q, tmp, gfPow2(lay.qSlot[i]))
        }
      } else {
        if (how[k] === 'rcw') res.rcwStripes++
        const data: Uint8Array[] = []
        for (let i = 0; i < D; i++) data.push(touched(i, k) ? logged(i) : oldPage(lay.dataMembers[i], k))
        computeP(data, P)
        if (Q) computeQ(data, lay.qSlot, Q)
      }
      crc32cPages(arr.seed, log.subarray(base, base + stripeBytes), sums, 0)
      byMember.forEach((i, j) => {
        const arraySector = BigInt((rowPage0 + i * pagesPerChunk + k) * BLOCK_SECTORS)
        unitPayloads.push({type: PAYLOAD_DATA, flags: 0, sizeSectors: BLOCK_SECTORS, location: arraySector, checksums: [sums[j]]})
        if (P) memberWrites.push({slot: lay.dataMembers[i], off: r * chunkBytes + k * PAGE, view: log.subarray(base + j * PAGE, base + (j + 1) * PAGE)})
      })
      if (P) {
        unitPayloads.push({type: PAYLOAD_PARITY, flags: 0, sizeSectors: nParity * BLOCK_SECTORS, location: BigInt(memberSector),
          checksums: Array.from(sums.subarray(tIdx.length, tIdx.length + nParity))})
        memberWrites.push({slot: lay.pd, off: r * chunkBytes + k * PAGE, view: P})
        if (Q) memberWrites.push({slot: lay.qd, off: r * chunkBytes + k * PAGE, view: Q})
      }
      unitMetaSize += payloadMeta
      logLen += stripeBytes
      res.stripes++
    }
    completedBytes = consumed
    progress?.(consumed, length)
  }
  flushBatch()
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

function throwShort(got: number, written: number, length: number): never {
  throw new UsageError(`input ended after ${got} of ${length} bytes; the first ${written} bytes were written and the journal is clean`,
    'give --length matching the input')
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
