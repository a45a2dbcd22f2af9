/**
 * reclaim: write out everything the live log still holds for the members, the way the kernel's
 * r5c code flushes cached stripes: parity of data-only (write-back) stripes is computed and
 * logged first, then data and parity go to the members, then FLUSH payloads record that those
 * stripes are on the members, and finally an empty meta block closes the log and journal_tail
 * moves to it (superblocks last).
 */
import {PAYLOAD_FLUSH, PAYLOAD_PARITY, type Payload} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {planRecovery} from './plan.js'
import {applyFromLog, applyDataOnly, closeLog, type ApplyResult} from './apply.js'
import {appendRecords, unitsSize, type LogRecord} from './append.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

export interface ReclaimResult {
  wasClean: boolean
  usedBytesBefore: number
  usedBytesAfter: number
  freeBytesBefore: number
  freeBytesAfter: number
  sizeBytes: number
  dataOnlyStripes: number
  dataParityStripes: number
  parityLogged: number
  flushPayloadStripes: number
  pagesWritten: number
  journalTailSector: number
  nextSeq: bigint
}

const FLUSH_PER_PAYLOAD = Math.floor((4096 - 32 - 8) / 8)

/** `progress` receives (stripes written out so far, stripes to write out). */
export function reclaimLog(arr: MdArray, progress?: (done: number, total: number) => void): ReclaimResult {
  const ring = arr.ring!
  const plan = planRecovery(arr)
  const usedBefore = ring.distance(plan.tailSector, plan.stop.position) * 512
  const base = {
    sizeBytes: ring.sizeBytes,
    usedBytesBefore: usedBefore,
    freeBytesBefore: ring.sizeBytes - usedBefore,
    dataOnlyStripes: plan.dataOnlyStripes,
    dataParityStripes: plan.dataParityStripes,
  }
  if (plan.clean) {
    return {
      ...base,
      wasClean: true,
      usedBytesAfter: usedBefore,
      freeBytesAfter: ring.sizeBytes - usedBefore,
      parityLogged: 0,
      flushPayloadStripes: 0,
      pagesWritten: 0,
      journalTailSector: plan.tailSector,
      nextSeq: plan.stopSeq,
    }
  }
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  // Appending right after the stop position continues the live log; a scan after a crash in
  // the middle of this will find the parity records and replay complete stripes.
  let cur = {head: plan.stop.position, seq: plan.stopSeq}
  let used = usedBefore
  let parityLogged = 0
  const level = arr.sb.level
  // progress counts stripes written out: the logged complete ones first, then the cached ones
  const stripes = plan.dataParityStripes + plan.dataOnlyStripes
  let cachedDone = 0
  applyFromLog(arr, plan, res, progress && ((done, total) => progress(Math.floor((plan.dataParityStripes * done) / total), stripes)))
  progress?.(plan.dataParityStripes, stripes)
  applyDataOnly(arr, plan.dataOnly, res, run => {
    progress?.(plan.dataParityStripes + cachedDone, stripes)
    cachedDone += run.sectors.length
    const records: LogRecord[] = []
    for (const sector of run.sectors) {
      const info = arr.geometry.stripeInfo(sector)
      const o = (sector - run.first) * 512
      const pages = [run.bufs[info.pd].subarray(o, o + PAGE)]
      if (level === 6) pages.push(run.bufs[info.qd].subarray(o, o + PAGE))
      const p: Payload = {type: PAYLOAD_PARITY, flags: 0, sizeSectors: pages.length * BLOCK_SECTORS, location: BigInt(sector), checksums: []}
      records.push({payloads: [p], pages})
    }
    const need = unitsSize(records)
    // keep room for the flush records and the closing block; without room, the stripes are still
    // safe offline: their data stays in the log until the tail moves, and a replay recomputes parity
    if ((used + need) / 512 + 4 * BLOCK_SECTORS >= ring.sizeSectors) return
    const out = appendRecords(arr, cur, records)
    arr.journal!.dev.flush()
    cur = out
    used += out.bytes
    parityLogged += run.sectors.length
  })
  for (const m of arr.members) m!.dev.flush()
  progress?.(stripes, stripes)
  // FLUSH payloads for the data-only stripes now on the members (as r5c_finish_stripe_write_out)
  const flushed = plan.dataOnly.keys().sort((a, b) => a - b)
  const flushRecords: LogRecord[] = []
  for (let i = 0; i < flushed.length; i += FLUSH_PER_PAYLOAD) {
    flushRecords.push({payloads: [{type: PAYLOAD_FLUSH, flags: 0, stripes: flushed.slice(i, i + FLUSH_PER_PAYLOAD).map(BigInt)}], pages: []})
  }
  const space = ring.sizeSectors - used / 512
  if (flushRecords.length > 0 && unitsSize(flushRecords) / 512 + BLOCK_SECTORS < space) {
    cur = appendRecords(arr, cur, flushRecords)
  }
  // close the log: empty meta block, tail moves to it
  const closing = cur.head
  closeLog(arr, closing, cur.seq)
  return {
    ...base,
    wasClean: false,
    usedBytesAfter: PAGE,
    freeBytesAfter: ring.sizeBytes - PAGE,
    parityLogged,
    flushPayloadStripes: flushed.length,
    pagesWritten: res.pagesWritten,
    journalTailSector: closing,
    nextSeq: cur.seq + 1n,
  }
}
