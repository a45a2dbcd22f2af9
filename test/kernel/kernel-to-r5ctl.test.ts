/**
 * kernel → r5ctl: Linux 6.1 creates journaled arrays (mdadm --create --write-journal), writes known
 * data and either stops cleanly or loses power mid-write (members throttled so the journal runs
 * ahead); r5ctl then reads the images: superblocks, the live log with every checksum, and the array
 * bytes. The kernel's own replay of each image set (a later boot with snapshot=on, so the files stay
 * as the crash left them) gives the md5 a future `r5ctl recover` must reproduce.
 *
 * R5CTL_WRITE_FIXTURES=1 also stores the power-cut images of the fixture scenarios, gzipped, in
 * test/kernel/fixtures/ with their manifest (see fixtures/README.md).
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {boot, type BootResult, type Disk, type KernelEnv} from './harness.js'
import {
  assembleAndCopy,
  crashImageChecks,
  describeEvents,
  readAsIs,
  readOut,
  recoverChecks,
  recoverCopy,
  stripTime,
  type CrashImages,
  type Recovered,
} from './checks.js'
import {
  FIXTURES,
  KiB,
  MiB,
  cleanup,
  gzipFile,
  kernelOrSkip,
  kernelReplayModel,
  md5,
  pagePattern,
  parseRecovering,
  r5ctlJson,
  r5ctlReadMd5,
  randomPattern,
  recordBoot,
  sparseFile,
  tail,
  tmpDir,
} from './util.js'

const MEMBER_BYTES = 32 * MiB
const JOURNAL_BYTES = 16 * MiB
const CHUNK_KIB = 64
/** each array's slot on the output disk */
const SLOT_MIB = 128
/** member slots each power cut's degraded replays leave out */
const GONE: Record<string, number[]> = {'raid5-wt-powercut': [1], 'raid5-wb-powercut': [2], 'raid6-wb-powercut': [0, 3]}
/** member write throttle for the power cuts (bytes/s); the journal is not throttled */
const THROTTLE = 524288

interface ArrayRun {
  id: string
  level: 4 | 5 | 6
  members: number
  dir: string
  journal: string
  memberFiles: string[]
  devs: string[]
  slot: number
  /** what the guest reported */
  sizeBytes?: number
  kernelMd5?: string
  /** the kernel's replay of the set (snapshot=on) */
  replayMd5?: string
  replayLog?: string
  replayForced?: boolean
  recovered?: Recovered
}

interface CleanRun extends ArrayRun {
  model?: Buffer
  /** mdadm --metadata (default: mdadm's own, 1.2) */
  metadata?: '1.1'
}

interface CrashRun extends ArrayRun {
  mode: 'write-through' | 'write-back'
  /** written with one dd at this array offset */
  offset: number
  length: number
  tag: string
  fixture?: string
  replayBytes?: Buffer
  crash?: BootResult
  /** a copy with every superblock zeroed, given superblocks again by detect --write */
  detected?: Detected
  /** member slots left out of the degraded replays */
  gone: number[]
  degraded?: Degraded
}

/** The set with members `gone`: the kernel's replay of it, and r5ctl recover of a copy, then the kernel's assembly of that. */
interface Degraded {
  recovered: Recovered
  kernelReplay?: KernelAssembly
  kernelAfter?: KernelAssembly
}

interface KernelAssembly {
  assemble: string
  log: string
  md5: string
}

interface Detected {
  journal: string
  members: string[]
  code: number
  stderr: string
  json: any
  kernelAssemble?: string
  kernelLog?: string
  kernelMd5?: string
}

/** A copy of a set's journal and members in `dir`, every superblock zeroed (the 4 KiB at byte 4096, as mdadm --zero-superblock). */
function zeroedCopy(r: ArrayRun, dir: string): string[] {
  fs.mkdirSync(dir, {recursive: true})
  return [r.journal, ...r.memberFiles].map(f => {
    const dst = path.join(dir, path.basename(f))
    fs.copyFileSync(f, dst)
    const fd = fs.openSync(dst, 'r+')
    fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 4096)
    fs.closeSync(fd)
    return dst
  })
}

