/**
 * r5ctl rebuild → kernel: members are taken out of arrays r5ctl made and wrote, r5ctl rebuilds them
 * onto blank images, and Linux 6.1 (mdadm --assemble) must take the rebuilt set as it is: no
 * recovery or resync started (sync_action idle), every member `active sync` in mdadm --detail, the
 * bytes r5ctl read from the array before the members were taken out, and a parity check with
 * mismatch_cnt 0. RAID5 one slot, RAID6 two. A rebuild cut short (crash.ts, a power cut after half
 * its writes) must be taken by the kernel as a member in recovery, which it finishes from the
 * checkpoint to the same bytes. `replace` of a working RAID6 member is taken the same way as a rebuild.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {boot, type BootResult, type KernelEnv} from './harness.js'
import {cleanup, kernelOrSkip, md5File, MiB, r5ctl, r5ctlJson, r5ctlReadMd5, randomPattern, recordBoot, sparseFile, tail, tmpDir} from './util.js'
import {rebuildArray} from '../../src/engine/index.js'
import {FileRef} from '../../src/engine/device.js'
import {CrashController} from '../../src/engine/crash.js'
import {SimulatedCrash} from '../../src/engine/errors.js'
import {decodeSuperblock, FEATURE_RECOVERY_OFFSET} from '../../src/engine/format/superblock.js'

interface Config {
  id: string
  level: 5 | 6
  members: number
  slots: number[]
  /** the rebuild is cut after half its device writes: the kernel finishes it */
  cut?: boolean
  /** `r5ctl replace` of the slot's working member instead of a rebuild of a removed one */
  replace?: boolean
}

const CONFIGS: Config[] = [
  {id: 'raid5', level: 5, members: 4, slots: [2]},
  {id: 'raid6', level: 6, members: 5, slots: [1, 3]},
  {id: 'raid5-cut', level: 5, members: 4, slots: [0], cut: true},
  {id: 'raid6-replace', level: 6, members: 5, slots: [4], replace: true},
]
const MEMBER = 32 * MiB

interface Prepared {
  cfg: Config
  journal: string
  /** by slot, the rebuilt ones in their slots */
  members: string[]
  sizeBytes: number
  md5: string
  outOffsetMiB: number
}

function prepare(cfg: Config, root: string): Prepared {
  const dir = path.join(root, cfg.id)
  fs.mkdirSync(dir)
  const journal = path.join(dir, 'j.img')
  const members = Array.from({length: cfg.members}, (_, i) => path.join(dir, `m${i}.img`))
  const made = r5ctlJson([
    'create',
    '--level',
    String(cfg.level),
    '--raid-devices',
    String(cfg.members),
    '--chunk',
    '64K',
    '--size',
    String(MEMBER),
    '--journal-size',
    String(8 * MiB),
    '--write-journal',
    journal,
    ...members,
  ])
  if (made.code !== 0) throw new Error(`create: ${made.stderr}`)
  const size = made.json.arraySizeBytes as number
  const input = path.join(dir, 'data.bin')
  fs.writeFileSync(input, randomPattern(`rebuild/${cfg.id}`, size - 64 * 1024))
  const w = r5ctl(['write', '--offset', '0', '--input', input, journal, ...members])
  if (w.code !== 0) throw new Error(`write: ${w.stderr}`)
  fs.rmSync(input)
  const before = r5ctlReadMd5([journal, ...members])
  const news = cfg.slots.map(s => {
    if (!cfg.replace) fs.rmSync(members[s])
    return sparseFile(path.join(dir, `new${s}.img`), MEMBER)
  })
  const survivors = [journal, ...members.filter((_, i) => !cfg.slots.includes(i))]
  if (cfg.cut) cutRebuild(cfg, news, survivors)
  else if (cfg.replace) {
    const r = r5ctl(['replace', members[cfg.slots[0]], news[0], ...survivors])
    if (r.code !== 0) throw new Error(`replace: ${r.stderr}`)
  } else {
    const r = r5ctl(['rebuild', '--slot', cfg.slots.join(','), ...news, ...survivors])
    if (r.code !== 0) throw new Error(`rebuild: ${r.stderr}`)
  }
  for (const [i, s] of cfg.slots.entries()) members[s] = news[i]
  return {cfg, journal, members, sizeBytes: size, md5: before.md5 ?? `read failed: ${before.stderr}`, outOffsetMiB: 0}
}

/**
 * The engine's rebuild with a power cut after 19 device writes: the first superblock update (5),
 * then 7 windows of 2 MiB each with its checkpoint: the new member is in recovery at 14 MiB.
 */
