/**
 * The array's read-side data paths, row by row of chunks: `readArray` (with reconstruction of missing
 * members), `rebuildMembers` (a missing member's own bytes, parity chunks too, for rebuild) and
 * `syncParity` (every stripe's parity from its data). Each streams through a fixed
 * window and batches device I/O: a run of contiguous pages is one request. The write path is write/.
 */
import {alignedBuffer} from './device.js'
import type {MdArray} from './array.js'
import {reconstruct, type ParityKernels} from './parity.js'
import {PAGE} from './journal/ring.js'
import {WINDOW_BYTES, checkRange, rowLayout, type Progress, type RowLayout} from './rows.js'

/** One window of every member, as readArray hands it to a ReadOverlay. */
export interface OverlayWindow {
  /** member m's pages of the window: as read, or for a missing member its rebuilt pages */
  slots: Uint8Array[]
  /** false for a missing member */
  present: boolean[]
  /** member sector (from the data offset) of the window's first page */
  sector: number
  /** bytes of each member in the window */
  bytes: number
}

/**
 * Pages laid over the members' in memory (the replayed view, journal/view.ts). readArray calls
 * `lay` twice per window: with `rebuilt` false on the members' pages as read, before missing
 * members are rebuilt from them; with `rebuilt` true once they are rebuilt, before the bytes are
 * handed out.
 */
export interface ReadOverlay {
  lay(win: OverlayWindow, rebuilt: boolean): void
  /**
   * True when `lay` replaces every page of present member `m` in the window [sector, sector +
   * bytes / 512) before any missing member is rebuilt from it: that member's window is not read.
   */
  covers?(m: number, sector: number, bytes: number, rebuilding: boolean): boolean
}

/**
 * The window buffers of reads of one array, kept from read to read: a view answering many small
 * requests (serve) allocates them once, not per request.
 */
export class ReadBuffers {
  private rows = 0
  private members: (Uint8Array | null)[] = []
  private rebuilt: Uint8Array[] = []
  /** two chunks: what a RAID6 rebuild of two pages of a row works in */
  private readonly scratch: Uint8Array

  constructor(private readonly arr: MdArray) {
    this.scratch = new Uint8Array(2 * arr.sb.chunkSize * 512)
  }

  /** buffers of at least `rows` chunk rows: one per present member, one per missing member to rebuild */
  get(rows: number): {bufs: (Uint8Array | null)[]; rebuilt: Uint8Array[]; scratch: Uint8Array} {
    if (rows > this.rows) {
      const bytes = rows * this.arr.sb.chunkSize * 512
      this.members = this.arr.members.map(d => (d ? alignedBuffer(bytes) : null))
      this.rebuilt = this.arr.missingMembers.map(() => alignedBuffer(bytes))
      this.rows = rows
    }
    return {bufs: this.members, rebuilt: this.rebuilt, scratch: this.scratch}
  }
}

/**
 * Read `length` bytes of the array at `offset`, handing out views in order to `sink` (one call
 * per window, so the caller can write them with one writev). Views are valid only during the call.
 * An `overlay` changes the pages in memory before and after missing members are rebuilt.
 */
export function readArray(
  arr: MdArray,
  offset: number,
  length: number,
  sink: (views: Uint8Array[]) => void,
  progress?: Progress,
  overlay?: ReadOverlay,
  buffers: ReadBuffers = new ReadBuffers(arr),
): void {
  checkRange(arr, offset, length)
  if (length === 0) return
  const chunkBytes = arr.sb.chunkSize * 512
  const n = arr.sb.raidDisks
  const D = arr.geometry.dataDisks
  const rowBytes = D * chunkBytes
  const level = arr.sb.level as 4 | 5 | 6
  const end = offset + length
  const firstRow = Math.floor(offset / rowBytes)
  const lastRow = Math.floor((end - 1) / rowBytes)
  // a window of rows, no larger than the read needs (a small read, as a served request is, allocates little)
  const rowsPerWindow = Math.min(lastRow - firstRow + 1, Math.max(1, Math.floor(WINDOW_BYTES / (chunkBytes * n))))
  const {bufs, rebuilt, scratch} = buffers.get(rowsPerWindow)
  const missing = arr.missingMembers
  const slots = bufs.map((b, m) => b ?? rebuilt[missing.indexOf(m)])
  const present = bufs.map(b => b !== null)
  const pagesPerChunk = chunkBytes / PAGE
  for (let r0 = firstRow; r0 <= lastRow; r0 += rowsPerWindow) {
    const r1 = Math.min(lastRow + 1, r0 + rowsPerWindow)
    const span = (r1 - r0) * chunkBytes
    for (let m = 0; m < n; m++) {
      const b = bufs[m]
      if (!b || overlay?.covers?.(m, r0 * arr.sb.chunkSize, span, missing.length > 0)) continue
      arr.members[m]!.dev.read(b.subarray(0, span), arr.memberBase(m) + r0 * chunkBytes)
    }
    const win = {slots, present, sector: r0 * arr.sb.chunkSize, bytes: span}
    overlay?.lay(win, false)
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
      if (needsRebuild) rebuildRow(arr.compute.parity, level, lay, bufs, rowOff, missing, rebuilt, D, pagesPerChunk, scratch)
      for (let i = firstIdx; i <= lastIdx; i++) {
        const c = chunkOf(i)
        const from = Math.max(needFrom - i * chunkBytes, 0)
        const to = Math.min(needTo - i * chunkBytes, chunkBytes)
        views.push(c.subarray(from, to))
      }
    }
    overlay?.lay(win, true)
    sink(views)
    progress?.(Math.min(end, r1 * rowBytes) - offset, length)
  }
}

