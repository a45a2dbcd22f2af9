/**
 * A summary of the live log (what `examine --journal` prints and what `write` checks before it
 * appends): tail, head, seqs, pages, stripes pending replay, and why the scan stopped.
 */
import {PAYLOAD_DATA, PAYLOAD_PARITY, seqAfter} from '../format/meta.js'
import {StripeMachine} from './stripes.js'
import type {MdArray} from '../array.js'
import {scanLog, describeStop, type ScanStop, type LogEnd, type LastUnit} from './scan.js'
import {BLOCK_SECTORS, PAGE} from './ring.js'

export interface JournalState {
  sizeBytes: number
  tailSector: number
  tailSeq: bigint | null
  headSector: number
  /** seq the next meta block must carry */
  nextSeq: bigint | null
  usedBytes: number
  metaBlocks: number
  dataPages: number
  parityPages: number
  flushPayloads: number
  stripesDataParity: number
  stripesDataOnly: number
  /** clean: nothing in the live log would change the members on replay */
  state: 'clean' | 'dirty' | 'corrupt'
  stop: ScanStop
  /** the stop as reports name it: the normal end of the log, or what is wrong (see describeStop) */
  end: LogEnd
  /** the seq of the last valid meta block */
  lastSeq: bigint | null
  lastUnitSector: number | null
  /** io units dropped for a bad page checksum (the kernel skips them and goes on) */
  droppedUnits: number
}

export function journalState(arr: MdArray): JournalState {
  const ring = arr.ring!
  const tail = arr.journalTail
  let stop: ScanStop | undefined
  const st: JournalState = {
    sizeBytes: ring.sizeBytes,
    tailSector: tail,
    tailSeq: null,
    headSector: tail,
    nextSeq: null,
    usedBytes: 0,
    metaBlocks: 0,
    dataPages: 0,
    parityPages: 0,
    flushPayloads: 0,
    stripesDataParity: 0,
    stripesDataOnly: 0,
    state: 'clean',
    stop: undefined as unknown as ScanStop,
    end: undefined as unknown as LogEnd,
    lastSeq: null,
    lastUnitSector: null,
    droppedUnits: 0,
  }
  // the stripe state machine recovery runs: its counts are what a replay would do
  const machine = new StripeMachine(arr)
  // the kernel's rule: a unit with a bad page is dropped and the scan moves on by its meta block
  let dropped = 0
  let last: LastUnit | null = null
  const skip = (x: {position: number; seq: bigint}) => {
    if (st.tailSeq === null) st.tailSeq = x.seq
    last = {position: x.position, seq: x.seq, empty: false, dropped: true}
    dropped++
    st.nextSeq = seqAfter(x.seq)
  }
  for (const u of scanLog(ring, arr, tail, {onStop: s => (stop = s), kernelSkipOnDataMismatch: skip})) {
    if (st.metaBlocks === 0) st.tailSeq = u.seq
    st.metaBlocks++
    st.lastSeq = u.seq
    st.lastUnitSector = u.position
    last = {position: u.position, seq: u.seq, empty: u.meta.payloads.length === 0}
    st.nextSeq = seqAfter(u.seq)
    st.headSector = u.nextPosition
    st.usedBytes += (1 + u.pages) * PAGE
    for (const p of u.meta.payloads) {
      if (p.type === PAYLOAD_DATA) st.dataPages += p.sizeSectors / BLOCK_SECTORS
      else if (p.type === PAYLOAD_PARITY) st.parityPages += p.sizeSectors / BLOCK_SECTORS
      else st.flushPayloads++
    }
    machine.feed(u)
  }
  st.stop = stop!
  st.end = describeStop(stop!, last)
  st.droppedUnits = dropped
  st.headSector = stop!.position
  st.stripesDataOnly = machine.finish().size
  st.stripesDataParity = machine.dataParityStripes
  if (st.metaBlocks === 0 && dropped === 0) st.state = 'corrupt'
  else if (st.dataPages > 0 || st.parityPages > 0 || dropped > 0) st.state = 'dirty'
  return st
}
