/**
 * r5ctl journal remove / add / replace → Linux 6.1: the kernel must assemble what they leave with no
 * resync (resync_start none, no "resync of RAID array" in dmesg, sync_action idle), read the bytes
 * r5ctl wrote (md5 of /dev/md0), and find parity consistent (check → mismatch_cnt 0). After remove it
 * runs without a journal; after add with the new one, write-through, from a clean (empty) log; after
 * replace of a dirty journal it replays the copied log. The lost-journal path (repair, then
 * add --force) ends the same way. All arrays go through one guest boot.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {boot, type BootResult, type Disk, type KernelEnv} from './harness.js'
import {
  MiB,
  cleanup,
  kernelOrSkip,
  md5,
  md5File,
  r5ctl,
  r5ctlJson,
  r5ctlReadMd5,
  randomPattern,
  recordBoot,
  sparseFile,
  tail,
  tmpDir,
} from './util.js'

type Kind = 'remove' | 'add' | 'replace' | 'lost' | 'bare' | 'bare-add'

interface Scenario {
  kind: Kind
  dir: string
  /** the devices the kernel gets, journal (if any) first */
  devs: string[]
  sizeBytes: number
  /** md5 of the bytes the kernel must present */
  want: string
  outMiB: number
}

const MEMBERS = 4
/** a write cut after this many device writes leaves complete stripes in the log, not yet on the members */
const CRASH_AFTER = 10

/** `r5ctl create`; `bare`: without --write-journal, an array without a journal */
function create(dir: string, id: string, bare = false): {journal: string; members: string[]; sizeBytes: number} {
  fs.mkdirSync(dir)
  const journal = path.join(dir, 'j.img')
  const members = Array.from({length: MEMBERS}, (_, i) => path.join(dir, `m${i}.img`))
  const geometry = ['--level', '5', '--raid-devices', String(MEMBERS), '--chunk', '64K', '--size', '16M', '--name', `r5ctl:${id}`]
  const c = r5ctlJson(['create', ...geometry, ...(bare ? [] : ['--journal-size', '8M', '--write-journal', journal]), ...members])
  if (c.code !== 0) throw new Error(`create: ${c.stderr}`)
  return {journal, members, sizeBytes: c.json.arraySizeBytes}
}

function write(dir: string, devs: string[], tag: string, offset: number, length: number, extra: string[] = []): {code: number; data: Buffer} {
  const data = randomPattern(`journal-kernel/${tag}`, length)
  const input = path.join(dir, `${tag}.bin`)
  fs.writeFileSync(input, data)
  const r = r5ctl(['write', '--offset', String(offset), '--input', input, ...extra, ...devs])
  fs.rmSync(input)
  return {code: r.code, data}
}

function ok(args: string[]): void {
  const r = r5ctl(args)
  if (r.code !== 0) throw new Error(`r5ctl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`)
}

function prepare(kind: Kind, root: string): Scenario {
  if (kind === 'bare' || kind === 'bare-add') return prepareBare(kind, root)
  const dir = path.join(root, kind)
  const {journal, members, sizeBytes} = create(dir, kind)
  const devs = [journal, ...members]
  const first = write(dir, devs, `${kind}-first`, 0, 3 * MiB)
  if (first.code !== 0) throw new Error('first write failed')
  const model = Buffer.alloc(sizeBytes)
  first.data.copy(model, 0)
  const newJournal = sparseFile(path.join(dir, 'j2.img'), 8 * MiB)
  if (kind === 'remove' || kind === 'add') {
    ok(['journal', 'remove', ...devs])
    if (kind === 'remove') return {kind, dir, devs: members, sizeBytes, want: md5(model), outMiB: 0}
    ok(['journal', 'add', newJournal, ...members])
    return {kind, dir, devs: [newJournal, ...members], sizeBytes, want: md5(model), outMiB: 0}
  }
  // a write cut short: the journal holds stripes the members do not have yet
  const cut = write(dir, devs, `${kind}-cut`, 8 * MiB, 2 * MiB, ['--crash-after', String(CRASH_AFTER)])
  if (cut.code !== 75) throw new Error(`the cut write exited ${cut.code}, not 75`)
  if (kind === 'replace') {
    const want = r5ctlReadMd5(devs).md5!
    ok(['journal', 'replace', journal, newJournal, ...members])
    return {kind, dir, devs: [newJournal, ...members], sizeBytes, want, outMiB: 0}
  }
  // lost: the journal is gone; repair the whole array, then a new journal
  ok(['repair', '--force', ...members])
  const want = r5ctlReadMd5(members, {force: true}).md5!
  ok(['journal', 'add', '--force', newJournal, ...members])
  return {kind, dir, devs: [newJournal, ...members], sizeBytes, want, outMiB: 0}
}

/** create without a journal: zeros; with journal add, then a write through the new journal */
function prepareBare(kind: Kind, root: string): Scenario {
  const dir = path.join(root, kind)
  const {members, sizeBytes} = create(dir, kind, true)
  const model = Buffer.alloc(sizeBytes)
  if (kind === 'bare') return {kind, dir, devs: members, sizeBytes, want: md5(model), outMiB: 0}
  const journal = sparseFile(path.join(dir, 'j2.img'), 8 * MiB)
  ok(['journal', 'add', journal, ...members])
  const w = write(dir, [journal, ...members], `${kind}-first`, 0, 3 * MiB)
  if (w.code !== 0) throw new Error('write through the added journal failed')
  w.data.copy(model, 0)
  return {kind, dir, devs: [journal, ...members], sizeBytes, want: md5(model), outMiB: 0}
}

