import {Flags} from '@oclif/core'
import {R5Command} from '../base-command.js'
import {createArray, withUndo, type CreateResult} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {parseLayout, parseUuid} from '../engine/format/superblock.js'
import {parseSize, humanBytes} from '../render/format.js'
import {ProgressBar} from '../render/progress.js'
import {out} from '../render/colour.js'
import {table} from '../render/table.js'

export default class Create extends R5Command {
  static summary = 'Create a journaled RAID4/5/6 array (md v1.2 superblocks, write journal)'
  static description = `Writes md v1.2 superblocks with the JOURNAL feature on every member and on the journal, and the
journal's first empty meta block, exactly as mdadm --create --write-journal does. Image files that do not exist are
created sparse (--size for members, --journal-size for the journal). Parity is made consistent unless --assume-clean
(fresh sparse files are all zeros and already consistent). Devices that already carry an md superblock are refused
unless --force.`
  static examples = [
    '<%= config.bin %> create --level 5 --raid-devices 4 --chunk 64K --size 64M --write-journal j.img a.img b.img c.img d.img',
    '<%= config.bin %> create --level 6 --raid-devices 5 --size 256M --journal-size 64M --write-journal j.img m0 m1 m2 m3 m4',
    '<%= config.bin %> create --level 4 --raid-devices 3 --size 32M --write-journal /dev/loop9 /dev/loop6 /dev/loop7 /dev/loop8 --force',
  ]
  static strict = false
  static flags = {
    level: Flags.string({char: 'l', description: 'RAID level: 4, 5 or 6 (raid5 and 5 both work)', required: true}),
    'raid-devices': Flags.integer({char: 'n', description: 'number of members (not counting the journal)', required: true}),
    chunk: Flags.string({char: 'c', description: 'chunk size, a power of two ≥ 4K', default: '512K'}),
    layout: Flags.string({description: 'md layout name (left-symmetric, right-asymmetric, parity-last, ...)'}),
    size: Flags.string({char: 'z', description: 'size of member image files to create (K/M/G/T suffixes)'}),
    name: Flags.string({char: 'N', description: 'array name stored in the superblock'}),
    uuid: Flags.string({char: 'u', description: 'array UUID (default: random)'}),
    'write-journal': Flags.string({description: 'the journal device or image file', required: true}),
    'journal-size': Flags.string({description: 'size of the journal image file to create', default: '64M'}),
    'journal-mode': Flags.string({description: 'accepted for runbooks; md keeps no journal mode on disk (the kernel starts every assembly in write-through), so each write takes --journal-mode itself', options: ['write-through', 'write-back'], default: 'write-through'}),
    'assume-clean': Flags.boolean({description: 'do not make parity consistent'}),
    force: Flags.boolean({char: 'f', description: 'overwrite devices that already carry a superblock'}),
    undo: Flags.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  }

  async run(): Promise<CreateResult & {journalMode: string}> {
    const {flags, argv} = await this.parse(Create)
    const level = Number(String(flags.level).replace(/^raid/i, ''))
    const size = (s: string | undefined, what: string) => {
      if (s === undefined) return undefined
      try { return parseSize(s) } catch (e) { throw new UsageError(`${what}: ${(e as Error).message}`) }
    }
    let layout: number | undefined
    if (flags.layout) {
      try { layout = parseLayout(level, flags.layout) } catch (e) { throw new UsageError((e as Error).message) }
    }
    let uuid: Uint8Array | undefined
    if (flags.uuid) {
      try { uuid = parseUuid(flags.uuid) } catch (e) { throw new UsageError(`--uuid: ${(e as Error).message}`) }
    }
    const bar = new ProgressBar('parity sync', this.progressEnabled(flags.progress), 'rows')
    const members = argv.map(String)
    const res = withUndo([...members, flags['write-journal']], flags.undo, devs => createArray({
      level, raidDevices: flags['raid-devices'], chunkBytes: size(flags.chunk, '--chunk')!, layout,
      sizeBytes: size(flags.size, '--size'), journalSizeBytes: size(flags['journal-size'], '--journal-size'),
      name: flags.name, uuid, force: flags.force, assumeClean: flags['assume-clean'],
      members: devs.slice(0, members.length), journal: devs[members.length],
    }, bar.update))
    bar.done()
    if (!this.jsonEnabled()) {
      this.log(`${out.green('created')} raid${res.level} array ${res.arrayUuid}: ${res.raidDevices} members, chunk ${humanBytes(res.chunkBytes)}, ` +
        `${res.layout ?? 'parity on the last member'}, ${humanBytes(res.arraySizeBytes)} usable, journal ${humanBytes(res.journalSizeBytes)}`)
      this.log(table(['device', 'role'], res.devices.map(d => [d.device, d.role])))
      this.log(`parity: ${res.parity}`)
      if (flags['journal-mode'] === 'write-back')
        this.log('journal mode: md stores no mode on disk; pass --journal-mode write-back to each `r5ctl write` (the kernel uses /sys/block/mdX/md/journal_mode)')
    }
    return {...res, journalMode: flags['journal-mode']}
  }
}
