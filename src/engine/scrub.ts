/**
 * The parity check of md's `check` sync action, one chunk row at a time: P (and Q) recomputed from
 * the data chunks and compared with the members'; a row that differs is looked at page by page (a
 * stripe, in md's sense). RAID6 locates a stripe's single bad page from its two syndromes, as
 * mdadm's raid6check does: with Ps = P xor P' and Qs = Q xor Q', only Qs set means Q is wrong, only
 * Ps means P, and both set with Qs = g^k · Ps at every byte means the data page whose Q coefficient
 * is g^k; anything else cannot be pinned on one page.
 */
import type {MdArray} from './array.js'
import {alignedBuffer} from './device.js'
import {gfLog} from './gf256.js'
import type {ReadOverlay} from './io.js'
import {WINDOW_BYTES, type Progress, type RowLayout} from './rows.js'
import {PAGE} from './journal/ring.js'

/**
 * 'P': P disagrees with the data (RAID4/5: which page is wrong cannot be known; RAID6: P is), 'Q':
 * Q is, 'data': one data page is, 'unlocated': RAID6 with more than one page wrong.
 */
export type MismatchKind = 'P' | 'Q' | 'data' | 'unlocated'

export interface Mismatch {
  /** member sector of the stripe (from the data offset): md's stripe address */
  stripeSector: number
  /** array sector of the stripe's first data page */
  arraySector: number
  kind: MismatchKind
  /** the member slot located as wrong (RAID6), null when none is */
  slot: number | null
}

/** Compares chunk rows; holds one chunk of scratch for P and one for Q. */
export class Scrubber {
  private readonly p: Uint8Array
  private readonly q: Uint8Array
  private readonly chunkBytes: number

  constructor(private readonly arr: MdArray) {
    this.chunkBytes = arr.sb.chunkSize * 512
    this.p = alignedBuffer(this.chunkBytes)
    this.q = alignedBuffer(this.chunkBytes)
  }

  /**
   * Check chunk row `row`, whose pages are at byte `off` of each member's buffer in `slots`; a
   * stripe for which `skip` says true is not judged. Returns the stripes that differ.
   */
  row(row: number, lay: RowLayout, slots: Uint8Array[], off: number, skip: (stripeSector: number) => boolean): Mismatch[] {
    const cb = this.chunkBytes
    const chunk = (m: number) => slots[m].subarray(off, off + cb)
    const data = lay.dataMembers.map(chunk)
    const raid6 = lay.qd >= 0
    if (raid6) this.arr.compute.parity.computePQ(data, lay.qSlot, this.p, this.q)
    else this.arr.compute.parity.computeP(data, this.p)
    const pOk = Buffer.compare(this.p, chunk(lay.pd)) === 0
    if (pOk && (!raid6 || Buffer.compare(this.q, chunk(lay.qd)) === 0)) return []
    const out: Mismatch[] = []
    const rowSector = row * this.arr.sb.chunkSize
    for (let k = 0; k < cb / PAGE; k++) {
      const stripeSector = rowSector + k * 8
      if (skip(stripeSector)) continue
      const at = (b: Uint8Array) => b.subarray(k * PAGE, (k + 1) * PAGE)
      const kind = this.judge(lay, at(this.p), at(chunk(lay.pd)), raid6 ? at(this.q) : null, raid6 ? at(chunk(lay.qd)) : null)
      if (kind === null) continue
      out.push({stripeSector, arraySector: row * lay.dataMembers.length * this.arr.sb.chunkSize + k * 8, ...kind})
    }
    return out
  }

  /** One stripe: null when its parity holds, else what is wrong and (RAID6) where. */
  private judge(
    lay: RowLayout,
    p: Uint8Array,
    pm: Uint8Array,
    q: Uint8Array | null,
    qm: Uint8Array | null,
  ): {kind: MismatchKind; slot: number | null} | null {
    const pBad = Buffer.compare(p, pm) !== 0
    if (q === null || qm === null) return pBad ? {kind: 'P', slot: null} : null
    const qBad = Buffer.compare(q, qm) !== 0
    if (!pBad && !qBad) return null
    if (!pBad) return {kind: 'Q', slot: lay.qd}
    if (!qBad) return {kind: 'P', slot: lay.pd}
    const k = commonExponent(p, pm, q, qm)
    const i = k === null ? -1 : lay.qSlot.indexOf(k)
    return i < 0 ? {kind: 'unlocated', slot: null} : {kind: 'data', slot: lay.dataMembers[i]}
  }
}

/** The k with (q xor qm) = g^k · (p xor pm) at every byte, or null when there is none. */
function commonExponent(p: Uint8Array, pm: Uint8Array, q: Uint8Array, qm: Uint8Array): number | null {
  let k: number | null = null
  for (let b = 0; b < p.length; b++) {
    const ps = p[b] ^ pm[b]
    const qs = q[b] ^ qm[b]
    if (ps === 0 && qs === 0) continue
    if (ps === 0 || qs === 0) return null
    const e = (gfLog(qs) - gfLog(ps) + 255) % 255
    if (k === null) k = e
    else if (k !== e) return null
  }
  return k
}

/**
 * Read the chunk rows that hold member sectors [from, to) from every member, window by window, an
 * overlay laid over them as read lays it before a rebuild; `visit` gets each window's rows [r0, r1)
 * and the member buffers (row r at byte (r - r0) · chunk). A window for which `wanted` says false is
 * not read. `progress` gets member bytes.
 */
export function forEachWindow(
  arr: MdArray,
  from: number,
  to: number,
  visit: (r0: number, r1: number, slots: Uint8Array[]) => void,
  opts: {overlay?: ReadOverlay | null; wanted?: (r0: number, r1: number) => boolean; progress?: Progress} = {},
): void {
  const chunk = arr.sb.chunkSize
  const n = arr.sb.raidDisks
  const rows = Math.max(1, Math.floor(WINDOW_BYTES / (chunk * 512 * n)))
  const slots = Array.from({length: n}, () => alignedBuffer(rows * chunk * 512))
  for (let r0 = Math.floor(from / chunk); r0 * chunk < to; r0 += rows) {
    const r1 = Math.min(Math.ceil(to / chunk), r0 + rows)
    if (opts.wanted?.(r0, r1) !== false) {
      const bytes = (r1 - r0) * chunk * 512
      slots.forEach((b, m) => arr.members[m]!.dev.read(b.subarray(0, bytes), arr.memberBase(m) + r0 * chunk * 512))
      opts.overlay?.lay({slots, present: slots.map(() => true), sector: r0 * chunk, bytes}, false)
      visit(r0, r1, slots)
    }
    opts.progress?.((Math.min(to, r1 * chunk) - from) * 512 * n, (to - from) * 512 * n)
  }
}
