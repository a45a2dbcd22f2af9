/**
 * serve → kernel: an ext4 filesystem written to a journaled RAID5 with write-back, so that its
 * blocks are only in the journal (the members still hold zeros), is exported by `r5ctl serve`; a
 * Linux 6.1 guest attaches the export as a disk (qemu's NBD client), mounts it and reads every file.
 * The md5 of each file in the guest must be that of the file put into the filesystem on the host,
 * and no image changes.
 */
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {boot, type KernelEnv} from './harness.js'
import {cleanup, kernelOrSkip, md5, md5File, r5ctl, r5ctlReadMd5, randomPattern, recordBoot, startServe, tail, tmpDir} from './util.js'
import {which} from '../helpers/cli.js'

const MiB = 1 << 20
const FILES: Record<string, number> = {'a.bin': 3 * MiB + 123, 'b.txt': 40_000, 'c.bin': 9 * MiB, 'd.bin': 4096}

describe('kernel interop: Linux mounts ext4 from the replayed view r5ctl serve exports', function () {
  let env: KernelEnv
  let dir: string

  before(function () {
    env = kernelOrSkip(this)
    dir = tmpDir('serve')
  })
  after(() => cleanup(dir))

  it('the guest reads every file of an ext4 filesystem whose blocks are only in the journal', async function () {
    const mkfs = which('mkfs.ext4')
    assert.ok(mkfs, 'mkfs.ext4 (e2fsprogs) is needed to build the filesystem')
    const src = path.join(dir, 'files')
    fs.mkdirSync(src)
    const want: Record<string, string> = {}
    for (const [name, size] of Object.entries(FILES)) {
      const data = randomPattern(name, size)
      fs.writeFileSync(path.join(src, name), data)
      want[name] = md5(data)
    }
    const fsImg = path.join(dir, 'fs.img')
    const mk = spawnSync(mkfs, ['-q', '-F', '-b', '4096', '-d', src, '-E', 'root_owner=0:0', fsImg, '24M'], {encoding: 'utf8'})
    assert.equal(mk.status, 0, mk.stderr)

    const devs = [path.join(dir, 'j.img'), ...[0, 1, 2, 3, 4].map(i => path.join(dir, `m${i}.img`))]
    const made = r5ctl([
      'create',
      '--level',
      '5',
      '--raid-devices',
      '5',
      '--chunk',
      '64K',
      '--size',
      '16M',
      '--journal-size',
      '48M',
      '--write-journal',
      ...devs,
    ])
    assert.equal(made.code, 0, made.stderr)
    const w = r5ctl(['write', '--journal-mode', 'write-back', '--offset', '0', '--input', fsImg, ...devs])
    assert.equal(w.code, 0, w.stderr)
    assert.notEqual(r5ctlReadMd5(devs, {noReplay: true, length: 24 * MiB}).md5, md5File(fsImg), 'the members alone do not hold the filesystem')
    assert.equal(r5ctlReadMd5(devs, {length: 24 * MiB}).md5, md5File(fsImg), 'the replayed view does')
    const before = devs.map(d => md5File(d))

    const socket = path.join(dir, 'view.sock')
    const server = await startServe(socket, devs)
    let result
    try {
      const script = [
        'mkdir -p /mnt',
        'mount -t ext4 -o ro,noload "$(disk view)" /mnt && kv mounted 1',
        ...Object.keys(FILES).map(f => `kv "md5_${f}" "$(md5sum /mnt/${f} | cut -d' ' -f1)"`),
        'umount /mnt',
      ].join('\n')
      result = recordBoot(
        'serve: ext4 over NBD',
        await boot(env, {
          disks: [{file: `nbd:unix:${socket}`, name: 'view', readonly: true}],
          script,
          label: 'serve ext4 over NBD',
          timeoutMs: 300_000,
        }),
      )
    } finally {
      const end = await server.stop()
      assert.equal(end.code, 0, end.stderr)
    }
    assert.equal(result.kv.mounted, '1', tail(result))
    for (const f of Object.keys(FILES)) assert.equal(result.kv[`md5_${f}`], want[f], `${f} as the guest reads it\n${tail(result)}`)
    assert.deepEqual(
      devs.map(d => md5File(d)),
      before,
      'no image changed',
    )
  })
})
