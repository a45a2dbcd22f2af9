/**
 * detect on sets the Linux kernel made (test/kernel/fixtures: RAID5 left-symmetric, 4 members, 64 KiB
 * chunk, data offset 2048 sectors, power-cut mid-write): copies with every superblock zeroed, the
 * journal's too, given shuffled, must come out as the manifest describes them — though a power cut
 * left stripes on the members that do not hold. Needs no kernel: the images are committed.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import {fileURLToPath} from 'node:url'
import {FileRef} from '../../../src/engine/device.js'
import {detectArray} from '../../../src/engine/index.js'

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test/kernel/fixtures')

interface Entry {
  level: number
  layout: string
  raidDevices: number
  chunkBytes: number
  files: {journal: string; members: string[]}
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as {fixtures: Record<string, Entry>}
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex')

describe('detect: the kernel-made fixtures with their superblocks zeroed', function () {
  this.timeout(120_000)
  let root = ''
  before(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-detect-kernel-'))))
  after(() => fs.rmSync(root, {recursive: true, force: true}))

  for (const [name, f] of Object.entries(manifest.fixtures)) {
    it(`${name}: ${f.level === 5 ? 'raid5' : f.level} ${f.layout}, chunk ${f.chunkBytes / 1024}K, members in slot order, the journal found`, function () {
      const dir = path.join(root, name)
      fs.mkdirSync(dir)
      const unpack = (file: string) => {
        const dst = path.join(dir, file.replace(/\.gz$/, ''))
        const data = zlib.gunzipSync(fs.readFileSync(path.join(FIXTURES, name, file)))
        data.fill(0, 4096, 8192) // mdadm --zero-superblock
        fs.writeFileSync(dst, data)
        return dst
      }
      const journal = unpack(f.files.journal)
      const members = f.files.members.map(unpack)
      const all = [members[2], journal, members[0], members[3], members[1]]
      const before = all.map(sha)
      const r = detectArray(all.map(p => new FileRef(p)))
      assert.deepEqual(all.map(sha), before, 'a device changed')
      const c = r.candidates[0]
      assert.ok(r.found, r.notes.join('; '))
      assert.deepEqual(
        {level: c.level, layout: c.layout, chunkBytes: c.chunkBytes, members: c.members, dataOffsetSector: c.dataOffsetSector, journal: c.journal},
        {level: f.level, layout: f.layout, chunkBytes: f.chunkBytes, members, dataOffsetSector: 2048, journal},
        `undecided: ${r.undecided.join(' | ')}`,
      )
      assert.equal(r.journal?.dataOffsetSector, 2048)
      assert.equal(r.arrayUuid, null)
    })
  }
})
