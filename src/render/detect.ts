/** What `r5ctl detect` prints in text mode (the --json output is the engine's result as is). */
import {type DetectCandidate, type DetectResult, type DetectWriteResult} from '../engine/index.js'
import {humanBytes} from './format.js'
import {keyValues, table} from './table.js'
import {out} from './colour.js'

/** candidates in the table (the JSON has them all) */
const SHOWN = 5

export function renderDetect(r: DetectResult): string {
  const top = r.candidates.at(0)
  const j = r.journal
  const uuid = r.arrayUuid
    ? `${r.arrayUuid} (superblock of ${r.uuidSource}${j ? (j.uuidConfirmed ? '; the journal checksums confirm it' : '; the journal checksums do NOT hold with it') : ''})`
    : 'unknown (no superblock survives)'
  const journal = j
    ? `${j.device}: ${j.metaBlocks} meta blocks, data offset ${j.dataOffsetSector} sectors, checksum seed ${j.checksumSeed} (${j.seedAgreeing} of ${j.metaBlocks} blocks agree)`
    : 'none found'
  const s = r.sample
  const lines = [
    keyValues(
      [
        ['Result', r.found && top ? out.green(`found: ${describe(top)}`) : out.red('no candidate fits')],
        ['Array UUID', uuid],
        ['Journal', journal],
        [
          'Sampled',
          `${s.stripes} stripes (${s.stripesWithData} with data: ${s.xorZero} XOR to zero, ${s.qLike} have a Q page, ${s.noParity} neither), ${humanBytes(s.bytesRead)} read`,
        ],
      ],
      10,
    ),
  ]
  if (r.candidates.length > 0) {
    lines.push(
      '',
      table(
        ['rank', 'level', 'layout', 'chunk', 'members by slot', 'data offset', 'size/member', 'parity held', 'exact', 'journal pages', 'continuity'],
        r.candidates.slice(0, SHOWN).map(row),
      ),
    )
  }
  if (r.undecided.length > 0) lines.push('', 'Not decided by the content:', ...r.undecided.map(u => `  - ${u}`))
  if (r.notes.length > 0) lines.push('', ...r.notes.map(n => `note: ${n}`))
  if ('write' in r) lines.push('', renderWrite(r as DetectWriteResult))
  return lines.join('\n')
}

/** What detect --write wrote, or with --dry-run would write. */
function renderWrite(r: DetectWriteResult): string {
  const w = r.write
  const verb = w.dryRun ? 'Would write' : 'Wrote'
  const tail = `journal_tail ${w.journalTailSector} (${w.journalTailSource === 'superblock' ? "the journal's surviving superblock" : "the start of the log's newest chain"})`
  return [
    `${verb} v1.2 superblocks for candidate ${w.candidate}, array ${w.arrayUuid}, events ${w.devices.at(0)?.events ?? '-'}, ${tail}:`,
    table(
      ['device', 'role'],
      w.devices.map(d => [d.device, d.role]),
    ),
    w.dryRun ? 'nothing was written' : 'next: `r5ctl examine-journal` shows what the journal holds; `r5ctl recover` replays it',
  ].join('\n')
}

function describe(c: DetectCandidate): string {
  return `raid${c.level} ${c.layout}, chunk ${c.chunkBytes / 1024}K, ${c.members.length} members, data offset ${c.dataOffsetSector} sectors`
}

function row(c: DetectCandidate): (string | number)[] {
  const e = c.evidence
  const held = c.level === 6 ? `${e.parityHeld}/${e.stripesWithData} Q ${e.qHeld}/${e.qChecked}` : `${e.parityHeld}/${e.stripesWithData}`
  const exact = e.exactChecked === null ? '-' : `${e.exactHeld}/${e.exactChecked}`
  const logged = e.journalPagesOnMembers ? `${e.journalPagesOnMembers.matching}/${e.journalPagesOnMembers.located}` : '-'
  return [
    c.rank,
    `raid${c.level}`,
    c.layout,
    `${c.chunkBytes / 1024}K`,
    c.members.join(' '),
    `${c.dataOffsetSector} (${c.dataOffsetSource})`,
    `${c.memberDataSectors} s${c.sizeSource === 'superblock' ? ' (superblock)' : ''}`,
    held,
    exact,
    logged,
    `${e.transitions} changes`,
  ]
}
