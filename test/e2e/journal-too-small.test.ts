/**
 * A journal too small for one stripe of the array is refused before `write` touches any device:
 * exit 2, one line naming the journal, a hint, and every image byte for byte as before (the check
 * once ran after the log's opening block and the superblocks were written). Also at engine level
 * for a write-through write that would first have reclaimed cached write-back stripes.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, expectExit, expectErrorLine, fingerprint, pseudoRandom, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'
import {writeData, examineJournal} from '../../src/engine/index.js'
import {bufferSource, changedSince, createMemArray, snapshot} from '../helpers/model.js'

describe('e2e: a journal too small for one stripe is refused before any device write', function () {
  const tmp = suiteTempDir()
  let a: ImageArray
  let input: string

  before(function () {
    // 8 members: a stripe with its meta block is 9 pages, two of them more than a quarter of the
    // smallest journal create accepts (256 KiB of data area)
    a = createImageArray(tmp.file('a'), {level: 5, raidDevices: 8, chunk: '16K', size: '2M', journalSize: '1280K'})
    input = tmp.file('input.bin')
    fs.writeFileSync(input, pseudoRandom(10_000, 3))
  })

  for (const mode of ['write-through', 'write-back']) {
    it(`${mode}: exit 2 naming the journal, with a hint, and no image byte changed`, () => {
      const before = fingerprint(a.all)
      const r = expectExit(r5ctl(['write', '--offset', '0', '--input', input, '--journal-mode', mode, ...a.all]), 2)
      assert.deepEqual(fingerprint(a.all), before)
      const line = expectErrorLine(r, {device: a.journal})
      assert.match(line, /journal too small/)
      assert.match(r.stderr, /hint: .*--journal-size/)
    })
  }

  it('engine: a write-through write refused for its batch size leaves cached write-back stripes unreclaimed', () => {
    const m = createMemArray({level: 5, raidDevices: 8, chunkBytes: 16 * 1024, memberDataBytes: 512 * 1024, journalRingBytes: 1024 * 1024})
    const data = pseudoRandom(64 * 1024, 4)
    writeData(m.devs, 0, data.length, bufferSource(data), {mode: 'write-back'})
    assert.ok(examineJournal(m.devs).stripesPending.dataOnly > 0)
    const snap = snapshot(m.devs)
    // 16 KiB batches cannot hold two stripes of 8 members
    assert.throws(() => writeData(m.devs, 0, 4096, bufferSource(data), {mode: 'write-through', batchBytes: 16 * 1024}), /journal too small/)
    assert.deepEqual(changedSince(m.devs, snap), [])
  })
})
