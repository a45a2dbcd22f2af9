/** Text renderers for examine --journal and dump-meta, shared by the commands and the demo. */
import type {JournalReport, DumpBlock, DumpHeader, DumpReport, DumpSummary} from '../engine/index.js'
import {keyValues} from './table.js'
import {humanBytes} from './format.js'
import {out} from './colour.js'

export function renderJournal(r: JournalReport): string {
  const state = r.state === 'clean' ? out.green('clean') : r.state === 'dirty' ? out.yellow('dirty') : out.red('corrupt')
  return (
    `${r.journal}:\n` +
    keyValues(
      [
        ['Array UUID', r.arrayUuid],
        ['Journal Size', `${humanBytes(r.sizeBytes)} (${r.sizeBytes / 512} sectors)`],
        ['State', state],
        ['Journal Tail', `sector ${r.journalTailSector}, seq ${r.tailSeq ?? '-'}`],
        ['Head', `sector ${r.headSector}, next seq ${r.nextSeq ?? '-'}`],
        [
          'Used',
          `${humanBytes(r.usedBytes)} (${r.metaBlocks} meta blocks, ${r.dataPages} data pages, ${r.parityPages} parity pages, ${r.flushPayloads} flush payloads)`,
        ],
        ['Pending', `${r.stripesPending.dataParity} data+parity stripes, ${r.stripesPending.dataOnly} data-only stripes`],
        ...(r.droppedUnits
          ? [['Dropped', `${r.droppedUnits} io unit(s) with a bad page checksum (replay skips them, as the kernel does)`] as [string, string]]
          : []),
        ['Scan Stopped', `sector ${r.stop.sector}: ${r.stop.reason} (${r.stop.message})`],
      ],
      14,
    )
  )
}

/** The whole dump at once (the demo's small journal); the command streams the same pieces. */
export function renderDump(r: DumpReport): string {
  const stale = r.blocks.filter(b => b.stale).length
  return [renderDumpHeader(r), ...r.blocks.map(renderDumpBlock), renderDumpEnd(r, {live: r.blocks.length - stale, stale})].join('\n')
}

export function renderDumpHeader(h: DumpHeader): string {
  return `${h.journal}: array ${h.arrayUuid}, journal tail sector ${h.journalTailSector}, walking from sector ${h.fromSector}`
}

/** One meta block: its header line and a table of its payloads' pages, after a blank line. */
export function renderDumpBlock(b: DumpBlock): string {
  const tag = b.stale ? out.dim(' [STALE: beyond the head, never replayed]') : ''
  const lines = [
    '',
    out.bold(`meta block @ sector ${b.positionSector}  seq ${b.seq}  meta_size ${b.metaSize}  checksum ${b.checksum} [match]  pages ${b.pages}`) +
      tag,
  ]
  const rows: string[][] = []
  for (const p of b.payloads) {
    if (p.type === 'flush') {
      rows.push(['flush', '', '', p.stripeSectors.join(' '), '', ''])
      continue
    }
    p.pages.forEach((pg, i) => {
      const verdict = pg.verdict === 'match' ? out.green('[match]') : out.red(`[MISMATCH] actual ${pg.actual}`)
      rows.push(
        i === 0
          ? [p.type, p.locationSector, String(p.stripeSector), String(pg.positionSector), pg.checksum, verdict]
          : ['', '', '', String(pg.positionSector), pg.checksum, verdict],
      )
    })
  }
  if (rows.length) lines.push(pageTable(['type', 'location', 'stripe', 'log sector', 'checksum', 'verdict'], rows))
  return lines.join('\n')
}

/**
 * A block's rows as table() aligns them (two spaces after each column), indented: by hand, as a
 * dump prints one table per meta block, thousands of them, and cli-table3 took ten times the walk.
 * Only the last column is coloured, and nothing follows it, so no width counts escape codes.
 */
function pageTable(head: string[], rows: string[][]): string {
  const all = [head, ...rows]
  const widths = head.map((_, c) => Math.max(...all.map(r => r[c].length)) + 2)
  return all.map(r => `  ${r.map((cell, c) => (c < r.length - 1 ? cell.padEnd(widths[c]) : cell)).join('')}`.trimEnd()).join('\n')
}

/** The closing lines: how the walk ended, and the blocks listed (live and stale). */
export function renderDumpEnd(r: DumpSummary, listed: {live: number; stale: number}): string {
  const lines: string[] = []
  if (r.badTail) {
    lines.push(
      '',
      out.red(
        `no valid meta block at the journal tail (sector ${r.stop.sector}): ${r.stop.reason} (${r.stop.message}); the kernel would discard the whole log`,
      ),
    )
  } else if (r.walkedBlocks === 0) {
    lines.push('', `no valid meta block at sector ${r.stop.sector}, where the walk started: ${r.stop.reason} (${r.stop.message})`)
  } else {
    lines.push(
      '',
      `${listed.live} meta block(s) in the live log${listed.stale ? `, ${listed.stale} stale` : ''}; ${r.mismatches === 0 ? out.green('every page checksum matches') : out.red(`${r.mismatches} page checksum mismatch(es)`)}`,
    )
    lines.push(`log ends at sector ${r.stop.sector}: ${r.stop.reason} (${r.stop.message})`)
  }
  return lines.join('\n')
}