function guestScript(s: Scenario[]): string {
  let out = 'echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null\n'
  s.forEach((a, i) => {
    const devs = a.devs.map((_, k) => `$(disk s${i}d${k})`).join(' ')
    out += `
echo "=== ${a.kind}"
dmesg -c > /dev/null
mdadm --assemble /dev/md0 ${devs}; kv s${i}.assemble $?
kv s${i}.resync_start "$(cat /sys/block/md0/md/resync_start)"
kv s${i}.mdstat "$(grep '^md0' /proc/mdstat)"
kv s${i}.policy "$(cat /sys/block/md0/md/consistency_policy)"
kv s${i}.jmode "$(cat /sys/block/md0/md/journal_mode 2>/dev/null)"
kv s${i}.ro "$(cat /sys/block/md0/md/array_state)"
kv s${i}.log "$(dmesg | grep -E 'md/raid:md0: (starting from|recovering)' | tail -n 1)"
dd if=/dev/md0 of=$(disk out) bs=1M seek=${a.outMiB} conv=notrunc 2>/dev/null; kv s${i}.copy $?
kv s${i}.sync_action "$(cat /sys/block/md0/md/sync_action)"
kv s${i}.resynced "$(dmesg | grep -c 'resync of RAID array md0')"
echo check > /sys/block/md0/md/sync_action
mdadm --wait /dev/md0
kv s${i}.mismatch "$(cat /sys/block/md0/md/mismatch_cnt)"
mdadm --stop /dev/md0; kv s${i}.stop $?
dmesg | grep -E 'md0|md/raid' | sed 's/^/  dmesg: /'
`
  })
  return out
}

describe('kernel interop: journal remove / add / replace (the kernel assembles the result)', function () {
  let env: KernelEnv
  let root = ''
  let result: BootResult
  let out = ''
  const scenarios: Scenario[] = []
  const failed = new Map<Kind, string>()
  const KINDS: Kind[] = ['remove', 'add', 'replace', 'lost', 'bare', 'bare-add']

  before(async function () {
    env = kernelOrSkip(this)
    root = tmpDir('r5ctl-journal')
    let off = 0
    for (const kind of KINDS) {
      try {
        const s = prepare(kind, root)
        s.outMiB = off
        off += Math.ceil(s.sizeBytes / MiB)
        scenarios.push(s)
      } catch (e) {
        failed.set(kind, (e as Error).message)
      }
    }
    out = sparseFile(path.join(root, 'out.img'), Math.max(1, off) * MiB)
    const disks: Disk[] = [{file: out, name: 'out'}]
    scenarios.forEach((s, i) => s.devs.forEach((f, k) => disks.push({file: f, name: `s${i}d${k}`})))
    result = recordBoot(
      `journal remove/add/replace: ${scenarios.length} arrays`,
      await boot(env, {disks, script: guestScript(scenarios), label: `journal (${scenarios.length} arrays, 1 boot)`, timeoutMs: 600_000}),
    )
    assert.equal(result.rc, 0, `guest script failed:\n${tail(result)}`)
  })

  after(function () {
    if (root) cleanup(root)
  })

  const get = (kind: Kind) => {
    const f = failed.get(kind)
    if (f) assert.fail(`preparing with r5ctl failed: ${f}`)
    const i = scenarios.findIndex(s => s.kind === kind)
    return {s: scenarios[i], k: (n: string) => result.kv[`s${i}.${n}`] ?? ''}
  }

  const sameBytes = (kind: Kind) => {
    const {s, k} = get(kind)
    assert.equal(k('copy'), '0')
    assert.equal(md5File(out, s.outMiB * MiB, s.sizeBytes), s.want)
  }

  const noResync = (kind: Kind) => {
    const {k} = get(kind)
    assert.equal(k('assemble'), '0', tail(result))
    assert.equal(k('resync_start'), 'none', 'the kernel starts a resync')
    assert.equal(k('resynced'), '0')
    assert.equal(k('sync_action'), 'idle')
    assert.equal(k('ro'), 'clean')
  }

  for (const kind of KINDS) {
    describe(kind, function () {
      it('assembles with no resync, read-write', () => noResync(kind))
      it('reads the bytes r5ctl read before the change (md5 of /dev/md0)', () => sameBytes(kind))
      it("the kernel's check finds no mismatch", () => assert.equal(get(kind).k('mismatch'), '0'))
      if (kind === 'remove' || kind === 'bare')
        it('runs without a journal', function () {
          const {k} = get(kind)
          assert.doesNotMatch(k('mdstat'), /\(J\)/)
          assert.equal(k('policy'), 'resync')
        })
      else
        it('runs with the new journal, write-through', function () {
          const {k} = get(kind)
          assert.match(k('mdstat'), /\(J\)/)
          assert.equal(k('policy'), 'journal')
          assert.match(k('jmode'), /\[write-through\]/)
        })
      if (kind === 'add' || kind === 'lost' || kind === 'bare-add')
        it('starts from a clean log', () => assert.match(get(kind).k('log'), /starting from clean shutdown/))
      if (kind === 'replace')
        it('replays the log journal replace copied', () =>
          assert.match(get(kind).k('log'), /recovering \d+ data-only stripes and [1-9]\d* data-parity stripes/))
    })
  }

  it('r5ctl reads the same bytes after the kernel stopped each array', function () {
    for (const s of scenarios) assert.equal(r5ctlReadMd5(s.devs).md5, s.want, s.kind)
  })
})
