import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {runJournal} from './examine.js'

export const spec = {
  summary: 'Summarise the journal: tail, head, seqs, used space, pending stripes, why the scan stopped',
  description: `Walks the live log from journal_tail with the kernel's rules. Exit 0 when clean, 5 when records
are pending replay (dirty), 4 when no valid meta block is at the tail. Same as examine --journal. The journal alone
is enough; members may be given too.`,
  examples: ['<%= config.bin %> examine-journal j.img', '<%= config.bin %> examine-journal --json j.img a.img b.img c.img d.img'],
  strict: false,
  flags: {
    export: flag.boolean({char: 'Y', description: 'MD_JOURNAL_* key=value lines for scripts'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  return runJournal(ctx, devices, {export: flags.export})
}