/**
 * detect on a copy of a set with every superblock zeroed (the devices named in reverse): its first
 * candidate, and the geometry the kernel's superblocks state, in the same terms.
 */
function detectZeroed(r: ArrayRun): {got: object; want: object; found: boolean} {
  const dir = path.join(r.dir, 'zeroed')
  const ex = r5ctlJson(['examine', '--json', r.journal, ...r.memberFiles]).json
  const copies = zeroedCopy(r, dir)
  const d = r5ctlJson(['detect', '--json', ...copies.slice().reverse()]).json
  const bySlot = (role: string) => Number(/Active device (\d+)/.exec(role)?.[1] ?? -1)
  const members = ex.devices
    .filter((x: any) => bySlot(x.deviceRole) >= 0)
    .sort((a: any, b: any) => bySlot(a.deviceRole) - bySlot(b.deviceRole))
    .map((x: any) => path.join(dir, path.basename(x.device)))
  const m0 = ex.devices.find((x: any) => bySlot(x.deviceRole) >= 0)
  const c = d.candidates?.[0] ?? {}
  const pick = (level: number, layout: string, chunk: number, mem: string[], off: number, journal: string) => ({
    level,
    layout,
    chunk,
    members: mem,
    dataOffset: off,
    journal,
  })
  return {
    found: d.found,
    got: pick(c.level, c.layout, c.chunkBytes, c.members, c.dataOffsetSector, c.journal),
    want: pick(Number(m0.raidLevel.slice(4)), m0.layout, m0.chunkBytes, members, m0.dataOffsetSector, copies[0]),
  }
}

/** detect --write, with the array's UUID, on a copy of a set with every superblock zeroed. */
function detectCopy(r: ArrayRun, dir: string): Detected {
  const uuid = r5ctlJson(['examine', '--json', r.journal]).json.devices[0].arrayUuid as string
  const [journal, ...members] = zeroedCopy(r, dir)
  const d = r5ctlJson(['detect', '--write', '--json', '--uuid', uuid, ...members.slice().reverse(), journal])
  return {journal, members, code: d.code, stderr: d.stderr, json: d.json}
}

function newRun<T extends ArrayRun>(root: string, base: Omit<T, 'dir' | 'journal' | 'memberFiles' | 'devs' | 'slot'>, slot: number): T {
  const dir = path.join(root, base.id)
  fs.mkdirSync(dir)
  const journal = sparseFile(path.join(dir, 'journal.img'), JOURNAL_BYTES)
  const memberFiles = Array.from({length: base.members}, (_, i) => sparseFile(path.join(dir, `m${i}.img`), MEMBER_BYTES))
  return {...base, dir, journal, memberFiles, devs: [journal, ...memberFiles], slot} as T
}

function disksOf(r: ArrayRun, prefix: string, extra: Partial<Disk> = {}, memberExtra: Partial<Disk> = {}): Disk[] {
  return [
    {file: r.journal, name: `${prefix}j`, ...extra},
    ...r.memberFiles.map((f, i) => ({file: f, name: `${prefix}m${i}`, ...extra, ...memberExtra})),
  ]
}

const devList = (prefix: string, n: number) => [`$(disk ${prefix}j)`, ...Array.from({length: n}, (_, i) => `$(disk ${prefix}m${i})`)]

function createCmd(r: ArrayRun & {metadata?: string}, prefix: string, assumeClean: boolean): string {
  const [j, ...m] = devList(prefix, r.members)
  return (
    `mdadm --create /dev/md0 --run ${assumeClean ? '--assume-clean ' : ''}${r.metadata ? `--metadata=${r.metadata} ` : ''}` +
    `--level ${r.level} --raid-devices ${r.members} --chunk ${CHUNK_KIB} ` +
    `--name ${r.id} --write-journal ${j} ${m.join(' ')}`
  )
}

