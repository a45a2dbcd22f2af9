/**
 * One batch of a write: io units laid out in the log exactly as they go into the ring, each unit's
 * payload records, every log page's checksum, and each member's pending page writes. Kept in
 * preallocated typed arrays (no object per page or stripe): that bookkeeping, not the I/O, is what
 * a large write would otherwise spend its time on.
 */
import {encodeDataParityMeta, seqAfter, type DataParityRecords} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {IoError, R5Error} from '../errors.js'
import type {Ring} from '../journal/ring.js'
import {PAGE} from '../journal/ring.js'
import type {LogSeal} from '../journal/scan.js'

/** largest meta block a unit may have (one page) */
export const META_LIMIT = 4096

export class LogBatch {
  /** one view per log page, made once: meta blocks are encoded into them, member writes pass them to writev */
  readonly pageView: Uint8Array[]
  /** checksum of every log page (meta pages' entries are computed too, and ignored) */
  readonly sums: Uint32Array
  /** the batch's payloads (at most one per page), in log order */
  readonly recs: DataParityRecords
  nRecs = 0
  /** the batch's closed io units: meta block offset in the log, end of its payload range in `recs` */
  private readonly unitOff: Int32Array
  private readonly unitRecEnd: Int32Array
  nUnits = 0
  /**
   * Member writes per slot: byte offset on the member (from its data offset) and log page. Within a
   * batch each member's offsets strictly increase (rows ascend, then pages in a row, one page per
   * stripe per member), so runs coalesce without sorting.
   */
  private readonly mwOff: Float64Array[]
  private readonly mwPage: Int32Array[]
  private readonly mwCount: Int32Array
  /** bytes of log laid out */
  logLen = 0
  /** stripes laid out (write-back: what the batch adds to the cache), and the runs of consecutive stripe sectors they form */
  stripes = 0
  runs = 0
  private lastStripe = -16
  /** offset of the open io unit's meta block in the log, -1 when none is open */
  unitStart = -1
  /** bytes of the open unit's meta block so far */
  unitMetaSize = 32
  /** ring position of the batch's last unit, once stamped */
  lastUnitPos = -1

  /** `log`: the batch's place in the arena (its length is the batch limit); `n`: the array's members */
  constructor(
    readonly log: Uint8Array,
    n: number,
  ) {
    const maxPages = log.length / PAGE
    this.pageView = new Array<Uint8Array>(maxPages)
    for (let i = 0; i < maxPages; i++) this.pageView[i] = log.subarray(i * PAGE, (i + 1) * PAGE)
    this.sums = new Uint32Array(maxPages)
    this.recs = {
      type: new Uint8Array(maxPages),
      location: new Float64Array(maxPages),
      firstSum: new Int32Array(maxPages),
      pages: new Uint8Array(maxPages),
    }
    this.unitOff = new Int32Array(maxPages)
    this.unitRecEnd = new Int32Array(maxPages)
    this.mwOff = Array.from({length: n}, () => new Float64Array(maxPages))
    this.mwPage = Array.from({length: n}, () => new Int32Array(maxPages))
    this.mwCount = new Int32Array(n)
  }

  /** Close the open io unit, if any; true when one was closed. */
  closeUnit(): boolean {
    if (this.unitStart < 0) return false
    this.unitOff[this.nUnits] = this.unitStart
    this.unitRecEnd[this.nUnits] = this.nRecs
    this.nUnits++
    this.unitStart = -1
    this.unitMetaSize = 32
    return true
  }

  /** Open an io unit: its meta block is the next log page. */
  openUnit(): void {
    this.unitStart = this.logLen
    this.logLen += PAGE
  }

  /** A payload of `pages` pages from log page `firstSum` for array (data) or stripe (parity) sector `location`. */
  record(type: number, location: number, firstSum: number, pages: number): void {
    const r = this.recs
    r.type[this.nRecs] = type
    r.location[this.nRecs] = location
    r.firstSum[this.nRecs] = firstSum
    r.pages[this.nRecs] = pages
    this.nRecs++
  }

  /** Log page `page` goes to member m at byte `off` from its data offset. */
  memberPage(m: number, off: number, page: number): void {
    this.mwOff[m][this.mwCount[m]] = off
    this.mwPage[m][this.mwCount[m]++] = page
  }

  /**
   * Encode the meta blocks of the closed units for the batch going to ring position `head`, the
   * first with `seq`: the checksums of all its pages come from one call, and head and seq are final
   * only now (a full log in write-back moves both). Returns the seq after the batch.
   */
  stamp(seal: LogSeal, ring: Ring, head: number, seq: bigint): bigint {
    seal.compute.crc.pages(seal.seed, this.log.subarray(0, this.logLen), this.sums, 0)
    let from = 0
    for (let u = 0; u < this.nUnits; u++) {
      const pos = ring.add(head, this.unitOff[u] / 512)
      encodeDataParityMeta(this.pageView[this.unitOff[u] / PAGE], seal.seed, seq, pos, this.recs, from, this.unitRecEnd[u], this.sums)
      from = this.unitRecEnd[u]
      this.lastUnitPos = pos
      seq = seqAfter(seq)
    }
    return seq
  }

  /**
   * The batch's member writes, member by member, one request per contiguous run (crash injection
   * counts requests). The lists are empty afterwards.
   */
  writeMembers(arr: MdArray, memberBase: number[]): void {
    for (let m = 0; m < this.mwCount.length; m++) {
      const cnt = this.mwCount[m]
      const offs = this.mwOff[m]
      const pages = this.mwPage[m]
      let i = 0
      while (i < cnt) {
        let j = i + 1
        while (j < cnt && offs[j] === offs[j - 1] + PAGE) j++
        const bufs: Uint8Array[] = new Array<Uint8Array>(j - i)
        for (let x = i; x < j; x++) bufs[x - i] = this.pageView[pages[x]]
        writeRun(arr, m, bufs, memberBase[m] + offs[i])
        i = j
      }
      this.mwCount[m] = 0
    }
  }

  /** Empty the batch for the next one (member lists are emptied by writeMembers). */
  /** count stripe `sector` laid out (stripes come in ascending order within a batch) */
  addStripe(sector: number): void {
    if (sector !== this.lastStripe + 8) this.runs++
    this.lastStripe = sector
    this.stripes++
  }

  clear(): void {
    this.logLen = 0
    this.stripes = 0
    this.runs = 0
    this.lastStripe = -16
    this.nUnits = 0
    this.nRecs = 0
  }
}

/** One run of pages onto member m; a system error becomes an IoError naming the member. */
function writeRun(arr: MdArray, m: number, bufs: Uint8Array[], at: number): void {
  const dev = arr.members[m]!.dev
  try {
    dev.writev(bufs, at)
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    if (e instanceof Error && typeof e.code === 'string' && typeof e.errno === 'number' && !(e instanceof R5Error))
      throw new IoError(`write failed at offset ${at}: ${e.message}`, dev.name)
    throw error
  }
}
