/**
 * r5ctl → kernel: r5ctl creates journaled RAID4/5/6 arrays and writes known data through the
 * journal; Linux 6.1 (mdadm --assemble) must start them from a clean log, see the journal, read the
 * same bytes, and find every parity block consistent (`check` → mismatch_cnt 0). All arrays go
 * through one guest boot; the kernel's view of each array is copied to an output disk so the host
 * compares bytes (and can name the first differing offset).
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {boot, type BootResult, type Disk, type KernelEnv} from './harness.js'
import {lsStripe} from '../helpers/model.js'
import {assembleAndCopy, readOut, recoverChecks, recoverCopy, stripTime, type Recovered} from './checks.js'
import {
  KiB,
  MiB,
  cleanup,
  kernelOrSkip,
  kernelReplayModel,
  md5,
  md5File,
  parseRecovering,
  r5ctl,
  r5ctlJson,
  r5ctlReadMd5,
  randomPattern,
  recordBoot,
  sparseFile,
  tail,
  tmpDir,
} from './util.js'

interface Config {
  id: string
  level: number
  layout?: string
  members: number
  chunk: string
  /** after the writes, pages of the members are damaged and `r5ctl repair` mends them before the kernel sees the array */
  repaired?: boolean
}

const CONFIGS: Config[] = [
  {id: 'raid4', level: 4, members: 4, chunk: '64K'},
  {id: 'raid5-ls', level: 5, layout: 'left-symmetric', members: 4, chunk: '64K'},
  {id: 'raid5-ra', level: 5, layout: 'right-asymmetric', members: 4, chunk: '64K'},
  {id: 'raid6-ls', level: 6, layout: 'left-symmetric', members: 5, chunk: '64K'},
  {id: 'raid5-repaired', level: 5, layout: 'left-symmetric', members: 4, chunk: '64K', repaired: true},
  {id: 'raid6-repaired', level: 6, layout: 'left-symmetric', members: 5, chunk: '64K', repaired: true},
]

const MEMBER = '32M'
const JOURNAL = '16M'

interface Prepared {
  cfg: Config
  dir: string
  journal: string
  members: string[]
  sizeBytes: number
  model: Buffer
  modelMd5: string
  hostMd5: string | null
  ctime: string
  outOffsetMiB: number
  error?: string
}

/** The writes, as (offset, length) in the array's address space; the last one hugs the end. */
function writesFor(size: number): [number, number][] {
  return [
    [0, 1 * MiB], // full stripes
    [256 * KiB + 4 * KiB, 8 * KiB], // overwrite inside written data: read-modify-write
    [5 * MiB + 12 * KiB, 4 * KiB], // one page
    [7 * MiB + 8 * KiB, 100 * KiB], // partial stripes, not chunk-aligned
    [20 * MiB, 3 * MiB], // a longer run
    [size - 384 * KiB, 384 * KiB], // the last rows of the array
  ]
}

function prepare(cfg: Config, root: string): Prepared {
  const dir = path.join(root, cfg.id)
  fs.mkdirSync(dir)
  const journal = path.join(dir, 'journal.img')
  const members = Array.from({length: cfg.members}, (_, i) => path.join(dir, `m${i}.img`))
  const p: Prepared = {cfg, dir, journal, members, sizeBytes: 0, model: Buffer.alloc(0), modelMd5: '', hostMd5: null, ctime: '', outOffsetMiB: 0}
  const c = r5ctlJson([
    'create',
    '--level',
    String(cfg.level),
    '--raid-devices',
    String(cfg.members),
    '--chunk',
    cfg.chunk,
    ...(cfg.layout ? ['--layout', cfg.layout] : []),
    '--size',
    MEMBER,
    '--journal-size',
    JOURNAL,
    '--name',
    `r5ctl:${cfg.id}`,
    '--write-journal',
    journal,
    ...members,
  ])
  if (c.code !== 0) throw new Error(`r5ctl create failed (${c.code}): ${JSON.stringify(c.json)} ${c.stderr}`)
  p.sizeBytes = c.json.arraySizeBytes
  p.model = Buffer.alloc(p.sizeBytes)
  const devs = [journal, ...members]
  for (const [i, [off, len]] of writesFor(p.sizeBytes).entries()) {
    const data = randomPattern(`r5ctl-to-kernel/${cfg.id}/${i}`, len)
    const input = path.join(dir, `w${i}.bin`)
    fs.writeFileSync(input, data)
    const w = r5ctl(['write', '--offset', String(off), '--input', input, ...devs])
    if (w.code !== 0) throw new Error(`r5ctl write --offset ${off} (${len} bytes) failed (${w.code}): ${w.stderr.trim()}`)
    fs.rmSync(input)
    data.copy(p.model, off)
  }
  if (cfg.repaired) damageAndRepair(cfg, members, devs)
  p.modelMd5 = md5(p.model)
  p.hostMd5 = r5ctlReadMd5(devs).md5
  const ex = r5ctlJson(['examine', members[0]])
  p.ctime = ex.json.devices[0].creationTime
  return p
}

