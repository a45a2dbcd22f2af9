/**
 * reclaim: write out everything the live log still holds for the members (writeout.ts, as recover
 * does), then record it the way the kernel's r5c code does: FLUSH payloads name the cached stripes
 * now on the members, an empty meta block closes the log, and journal_tail moves to it
 * (superblocks last).
 */
import {PAYLOAD_FLUSH, seqAfter} from '../format/meta.js'
import type {MdArray} from '../array.js'
import {planRecovery} from './plan.js'
import {closeLog, type ApplyResult} from './apply.js'
import {appendRecords, unitsSize, type LogCursor, type LogRecord} from './append.js'
import {planWriteOut, writeOut} from './writeout.js'
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
  /** cached stripes whose parity did not fit the ring, written out without it (writeout.ts) */
  unloggedStripes: number
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
  const usedBefore = plan.liveSectors * 512
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
      unloggedStripes: 0,
      flushPayloadStripes: 0,
      pagesWritten: 0,
      journalTailSector: plan.tailSector,
      nextSeq: plan.stopSeq,
    }
  }
  const res: ApplyResult = {pagesWritten: 0, memberWrites: 0, journalBytesRead: 0}
  const wo = planWriteOut(arr, plan)
  const stripes = plan.dataParityStripes + plan.dataOnlyStripes
  const end = writeOut(arr, plan, wo, res, progress && (f => progress(Math.floor(f * stripes), stripes)))
  arr.flushMembers()
  const cur = appendFlushRecords(arr, wo.used, plan.dataOnly.keys(), end)
  closeLog(arr, cur.head, cur.seq)
  return {
    ...base,
    wasClean: false,
    usedBytesAfter: PAGE,
    freeBytesAfter: ring.sizeBytes - PAGE,
    parityLogged: plan.dataOnlyStripes - wo.unlogged.length - wo.whole.length,
    unloggedStripes: wo.unlogged.length,
    flushPayloadStripes: plan.dataOnlyStripes,
    pagesWritten: res.pagesWritten,
    journalTailSector: cur.head,
    nextSeq: seqAfter(cur.seq),
  }
}

/**
 * FLUSH payloads for the data-only stripes now on the members (as r5c_finish_stripe_write_out),
 * when the ring (`used` sectors of it live) has room for them; returns where the closing block goes.
 */
function appendFlushRecords(arr: MdArray, used: number, sectors: number[], cur: LogCursor): LogCursor {
  const flushed = Float64Array.from(sectors).sort()
  const records: LogRecord[] = []
  for (let i = 0; i < flushed.length; i += FLUSH_PER_PAYLOAD) {
    records.push({payloads: [{type: PAYLOAD_FLUSH, flags: 0, stripes: Array.from(flushed.subarray(i, i + FLUSH_PER_PAYLOAD), BigInt)}], pages: []})
  }
  const space = arr.ring!.sizeSectors - used
  if (records.length === 0 || unitsSize(records) / 512 + BLOCK_SECTORS >= space) return cur
  return appendRecords(arr, cur, records)
}
