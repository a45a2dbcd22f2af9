/**
 * Scoring one geometry hypothesis on the sample (sample.ts): the sampled stripes cut into segments
 * (the pages of one chunk row within one window) under a chunk size and data offset, then, for a
 * level, layout and member order, what holds: parity (RAID4/5: the XOR of the stripe is zero; RAID6:
 * the page equal to the XOR of all is on the hypothesis's Q member, and Q computed from sampled bytes
 * of the data pages in their syndrome order matches), parity pages that are zero beside nonzero data
 * (a wrong parity member), and continuity: how often the array's pages, laid out in array order by
 * the hypothesis, change between zero and nonzero (written data is contiguous in the array; a wrong
 * order or rotation cuts it up). Also the exact check of a hypothesis on whole pages re-read.
 */
import type {BlockDevice} from '../device.js'
import {alignedBuffer} from '../device.js'
import {Geometry, type RaidLevel} from '../geometry.js'
import {gfPow2, mulTable} from '../gf256.js'
import type {ParityKernels} from '../parity.js'
import {ALL_ZERO, SAMPLE_BYTES, XOR_IS_PAGE, XOR_ZERO, type Sample} from './sample.js'

const PAGE = 4096
/** stripes with data whose sampled bytes are Q-checked per hypothesis */
const Q_CHECKS = 128

/** The sample cut into segments by a chunk size and data offset (pages). */
export interface Segments {
  chunkPages: number
  offsetPages: number
  count: number
  row: number[]
  full: boolean[]
  window: number[]
  /** stripes with data per segment */
  dataStripes: number[]
  /** per segment × member (index s · members + m) */
  zeroWithData: Uint32Array
  qAt: Uint32Array
  internal: Uint32Array
  first: Uint8Array
  last: Uint8Array
  /** stripes (sample indices) with data in the data area, spread, for the Q checks */
  qStripes: number[]
  totalData: number
  xorZero: number
}

/** Cut the sample stripes in [offsetPages, endPage) into segments of chunk rows. */
export function segment(s: Sample, chunkPages: number, offsetPages: number, endPage: number): Segments {
  const seg: Segments = {
    chunkPages,
    offsetPages,
    count: 0,
    row: [],
    full: [],
    window: [],
    dataStripes: [],
    zeroWithData: new Uint32Array(0),
    qAt: new Uint32Array(0),
    internal: new Uint32Array(0),
    first: new Uint8Array(0),
    last: new Uint8Array(0),
    qStripes: [],
    totalData: 0,
    xorZero: 0,
  }
  const starts: number[] = []
  const withData: number[] = []
  for (let i = 0; i < s.stripes; i++) {
    const p = s.page[i]
    if (p < offsetPages || p >= endPage) continue
    const row = Math.floor((p - offsetPages) / chunkPages)
    const k = seg.count - 1
    if (k < 0 || seg.row[k] !== row || seg.window[k] !== s.window[i] || s.page[i - 1] !== p - 1) {
      seg.row.push(row)
      seg.window.push(s.window[i])
      seg.dataStripes.push(0)
      starts.push(i)
      seg.count++
    }
    if (s.xor[i] !== ALL_ZERO) withData.push(i)
  }
  fillSegments(s, seg, starts, endPage)
  const step = Math.max(1, withData.length / Q_CHECKS)
  for (let k = 0; k * step < withData.length; k++) seg.qStripes.push(withData[Math.floor(k * step)])
  return seg
}

/** The per-member counts of every segment; segment k starts at sample stripe starts[k]. */
function fillSegments(s: Sample, seg: Segments, starts: number[], endPage: number): void {
  const n = s.members
  const c = seg.count
  seg.zeroWithData = new Uint32Array(c * n)
  seg.qAt = new Uint32Array(c * n)
  seg.internal = new Uint32Array(c * n)
  seg.first = new Uint8Array(c * n)
  seg.last = new Uint8Array(c * n)
  for (let k = 0; k < c; k++) {
    const end = k + 1 < c ? starts[k + 1] : s.stripes
    let pages = 0
    for (let i = starts[k]; i < end && s.page[i] < endPage && s.page[i] >= seg.offsetPages; i++, pages++) {
      const nz = s.nonzero[i]
      const x = s.xor[i]
      if (x !== ALL_ZERO) {
        seg.dataStripes[k]++
        seg.totalData++
        if (x === XOR_ZERO) seg.xorZero++
      }
      for (let m = 0; m < s.members; m++) {
        const bit = (nz >>> m) & 1
        const at = k * n + m
        if (i === starts[k]) seg.first[at] = bit
        else if (bit !== seg.last[at]) seg.internal[at]++
        seg.last[at] = bit
        if (x !== ALL_ZERO && bit === 0) seg.zeroWithData[at]++
        if (x === XOR_IS_PAGE && ((s.qMask[i] >>> m) & 1) === 1) seg.qAt[at]++
      }
    }
    seg.full.push(pages === seg.chunkPages)
  }
}