/**
 * Flip a byte of pages r5ctl check must find and r5ctl repair must put back: parity pages (P; on
 * RAID6 also Q) and, on RAID6, a data page the syndromes locate. Where a stripe's pages live comes
 * from the test's own left-symmetric model (chunk 64K = 128 sectors). The data the model holds is
 * unchanged by the repair, so the kernel must read it and find every parity block consistent.
 */
function damageAndRepair(cfg: Config, members: string[], devs: string[]): void {
  const dataOffset = r5ctlJson(['examine', members[0]]).json.devices[0].dataOffsetSector as number
  const level = cfg.level as 5 | 6
  const flip = (slot: number, stripeSector: number) => {
    const fd = fs.openSync(members[slot], 'r+')
    const b = Buffer.alloc(1)
    const at = (dataOffset + stripeSector) * 512 + 123
    fs.readSync(fd, b, 0, 1, at)
    b[0] ^= 0x3c
    fs.writeSync(fd, b, 0, 1, at)
    fs.closeSync(fd)
  }
  const st = (s: number) => lsStripe(level, cfg.members, 128, s)
  flip(st(8).pd, 8)
  flip(st(4096).pd, 4096)
  if (level === 6) {
    flip(st(272).qd, 272)
    flip(st(1032).dataMembers[1], 1032)
  }
  const before = r5ctl(['check', ...devs])
  if (before.code !== 4) throw new Error(`r5ctl check did not find the damage (exit ${before.code}): ${before.stdout}`)
  const rep = r5ctl(['repair', ...devs])
  if (rep.code !== 0) throw new Error(`r5ctl repair failed (${rep.code}): ${rep.stderr}`)
  const after = r5ctl(['check', ...devs])
  if (after.code !== 0) throw new Error(`r5ctl check after repair (exit ${after.code}): ${after.stdout}`)
}

function guestScript(arrays: Prepared[]): string {
  let s = 'echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null\n'
  arrays.forEach((a, i) => {
    const devs = [`$(disk a${i}j)`, ...a.members.map((_, m) => `$(disk a${i}m${m})`)].join(' ')
    s += `
echo "=== array ${i} (${a.cfg.id})"
dmesg -c > /dev/null
mdadm --assemble /dev/md0 ${devs}; kv a${i}.assemble $?
kv a${i}.mdstat "$(grep '^md0' /proc/mdstat)"
kv a${i}.mdstat2 "$(grep -A1 '^md0' /proc/mdstat | tail -n 1)"
kv a${i}.log "$(dmesg | grep -E 'md/raid:md0: (starting from|recovering)' | tail -n 1)"
kv a${i}.size "$(blockdev --getsize64 /dev/md0)"
kv a${i}.policy "$(cat /sys/block/md0/md/consistency_policy)"
kv a${i}.jmode "$(cat /sys/block/md0/md/journal_mode)"
dd if=/dev/md0 of=$(disk out) bs=1M seek=${a.outOffsetMiB} conv=notrunc 2>/dev/null; kv a${i}.copy $?
echo check > /sys/block/md0/md/sync_action
mdadm --wait /dev/md0
kv a${i}.mismatch "$(cat /sys/block/md0/md/mismatch_cnt)"
kv a${i}.ctime "$(mdadm --detail /dev/md0 | sed -n 's/^ *Creation Time : //p')"
mdadm --stop /dev/md0; kv a${i}.stop $?
dmesg | grep -E 'md0|md/raid' | sed 's/^/  dmesg: /'
`
  })
  return s
}

/** `Sun Feb  7 06:28:15 2106` (ctime(3) in the guest, which runs in UTC) → ISO. */
function parseCtime(s: string): string {
  const m = /^\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d{4})$/.exec(s.trim())
  if (!m) return `unparsed: ${s}`
  const mon = 'JanFebMarAprMayJunJulAugSepOctNovDec'.indexOf(m[1]) / 3
  return new Date(Date.UTC(+m[6], mon, +m[2], +m[3], +m[4], +m[5])).toISOString()
}

