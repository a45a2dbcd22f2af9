/** What `r5ctl rebuild` and `r5ctl replace` print in text mode (the --json output is the engine's result as is). */
import type {RebuildResult} from '../engine/index.js'
import {keyValues, table} from './table.js'
import {out} from './colour.js'

export function renderRebuild(r: RebuildResult): string {
  const mib = (r.bytesWritten / 1048576).toFixed(1)
  const result = r.dryRun
    ? out.yellow(`dry run: ${mib} MiB would be rebuilt onto ${r.targets.length} device(s); nothing was written`)
    : out.green(`rebuilt: ${mib} MiB written, ${r.checkpoints} checkpoint(s); every slot is in sync (events ${r.events})`)
  const lines = [
    keyValues(
      [
        ['Array UUID', r.arrayUuid],
        ['Raid Level', `raid${r.level}, ${r.raidDevices} devices, ${r.memberSectors} sectors per member`],
        ['Result', result],
      ],
      12,
    ),
    '',
    table(
      ['slot', 'device', 'dev number', 'device uuid', 'from sector'],
      r.targets.map(t => [t.slot, t.device, t.devNumber, t.deviceUuid, t.startSector]),
    ),
  ]
  for (const t of r.targets) if (t.restartReason) lines.push(`slot ${t.slot}: copied from the start: ${t.restartReason}`)
  return lines.join('\n')
}
