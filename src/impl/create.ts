import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs, undoFile} from '../cli/open.js'
import {createArray, withUndo, type CreateResult} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {parseLayout, parseUuid} from '../engine/format/names.js'
import {parseSize, parseInteger, humanBytes, U32_MAX} from '../render/format.js'
import {ProgressBar} from '../render/progress.js'
import {out} from '../render/colour.js'
import {table} from '../render/table.js'

export const spec = {
  summary: 'Create a RAID4/5/6 array (md v1.2 superblocks), with a write journal unless none is named',
  description: `Writes md v1.2 superblocks with the JOURNAL feature on every member and on the journal, and the
journal's first empty meta block, exactly as mdadm --create --write-journal does; without --write-journal, an array
without a journal (feature map 0, as mdadm --create without it), which journal add can give one. Image files that do not exist are
created sparse (--size for members, --journal-size for the journal). Parity is made consistent unless --assume-clean
(fresh sparse files are all zeros and already consistent). Devices that already carry an md superblock are refused
unless --force.`,
  examples: [
    '<%= config.bin %> create --level 5 --raid-devices 4 --chunk 64K --size 64M --write-journal j.img a.img b.img c.img d.img',
    '<%= config.bin %> create --level 6 --raid-devices 5 --size 256M --journal-size 64M --write-journal j.img m0 m1 m2 m3 m4',
    '<%= config.bin %> create --level 4 --raid-devices 3 --size 32M --write-journal /dev/loop9 /dev/loop6 /dev/loop7 /dev/loop8 --force',
    '<%= config.bin %> create --level 5 --raid-devices 4 --size 64M a.img b.img c.img d.img',
  ],
  strict: false,
  flags: {
    level: flag.string({char: 'l', description: 'RAID level: 4, 5 or 6 (raid5 and 5 both work)', required: true}),
    'raid-devices': flag.string({char: 'n', description: 'number of members (not counting the journal)', required: true}),
    chunk: flag.string({char: 'c', description: 'chunk size, a power of two ≥ 4K', default: '512K'}),
    layout: flag.string({description: 'md layout name (left-symmetric, right-asymmetric, parity-last, ...)'}),
    size: flag.string({
      char: 'z',
      description: 'size of member image files to create; of an existing member, how much of it to use (K/M/G/T suffixes)',
    }),
    name: flag.string({char: 'N', description: 'array name stored in the superblock'}),
    uuid: flag.string({char: 'u', description: 'array UUID (default: random)'}),
    'write-journal': flag.string({
      description: 'the journal device or image file; without it, an array without a journal (`r5ctl journal add` gives it one)',
    }),
    'journal-size': flag.string({description: 'size of the journal image file to create', default: '64M'}),
    'journal-mode': flag.string({
      description:
        'accepted for runbooks; md keeps no journal mode on disk (the kernel starts every assembly in write-through), so each write takes --journal-mode itself',
      options: ['write-through', 'write-back'],
      default: 'write-through',
    }),
    'assume-clean': flag.boolean({description: 'do not make parity consistent'}),
    force: flag.boolean({char: 'f', description: 'overwrite devices that already carry a superblock'}),
    undo: flag.string({description: 'save every block this run overwrites into a new undo file; `r5ctl undo FILE DEV...` restores them'}),
  },
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, members: string[]): Promise<CreateResult & {journalMode: string}> {
  const level = parseInteger('--level', flags.level.replace(/^raid/i, ''))
  let layout: number | undefined
  if (flags.layout) {
    try {
      layout = parseLayout(level, flags.layout)
    } catch (e) {
      throw new UsageError((e as Error).message)
    }
  }
  let uuid: Uint8Array | undefined
  if (flags.uuid) {
    try {
      uuid = parseUuid(flags.uuid)
    } catch (e) {
      throw new UsageError(`--uuid: ${(e as Error).message}`)
    }
  }
  const raidDevices = parseInteger('--raid-devices', flags['raid-devices'])
  // chunk sectors end in the superblock's u32 chunksize
  const chunkBytes = parseSize('--chunk', flags.chunk, {max: U32_MAX * 512n, field: "the superblock's 32-bit chunk size in sectors"})!
  const sizeBytes = parseSize('--size', flags.size)
  const journalSizeBytes = parseSize('--journal-size', flags['journal-size'])
  const bar = new ProgressBar('parity sync', ctx.progressEnabled(flags.progress), 'fraction')
  const journal = flags['write-journal']
  const res = withUndo(deviceRefs(journal === undefined ? members : [...members, journal], flags), undoFile(flags.undo), devs =>
    createArray(
      {
        ...engineOptions(),
        level,
        raidDevices,
        chunkBytes,
        layout,
        sizeBytes,
        journalSizeBytes,
        name: flags.name,
        uuid,
        force: flags.force,
        assumeClean: flags['assume-clean'],
        members: devs.slice(0, members.length),
        journal: journal === undefined ? undefined : devs[members.length],
      },
      bar.update,
    ),
  )
  bar.done()
  if (!ctx.jsonEnabled()) {
    ctx.log(
      `${out.green('created')} raid${res.level} array ${res.arrayUuid}: ${res.raidDevices} members, chunk ${humanBytes(res.chunkBytes)}, ` +
        `${res.layout ?? 'parity on the last member'}, ${humanBytes(res.arraySizeBytes)} usable, ` +
        (res.journal ? `journal ${humanBytes(res.journalSizeBytes)}` : 'no journal'),
    )
    ctx.log(
      table(
        ['device', 'role'],
        res.devices.map(d => [d.device, d.role]),
      ),
    )
    ctx.log(`parity: ${res.parity}`)
    if (flags['journal-mode'] === 'write-back')
      ctx.log(
        'journal mode: md stores no mode on disk; pass --journal-mode write-back to each `r5ctl write` (the kernel uses /sys/block/mdX/md/journal_mode)',
      )
  }
  return {...res, journalMode: flags['journal-mode']}
}