/**
 * The bytes of missing member slots `want` in member sectors [from, to) (whole chunk rows), rebuilt
 * from the present members window by window with the read path's reconstruction. `sink` gets the
 * window's first member sector and, per wanted slot, its bytes (views valid only during the call);
 * a window is at most `maxRows` chunk rows, so that the caller sees every such boundary.
 */
export function rebuildMembers(
  arr: MdArray,
  from: number,
  to: number,
  want: number[],
  sink: (sector: number, bytes: Uint8Array[]) => void,
  opts: {progress?: Progress; maxRows?: number} = {},
): void {
  const chunk = arr.sb.chunkSize
  const chunkBytes = chunk * 512
  const level = arr.sb.level as 4 | 5 | 6
  const missing = arr.missingMembers
  const rowsPerWindow = Math.max(1, Math.min(opts.maxRows ?? Infinity, Math.floor(WINDOW_BYTES / (chunkBytes * arr.sb.raidDisks))))
  const {bufs, rebuilt, scratch} = new ReadBuffers(arr).get(rowsPerWindow)
  const firstRow = Math.floor(from / chunk)
  const endRow = Math.ceil(to / chunk)
  for (let r0 = firstRow; r0 < endRow; r0 += rowsPerWindow) {
    const r1 = Math.min(endRow, r0 + rowsPerWindow)
    const span = (r1 - r0) * chunkBytes
    for (const [m, b] of bufs.entries()) if (b) arr.members[m]!.dev.read(b.subarray(0, span), arr.memberBase(m) + r0 * chunkBytes)
    for (let r = r0; r < r1; r++)
      rebuildRow(
        arr.compute.parity,
        level,
        rowLayout(arr, r),
        bufs,
        (r - r0) * chunkBytes,
        missing,
        rebuilt,
        arr.geometry.dataDisks,
        chunkBytes / PAGE,
        scratch,
      )
    sink(
      r0 * chunk,
      want.map(m => rebuilt[missing.indexOf(m)].subarray(0, span)),
    )
    opts.progress?.((r1 - firstRow) * chunk, (endRow - firstRow) * chunk)
  }
}

/**
 * Rebuild the chunks of absent members for one chunk row: every stripe of a row has the same layout,
 * so the row's chunks are reconstructed in one call (one stripe's rule, over chunk-long pages).
 */
function rebuildRow(
  parity: ParityKernels,
  level: 4 | 5 | 6,
  lay: RowLayout,
  bufs: (Uint8Array | null)[],
  rowOff: number,
  missing: number[],
  rebuilt: Uint8Array[],
  D: number,
  pagesPerChunk: number,
  scratch: Uint8Array,
): void {
  const idxOf = (m: number) => (m === lay.pd ? D : m === lay.qd ? D + 1 : lay.dataMembers.indexOf(m))
  const order = [...lay.dataMembers, lay.pd, ...(level === 6 ? [lay.qd] : [])]
  const end = rowOff + pagesPerChunk * PAGE
  const chunks = order.map(m => (bufs[m] ?? rebuilt[missing.indexOf(m)]).subarray(rowOff, end))
  reconstruct(level, chunks, lay.qSlot, missing.map(idxOf), parity, scratch)
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
        arr.compute.parity.computeP(data, bufs[lay.pd].subarray(po, po + PAGE))
        if (level === 6) arr.compute.parity.computeQ(data, lay.qSlot, bufs[lay.qd].subarray(po, po + PAGE))
      }
    }
    // parity moves around, so write whole windows back for simplicity: one request per member
    for (let m = 0; m < n; m++) arr.members[m]!.dev.write(bufs[m].subarray(0, span), arr.memberBase(m) + r0 * chunkBytes)
    progress?.(r1, rows)
  }
  for (const d of arr.members) d!.dev.flush()
}