/**
 * The clean runs, in the order before() makes them: mdadm's default superblock (v1.2), then v1.1.
 * No v1.0 run: mdadm 4.2 on Linux 6.1 cannot make a journaled v1.0 array (ADD_NEW_DISK of the
 * journal fails with EINVAL).
 */
const CLEAN_IDS = ['raid5-clean', 'raid6-clean', 'raid6-clean-v1.1']

const CLEAN_WRITES: [number, number][] = [
  [0, 1 * MiB],
  [256 * KiB + 4 * KiB, 8 * KiB],
  [5 * MiB + 12 * KiB, 4 * KiB],
  [7 * MiB + 8 * KiB, 100 * KiB],
  [20 * MiB, 3 * MiB],
]

describe('kernel interop: Linux → r5ctl (the kernel creates and writes, r5ctl reads)', function () {
  let env: KernelEnv
  let root = ''
  let out = ''
  let clean: CleanRun[] = []
  let crashes: CrashRun[] = []
  let cleanBoot: BootResult
  let replayBoot: BootResult

  before(async function () {
    env = kernelOrSkip(this)
    root = tmpDir('kernel-to-r5ctl')
    // two slots a run (the kernel's array, then r5ctl's recovered copy) for the 6 runs below, one for
    // the detected copy, two a power cut for its degraded replays
    out = sparseFile(path.join(root, 'out.img'), 20 * SLOT_MIB * MiB)
    let slot = 0
    clean = [
      newRun<CleanRun>(root, {id: 'raid5-clean', level: 5, members: 4}, slot++),
      newRun<CleanRun>(root, {id: 'raid6-clean', level: 6, members: 5}, slot++),
      newRun<CleanRun>(root, {id: 'raid6-clean-v1.1', level: 6, members: 5, metadata: '1.1'}, slot++),
    ]
    crashes = [
      newRun<CrashRun>(
        root,
        {
          id: 'raid5-wt-powercut',
          level: 5,
          members: 4,
          mode: 'write-through',
          offset: 1 * MiB,
          length: 4 * MiB,
          tag: 'r5ctl-fixture raid5-wt',
          fixture: 'raid5-wt-powercut',
          gone: GONE['raid5-wt-powercut'],
        },
        slot++,
      ),
      newRun<CrashRun>(
        root,
        {
          id: 'raid5-wb-powercut',
          level: 5,
          members: 4,
          mode: 'write-back',
          offset: 1 * MiB,
          length: 4 * MiB,
          tag: 'r5ctl-fixture raid5-wb',
          fixture: 'raid5-wb-powercut',
          gone: GONE['raid5-wb-powercut'],
        },
        slot++,
      ),
      newRun<CrashRun>(
        root,
        {
          id: 'raid6-wb-powercut',
          level: 6,
          members: 5,
          mode: 'write-back',
          offset: 2 * MiB,
          length: 4 * MiB,
          tag: 'r5ctl raid6-wb',
          gone: GONE['raid6-wb-powercut'],
        },
        slot++,
      ),
    ]

    // 1. clean: create (with the initial resync/recovery), write, copy the array out, stop
    const files: Record<string, Buffer> = {}
    let script = 'echo 1 > /proc/sys/kernel/printk_ratelimit 2>/dev/null\n'
    const disks: Disk[] = [{file: out, name: 'out'}]
    clean.forEach((r, i) => {
      const p = `c${i}`
      disks.push(...disksOf(r, p))
      r.model = Buffer.alloc(0)
      script += `
echo "=== ${r.id}"
${createCmd(r, p, false)}; kv ${p}.create $?
mdadm --wait /dev/md0
kv ${p}.size "$(blockdev --getsize64 /dev/md0)"
`
      CLEAN_WRITES.forEach(([off, len], w) => {
        files[`${p}w${w}.bin`] = randomPattern(`kernel-to-r5ctl/${r.id}/${w}`, len)
        script += `dd if=/r5/${p}w${w}.bin of=/dev/md0 bs=4096 seek=${off / 4096} conv=notrunc,fsync 2>/dev/null; kv ${p}.w${w} $?\n`
      })
      script += `
dd if=/dev/md0 of=$(disk out) bs=1M seek=${r.slot * SLOT_MIB} conv=notrunc 2>/dev/null; kv ${p}.copy $?
mdadm --detail /dev/md0 | sed 's/^/  /'
mdadm --stop /dev/md0; kv ${p}.stop $?
dmesg | grep -E 'md0|md/raid' | tail -n 6 | sed 's/^/  dmesg: /'
dmesg -c > /dev/null
`
    })
    cleanBoot = recordBoot(
      'kernel → r5ctl: create raid5 + raid6 (v1.2) + raid6 (v1.1), write, stop',
      await boot(env, {disks, files, script, label: `kernel → r5ctl clean (${clean.length} arrays)`, timeoutMs: 600_000}),
    )
    assert.equal(cleanBoot.rc, 0, tail(cleanBoot))
    clean.forEach((r, i) => {
      r.sizeBytes = Number(cleanBoot.kv[`c${i}.size`])
      const model = Buffer.alloc(r.sizeBytes)
      CLEAN_WRITES.forEach(([off], w) => files[`c${i}w${w}.bin`].copy(model, off))
      r.model = model
      r.kernelMd5 = md5(readOut(out, r.slot * SLOT_MIB, r.sizeBytes))
    })

    // 2. power cuts, one boot each: create --assume-clean (sparse zero images are consistent, and a
    // resync through throttled members would take minutes), write with one buffered dd while
    // /dev/md0 stays open (closing the last handle would sync), let writeback run, cut the power.
    for (const r of crashes) {
      const data = pagePattern(r.tag, r.length)
      const script = `
${createCmd(r, 'x', true)}; kv create $?
echo 10 > /proc/sys/vm/dirty_writeback_centisecs
echo 10 > /proc/sys/vm/dirty_expire_centisecs
echo 65536 > /proc/sys/vm/dirty_background_bytes
exec 3<>/dev/md0
${r.mode === 'write-back' ? 'echo write-back > /sys/block/md0/md/journal_mode' : ''}
kv mode "$(cat /sys/block/md0/md/journal_mode)"
dd if=/r5/data.bin of=/dev/md0 bs=64K seek=${r.offset / (64 * KiB)} conv=notrunc 2>/dev/null &
sleep 2
kv stripe_cache_active "$(cat /sys/block/md0/md/stripe_cache_active)"
powercut
`
      r.crash = recordBoot(
        `kernel → r5ctl: ${r.id} (power cut)`,
        await boot(env, {
          disks: disksOf(r, 'x', {}, {writeBps: THROTTLE}),
          files: {'data.bin': data},
          script,
          label: r.id,
          timeoutMs: 300_000,
        }),
      )
      assert.ok(r.crash.powerCut, `${r.id}: no power cut:\n${tail(r.crash)}`)
    }

    // 3. r5ctl recover on copies of every image set (the originals stay as the kernel left them)
    const runs: (CleanRun | CrashRun)[] = [...clean, ...crashes]
    for (const r of runs) r.recovered = recoverCopy(r.journal, r.memberFiles, path.join(r.dir, 'recovered'))
    const wb = crashes.find(c => c.id === 'raid5-wb-powercut')!
    wb.detected = detectCopy(wb, path.join(wb.dir, 'detected'))
    for (const r of crashes)
      r.degraded = {
        recovered: recoverCopy(
          r.journal,
          r.memberFiles.filter((_, k) => !r.gone.includes(k)),
          path.join(r.dir, 'degraded'),
        ),
      }

    // 4. one boot: the kernel's own replay of every original set (throw-away overlays, snapshot=on),
    // and the kernel's assembly of every r5ctl-recovered copy (also snapshot=on)
    const rdisks: Disk[] = [{file: out, name: 'out'}]
    let rscript = ''
    runs.forEach((r, i) => {
      rdisks.push(...disksOf(r, `r${i}`, {snapshot: true}))
      rscript += `echo "=== ${r.id}: the kernel's replay"\n` + assembleAndCopy(`r${i}`, r.members, r.slot * SLOT_MIB)
      const rec = r.recovered!
      rdisks.push({file: rec.journal, name: `v${i}j`, snapshot: true}, ...rec.members.map((f, k) => ({file: f, name: `v${i}m${k}`, snapshot: true})))
      rscript += `echo "=== ${r.id}: after r5ctl recover"\n` + assembleAndCopy(`v${i}`, r.members, (runs.length + r.slot) * SLOT_MIB)
    })
    const det = wb.detected
    rdisks.push({file: det.journal, name: 'dj', snapshot: true}, ...det.members.map((f, k) => ({file: f, name: `dm${k}`, snapshot: true})))
    rscript += `echo "=== ${wb.id}: superblocks zeroed, then r5ctl detect --write"\n` + assembleAndCopy('d', wb.members, 2 * runs.length * SLOT_MIB)
    // the degraded replays: the kernel's of the set without `gone`, and its assembly of r5ctl's
    const degradedSlot = (i: number, after: boolean) => (2 * runs.length + 1 + 2 * i + (after ? 1 : 0)) * SLOT_MIB
    crashes.forEach((r, i) => {
      const present = Array.from({length: r.members}, (_, k) => k).filter(k => !r.gone.includes(k))
      rdisks.push(
        {file: r.journal, name: `g${i}j`, snapshot: true},
        ...present.map(k => ({file: r.memberFiles[k], name: `g${i}m${k}`, snapshot: true})),
      )
      rscript +=
        `echo "=== ${r.id}: the kernel's replay without slot(s) ${r.gone.join(', ')}"\n` + assembleAndCopy(`g${i}`, present, degradedSlot(i, false))
      const rec = r.degraded!.recovered
      rdisks.push(
        {file: rec.journal, name: `h${i}j`, snapshot: true},
        ...present.map((k, n) => ({file: rec.members[n], name: `h${i}m${k}`, snapshot: true})),
      )
      rscript +=
        `echo "=== ${r.id}: after r5ctl recover without slot(s) ${r.gone.join(', ')}"\n` + assembleAndCopy(`h${i}`, present, degradedSlot(i, true))
    })
    replayBoot = recordBoot(
      `kernel → r5ctl: replay ${runs.length} arrays + ${runs.length} r5ctl-recovered (snapshot=on)`,
      await boot(env, {disks: rdisks, script: rscript, label: 'kernel replay + recovered (snapshot=on)', timeoutMs: 600_000}),
    )
    assert.equal(replayBoot.rc, 0, tail(replayBoot))
    runs.forEach((r, i) => {
      const size = Number(replayBoot.kv[`r${i}.size`])
      if (!r.sizeBytes) r.sizeBytes = size
      const bytes = readOut(out, r.slot * SLOT_MIB, size)
      r.replayMd5 = md5(bytes)
      r.replayLog = stripTime(replayBoot.kv[`r${i}.log`])
      r.replayForced = replayBoot.kv[`r${i}.forced`] === '1'
      if ('mode' in r) r.replayBytes = bytes
      const rec = r.recovered!
      rec.kernelAssemble = replayBoot.kv[`v${i}.assemble`]
      rec.kernelLog = stripTime(replayBoot.kv[`v${i}.log`])
      rec.kernelMd5 = md5(readOut(out, (runs.length + r.slot) * SLOT_MIB, size))
      const c = crashes.indexOf(r as CrashRun)
      if (c >= 0) {
        const got = (p: string, after: boolean): KernelAssembly => ({
          assemble: replayBoot.kv[`${p}.assemble`] ?? '(not run)',
          log: stripTime(replayBoot.kv[`${p}.log`]),
          md5: md5(readOut(out, degradedSlot(c, after), size)),
        })
        crashes[c].degraded!.kernelReplay = got(`g${c}`, false)
        crashes[c].degraded!.kernelAfter = got(`h${c}`, true)
      }
      if (r === wb) {
        det.kernelAssemble = replayBoot.kv['d.assemble']
        det.kernelLog = stripTime(replayBoot.kv['d.log'])
        det.kernelMd5 = md5(readOut(out, 2 * runs.length * SLOT_MIB, size))
      }
    })

    if (process.env.R5CTL_WRITE_FIXTURES === '1')
      writeFixtures(
        env,
        crashes.filter(c => c.fixture),
      )
  })

  after(function () {
    if (root) cleanup(root)
  })

  for (const [i, id] of CLEAN_IDS.entries()) {
    describe(`${id}: mdadm --create --write-journal, dd, mdadm --stop`, function () {
      const run = () => clean[i]

      it('the kernel created and wrote it', function () {
        const p = `c${i}`
        assert.equal(cleanBoot.kv[`${p}.create`], '0', tail(cleanBoot))
        for (let w = 0; w < CLEAN_WRITES.length; w++) assert.equal(cleanBoot.kv[`${p}.w${w}`], '0')
        assert.equal(cleanBoot.kv[`${p}.stop`], '0')
        assert.equal(run().kernelMd5, md5(run().model!), "the kernel's array does not hold what was written")
      })

      it('r5ctl examine: every superblock valid (exit 0)', function () {
        const ex = r5ctlJson(['examine', ...run().devs])
        assert.equal(ex.code, 0, JSON.stringify(ex.json))
        for (const d of ex.json.devices) assert.equal(d.checksumOk, true, `${d.device}: checksum ${d.checksum}, expected ${d.checksumExpected}`)
        for (const d of ex.json.devices) assert.equal(d.version, run().metadata ?? '1.2', `${d.device}: superblock version`)
        const roles = ex.json.devices.map((d: any) => d.deviceRole).sort()
        assert.deepEqual(roles, ['Journal', ...Array.from({length: run().members}, (_, k) => `Active device ${k}`)].sort())
      })

      it("detect on a copy with every superblock zeroed ranks the kernel's geometry first", function () {
        const d = detectZeroed(run())
        assert.ok(d.found, JSON.stringify(d))
        assert.deepEqual(d.got, d.want)
      })

      it('r5ctl dump-meta: every checksum of the live log matches (exit 0)', function () {
        const dm = r5ctlJson(['dump-meta', ...run().devs])
        assert.equal(dm.code, 0, dm.stderr)
        assert.equal(dm.json.mismatches, 0)
      })

      it('r5ctl examine-journal: exit 0 or 5, and its pending stripes are the ones the kernel replays on the next assembly', function () {
        const ej = r5ctlJson(['examine-journal', ...run().devs])
        assert.ok(ej.code === 0 || ej.code === 5, `exit ${ej.code}: ${JSON.stringify(ej.json)}`)
        // a cleanly stopped kernel leaves its last io unit in the live log (the checkpoint is the
        // start of the last io unit whose stripes reached the members), so 5 is expected
        process.stderr.write(
          `      [kernel] ${id}: examine-journal exit ${ej.code} (${ej.json.state}, ${JSON.stringify(ej.json.stripesPending)}); kernel on re-assembly: ${clean[i].replayLog}\n`,
        )
        const kernel = parseRecovering(clean[i].replayLog)
        assert.ok(kernel, `no recovery line from the kernel: ${clean[i].replayLog}`)
        const dm = r5ctlJson(['dump-meta', ...run().devs])
        const model = kernelReplayModel(dm.json)
        assert.deepEqual(
          {dataOnly: model.dmesgDataOnly, dataParity: model.dmesgDataParity},
          kernel,
          "the kernel recovery rule over dump-meta does not give the kernel's numbers",
        )
        assert.deepEqual(ej.json.stripesPending, {dataParity: model.distinctDataParity, dataOnly: model.distinctDataOnly})
        assert.equal(ej.code === 5, kernel.dataOnly + kernel.dataParity > 0)
      })

      it("r5ctl read equals the kernel's md5 (a dirty journal is replayed in memory)", function () {
        const got = r5ctlReadMd5(run().devs)
        if (/journal dirty/.test(got.stderr)) process.stderr.write(`      [kernel] ${id}: ${got.stderr.trim()}\n`)
        assert.equal(got.code, 0, got.stderr)
        assert.equal(got.md5, run().kernelMd5)
      })

      it("r5ctl rebuilds from the kernel's parity: read with members left out equals the kernel's md5", function () {
        const r = run()
        const tolerate = r.level === 6 ? 2 : 1
        const sets: number[][] = r.memberFiles.map((_, k) => [k])
        if (tolerate === 2) sets.push([0, 1], [1, 3], [0, r.members - 1])
        for (const leave of sets) {
          const devs = [r.journal, ...r.memberFiles.filter((_, k) => !leave.includes(k))]
          const got = r5ctlReadMd5(devs, {force: true})
          assert.equal(got.code, 0, got.stderr)
          assert.equal(got.md5, r.kernelMd5, `without member(s) ${leave.join(',')}`)
        }
      })

      describe('r5ctl recover on the cleanly stopped set (its last io unit is still in the log)', function () {
        recoverChecks(() => ({
          label: id,
          replayMd5: run().replayMd5!,
          replayLog: run().replayLog ?? '',
          journal: run().journal,
          recovered: run().recovered,
        }))
      })
    })
  }

  for (const [i, id] of ['raid5-wt-powercut', 'raid5-wb-powercut', 'raid6-wb-powercut'].entries()) {
    describe(`${id}: power cut mid-write, members throttled to ${THROTTLE / 1024} KiB/s`, function () {
      const run = () => crashes[i]

      it(`the kernel ran in ${id.includes('wt') ? 'write-through' : 'write-back'} mode and the power was cut with the journal ahead of the members`, function () {
        const r = run()
        assert.equal(r.crash!.kv.create, '0', tail(r.crash!))
        assert.match(r.crash!.kv.mode ?? '', new RegExp(`\\[${r.mode}\\]`))
        const k = parseRecovering(r.replayLog)
        assert.ok(k, `the kernel's replay said: "${r.replayLog}"`)
        assert.ok(k.dataOnly + k.dataParity > 0, `nothing to replay: ${r.replayLog}`)
        const ev = describeEvents(images(r))
        process.stderr.write(
          `      [kernel] ${id}: superblock events journal ${ev.journal}, members ${ev.members.join(',')}; mdadm --assemble ${r.replayForced ? 'refused the set, --force used' : 'accepted the set'}\n`,
        )
      })

      crashImageChecks(() => images(run()))

      it("detect on a copy with every superblock zeroed ranks the kernel's geometry first", function () {
        const d = detectZeroed(run())
        assert.ok(d.found, JSON.stringify(d))
        assert.deepEqual(d.got, d.want)
      })

      describe(`a member died too (slot(s) ${GONE[id].join(', ')} left out)`, function () {
        it('the kernel starts the set degraded and replays its journal: the bytes of its replay with every member', function () {
          const k = run().degraded!.kernelReplay!
          assert.equal(k.assemble, '0', `mdadm --assemble --run: ${k.assemble}`)
          assert.match(k.log, /recovering/, `the kernel's recovery line: ${k.log}`)
          assert.equal(k.md5, run().replayMd5)
        })

        it("r5ctl recover without them: exit 0, the journal clean, and read gives the kernel's degraded replay", function () {
          const d = run().degraded!
          const rec = d.recovered
          assert.equal(rec.dryRun.code, 0, JSON.stringify(rec.dryRun.json))
          assert.equal(rec.code, 0, `${JSON.stringify(rec.json)} ${rec.stderr}`)
          assert.deepEqual(rec.json.missingSlots, run().gone)
          assert.equal(r5ctlJson(['examine-journal', rec.journal, ...rec.members]).json.state, 'clean')
          const rd = r5ctlReadMd5([rec.journal, ...rec.members])
          assert.equal(rd.code, 0, rd.stderr)
          assert.equal(rd.md5, d.kernelReplay!.md5)
        })

        it('the kernel assembles what r5ctl recovered, degraded, "starting from clean shutdown", with the same md5', function () {
          const d = run().degraded!
          assert.equal(d.kernelAfter!.assemble, '0', `mdadm --assemble --run: ${d.kernelAfter!.assemble}`)
          assert.match(d.kernelAfter!.log, /starting from clean shutdown/, `the kernel says: ${d.kernelAfter!.log}`)
          assert.equal(d.kernelAfter!.md5, d.kernelReplay!.md5)
        })
      })

      if (id === 'raid5-wb-powercut')
        it("every superblock zeroed, then detect --write (--uuid): the kernel assembles the set, replays its journal, and gives its own replay's md5", function () {
          const d = run().detected!
          assert.equal(d.code, 0, `${d.stderr}${JSON.stringify(d.json?.error ?? d.json?.candidates?.[0]?.evidence)}`)
          assert.equal(d.json.write.journalTailSource, 'log')
          assert.equal(d.kernelAssemble, '0', `mdadm --assemble: ${d.kernelAssemble}`)
          assert.match(d.kernelLog ?? '', /recovering/, `the kernel's recovery line: ${d.kernelLog}`)
          assert.equal(d.kernelMd5, run().replayMd5)
        })
    })
  }
})

