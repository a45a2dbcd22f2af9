/** copy-journal: the journal device's ring copied off to a file, live log or all of it. */
import type {EngineOptions} from '../compute.js'
import {openForJournal} from './examine.js'
import {type DeviceSource} from '../array.js'
import {type DeviceRef, alignedBuffer} from '../device.js'
import {journalState} from '../journal/state.js'
import {BLOCK_SECTORS, Ring} from '../journal/ring.js'
import {RefusedError} from '../errors.js'

export interface CopyJournalResult {
  journal: string
  output: string
  bytesCopied: number
  sizeBytes: number
  live: {fromSector: number; toSector: number}
  all: boolean
}

/**
 * Copy the journal's superblock area and its live log (or, with `all`, its whole data area) into a
 * sparse image of the same size, which every command accepts in place of the journal device.
 * Reads only; the output must not exist yet (nothing is ever overwritten).
 */
export function copyJournal(paths: DeviceSource[], output: DeviceRef, opts: EngineOptions & {all?: boolean}): CopyJournalResult {
  const arr = openForJournal(paths, opts)
  try {
    const j = arr.journal!
    if (output.exists())
      throw new RefusedError('output already exists; r5ctl never overwrites it', output.name, 'choose a new file name', 'would-overwrite')
    const js = journalState(arr)
    const ring = arr.ring!
    output.create(j.dev.size)
    const out = output.open({writable: true})
    let copied = 0
    try {
      const head = alignedBuffer(ring.baseBytes)
      j.dev.read(head, 0)
      out.write(head, 0)
      copied += head.length
      const from = opts.all ? 0 : js.tailSector
      const sectors = opts.all ? ring.sizeSectors : ring.distance(js.tailSector, js.stop.position) + BLOCK_SECTORS
      const win = alignedBuffer(Math.min(8 << 20, ring.sizeBytes))
      let done = 0
      while (done < sectors) {
        const len = Math.min(win.length / 512, sectors - done)
        const pos = ring.add(from, done)
        const w = win.subarray(0, len * 512)
        ring.read(w, pos)
        const outRing = new Ring(out, ring.baseBytes, ring.sizeSectors)
        outRing.write(w, pos)
        copied += w.length
        done += len
      }
      out.flush()
    } finally {
      out.close()
    }
    return {
      journal: j.path,
      output: output.name,
      bytesCopied: copied,
      sizeBytes: j.dev.size,
      live: {fromSector: js.tailSector, toSector: js.stop.position},
      all: Boolean(opts.all),
    }
  } finally {
    arr.close()
  }
}