describe('kernel interop: r5ctl → Linux (r5ctl creates and writes, the kernel assembles)', function () {
  let env: KernelEnv
  let root = ''
  const arrays: Prepared[] = []
  const failed: {cfg: Config; error: string}[] = []
  let result: BootResult
  let out = ''

  before(async function () {
    env = kernelOrSkip(this)
    root = tmpDir('r5ctl-to-kernel')
    let offMiB = 0
    for (const cfg of CONFIGS) {
      try {
        const p = prepare(cfg, root)
        p.outOffsetMiB = offMiB
        offMiB += Math.ceil(p.sizeBytes / MiB)
        arrays.push(p)
      } catch (e) {
        failed.push({cfg, error: (e as Error).message})
      }
    }
    out = sparseFile(path.join(root, 'out.img'), Math.max(1, offMiB) * MiB)
    const disks = [{file: out, name: 'out'}]
    arrays.forEach((a, i) => {
      disks.push({file: a.journal, name: `a${i}j`})
      a.members.forEach((m, k) => disks.push({file: m, name: `a${i}m${k}`}))
    })
    result = recordBoot(
      `r5ctl → kernel: assemble ${arrays.length} arrays`,
      await boot(env, {disks, script: guestScript(arrays), label: `r5ctl → kernel (${arrays.length} arrays, 1 boot)`, timeoutMs: 600_000}),
    )
    assert.equal(result.rc, 0, `guest script failed:\n${tail(result)}`)
  })

  after(function () {
    if (root) cleanup(root)
  })

  for (const cfg of CONFIGS) {
    describe(`${cfg.id}: ${cfg.members} members × ${MEMBER}, chunk ${cfg.chunk}, journal ${JOURNAL}`, function () {
      const get = () => {
        const f = failed.find(x => x.cfg === cfg)
        if (f) assert.fail(`preparing the array with r5ctl failed: ${f.error}`)
        const i = arrays.findIndex(a => a.cfg === cfg)
        return {a: arrays[i], k: (n: string) => result.kv[`a${i}.${n}`]}
      }

      it('r5ctl reads back exactly what it wrote (host only)', function () {
        const {a} = get()
        assert.equal(a.hostMd5, a.modelMd5)
      })

      it('the kernel assembles it with the journal (J) and starts from a clean log', function () {
        const {k} = get()
        assert.equal(k('assemble'), '0', tail(result))
        assert.match(k('mdstat') ?? '', new RegExp(`active raid${cfg.level} .*\\(J\\)`), `mdstat: ${k('mdstat')}`)
        assert.match(k('mdstat2') ?? '', new RegExp(`level ${cfg.level}, ${parseInt(cfg.chunk)}k chunk`))
        assert.equal(k('policy'), 'journal')
        assert.match(k('log') ?? '', /starting from clean shutdown/, `dmesg says: ${k('log')}`)
      })

      it("the kernel's array has r5ctl's size and bytes (md5 of /dev/md0 = md5 of r5ctl read)", function () {
        const {a, k} = get()
        assert.equal(Number(k('size')), a.sizeBytes)
        assert.equal(k('copy'), '0')
        const got = md5File(out, a.outOffsetMiB * MiB, a.sizeBytes)
        if (got !== a.modelMd5) {
          const fd = fs.openSync(out, 'r')
          const buf = Buffer.alloc(a.sizeBytes)
          fs.readSync(fd, buf, 0, a.sizeBytes, a.outOffsetMiB * MiB)
          fs.closeSync(fd)
          let first = 0
          while (first < buf.length && buf[first] === a.model[first]) first++
          assert.fail(`kernel md5 ${got} != r5ctl ${a.modelMd5}; first difference at array byte ${first} (page ${Math.floor(first / 4096)})`)
        }
      })

      it("the kernel's parity check finds r5ctl's parity consistent (mismatch_cnt 0)", function () {
        const {k} = get()
        assert.equal(k('mismatch'), '0')
      })

      it('after the kernel stopped it, r5ctl still sees valid superblocks, a clean journal and the same bytes', function () {
        const {a} = get()
        const devs = [a.journal, ...a.members]
        const ex = r5ctlJson(['examine', ...devs])
        assert.equal(ex.code, 0, JSON.stringify(ex.json.devices.map((d: any) => [d.device, d.problems])))
        for (const d of ex.json.devices) assert.equal(d.checksumOk, true, `${d.device}: ${d.checksum} expected ${d.checksumExpected}`)
        const ej = r5ctlJson(['examine-journal', ...devs])
        assert.equal(ej.code, 0, JSON.stringify(ej.json))
        assert.equal(ej.json.state, 'clean')
        const dm = r5ctlJson(['dump-meta', ...devs])
        assert.equal(dm.code, 0)
        assert.equal(dm.json.mismatches, 0)
        assert.equal(r5ctlReadMd5(devs).md5, a.modelMd5)
      })

      it('r5ctl appends to the log the kernel left behind, and reads back', function () {
        const {a} = get()
        const devs = [a.journal, ...a.members]
        const data = randomPattern(`r5ctl-to-kernel/${cfg.id}/after-kernel`, 200 * KiB)
        const input = path.join(a.dir, 'after.bin')
        fs.writeFileSync(input, data)
        const w = r5ctl(['write', '--offset', String(40 * MiB + 4 * KiB), '--input', input, ...devs])
        assert.equal(w.code, 0, w.stderr)
        const model = Buffer.from(a.model)
        data.copy(model, 40 * MiB + 4 * KiB)
        assert.equal(r5ctlReadMd5(devs).md5, md5(model))
      })

      it('the kernel reports the creation time r5ctl wrote (mdadm --detail in the guest)', function () {
        // r5ctl stores microseconds in ctime's top 24 bits (md_p.h allows it); Linux 6.1
        // super_1_validate() takes the whole u64 as seconds and GET_ARRAY_INFO clamps it to U32_MAX.
        const {a, k} = get()
        const kernel = parseCtime(k('ctime') ?? '')
        const want = new Date(Math.floor(Date.parse(a.ctime) / 1000) * 1000).toISOString()
        assert.equal(kernel, want, `kernel says "${k('ctime')}", r5ctl wrote ${a.ctime}`)
      })
    })
  }
})