function cutRebuild(cfg: Config, news: string[], survivors: string[]): void {
  const ctl = new CrashController(19)
  const wrap = (p: string) => ctl.wrap(new FileRef(p).open({writable: true}))
  assert.throws(() => rebuildArray(survivors.map(wrap), news.map(wrap), {slots: cfg.slots, checkpointBytes: 2 * MiB}), SimulatedCrash)
  const block = Buffer.alloc(4096)
  const fd = fs.openSync(news[0], 'r')
  fs.readSync(fd, block, 0, 4096, 4096)
  fs.closeSync(fd)
  const sb = decodeSuperblock(block).sb
  assert.equal(sb.featureMap & FEATURE_RECOVERY_OFFSET, FEATURE_RECOVERY_OFFSET)
  assert.equal(sb.journalTail, BigInt(14 * 2048), 'recovery_offset at the 7th checkpoint')
}

function guestScript(arrays: Prepared[]): string {
  let s = ''
  arrays.forEach((a, i) => {
    const devs = [`$(disk a${i}j)`, ...a.members.map((_, m) => `$(disk a${i}m${m})`)].join(' ')
    s += `
echo "=== array ${i} (${a.cfg.id})"
dmesg -c > /dev/null
mdadm --assemble /dev/md0 ${devs}; kv a${i}.assemble $?
kv a${i}.action0 "$(cat /sys/block/md0/md/sync_action)"
mdadm --wait /dev/md0
kv a${i}.action "$(cat /sys/block/md0/md/sync_action)"
kv a${i}.insync "$(mdadm --detail /dev/md0 | grep -c 'active sync')"
kv a${i}.state "$(mdadm --detail /dev/md0 | sed -n 's/^ *State : //p')"
dd if=/dev/md0 of=$(disk out) bs=1M seek=${a.outOffsetMiB} conv=notrunc 2>/dev/null; kv a${i}.copy $?
echo check > /sys/block/md0/md/sync_action
mdadm --wait /dev/md0
kv a${i}.mismatch "$(cat /sys/block/md0/md/mismatch_cnt)"
mdadm --stop /dev/md0; kv a${i}.stop $?
dmesg | grep -E 'md0|md/raid|recovery' | sed 's/^/  dmesg: /'
`
  })
  return s
}

describe('kernel interop: r5ctl rebuild → Linux assembles the rebuilt set in sync', function () {
  let env: KernelEnv
  let root = ''
  const arrays: Prepared[] = []
  let result: BootResult
  let out = ''

  before(async function () {
    env = kernelOrSkip(this)
    root = tmpDir('rebuild-kernel')
    let off = 0
    for (const cfg of CONFIGS) {
      const p = prepare(cfg, root)
      p.outOffsetMiB = off
      off += Math.ceil(p.sizeBytes / MiB)
      arrays.push(p)
    }
    out = sparseFile(path.join(root, 'out.img'), off * MiB)
    const disks = [{file: out, name: 'out'}]
    arrays.forEach((a, i) => {
      disks.push({file: a.journal, name: `a${i}j`})
      a.members.forEach((m, k) => disks.push({file: m, name: `a${i}m${k}`}))
    })
    result = recordBoot('rebuild → kernel', await boot(env, {disks, script: guestScript(arrays), label: 'rebuild → kernel', timeoutMs: 600_000}))
    assert.equal(result.rc, 0, `guest script failed:\n${tail(result)}`)
  })

  after(function () {
    if (root) cleanup(root)
  })

  for (const cfg of CONFIGS) {
    describe(`${cfg.id}: slot(s) ${cfg.slots.join(', ')} rebuilt${cfg.cut ? ', cut short' : ''}`, function () {
      const get = () => {
        const i = arrays.findIndex(a => a.cfg === cfg)
        return {a: arrays[i], k: (n: string) => result.kv[`a${i}.${n}`]}
      }
      if (cfg.cut)
        it('the kernel takes the cut rebuild as a member in recovery and finishes it', function () {
          const {k} = get()
          assert.equal(k('assemble'), '0', tail(result))
          assert.equal(k('action0'), 'recover')
          assert.equal(k('action'), 'idle')
        })
      else
        it('the kernel assembles it without a resync or recovery (sync_action idle)', function () {
          const {k} = get()
          assert.equal(k('assemble'), '0', tail(result))
          assert.equal(k('action0'), 'idle')
        })
      it('every member is active sync in mdadm --detail, the array clean', function () {
        const {k} = get()
        assert.equal(k('insync'), String(cfg.members))
        assert.match(k('state') ?? '', /^clean/)
      })
      it('md5 of /dev/md0 equals r5ctl read of the array before the members were taken out', function () {
        const {a, k} = get()
        assert.equal(k('copy'), '0')
        assert.equal(md5File(out, a.outOffsetMiB * MiB, a.sizeBytes), a.md5)
      })
      it("the kernel's check finds mismatch_cnt 0", function () {
        assert.equal(get().k('mismatch'), '0')
      })
    })
  }
})
