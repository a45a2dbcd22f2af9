/** Text renderers for examine --journal and dump-meta, shared by the commands and the demo. */
import type {JournalReport, DumpReport} from '../engine/index.js'
import {keyValues, table} from './table.js'
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

export function renderDump(r: DumpReport): string {
  const lines: string[] = [`${r.journal}: array ${r.arrayUuid}, journal tail sector ${r.journalTailSector}, walking from sector ${r.fromSector}`]
  for (const b of r.blocks) {
    const tag = b.stale ? out.dim(' [STALE: beyond the head, never replayed]') : ''
    lines.push(
      '',
      out.bold(`meta block @ sector ${b.positionSector}  seq ${b.seq}  meta_size ${b.metaSize}  checksum ${b.checksum} [match]  pages ${b.pages}`) +
        tag,
    )
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
    if (rows.length)
      lines.push(
        table(['type', 'location', 'stripe', 'log sector', 'checksum', 'verdict'], rows)
          .split('\n')
          .map(l => `  ${l}`)
          .join('\n'),
      )
  }
  const stale = r.blocks.filter(b => b.stale).length
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
      `${r.blocks.length - stale} meta block(s) in the live log${stale ? `, ${stale} stale` : ''}; ${r.mismatches === 0 ? out.green('every page checksum matches') : out.red(`${r.mismatches} page checksum mismatch(es)`)}`,
    )
    lines.push(`log ends at sector ${r.stop.sector}: ${r.stop.reason} (${r.stop.message})`)
  }
  return lines.join('\n')
}
