/** What `r5ctl check` prints in text mode (the --json output is the engine's result as is). */
import {type CheckResult} from '../engine/index.js'
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
