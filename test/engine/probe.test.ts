/**
 * sbVerdict (probe.ts): what a superblock asks for that r5ctl does not do is refused by name. Here:
 * a journaled array with more raid disks than one meta block can name (the kernel's r5l_init_log
 * refuses raid_disks > 203: a 32-byte header and 20 bytes a disk in 4096).
 */
import assert from 'node:assert/strict'
import {FEATURE_JOURNAL, makeSuperblock} from '../../src/engine/format/superblock.js'
import {sbVerdict, type ProbeResult} from '../../src/engine/probe.js'

function member(raidDisks: number, featureMap: number): ProbeResult {
  const sb = makeSuperblock({
    setUuid: new Uint8Array(16).fill(7),
    level: 5,
    raidDisks,
    devNumber: 0,
    devRoles: Array.from({length: raidDisks}, (_, i) => i),
    featureMap,
    layout: 2,
    chunkSize: 128,
    size: 2048n,
    dataOffset: 2048n,
    dataSize: 2048n,
  })
  return {path: 'm0.img', size: 4096 * 512, sb, version: '1.2', problems: [], computedCsum: 0}
}

describe('probe: sbVerdict', function () {
  it('a journaled array of 204 raid disks is refused by name (203 pass); without a journal md runs it', function () {
    assert.equal(sbVerdict(member(204, FEATURE_JOURNAL))?.code, 'journal-too-many-disks')
    assert.equal(sbVerdict(member(203, FEATURE_JOURNAL)), null)
    assert.equal(sbVerdict(member(204, 0)), null)
  })
})
