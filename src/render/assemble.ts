/** What `r5ctl assemble` prints in text mode (the --json output is the engine's result as is). */
import {type AssembleResult} from '../engine/index.js'
import {keyValues, table} from './table.js'
import {mdSize} from './format.js'
import {out} from './colour.js'

export function renderAssemble(r: AssembleResult): string {
  const lines: string[] = []
  if (r.recovery)
    lines.push(
      out.green(
        `journal replayed: ${r.recovery.dataParityStripes} data+parity and ${r.recovery.dataOnlyStripes} data-only stripes, ${r.recovery.pagesWritten} pages written`,
      ),
      '',
    )
  lines.push(`array ${r.arrayUuid}:`)
  lines.push(
    keyValues(
      [
        ['Version', r.version],
        ['Creation Time', new Date(r.creationTime).toUTCString()],
        ['Raid Level', r.raidLevel],
        ['Array Size', `${r.arraySizeBytes / 1024} ${mdSize(r.arraySizeBytes)}`],
        ['Used Dev Size', `${r.usedDevSizeSectors / 2} ${mdSize(r.usedDevSizeSectors * 512)}`],
        ['Raid Devices', String(r.raidDevices)],
        ['Total Devices', String(r.totalDevices)],
        ['Persistence', 'Superblock is persistent'],
        ['', ''],
        ['Update Time', new Date(r.updateTime).toUTCString()],
        ['State', r.state],
        ['Active Devices', String(r.activeDevices)],
        ['', ''],
        ...(r.layout ? [['Layout', r.layout] as [string, string]] : []),
        ['Chunk Size', `${r.chunkBytes / 1024}K`],
        ['', ''],
        ['Consistency Policy', r.consistencyPolicy],
        ['', ''],
        ['Name', r.name],
        ['UUID', r.arrayUuid],
        ['Events', r.events],
        [
          'Journal',
          `${r.journal.device ?? '(missing)'}: ${r.journal.state}${r.journal.stripesPending ? `, ${r.journal.stripesPending} stripes pending` : ''}`,
        ],
      ],
      18,
    ),
  )
  const rows: (string | number)[][] = r.devices.map(d => [d.number, d.raidDevice ?? '-', d.state, d.device])
  for (const s of r.missingSlots) rows.push(['-', s, out.red('removed'), '(missing)'])
  lines.push(
    '',
    table(['Number', 'RaidDevice', 'State', 'Device'], rows)
      .split('\n')
      .map(l => `    ${l}`)
      .join('\n'),
  )
  return lines.join('\n')
}
