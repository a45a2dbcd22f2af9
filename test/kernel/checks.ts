/**
 * The r5ctl checks every power-cut image set gets, fresh from a kernel run or from the committed
 * fixtures: superblocks, every checksum of the live log, the pending stripes against the kernel's
 * recovery rule and dmesg, read refusing a dirty journal, and the members against the bytes of the
 * kernel's own replay. Registers mocha `it`s; the getter is called when they run.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {spawnSync} from 'node:child_process'
import {kernelReplayModel, kernelRequired, md5File, pagePattern, parseRecovering, r5ctlJson, r5ctlReadMd5, startServe} from './util.js'
import {which} from '../helpers/cli.js'

export interface CrashImages {
  label: string
  journal: string
  members: string[]
  sizeBytes: number
  /** the kernel's "recovering N data-only stripes and M data-parity stripes" line */
  replayLog: string
  /** mdadm needed --force to assemble (it refused the set as it was) */
  replayForced: boolean
  /** md5 of the array after the kernel's replay */
  replayMd5: string
  /** the array bytes after the kernel's replay (when the run copied them out) */
  replayBytes?: Buffer
  written: {offset: number; length: number; tag: string}
  /** `r5ctl recover` run on copies of the images, and the kernel's view of those copies */
  recovered?: Recovered
}

export interface Recovered {
  journal: string
  members: string[]
  dryRun: {code: number; json: any; journalMd5Before: string; journalMd5After: string}
  code: number
  json: any
  stderr: string
  /** filled in by the boot that assembles the recovered copies */
  kernelLog?: string
  kernelAssemble?: string
  kernelMd5?: string
}

/** Copy the image set into dir and run `r5ctl recover` there (after a --dry-run on the originals). */
export function recoverCopy(journal: string, members: string[], dir: string): Recovered {
  fs.mkdirSync(dir, {recursive: true})
  const copy = (f: string) => {
    const dst = path.join(dir, path.basename(f))
    fs.copyFileSync(f, dst)
    return dst
  }
  const before = md5File(journal)
  const dry = r5ctlJson(['recover', '--dry-run', journal, ...members])
  const dryRun = {code: dry.code, json: dry.json, journalMd5Before: before, journalMd5After: md5File(journal)}
  const rj = copy(journal)
  const rm = members.map(copy)
  const r = r5ctlJson(['recover', rj, ...rm])
  return {journal: rj, members: rm, dryRun, code: r.code, json: r.json, stderr: r.stderr}
}

/**
 * Guest shell: assemble the set named PREFIXj, PREFIXm0.. (with --force when mdadm refuses, noted as
 * kv PREFIX.forced), report the kernel's recovery line, copy /dev/md0 to the out disk at SEEK MiB, stop.
 */
export function assembleAndCopy(prefix: string, members: number | number[], seekMiB: number): string {
  // a list names the members present (PREFIXm<slot>): the set is started degraded (--run)
  const slots = typeof members === 'number' ? Array.from({length: members}, (_, k) => k) : members
  const devs = [`$(disk ${prefix}j)`, ...slots.map(k => `$(disk ${prefix}m${k})`)].join(' ')
  const run = typeof members === 'number' ? '' : ' --run'
  return `
dmesg -c > /dev/null
mdadm --assemble${run} /dev/md0 ${devs}; rc=$?
kv ${prefix}.assemble_plain $rc
if [ $rc -ne 0 ]; then mdadm --assemble${run} --force /dev/md0 ${devs}; rc=$?; kv ${prefix}.forced 1; fi
kv ${prefix}.assemble $rc
kv ${prefix}.log "$(dmesg | grep -E 'md/raid:md0: (starting from|recovering)' | tail -n 1)"
kv ${prefix}.mdstat "$(grep '^md0' /proc/mdstat)"
kv ${prefix}.size "$(blockdev --getsize64 /dev/md0)"
dd if=/dev/md0 of=$(disk out) bs=1M seek=${seekMiB} conv=notrunc 2>/dev/null; kv ${prefix}.copy $?
mdadm --stop /dev/md0; kv ${prefix}.stop $?
dmesg | grep -E 'md0|md/raid|WARN|BUG' | sed 's/^/  dmesg: /'
`
}

