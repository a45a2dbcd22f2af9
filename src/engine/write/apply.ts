/**
 * Puts planned stripes into the batch: each new data page copied from the row's input into the log
 * as a DATA payload, its parity computed in place right behind it as a PARITY payload (write-through),
 * and every page noted for its member. The row's old member pages that rcw and rmw need are read here
 * too. All of it inside one arena (log, row input, old pages, scratch), so parity is computed
 * straight into the log and no view is made per page.
 */
import {PAYLOAD_DATA, PAYLOAD_PARITY} from '../format/meta.js'
import type {MdArray} from '../array.js'
import type {ParityArena} from '../parity-arena.js'
import {BLOCK_SECTORS, PAGE} from '../journal/ring.js'
import type {LogBatch} from './batch.js'
import {HOW_NONE, HOW_RCW, HOW_RMW, type RowPlan} from './stripes.js'

/**
 * Arena layout: [0, batchLimit) the log, then the row's input (rowBytes), every member's old chunk of
 * the row (n chunks), and three scratch pages (RAID6 rmw).
 */
export function arenaBytes(batchLimit: number, rowBytes: number, n: number, chunkBytes: number): number {
  return batchLimit + rowBytes + n * chunkBytes + 3 * PAGE
}

export class StripeLayer {
  /** arena offset of the row's input */
  readonly rowInBase: number
  private readonly oldBase: number
  private readonly scratch: number
  private readonly bytes: Uint8Array
  /** arena offset of data index i's page in the current stripe */
  private readonly logOf: Int32Array
  /** parity sources (arena offsets) and their syndrome slots */
  private readonly src: Int32Array
  private readonly slots: Int32Array
  private readonly chunkBytes: number
  private readonly memberBase: number[]
  /** the current row and the page index of its first data page in the array */
  private row = 0
  private rowPage0 = 0
  rmwStripes = 0
  rcwStripes = 0

  constructor(
    private readonly arr: MdArray,
    private readonly arena: ParityArena,
    private readonly batch: LogBatch,
    private readonly plan: RowPlan,
    batchLimit: number,
    private readonly wb: boolean,
  ) {
    const D = plan.dataDisks
    this.chunkBytes = plan.ppc * PAGE
    this.rowInBase = batchLimit
    this.oldBase = this.rowInBase + D * this.chunkBytes
    this.scratch = this.oldBase + plan.members * this.chunkBytes
    this.bytes = arena.bytes
    this.logOf = new Int32Array(D)
    this.src = new Int32Array(2 * D + 1)
    this.slots = new Int32Array(D)
    this.memberBase = Array.from({length: plan.members}, (_, m) => arr.memberBase(m))
  }

  /** arena offset of member m's old page k (valid for the pages read for the current row) */
  private oldAt(m: number, k: number): number {
    return this.oldBase + m * this.chunkBytes + k * PAGE
  }

  /** Start row r (decided in `plan`): read the old member pages its stripes need. */
  startRow(r: number): void {
    const plan = this.plan
    this.row = r
    this.rowPage0 = r * plan.dataDisks * plan.ppc
    for (let m = 0; m < plan.members; m++) {
      if (plan.readHi[m] < 0) continue
      const lo = plan.readLo[m]
      const hi = plan.readHi[m]
      const at = this.memberBase[m] + r * this.chunkBytes + lo * PAGE
      this.arr.members[m]!.dev.read(this.bytes.subarray(this.oldAt(m, lo), this.oldAt(m, hi + 1)), at)
    }
  }

  /** Lay stripe k of the row at the batch's end (its unit open and room made); its bytes in the log. */
  lay(k: number): number {
    const plan = this.plan
    const kind = plan.how[k]
    if (kind === HOW_NONE) return 0
    const t = plan.touched[k]
    const base = this.batch.logLen
    const page0 = base / PAGE
    const memberOff = this.row * this.chunkBytes + k * PAGE
    this.copyData(k, base, page0, memberOff)
    if (this.wb) return t * PAGE
    // parity right behind the data pages, computed in place in the log
    const pOff = base + t * PAGE
    if (kind === HOW_RMW) this.rmw(k, pOff)
    else this.rcw(k, pOff, kind)
    const lay = plan.lay
    const b = this.batch
    b.record(PAYLOAD_PARITY, this.row * (this.chunkBytes / 512) + k * BLOCK_SECTORS, page0 + t, plan.nParity)
    b.memberPage(lay.pd, memberOff, page0 + t)
    if (plan.nParity === 2) b.memberPage(lay.qd, memberOff, page0 + t + 1)
    return (t + plan.nParity) * PAGE
  }

