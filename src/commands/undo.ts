import {Args, Flags} from '@oclif/core'
import {R5Command} from '../base-command.js'
import {undoRestore, type UndoResult} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {table} from '../render/table.js'
import {humanBytes} from '../render/format.js'

export default class Undo extends R5Command {
  static summary = 'Restore the blocks an earlier run saved with --undo, bit for bit'
  static description = `Reads and verifies the whole undo file first (every checksum), matches its recorded devices to
the ones given (by device UUID, or by path and size), and only then writes the saved blocks back. Refuses (exit 3)
when a recorded device is missing or the file is incomplete (the run that wrote it did not finish), unless --force;
a damaged file is exit 4. Like e2undo's files, an undo file does not survive a crash of the run that writes it.`
  static examples = [
    '<%= config.bin %> recover --undo recover.undo j.img a.img b.img c.img d.img',
    '<%= config.bin %> undo --dry-run recover.undo j.img a.img b.img c.img d.img',
    '<%= config.bin %> undo recover.undo j.img a.img b.img c.img d.img',
  ]
  static strict = false
  static args = {file: Args.string({description: 'the undo file', required: true})}
  static flags = {
    'dry-run': Flags.boolean({char: 'n', description: 'list what would be restored; write nothing'}),
    force: Flags.boolean({char: 'f', description: 'restore from an incomplete file, or only the devices found'}),
  }

  async run(): Promise<UndoResult> {
    const {args, argv, flags} = await this.parse(Undo)
    const devices = argv.map(String).filter(a => a !== args.file)
    if (devices.length === 0) throw new UsageError('name the devices to restore after the undo file')
    const r = undoRestore(args.file, devices, {dryRun: flags['dry-run'], force: flags.force})
    if (!this.jsonEnabled()) {
      this.log(table(['recorded device', 'restored to', 'blocks', 'bytes'], r.devices.map(d => [d.recorded, d.device ?? '(not given)', d.blocks, humanBytes(d.bytes)])))
      this.log(r.dryRun ? 'dry run: nothing written' : `restored ${humanBytes(r.bytesRestored)} from ${r.file} (recorded ${r.created}${r.complete ? '' : ', INCOMPLETE'})`)
    }
    return r
  }
}