/** Read SIZE bytes of the out disk at SEEK MiB. */
export function readOut(out: string, seekMiB: number, size: number): Buffer {
  const b = Buffer.alloc(size)
  const fd = fs.openSync(out, 'r')
  try {
    fs.readSync(fd, b, 0, size, seekMiB * 1024 * 1024)
  } finally {
    fs.closeSync(fd)
  }
  return b
}

export const stripTime = (line: string | undefined) => (line ?? '').replace(/^\[[^\]]*\]\s*/, '')

/** The recover tests every dirty image set gets (fresh crashes, fixtures, cleanly stopped kernel arrays). */
export function recoverChecks(get: () => {label: string; replayMd5: string; replayLog: string; journal: string; recovered?: Recovered}): void {
  it('r5ctl recover --dry-run: names the stripes the kernel replays, writes nothing', function () {
    const c = get()
    const rec = c.recovered
    assert.ok(rec, 'recover was not run')
    assert.equal(rec.dryRun.code, 0, JSON.stringify(rec.dryRun.json))
    assert.equal(rec.dryRun.journalMd5After, rec.dryRun.journalMd5Before, 'the dry run changed the journal')
    const model = kernelReplayModel(r5ctlJson(['dump-meta', c.journal]).json)
    assert.deepEqual(
      {dataParity: rec.dryRun.json.dataParityStripes, dataOnly: rec.dryRun.json.dataOnlyStripes},
      {dataParity: model.distinctDataParity, dataOnly: model.distinctDataOnly},
    )
  })

  it("r5ctl recover: exit 0, the journal is clean afterwards and read (without --force) equals the kernel's replay md5", function () {
    const rec = get().recovered
    assert.ok(rec, 'recover was not run')
    assert.equal(rec.code, 0, `${JSON.stringify(rec.json)} ${rec.stderr}`)
    const ej = r5ctlJson(['examine-journal', rec.journal, ...rec.members])
    assert.equal(ej.code, 0, JSON.stringify(ej.json))
    assert.equal(ej.json.state, 'clean')
    const rd = r5ctlReadMd5([rec.journal, ...rec.members])
    assert.equal(rd.code, 0, rd.stderr)
    assert.equal(rd.md5, get().replayMd5)
  })

  it('the kernel assembles the r5ctl-recovered images "starting from clean shutdown", with the same md5', function () {
    const rec = get().recovered
    if (!rec || rec.kernelLog === undefined) this.skip()
    assert.equal(rec.kernelAssemble, '0', 'mdadm --assemble failed on the recovered images')
    assert.match(rec.kernelLog, /starting from clean shutdown/, `the kernel says: ${rec.kernelLog}`)
    assert.equal(rec.kernelMd5, get().replayMd5)
  })
}

export function describeEvents(c: CrashImages): {journal: number; members: number[]} {
  const ex = r5ctlJson(['examine', c.journal, ...c.members]).json
  const ev = ex.devices.map((d: any) => Number(d.events))
  return {journal: ev[0], members: ev.slice(1)}
}

/** The members as they are (no replay): read --no-replay with every device, or --force without the journal when r5ctl refuses the set. */
export function readAsIs(c: CrashImages): {md5: string | null; bytes: Buffer; via: string} {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-asis-'))
  try {
    const out = path.join(dir, 'asis.bin')
    let r = r5ctlReadMd5([c.journal, ...c.members], {noReplay: true, keep: out})
    let via = 'read --no-replay (journal + members)'
    if (r.code === 3) {
      r = r5ctlReadMd5(c.members, {force: true, keep: out})
      via = 'read --force (members only: r5ctl refused the full set)'
    }
    assert.equal(r.code, 0, r.stderr)
    return {md5: r.md5, bytes: fs.readFileSync(out), via}
  } finally {
    fs.rmSync(dir, {recursive: true, force: true})
  }
}

