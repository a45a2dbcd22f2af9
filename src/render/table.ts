/** Aligned tables via cli-table3, borderless so they paste cleanly into tickets and runbooks. */
import {createRequire} from 'node:module'
import type TableType from 'cli-table3'

// cli-table3 (CommonJS, six modules) is loaded on the first table, not at start-up: most commands print none
let Table: typeof TableType | undefined

export function table(head: string[], rows: (string | number)[][], align?: ('left' | 'right')[]): string {
  Table ??= createRequire(import.meta.url)('cli-table3') as typeof TableType
  const t = new Table({
    head,
    style: {head: [], border: [], 'padding-left': 0, 'padding-right': 2},
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '',
    },
    colAligns: align ?? head.map(() => 'left' as const),
  })
  for (const r of rows) t.push(r.map(String))
  return t
    .toString()
    .split('\n')
    .map(l => l.trimEnd())
    .join('\n')
}

/** mdadm-style "key : value" block with right-aligned keys. */
export function keyValues(pairs: [string, string][], width = 15): string {
  return pairs.map(([k, v]) => (k === '' ? '' : `${k.padStart(width)} : ${v}`)).join('\n')
}
