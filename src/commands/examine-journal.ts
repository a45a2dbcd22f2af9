import {Flags} from '@oclif/core'
import {R5Command} from '../base-command.js'
import {runJournal} from './examine.js'

export default class ExamineJournal extends R5Command {
  static summary = 'Summarise the journal: tail, head, seqs, used space, pending stripes, why the scan stopped'
  static description = `Walks the live log from journal_tail with the kernel's rules. Exit 0 when clean, 5 when records
are pending replay (dirty), 4 when no valid meta block is at the tail. Same as examine --journal. The journal alone
is enough; members may be given too.`
  static examples = ['<%= config.bin %> examine-journal j.img', '<%= config.bin %> examine-journal --json j.img a.img b.img c.img d.img']
  static strict = false
  static flags = {
    export: Flags.boolean({char: 'Y', description: 'MD_JOURNAL_* key=value lines for scripts'}),
  }

  async run() {
    const {argv, flags} = await this.parse(ExamineJournal)
    return runJournal(this, argv.map(String), {export: flags.export})
  }
}
