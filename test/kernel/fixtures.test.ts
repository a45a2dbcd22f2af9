/**
 * The committed power-cut fixtures (test/kernel/fixtures/, made by the Linux 6.1 kernel, see
 * fixtures/README.md): r5ctl must read every checksum of their journals and classify the pending
 * stripes as the kernel does; with the kernel at hand, one boot replays all of them on throw-away
 * overlays (snapshot=on) and must give the md5 recorded in the manifest.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {boot, PrereqError, prepareKernel, type Disk, type KernelEnv} from './harness.js'
import {assembleAndCopy, crashImageChecks, readAsIs, readOut, recoverCopy, stripTime, type CrashImages} from './checks.js'
import {FIXTURES, MiB, cleanup, gunzipSparse, kernelRequired, kernelWanted, md5, recordBoot, sparseFile, tail, tmpDir} from './util.js'

interface FixtureEntry {
  description: string
  level: number
  raidDevices: number
  arrayBytes: number
  journalMode: string
  files: {journal: string; members: string[]}
  written: {offsetBytes: number; lengthBytes: number; pattern: string; tag: string}
  kernelReplay: {md5: string; dmesg: string; dataOnlyStripes: number; dataParityStripes: number; mdadmAssemble: string}
  membersAsIsMd5?: string
}

const manifestPath = path.join(FIXTURES, 'manifest.json')
const manifest: {fixtures: Record<string, FixtureEntry>} = fs.existsSync(manifestPath)
  ? JSON.parse(fs.readFileSync(manifestPath, 'utf8'))
  : {fixtures: {}}
const SLOT_MIB = 128

describe('kernel interop: committed power-cut fixtures (test/kernel/fixtures)', function () {
  let root = ''
  const images = new Map<string, CrashImages>()
  let kernelNote = ''
  const replay = new Map<string, {md5: string; log: string; forced: boolean}>()

  before(async function () {
    if (!kernelWanted()) this.skip()
    this.timeout(900_000)
    root = tmpDir('fixtures')
    for (const [name, f] of Object.entries(manifest.fixtures)) {
      const dir = path.join(root, name)
      fs.mkdirSync(dir)
      const unpack = (file: string) => {
        const dst = path.join(dir, file.replace(/\.gz$/, ''))
        gunzipSparse(path.join(FIXTURES, name, file), dst)
        return dst
      }
      images.set(name, {
        label: `fixture ${name}`,
        journal: unpack(f.files.journal),
        members: f.files.members.map(unpack),
        sizeBytes: f.arrayBytes,
        replayLog: f.kernelReplay.dmesg,
        replayForced: f.kernelReplay.mdadmAssemble !== 'plain',
        replayMd5: f.kernelReplay.md5,
        written: {offset: f.written.offsetBytes, length: f.written.lengthBytes, tag: f.written.tag},
      })
    }
    // r5ctl recover on copies (needs no kernel)
    for (const [name, c] of images) c.recovered = recoverCopy(c.journal, c.members, path.join(root, name, 'recovered'))
    // the kernel's replay of every fixture in one boot, when the kernel is available
    let env: KernelEnv
    try {
      env = prepareKernel()
    } catch (e) {
      if (!(e instanceof PrereqError) || kernelRequired()) throw e
      kernelNote = `no kernel (${e.message}): the checks that need the kernel's replay are skipped`
      process.stderr.write(`      [kernel] ${kernelNote}\n`)
      return
    }
    // r5ctl recover on copies; then one boot: the kernel's replay of every fixture and its assembly
    // of every r5ctl-recovered copy, all on throw-away overlays (snapshot=on)
    const list = [...images.entries()]
    const out = sparseFile(path.join(root, 'out.img'), Math.max(1, 2 * images.size) * SLOT_MIB * MiB)
    const disks: Disk[] = [{file: out, name: 'out'}]
    let script = ''
    list.forEach(([name, c], i) => {
      disks.push({file: c.journal, name: `f${i}j`, snapshot: true}, ...c.members.map((m, k) => ({file: m, name: `f${i}m${k}`, snapshot: true})))
      script += `echo "=== ${name}: the kernel's replay"\n` + assembleAndCopy(`f${i}`, c.members.length, i * SLOT_MIB)
      const rec = c.recovered!
      disks.push({file: rec.journal, name: `v${i}j`, snapshot: true}, ...rec.members.map((m, k) => ({file: m, name: `v${i}m${k}`, snapshot: true})))
      script += `echo "=== ${name}: after r5ctl recover"\n` + assembleAndCopy(`v${i}`, c.members.length, (list.length + i) * SLOT_MIB)
    })
    const r = recordBoot(
      `fixtures: kernel replay of ${images.size} fixtures + r5ctl-recovered copies (snapshot=on)`,
      await boot(env, {disks, script, label: 'fixtures replay + recovered (snapshot=on)', timeoutMs: 600_000}),
    )
    assert.equal(r.rc, 0, tail(r))
    list.forEach(([name, c], i) => {
      const bytes = readOut(out, i * SLOT_MIB, c.sizeBytes)
      c.replayBytes = bytes
      replay.set(name, {md5: md5(bytes), log: stripTime(r.kv[`f${i}.log`]), forced: r.kv[`f${i}.forced`] === '1'})
      const rec = c.recovered!
      rec.kernelAssemble = r.kv[`v${i}.assemble`]
      rec.kernelLog = stripTime(r.kv[`v${i}.log`])
      rec.kernelMd5 = md5(readOut(out, (list.length + i) * SLOT_MIB, c.sizeBytes))
    })
  })

  after(function () {
    if (root) cleanup(root)
  })

  it('the manifest lists the fixtures and their files are present', function () {
    assert.ok(Object.keys(manifest.fixtures).length >= 2, `no fixtures in ${manifestPath}`)
    for (const [name, f] of Object.entries(manifest.fixtures))
      for (const file of [f.files.journal, ...f.files.members]) assert.ok(fs.existsSync(path.join(FIXTURES, name, file)), `${name}/${file} missing`)
  })

  for (const [name, f] of Object.entries(manifest.fixtures)) {
    describe(`${name}: ${f.description}`, function () {
      it("the kernel's replay of the fixture gives the md5 and the recovery line in the manifest", function () {
        const r = replay.get(name)
        if (!r) this.skip()
        assert.equal(r.log, f.kernelReplay.dmesg)
        assert.equal(r.md5, f.kernelReplay.md5)
        assert.equal(r.forced, f.kernelReplay.mdadmAssemble !== 'plain')
      })

      it("r5ctl read --no-replay gives the manifest's md5 of the members as they are", function () {
        if (!f.membersAsIsMd5) this.skip()
        assert.equal(readAsIs(images.get(name)!).md5, f.membersAsIsMd5)
      })

      crashImageChecks(() => images.get(name)!)
    })
  }
})
