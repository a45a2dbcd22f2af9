/** What `r5ctl recover` prints in text mode (the --json output is the engine's result as is). */
import {type RecoverResult} from '../engine/index.js'
import {keyValues, table} from './table.js'
import {humanBytes} from './format.js'
import {out} from './colour.js'

export function renderRecover(r: RecoverResult): string {
  const state =
    r.state === 'clean'
      ? out.green('clean: nothing to replay, nothing written')
      : r.state === 'replayed'
        ? out.green('replayed')
        : out.yellow('dry run: nothing written')
  const lines = [
    keyValues(
      [
        ['Array UUID', r.arrayUuid],
        ['Result', state],
        ['Journal Tail', `sector ${r.journalTailSector}, seq ${r.tailSeq}`],
        ['Scan Stopped', `sector ${r.stopSector}: ${r.stopReason} (${r.stopMessage})`],
        ['Meta Blocks', `${r.metaBlocks} (${humanBytes(r.logBytesScanned)} of log)`],
        ['Stripes', `${r.dataParityStripes} data+parity, ${r.dataOnlyStripes} data-only`],
        ['Pages', `${r.pagesWritten} ${r.dryRun ? 'to write' : 'written'}`],
        ...(r.unloggedStripes > 0 ? [['Unlogged', unloggedLine(r.unloggedStripes)] as [string, string]] : []),
        ...(r.skippedUnits.length
          ? [['Dropped Units', r.skippedUnits.map(u => `seq ${u.seq} @ ${u.positionSector}: ${u.reason}`).join('; ')] as [string, string]]
          : []),
        ['New Tail', r.state === 'clean' ? 'unchanged' : `sector ${r.newTailSector}, seq ${r.newSeq}`],
        ...(r.missingSlots.length > 0 ? [['Missing Slots', missingLine(r.missingSlots)] as [string, string]] : []),
      ],
      14,
    ),
  ]
  if (r.writes.length > 0) {
    const shown = r.writes.slice(0, 50)
    lines.push(
      '',
      table(
        ['device', 'slot', 'sector', 'pages', 'source'],
        shown.map(w => [w.device, w.slot, w.offsetSector, w.pages, w.source]),
      ),
    )
    if (r.writes.length > shown.length) lines.push(`… ${r.writes.length - shown.length} more runs (--json lists all)`)
  }
  return lines.join('\n')
}

/** Members not given: replayed around, and the way on. */
function missingLine(slots: number[]): string {
  const rebuild = `r5ctl rebuild ${slots.map(s => `--slot ${s}`).join(' ')} NEW... DEV...`
  return out.yellow(`${slots.join(', ')}: written nothing (read from the other members); rebuild next: ${rebuild}`)
}

/** The stripes a write-out cannot log the parity of first (journal/writeout.ts), said plainly. */
export function unloggedLine(stripes: number): string {
  return out.yellow(
    `${stripes} cached stripes written without their parity logged first: the ring had no room for it (a log filled by another writer)`,
  )
}
