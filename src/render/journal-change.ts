/** What `r5ctl journal remove|add|replace` print in text mode (the --json output is the engine's result as is). */
import {type JournalResult} from '../engine/index.js'
import {keyValues, table} from './table.js'
import {humanBytes} from './format.js'
import {out} from './colour.js'

const BEFORE = {present: 'present', missing: 'missing (the array has one, but it was not given or has failed)', none: 'none'}

export function renderJournalChange(r: JournalResult): string {
  const pairs: [string, string][] = [
    ['Array UUID', r.arrayUuid],
    ['Journal Was', r.oldJournal ? `${BEFORE[r.journalBefore]}: ${r.oldJournal}` : BEFORE[r.journalBefore]],
  ]
  if (r.recovery) {
    const stripes = r.recovery.dataParityStripes + r.recovery.dataOnlyStripes
    pairs.push(r.dryRun ? ['Would Replay', `${stripes} stripe(s) first (recover)`] : ['Replayed', `${stripes} stripe(s) first (recover)`])
  }
  if (r.newJournal) pairs.push(['New Journal', `${r.newJournal} (dev_number ${r.journalDevNumber})`])
  if (r.newJournal && r.copiedLogBytes === 0) pairs.push(['Log', `empty, first seq ${r.firstSeq}`])
  if (r.copiedLogBytes > 0)
    pairs.push(['Log', `copied ${humanBytes(r.copiedLogBytes)} from seq ${r.firstSeq}: ${r.stripesPending} stripe(s) for the kernel to replay`])
  pairs.push(['Events', `${r.eventsBefore} -> ${r.events}`])
  if (r.journalLost) pairs.push(['Lost', out.red('records only in the missing journal cannot be known; any stripe may hold a torn write')])
  if (r.resync) pairs.push(['Resync', 'marked: md resyncs the whole array at its next assembly'])
  if (r.leftOut.length > 0) pairs.push(['Left Out', `${r.leftOut.join(', ')} (a journal the array no longer lists)`])
  const lines = [
    keyValues(pairs, 12),
    '',
    table(
      ['device', 'offset', 'bytes', 'what'],
      r.writes.map(w => [w.device, w.offsetBytes, w.bytes, w.what]),
    ),
  ]
  const devices = new Set(r.writes.map(w => w.device)).size
  lines.push(
    r.dryRun
      ? out.yellow(`dry run: ${r.writes.length} write(s) planned, nothing written`)
      : out.green(
          `${r.action === 'remove' ? 'removed' : r.action === 'add' ? 'added' : 'replaced'}: ${r.writes.length} write(s) to ${devices} device(s)`,
        ),
  )
  return lines.join('\n')
}