  /** data pages in member order, each a DATA payload; write-through also sends them to the members */
  private copyData(k: number, base: number, page0: number, memberOff: number): void {
    const plan = this.plan
    const {from, to, ppc, byMember} = plan
    const dm = plan.lay.dataMembers
    let j = 0
    for (let x = 0; x < plan.dataDisks; x++) {
      const i = byMember[x]
      const p = i * ppc + k
      if (p < from || p >= to) continue
      const dst = base + j * PAGE
      const at = this.rowInBase + (p - from) * PAGE
      this.bytes.copyWithin(dst, at, at + PAGE)
      this.logOf[i] = dst
      this.batch.record(PAYLOAD_DATA, (this.rowPage0 + p) * BLOCK_SECTORS, page0 + j, 1)
      if (!this.wb) this.batch.memberPage(dm[i], memberOff, page0 + j)
      j++
    }
  }

  /** rcw or full: parity over every data page, new from the log, the others old */
  private rcw(k: number, pOff: number, kind: number): void {
    const plan = this.plan
    const {from, to, ppc, dataDisks: D} = plan
    const dm = plan.lay.dataMembers
    if (kind === HOW_RCW) this.rcwStripes++
    for (let i = 0; i < D; i++) {
      const p = i * ppc + k
      this.src[i] = p >= from && p < to ? this.logOf[i] : this.oldAt(dm[i], k)
    }
    if (plan.nParity === 2) this.arena.pq(this.src, plan.lay.qSlot, pOff, pOff + PAGE, PAGE, D)
    else this.arena.p(this.src, pOff, PAGE, D)
  }

  /** P = old P ⊕ Σ (old D_i ⊕ new D_i) over the touched i: one XOR of 1 + 2t pages; RAID6 also Q */
  private rmw(k: number, pOff: number): void {
    this.rmwStripes++
    const plan = this.plan
    const {from, to, ppc, dataDisks: D} = plan
    const lay = plan.lay
    const src = this.src
    let z = 0
    src[z++] = this.oldAt(lay.pd, k)
    for (let i = 0; i < D; i++) {
      const p = i * ppc + k
      if (p < from || p >= to) continue
      src[z++] = this.oldAt(lay.dataMembers[i], k)
      src[z++] = this.logOf[i]
    }
    this.arena.p(src, pOff, PAGE, z)
    if (plan.nParity === 2) this.rmwQ(k, pOff + PAGE)
  }

  /**
   * Q = old Q ⊕ Σ g^slot_i·new D_i ⊕ Σ g^slot_i·old D_i (multiplication distributes over ⊕); the two
   * syndromes go to scratch pages, their P side to a third.
   */
  private rmwQ(k: number, qOff: number): void {
    const plan = this.plan
    const {from, to, ppc, dataDisks: D} = plan
    const lay = plan.lay
    const {src, slots} = this
    const S0 = this.scratch
    const S1 = S0 + PAGE
    const S2 = S0 + 2 * PAGE
    let c = 0
    for (let i = 0; i < D; i++) {
      const p = i * ppc + k
      if (p < from || p >= to) continue
      src[c] = this.logOf[i]
      slots[c++] = lay.qSlot[i]
    }
    this.arena.pq(src, slots, S0, S1, PAGE, c)
    c = 0
    for (let i = 0; i < D; i++) {
      const p = i * ppc + k
      if (p < from || p >= to) continue
      src[c++] = this.oldAt(lay.dataMembers[i], k)
    }
    this.arena.pq(src, slots, S0, S2, PAGE, c)
    src[0] = this.oldAt(lay.qd, k)
    src[1] = S1
    src[2] = S2
    this.arena.p(src, qOff, PAGE, 3)
  }
}