/**
 * r5ctl leaves work in the journal (a simulated power cut with --crash-after, or write-back mode,
 * where stripes stay cached in the log); the kernel replays r5ctl's log at assembly, and r5ctl
 * recover on a copy must end with the same bytes. All in one boot, on snapshot=on overlays.
 */
interface DirtyConfig {
  id: string
  level: number
  members: number
  mode: 'write-through' | 'write-back'
  crashAfter?: number
}

const DIRTY: DirtyConfig[] = [
  {id: 'raid5-wt-crash', level: 5, members: 4, mode: 'write-through', crashAfter: 10},
  {id: 'raid5-wb', level: 5, members: 4, mode: 'write-back'},
  {id: 'raid6-wt-crash', level: 6, members: 5, mode: 'write-through', crashAfter: 10},
  {id: 'raid6-wb', level: 6, members: 5, mode: 'write-back'},
]

describe('kernel interop: r5ctl leaves a dirty journal → Linux replays it', function () {
  let env: KernelEnv
  let root = ''
  let result: BootResult
  let out = ''
  const runs: {
    cfg: DirtyConfig
    journal: string
    members: string[]
    sizeBytes: number
    model: Buffer
    writeCode: number
    writeErr: string
    recovered?: Recovered
    replayMd5?: string
    replayLog?: string
    error?: string
  }[] = []
  const SLOT = 128

  before(async function () {
    env = kernelOrSkip(this)
    root = tmpDir('r5ctl-dirty')
    for (const cfg of DIRTY) {
      const dir = path.join(root, cfg.id)
      fs.mkdirSync(dir)
      const journal = path.join(dir, 'journal.img')
      const members = Array.from({length: cfg.members}, (_, i) => path.join(dir, `m${i}.img`))
      const devs = [journal, ...members]
      const run = {cfg, journal, members, sizeBytes: 0, model: Buffer.alloc(0), writeCode: -1, writeErr: '', error: undefined as string | undefined}
      runs.push(run)
      try {
        const c = r5ctlJson([
          'create',
          '--level',
          String(cfg.level),
          '--raid-devices',
          String(cfg.members),
          '--chunk',
          '64K',
          '--size',
          MEMBER,
          '--journal-size',
          JOURNAL,
          '--write-journal',
          journal,
          ...members,
        ])
        if (c.code !== 0) throw new Error(`create: ${JSON.stringify(c.json)}`)
        run.sizeBytes = c.json.arraySizeBytes
        const first = randomPattern(`r5ctl-dirty/${cfg.id}/first`, 1 * MiB)
        fs.writeFileSync(path.join(dir, 'first.bin'), first)
        const w1 = r5ctl(['write', '--offset', '0', '--input', path.join(dir, 'first.bin'), ...devs])
        if (w1.code !== 0) throw new Error(`write: ${w1.stderr}`)
        const second = randomPattern(`r5ctl-dirty/${cfg.id}/second`, 2 * MiB)
        fs.writeFileSync(path.join(dir, 'second.bin'), second)
        const w2 = r5ctl([
          'write',
          '--offset',
          String(4 * MiB),
          '--input',
          path.join(dir, 'second.bin'),
          '--journal-mode',
          cfg.mode,
          ...(cfg.crashAfter ? ['--crash-after', String(cfg.crashAfter)] : []),
          ...devs,
        ])
        run.writeCode = w2.code
        run.writeErr = w2.stderr
        run.model = Buffer.alloc(run.sizeBytes)
        first.copy(run.model, 0)
        if (!cfg.crashAfter) second.copy(run.model, 4 * MiB)
        ;(run as any).recovered = recoverCopy(journal, members, path.join(dir, 'recovered'))
      } catch (e) {
        run.error = (e as Error).message
      }
    }
    out = sparseFile(path.join(root, 'out.img'), 2 * DIRTY.length * SLOT * MiB)
    const disks: Disk[] = [{file: out, name: 'out'}]
    let script = ''
    runs.forEach((r, i) => {
      if (r.error) return
      disks.push({file: r.journal, name: `r${i}j`, snapshot: true}, ...r.members.map((m, k) => ({file: m, name: `r${i}m${k}`, snapshot: true})))
      script += `echo "=== ${r.cfg.id}: the kernel's replay of r5ctl's log"\n` + assembleAndCopy(`r${i}`, r.members.length, 2 * i * SLOT)
      const rec = r.recovered!
      disks.push({file: rec.journal, name: `v${i}j`, snapshot: true}, ...rec.members.map((m, k) => ({file: m, name: `v${i}m${k}`, snapshot: true})))
      script += `echo "=== ${r.cfg.id}: after r5ctl recover"\n` + assembleAndCopy(`v${i}`, r.members.length, (2 * i + 1) * SLOT)
    })
    result = recordBoot(
      `r5ctl → kernel: replay ${runs.length} dirty r5ctl logs + recovered copies`,
      await boot(env, {disks, script, label: 'r5ctl dirty logs → kernel replay (snapshot=on)', timeoutMs: 600_000}),
    )
    assert.equal(result.rc, 0, tail(result))
    runs.forEach((r, i) => {
      if (r.error) return
      r.replayMd5 = md5(readOut(out, 2 * i * SLOT, r.sizeBytes))
      r.replayLog = stripTime(result.kv[`r${i}.log`])
      const rec = r.recovered!
      rec.kernelAssemble = result.kv[`v${i}.assemble`]
      rec.kernelLog = stripTime(result.kv[`v${i}.log`])
      rec.kernelMd5 = md5(readOut(out, (2 * i + 1) * SLOT, r.sizeBytes))
    })
  })

  after(function () {
    if (root) cleanup(root)
  })

  for (const [i, cfg] of DIRTY.entries()) {
    describe(`${cfg.id}: raid${cfg.level}, ${cfg.members} members, r5ctl write --journal-mode ${cfg.mode}${cfg.crashAfter ? ` --crash-after ${cfg.crashAfter}` : ''}`, function () {
      const run = () => {
        if (runs[i].error) assert.fail(runs[i].error)
        return runs[i]
      }

      it(`r5ctl left a dirty journal (write exit ${cfg.crashAfter ? 75 : 0})`, function () {
        const r = run()
        assert.equal(r.writeCode, cfg.crashAfter ? 75 : 0, r.writeErr)
        const ej = r5ctlJson(['examine-journal', r.journal, ...r.members])
        assert.equal(ej.code, 5, JSON.stringify(ej.json))
        if (cfg.mode === 'write-back') assert.ok(ej.json.stripesPending.dataOnly > 0, JSON.stringify(ej.json.stripesPending))
      })

      it('the kernel assembles it and replays what r5ctl logged (its numbers = the recovery rule over dump-meta)', function () {
        const r = run()
        assert.equal(result.kv[`r${i}.assemble`], '0', tail(result))
        const k = parseRecovering(r.replayLog)
        assert.ok(k, `the kernel says: ${r.replayLog}`)
        const model = kernelReplayModel(r5ctlJson(['dump-meta', r.journal]).json)
        assert.deepEqual(k, {dataOnly: model.dmesgDataOnly, dataParity: model.dmesgDataParity})
        assert.ok(k.dataOnly + k.dataParity > 0)
      })

      if (!cfg.crashAfter) {
        it("the kernel's replay holds everything r5ctl acknowledged", function () {
          assert.equal(run().replayMd5, md5(run().model))
        })
      }

      recoverChecks(() => ({
        label: cfg.id,
        replayMd5: run().replayMd5!,
        replayLog: run().replayLog ?? '',
        journal: run().journal,
        recovered: run().recovered,
      }))
    })
  }
})
