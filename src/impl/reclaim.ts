import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {reclaimArray, withUndo} from '../engine/index.js'
import {ProgressBar} from '../render/progress.js'
import {keyValues} from '../render/table.js'
import {humanBytes} from '../render/format.js'
import {unloggedLine} from '../render/recover.js'

export const spec = {
  summary: 'Write out what the journal still holds and move journal_tail past it',
  description: `Cached write-back stripes get parity computed, logged, and written to the members with FLUSH
payloads recorded, as the kernel's r5c code does; complete stripes still in the log are written too. Then an empty
meta block closes the log and journal_tail moves to it. Reports used and free journal space before and after.`,
  examples: ['<%= config.bin %> reclaim j.img a.img b.img c.img d.img', '<%= config.bin %> reclaim --json j.img a.img b.img c.img d.img'],
  strict: false,
  flags: {
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  const bar = new ProgressBar('reclaim', ctx.progressEnabled(flags.progress), 'fraction')
  const r = withUndo(deviceRefs(devices, flags), undoFile(flags.undo), devs => reclaimArray(devs, {...engineOptions(), progress: bar.update}))
  bar.done()
  const json = {...r, nextSeq: r.nextSeq.toString()}
  if (!ctx.jsonEnabled()) {
    ctx.log(
      keyValues(
        [
          ['Array UUID', r.arrayUuid],
          [
            'Result',
            r.wasClean
              ? 'journal already clean: nothing written'
              : `${r.dataOnlyStripes} cached stripes and ${r.dataParityStripes} logged stripes written out`,
          ],
          ['Used Before', `${humanBytes(r.usedBytesBefore)} of ${humanBytes(r.sizeBytes)} (free ${humanBytes(r.freeBytesBefore)})`],
          ['Used After', `${humanBytes(r.usedBytesAfter)} of ${humanBytes(r.sizeBytes)} (free ${humanBytes(r.freeBytesAfter)})`],
          ['Journal Tail', `sector ${r.journalTailSector}`],
          ...(r.unloggedStripes > 0 ? [['Unlogged', unloggedLine(r.unloggedStripes)] as [string, string]] : []),
        ],
        13,
      ),
    )
  }
  return json
}
