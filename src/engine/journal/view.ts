/**
 * The replayed view: the array's bytes as Linux presents them once it has replayed the journal at
 * assemble, computed in memory with nothing written. It owns laying a RecoveryPlan (plan.ts, the
 * very plan `recover` applies) over the members' pages as readArray (io.ts) reads them. The plan is
 * an index of log page positions, never the pages, so a journal of any size costs a few bytes per
 * stripe; each window reads the log pages it needs (apply.ts overlayLogged) and drops them.
 *
 * The rules are recover's, then read's:
 *  - complete (data+parity) stripes: their logged pages, parity included, replace the members' pages
 *    before missing members are rebuilt, so a missing member's page that is not logged is rebuilt
 *    from the logged parity and the other pages as replayed; its logged pages are laid after;
 *  - data-only (write-back) stripes: their logged data is laid after the rebuild, so a missing
 *    member's page that is not logged comes from the members' data and parity as they were (which
 *    is what recover's computed parity rebuilds); nothing else of them changes what is read.
 */
import type {MdArray} from '../array.js'
import {alignedBuffer} from '../device.js'
import type {OverlayWindow, ReadOverlay} from '../io.js'
import {overlayLogged, type ApplyResult} from './apply.js'
import type {RecoveryPlan} from './plan.js'
import type {StripePages} from './stripes.js'
import {PAGE} from './ring.js'

/** The stripes of one StripePages, sorted, for finding those of a window. */
function sortedSectors(pages: StripePages): Float64Array {
  return Float64Array.from(pages.keys()).sort()
}

/** index of the first entry ≥ `x` */
function lowerBound(sorted: Float64Array, x: number): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid] < x) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The plan as a ReadOverlay: per window, the planned log pages of its stripes, at their slots. */
export class PlanOverlay implements ReadOverlay {
  private readonly complete: Float64Array
  private readonly cached: Float64Array
  private readonly scratch = alignedBuffer(256 * PAGE)
  private readonly res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  pagesServed = 0

  /**
   * `parity: false` (a read with every member present: nothing is rebuilt, so no parity page is
   * used) neither lays the logged parity pages nor counts them as needed from the members
   */
  constructor(
    private readonly arr: MdArray,
    private readonly plan: RecoveryPlan,
    private readonly opts: {parity: boolean} = {parity: true},
  ) {
    this.complete = sortedSectors(plan.fromLog)
    this.cached = sortedSectors(plan.dataOnly)
  }

  get journalBytesRead(): number {
    return this.res.journalBytesRead
  }

  lay(win: OverlayWindow, rebuilt: boolean): void {
    // complete stripes: present members' pages before the rebuild, missing members' after it
    this.layPages(win, this.plan.fromLog, this.complete, m => win.present[m] !== rebuilt)
    // data-only stripes: after the rebuild (a second pass: a stripe may be in both, and its data-only pages win)
    if (rebuilt) this.layPages(win, this.plan.dataOnly, this.cached, () => true)
  }

  covers(m: number, sector: number, bytes: number, rebuilding: boolean): boolean {
    const end = sector + bytes / 512
    const pages = bytes / PAGE
    // the window's stripes that have a log page for m: complete ones always (laid before a rebuild),
    // data-only ones only when nothing is rebuilt (they are laid after it)
    let covered = 0
    for (let s = sector; s < end; s += 8) {
      if (this.plan.fromLog.at(s, m) >= 0 || (!rebuilding && this.plan.dataOnly.at(s, m) >= 0) || this.unused(s, m)) covered++
      else return false
    }
    return covered === pages
  }

  /** slot `m` holds the stripe at `sector`'s parity, and parity is not wanted */
  private unused(sector: number, m: number): boolean {
    if (this.opts.parity) return false
    const info = this.arr.geometry.stripeInfo(sector)
    return m === info.pd || m === info.qd
  }

  private layPages(win: OverlayWindow, pages: StripePages, sorted: Float64Array, wanted: (slot: number) => boolean): void {
    const end = win.sector + win.bytes / 512
    const logPos: number[] = []
    const dest: number[] = [] // slot * 2^32 + byte offset in the window (overlayLogged's form)
    for (let i = lowerBound(sorted, win.sector); i < sorted.length && sorted[i] < end; i++) {
      const sector = sorted[i]
      for (let slot = 0; slot < win.slots.length; slot++) {
        const pos = pages.at(sector, slot)
        if (pos < 0 || !wanted(slot) || this.unused(sector, slot)) continue
        logPos.push(pos)
        dest.push(slot * 0x100000000 + (sector - win.sector) * 512)
      }
    }
    if (logPos.length === 0) return
    overlayLogged(this.arr, logPos, dest, win.slots, this.scratch, this.res)
    this.pagesServed += logPos.length
  }
}

/** distinct stripes in either part of the plan: what a replayed read serves from the journal */
export function replayedStripes(plan: RecoveryPlan): number {
  let n = plan.fromLog.size
  for (const sector of plan.dataOnly.keys()) if (plan.fromLog.get(sector).size === 0) n++
  return n
}