function images(r: CrashRun): CrashImages {
  return {
    label: r.id,
    journal: r.journal,
    members: r.memberFiles,
    sizeBytes: r.sizeBytes!,
    replayLog: r.replayLog ?? '',
    replayForced: !!r.replayForced,
    replayMd5: r.replayMd5!,
    replayBytes: r.replayBytes,
    written: {offset: r.offset, length: r.length, tag: r.tag},
    recovered: r.recovered,
  }
}

/** Store the power-cut images (gzipped) and what the kernel's replay gave, for fixtures.test.ts. */
function writeFixtures(env: KernelEnv, runs: CrashRun[]): void {
  const manifestPath = path.join(FIXTURES, 'manifest.json')
  const manifest = fs.existsSync(manifestPath) ? JSON.parse(fs.readFileSync(manifestPath, 'utf8')) : {fixtures: {}}
  for (const r of runs) {
    const dir = path.join(FIXTURES, r.fixture!)
    fs.rmSync(dir, {recursive: true, force: true})
    fs.mkdirSync(dir, {recursive: true})
    const names = ['journal.img', ...r.memberFiles.map((_, i) => `m${i}.img`)]
    for (const [k, f] of r.devs.entries()) gzipFile(f, path.join(dir, `${names[k]}.gz`))
    const k = parseRecovering(r.replayLog)!
    manifest.fixtures[r.fixture!] = {
      description: `Linux ${env.release} (${env.package} ${env.packageVersion}) and ${env.mdadmVersion}: RAID${r.level}, power cut in ${r.mode} mode`,
      level: r.level,
      layout: r.level === 4 ? 'parity-last' : 'left-symmetric',
      raidDevices: r.members,
      chunkBytes: CHUNK_KIB * KiB,
      memberBytes: MEMBER_BYTES,
      journalBytes: JOURNAL_BYTES,
      arrayBytes: r.sizeBytes,
      journalMode: r.mode,
      memberWriteThrottleBps: THROTTLE,
      files: {journal: 'journal.img.gz', members: r.memberFiles.map((_, i) => `m${i}.img.gz`)},
      written: {offsetBytes: r.offset, lengthBytes: r.length, pattern: 'pagePattern', tag: r.tag},
      superblockEvents: describeEvents(images(r)),
      kernelReplay: {
        md5: r.replayMd5,
        dmesg: r.replayLog,
        dataOnlyStripes: k.dataOnly,
        dataParityStripes: k.dataParity,
        mdadmAssemble: r.replayForced
          ? 'refused without --force ("Not safe to assemble with missing or stale journal device"); --force used'
          : 'plain',
      },
      membersAsIsMd5: readAsIs(images(r)).md5,
      generated: new Date().toISOString(),
    }
    process.stderr.write(`      [kernel] fixture ${r.fixture} written: replay md5 ${r.replayMd5}\n`)
  }
  manifest.kernel = {package: env.package, version: env.packageVersion, release: env.release, mdadm: env.mdadmVersion, qemu: env.qemuVersion}
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n')
}
