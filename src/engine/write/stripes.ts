/**
 * Which pages of each stripe of a chunk row a write makes new, and how each stripe's parity is then
 * made: from the new pages alone (full), from the new and the untouched old pages (rcw), or from the
 * old parity and the old and new touched pages (rmw), with the member pages each choice must read.
 * The same choice as the kernel's, by the number of reads. Pure decisions: no I/O, no bytes.
 */
import type {RowLayout} from '../rows.js'

/** what a write does with one stripe of a row */
export const HOW_NONE = 0 // not touched
export const HOW_FULL = 1 // every data page new (or write-back: data only)
export const HOW_RCW = 2 // reconstruct-write: parity from the new pages and the untouched old ones
export const HOW_RMW = 3 // read-modify-write: parity from old parity, old and new touched pages

/**
 * The decisions for one row, in typed arrays reused from row to row (no object per stripe). Data
 * page p = i·ppc + k of the row (logical data index i, stripe k) is new when from <= p < to.
 */
export class RowPlan {
  lay!: RowLayout
  from = 0
  to = 0
  /** per stripe: HOW_* */
  readonly how: Uint8Array
  /** per stripe: data pages the write touches */
  readonly touched: Int32Array
  /** per member: the first and last stripe whose old page is read (readHi < 0: none) */
  readonly readLo: Int32Array
  readonly readHi: Int32Array
  /** data indices of the row in member order: the kernel logs a stripe's pages by device */
  readonly byMember: Int32Array

  constructor(
    readonly members: number,
    readonly dataDisks: number,
    readonly ppc: number,
    readonly nParity: number,
  ) {
    this.how = new Uint8Array(ppc)
    this.touched = new Int32Array(ppc)
    this.readLo = new Int32Array(members)
    this.readHi = new Int32Array(members)
    this.byMember = new Int32Array(dataDisks)
  }

  /** Decide every stripe of row `lay` for the new pages [from, to); write-back logs data only, so makes no parity. */
  decide(lay: RowLayout, from: number, to: number, wb: boolean): void {
    this.lay = lay
    this.from = from
    this.to = to
    this.sortByMember()
    this.readLo.fill(this.ppc)
    this.readHi.fill(-1)
    const D = this.dataDisks
    for (let k = 0; k < this.ppc; k++) {
      let t = 0
      for (let i = 0; i < D; i++) {
        const p = i * this.ppc + k
        if (p >= from && p < to) t++
      }
      this.touched[k] = t
      this.how[k] = t === 0 ? HOW_NONE : HOW_FULL
      if (t === 0 || t === D || wb) continue
      const rmwReads = t + this.nParity
      const rcwReads = D - t
      if (rcwReads <= rmwReads) {
        this.how[k] = HOW_RCW
        this.readData(k, false)
      } else {
        this.how[k] = HOW_RMW
        this.readData(k, true)
        this.read(lay.pd, k)
        if (this.nParity === 2) this.read(lay.qd, k)
      }
    }
  }

  /** insertion sort of the data indices by member (D is small) */
  private sortByMember(): void {
    const dm = this.lay.dataMembers
    const byMember = this.byMember
    for (let i = 0; i < this.dataDisks; i++) {
      let x = i
      while (x > 0 && dm[byMember[x - 1]] > dm[i]) {
        byMember[x] = byMember[x - 1]
        x--
      }
      byMember[x] = i
    }
  }

  /** read stripe k's old data pages: the new ones (rmw) or the others (rcw) */
  private readData(k: number, touched: boolean): void {
    for (let i = 0; i < this.dataDisks; i++) {
      const p = i * this.ppc + k
      if ((p >= this.from && p < this.to) === touched) this.read(this.lay.dataMembers[i], k)
    }
  }

  private read(m: number, k: number): void {
    if (k < this.readLo[m]) this.readLo[m] = k
    if (k > this.readHi[m]) this.readHi[m] = k
  }
}