/** A hypothesis: order[role] is the index (in the sample's member list) of the device in that slot. */
export interface Hypothesis {
  level: RaidLevel
  layout: number
  chunkSectors: number
  dataOffsetSector: number
  order: number[]
}

export interface ContentScore {
  /** stripes with data in the hypothesis's data area */
  dataStripes: number
  /** of them, those whose parity holds as far as the sample shows (RAID6: Q on its member) */
  parityHeld: number
  /** stripes with data whose P page is zero */
  parityEmpty: number
  /** RAID6: stripes whose sampled bytes were Q-checked, and those that held */
  qChecked: number
  qHeld: number
  /** zero/nonzero changes along the array's pages */
  transitions: number
}

/** Score a hypothesis on segments made with its chunk size and data offset. */
export function score(s: Sample, seg: Segments, h: Hypothesis, g: Geometry): ContentScore {
  const n = s.members
  const out: ContentScore = {dataStripes: seg.totalData, parityHeld: 0, parityEmpty: 0, qChecked: 0, qHeld: 0, transitions: 0}
  let prevLast = -1
  for (let k = 0; k < seg.count; k++) {
    const info = g.rowInfo(seg.row[k])
    const base = k * n
    out.parityEmpty += seg.zeroWithData[base + h.order[info.pd]]
    if (h.level === 6) out.parityHeld += seg.qAt[base + h.order[info.qd]]
    const dm = info.dataMembers.map(r => base + h.order[r])
    for (const at of dm) out.transitions += seg.internal[at]
    if (seg.full[k]) {
      for (let d = 0; d + 1 < dm.length; d++) if (seg.last[dm[d]] !== seg.first[dm[d + 1]]) out.transitions++
      const joined = k > 0 && seg.full[k - 1] && seg.window[k - 1] === seg.window[k] && seg.row[k - 1] + 1 === seg.row[k]
      if (joined && prevLast !== seg.first[dm[0]]) out.transitions++
      prevLast = seg.last[dm[dm.length - 1]]
    } else prevLast = -1
  }
  if (h.level !== 6) out.parityHeld = seg.xorZero
  return out
}

/**
 * RAID6: Q over the sampled bytes of each checked stripe's data pages, against its Q page's bytes
 * (the costliest part of a score: rank.ts runs it only for the hypotheses that lead without it).
 */
export function qCheck(s: Sample, seg: Segments, h: Hypothesis, g: Geometry, out: ContentScore): void {
  const n = s.members
  const q = new Uint8Array(SAMPLE_BYTES)
  for (const i of seg.qStripes) {
    const info = g.rowInfo(Math.floor((s.page[i] - seg.offsetPages) / seg.chunkPages))
    q.fill(0)
    info.dataMembers.forEach((r, dd) => {
      const t = mulTable(gfPow2(info.qSlot[dd]))
      const base = (i * n + h.order[r]) * SAMPLE_BYTES
      for (let j = 0; j < SAMPLE_BYTES; j++) q[j] ^= t[s.bytes[base + j]]
    })
    const qb = (i * n + h.order[info.qd]) * SAMPLE_BYTES
    let ok = true
    for (let j = 0; j < SAMPLE_BYTES && ok; j++) ok = q[j] === s.bytes[qb + j]
    out.qChecked++
    if (ok) out.qHeld++
  }
}

/**
 * The exact check: whole pages of `stripes` (device pages) re-read from every member and their P
 * (and Q) recomputed under the hypothesis. Stripes whose pages are all zero are skipped (no evidence),
 * and so is a stripe that does not hold where the journal logs it (`logged`: member sectors): a crash
 * leaves such stripes half-written, and the replay completes them. Returns [checked, held].
 */
export function exactCheck(
  devs: BlockDevice[],
  h: Hypothesis,
  g: Geometry,
  stripes: number[],
  parity: ParityKernels,
  logged: Set<number> = new Set(),
): [number, number] {
  const n = devs.length
  const pages = devs.map(() => alignedBuffer(PAGE))
  const p = alignedBuffer(PAGE)
  const q = alignedBuffer(PAGE)
  const offPages = h.dataOffsetSector / 8
  let checked = 0
  let held = 0
  for (const dp of stripes) {
    const row = Math.floor((dp - offPages) / (h.chunkSectors / 8))
    if (dp < offPages || row * h.chunkSectors >= Number(g.usedMemberSectors)) continue
    for (let m = 0; m < n; m++) devs[m].read(pages[m], dp * PAGE)
    if (pages.every(x => x.every(b => b === 0))) continue
    const info = g.rowInfo(row)
    const data = info.dataMembers.map(r => pages[h.order[r]])
    let ok: boolean
    if (h.level === 6) {
      parity.computePQ(data, info.qSlot, p, q)
      ok = Buffer.compare(p, pages[h.order[info.pd]]) === 0 && Buffer.compare(q, pages[h.order[info.qd]]) === 0
    } else {
      parity.computeP(data, p)
      ok = Buffer.compare(p, pages[h.order[info.pd]]) === 0
    }
    if (!ok && logged.has((dp - offPages) * 8)) continue
    checked++
    if (ok) held++
  }
  return [checked, held]
}
