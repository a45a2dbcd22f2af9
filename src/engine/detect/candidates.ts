/**
 * The hypotheses detect weighs: levels, layouts, chunk sizes and data offsets to try, and for each
 * the member orders worth scoring. Orders are not all enumerated: the parity (RAID6: Q) member of
 * every sampled chunk row is visible in the sample (a parity page is never zero beside nonzero data;
 * a RAID6 Q page equals the XOR of the whole stripe), so each layout turns the rows into a cost per
 * (slot, device), and only the orders of least cost are kept (a bounded branch-and-bound search).
 */
import {ALGORITHM, Geometry, layoutPeriod, type RaidLevel} from '../geometry.js'
import type {Segments} from './evidence.js'

/** chunk sizes tried, in sectors: 4 KiB to 4 MiB (mdadm's default is 512 KiB) */
export const CHUNK_SECTORS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
/** data offsets tried when nothing states one, in sectors: mdadm's and r5ctl's 1 MiB first, then what mdadm picks for larger devices */
export const COMMON_OFFSETS = [2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144]

export const LAYOUTS: Readonly<Record<RaidLevel, readonly number[]>> = {
  4: [ALGORITHM.PARITY_N],
  5: [0, 1, 2, 3, 4, 5],
  6: [0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 18, 19, 20],
}

/** most orders kept per (level, layout, chunk, offset), and search nodes spent finding them */
const MAX_ORDERS = 120
const MAX_NODES = 100_000

export interface OffsetChoice {
  sector: number
  /** where it comes from: a superblock, the journal's meta block positions, or the common list */
  source: 'superblock' | 'journal' | 'common'
}

/**
 * The data offsets worth scoring for a chunk size and layout period: offsets that differ by a
 * multiple of chunk × period lay every row out alike, so the content cannot tell them apart; of each
 * such class only the first in `offsets` (which lists stated ones first) is kept.
 */
export function distinctOffsets(offsets: OffsetChoice[], chunkSectors: number, period: number): OffsetChoice[] {
  const seen = new Set<number>()
  const out: OffsetChoice[] = []
  for (const o of offsets) {
    const k = o.sector % (chunkSectors * period)
    if (seen.has(k)) continue
    seen.add(k)
    out.push(o)
  }
  return out
}

export function periodOf(level: RaidLevel, n: number, layout: number): number {
  return layoutPeriod(level, n, layout)
}

/**
 * cost[slot][device]: for each segment, the stripes with data whose page on that device is zero,
 * charged to the row's P slot, less (RAID6) the stripes whose XOR-of-all equals that device's page,
 * credited to the row's Q slot.
 */
function costMatrix(seg: Segments, level: RaidLevel, g: Geometry, n: number): number[][] {
  const cost = Array.from({length: n}, () => new Array<number>(n).fill(0))
  for (let k = 0; k < seg.count; k++) {
    if (seg.dataStripes[k] === 0) continue
    const info = g.rowInfo(seg.row[k])
    for (let d = 0; d < n; d++) {
      cost[info.pd][d] += seg.zeroWithData[k * n + d]
      if (level === 6) cost[info.qd][d] -= seg.qAt[k * n + d]
    }
  }
  return cost
}

/**
 * The orders (order[slot] = device) of least cost; capped says the search was cut short. `adjust`
 * adds other evidence to the cost matrix (the journal's logged pages found on the members).
 */
export function bestOrders(
  seg: Segments,
  level: RaidLevel,
  g: Geometry,
  n: number,
  adjust?: (cost: number[][]) => void,
): {orders: number[][]; capped: boolean} {
  const cost = costMatrix(seg, level, g, n)
  adjust?.(cost)
  const minRest: number[] = new Array<number>(n + 1).fill(0)
  for (let r = n - 1; r >= 0; r--) minRest[r] = minRest[r + 1] + Math.min(...cost[r])
  let best = Infinity
  let orders: number[][] = []
  let nodes = 0
  let capped = false
  const order: number[] = []
  const used = new Array<boolean>(n).fill(false)
  const visit = (slot: number, acc: number): void => {
    if (++nodes > MAX_NODES) {
      capped = true
      return
    }
    if (acc + minRest[slot] > best) return
    if (slot === n) {
      if (acc < best) {
        best = acc
        orders = []
      }
      if (orders.length < MAX_ORDERS) orders.push([...order])
      else capped = true
      return
    }
    for (let d = 0; d < n && !capped; d++) {
      if (used[d]) continue
      used[d] = true
      order.push(d)
      visit(slot + 1, acc + cost[slot][d])
      order.pop()
      used[d] = false
    }
  }
  visit(0, 0)
  return {orders, capped}
}

/** The levels the sample's parity supports: RAID4/5 where stripes XOR to zero, RAID6 where one page is the XOR of all. */
export function levelsToTry(xorZero: number, qLike: number, n: number, journalParityPages: 1 | 2 | null): RaidLevel[] {
  const out: RaidLevel[] = []
  if (n >= 2 && (xorZero > 0 || journalParityPages === 1)) out.push(4, 5)
  if (n >= 4 && (qLike > 0 || journalParityPages === 2)) out.push(6)
  return out
}