export function crashImageChecks(get: () => CrashImages): void {
  const all = () => [get().journal, ...get().members]

  it('r5ctl examine: every superblock valid (exit 0)', function () {
    const ex = r5ctlJson(['examine', ...all()])
    assert.equal(ex.code, 0, JSON.stringify(ex.json))
    for (const d of ex.json.devices) assert.equal(d.checksumOk, true, `${d.device}: checksum ${d.checksum}, expected ${d.checksumExpected}`)
  })

  it('r5ctl dump-meta on the journal: every checksum of the live log matches (exit 0)', function () {
    const dm = r5ctlJson(['dump-meta', get().journal])
    assert.equal(dm.code, 0, dm.stderr)
    assert.equal(dm.json.mismatches, 0)
    assert.ok(dm.json.blocks.length > 1, 'expected a live log of several meta blocks')
  })

  // dmesg's data-parity number counts replays, and how many a stripe gets depends on when the
  // kernel's stripe cache fills (raid5_get_active_stripe under pressure), which the model only
  // approximates: it must lie between the stripes pending (each replayed at least once) and the
  // parity records of the log (a replay consumes one); the data-only number is exact.
  it("the kernel's recovery rule applied to r5ctl's dump-meta gives the kernel's dmesg numbers", function () {
    const dump = r5ctlJson(['dump-meta', get().journal]).json
    const model = kernelReplayModel(dump)
    const kernel = parseRecovering(get().replayLog)
    assert.ok(kernel, `no recovery line from the kernel: ${get().replayLog}`)
    assert.equal(kernel.dataOnly, model.dmesgDataOnly, 'data-only stripes')
    const parityRecords = dump.blocks.reduce(
      (n: number, b: {payloads: {type: string}[]}) => n + b.payloads.filter(p => p.type === 'parity').length,
      0,
    )
    assert.ok(
      kernel.dataParity >= model.distinctDataParity && kernel.dataParity <= parityRecords,
      `data-parity replays ${kernel.dataParity}: not between the ${model.distinctDataParity} stripes pending and the ${parityRecords} parity records`,
    )
    if (kernel.dataParity !== model.dmesgDataParity)
      process.stderr.write(
        `      [kernel] ${get().label}: data-parity replays ${kernel.dataParity}, the stripe-cache model says ${model.dmesgDataParity}\n`,
      )
    assert.ok(kernel.dataOnly + kernel.dataParity > 0, 'the journal was not ahead of the members')
  })

  it('r5ctl examine-journal on the journal: dirty (exit 5), pending stripes as the kernel classifies them', function () {
    const ej = r5ctlJson(['examine-journal', get().journal])
    assert.equal(ej.code, 5, JSON.stringify(ej.json))
    assert.equal(ej.json.state, 'dirty')
    const model = kernelReplayModel(r5ctlJson(['dump-meta', get().journal]).json)
    process.stderr.write(
      `      [kernel] ${get().label}: r5ctl pending ${JSON.stringify(ej.json.stripesPending)}; kernel: ${get().replayLog.replace(/^\[[^\]]*\]\s*/, '')}\n`,
    )
    assert.deepEqual(ej.json.stripesPending, {dataParity: model.distinctDataParity, dataOnly: model.distinctDataOnly})
  })

  it('r5ctl examine-journal with every device: exit 5 like on the journal alone (md accepts members one event behind)', function () {
    // md: super_1_validate() accepts a device whose events are one behind (++ev1; if (ev1 <
    // mddev->events) reject); mdadm's Assemble uses event_margin 1. A power cut during a superblock
    // update leaves the (unthrottled) journal one event ahead of the members.
    const ev = describeEvents(get())
    const ej = r5ctlJson(['examine-journal', ...all()])
    assert.equal(ej.code, 5, `exit ${ej.code} (events: journal ${ev.journal}, members ${ev.members.join(',')}): ${JSON.stringify(ej.json)}`)
  })

  it("r5ctl read replays the dirty journal in memory: the kernel's replay md5, no byte written; read --no-replay returns the members as they are", function () {
    const before = all().map(f => md5File(f))
    const r = r5ctlReadMd5(all())
    assert.ok(r.code === 0 || r.code === 3, `exit ${r.code}: ${r.stderr}`)
    if (r.code === 0) {
      assert.match(r.stderr, /journal dirty: \d+ stripes? served from the journal; nothing written/)
      if (get().replayMd5) assert.equal(r.md5, get().replayMd5)
    }
    assert.deepEqual(
      all().map(f => md5File(f)),
      before,
      'read changed an image',
    )
    const a = readAsIs(get())
    assert.equal(a.bytes.length, get().sizeBytes)
  })

  it("nbdcopy from r5ctl serve gives the kernel's replay md5 too, and no byte is written", async function () {
    const nbdcopy = which('nbdcopy')
    if (!nbdcopy) {
      if (kernelRequired()) throw new Error('nbdcopy (libnbd-bin) is needed: .ci/run installs it')
      this.skip()
    }
    const read = r5ctlReadMd5(all())
    const before = all().map(f => md5File(f))
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-serve-'))
    try {
      // a set read refuses, serve refuses too, before it listens
      if (read.code !== 0) {
        await assert.rejects(startServe(path.join(dir, 's.sock'), all()), new RegExp(`serve exited ${read.code}`))
        return
      }
      const server = await startServe(path.join(dir, 's.sock'), all())
      const out = path.join(dir, 'copy.bin')
      const r = spawnSync(nbdcopy, [`nbd+unix:///?socket=${path.join(dir, 's.sock')}`, out], {encoding: 'utf8'})
      const end = await server.stop()
      assert.equal(r.status, 0, r.stderr)
      assert.equal(end.code, 0, end.stderr)
      assert.equal(md5File(out), get().replayMd5 || read.md5)
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
    assert.deepEqual(
      all().map(f => md5File(f)),
      before,
      'serve changed an image',
    )
  })

  it("the members differ from the kernel's replay only in pages the live log holds", function () {
    const c = get()
    if (!c.replayBytes) this.skip() // fixtures without a kernel to replay them
    const asis = readAsIs(c).bytes
    const dm = r5ctlJson(['dump-meta', c.journal]).json
    const logged = new Set<number>()
    for (const b of dm.blocks) for (const p of b.payloads) if (p.type === 'data') logged.add(Number(p.locationSector) / 8)
    let differing = 0
    for (let pg = 0; pg * 4096 < c.replayBytes.length; pg++) {
      const a = asis.subarray(pg * 4096, (pg + 1) * 4096)
      const b = c.replayBytes.subarray(pg * 4096, (pg + 1) * 4096)
      if (!a.equals(b)) {
        differing++
        assert.ok(logged.has(pg), `array page ${pg} differs between the members and the kernel's replay but is not in the live log`)
      }
    }
    process.stderr.write(
      `      [kernel] ${c.label}: ${differing} page(s) differ between the members and the kernel's replay; ${logged.size} data page(s) in the live log\n`,
    )
  })

  it("the kernel's replay holds, page by page, either the old zeros or the new pattern", function () {
    const c = get()
    if (!c.replayBytes) this.skip()
    const data = pagePattern(c.written.tag, c.written.length)
    const zero = Buffer.alloc(4096)
    let newPages = 0
    for (let pg = 0; pg * 4096 < c.replayBytes.length; pg++) {
      const got = c.replayBytes.subarray(pg * 4096, (pg + 1) * 4096)
      const off = pg * 4096
      if (off >= c.written.offset && off < c.written.offset + c.written.length) {
        const want = data.subarray(off - c.written.offset, off - c.written.offset + 4096)
        if (got.equals(want)) newPages++
        else
          assert.ok(got.equals(zero), `page ${pg} is neither zero nor the written pattern: ${JSON.stringify(got.subarray(0, 40).toString('latin1'))}`)
      } else assert.ok(got.equals(zero), `page ${pg} outside the written range is not zero`)
    }
    assert.ok(newPages > 0)
    process.stderr.write(
      `      [kernel] ${c.label}: ${newPages} of ${c.written.length / 4096} written pages present after the kernel's replay (md5 ${c.replayMd5})${c.replayForced ? '; mdadm needed --force' : ''}\n`,
    )
  })

  recoverChecks(get)
}
