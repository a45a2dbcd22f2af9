/** What `r5ctl check` and `r5ctl repair` print in text mode (the --json output is the engine's result as is). */
import {type CheckResult, type RepairResult} from '../engine/index.js'
import {keyValues, table} from './table.js'
import {out} from './colour.js'

const SHOWN = 50

/** The first SHOWN of `listed` (of `total` in all) as a table after a blank line, and how many more there are; nothing when none. */
function firstRows<T>(listed: T[], total: number, head: string[], row: (x: T) => (string | number)[]): string[] {
  if (listed.length === 0) return []
  const shown = listed.slice(0, SHOWN)
  const lines = ['', table(head, shown.map(row))]
  if (total > shown.length) lines.push(`… ${total - shown.length} more (--json lists the first ${listed.length})`)
  return lines
}

export function renderCheck(r: CheckResult): string {
  const journal = {
    clean: 'clean',
    dirty: `dirty: laid over the members as replayed (${r.skippedStripes} data-only stripes not judged)`,
    corrupt: 'corrupt: ignored, as the kernel ignores it',
    unchecked: 'not read (--no-replay)',
    absent: 'none (the array has no journal)',
    missing: 'not given (--force): the members as they are; records only in it are not seen',
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
  lines.push(
    ...firstRows(r.mismatches, r.mismatchCount, ['stripe', 'array sector', 'kind', 'slot'], m => [
      m.stripeSector,
      m.arraySector,
      m.kind,
      m.slot ?? '-',
    ]),
  )
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
  lines.push(...firstRows(r.writes, r.pagesWritten, ['stripe', 'slot', 'page'], w => [w.stripeSector, w.slot, w.page]))
  return lines.join('\n')
}
