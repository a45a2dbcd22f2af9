/** What `r5ctl check` and `r5ctl repair` print in text mode (the --json output is the engine's result as is). */
import {type CheckResult, type RepairResult} from '../engine/index.js'
import {keyValues, table} from './table.js'
import {out} from './colour.js'

const SHOWN = 50

export function renderCheck(r: CheckResult): string {
  const journal = {
    clean: 'clean',
    dirty: `dirty: laid over the members as replayed (${r.skippedStripes} data-only stripes not judged)`,
    corrupt: 'corrupt: ignored, as the kernel ignores it',
    unchecked: 'not read (--no-replay)',
  }[r.journal]
  const lines = [
    keyValues(
      [
        ['Array UUID', r.arrayUuid],
        ['Result', r.mismatchCount === 0 ? out.green('every stripe holds') : out.red(`${r.mismatchCount} stripe(s) with parity mismatches`)],
        ['Checked', `member sectors ${r.fromSector} to ${r.toSector} (${r.stripes} stripes); a later --from ${r.toSector} goes on from here`],
        ['Journal', journal],
      ],
      12,
    ),
  ]
  if (r.mismatches.length > 0) {
    const shown = r.mismatches.slice(0, SHOWN)
    lines.push(
      '',
      table(
        ['stripe', 'array sector', 'kind', 'slot'],
        shown.map(m => [m.stripeSector, m.arraySector, m.kind, m.slot ?? '-']),
      ),
    )
    if (r.mismatchCount > shown.length) lines.push(`… ${r.mismatchCount - shown.length} more (--json lists the first ${r.mismatches.length})`)
  }
  return lines.join('\n')
}

export function renderRepair(r: RepairResult): string {
  const result =
    r.mismatchCount === 0
      ? out.green('every stripe holds: nothing to write')
      : r.dryRun
        ? out.yellow(`dry run: ${r.pagesWritten} page(s) of ${r.mismatchCount} stripe(s) would be written`)
        : out.green(`${r.pagesWritten} page(s) of ${r.mismatchCount} stripe(s) written`)
  const lines = [
    keyValues(
      [
        ['Array UUID', r.arrayUuid],
        ['Result', result],
        ['Checked', `member sectors ${r.fromSector} to ${r.toSector} (${r.stripes} stripes)`],
      ],
      12,
    ),
  ]
  if (r.writes.length > 0) {
    const shown = r.writes.slice(0, SHOWN)
    lines.push(
      '',
      table(
        ['stripe', 'slot', 'page'],
        shown.map(w => [w.stripeSector, w.slot, w.page]),
      ),
    )
    if (r.pagesWritten > shown.length) lines.push(`… ${r.pagesWritten - shown.length} more (--json lists the first ${r.writes.length})`)
  }
  return lines.join('\n')
}
