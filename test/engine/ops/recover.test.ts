/**
 * recover's progress: one measure from the walk of the log to the last page written, so a progress
 * bar fills once instead of filling for the walk and starting again for the writes. With members
 * missing, the journal replays onto those present, as the kernel's replay at a degraded assemble does.
 */
import assert from 'node:assert/strict'
import {assembleArray, checkArray, examineJournal, rebuildArray, reclaimArray, recoverArray} from '../../../src/engine/index.js'
import {MemDevice} from '../../../src/engine/device.js'
import {
  changedPages,
  changedSince,
  cloneArray,
  cloneDevs,
  createMemArray,
  cutAfter,
  DATA_OFFSET_BYTES,
  MiB,
  PAGE,
  pseudoRandom,
  runWorkload,
  snapshot,
} from '../../helpers/model.js'
import {dirtyArray, readBytes, recoveredBytes} from '../../helpers/dirty.js'

describe('recover: progress', function () {
  this.timeout(60000)

  for (const mode of ['write-through', 'write-back'] as const) {
    it(`${mode}: the progress fraction never goes back and ends at 1`, () => {
      // a log of more than one 8 MiB copy window that fills most of the ring: the walk ends near the
      // whole ring, where a bar that restarted for the writes would fall back
      const a = createMemArray({level: 5, raidDevices: 4, chunkBytes: 65536, memberDataBytes: 8 * MiB, journalRingBytes: 20 * MiB})
      const data = pseudoRandom(12 * MiB, 5)
      // a write-through write cut just before its closing block and superblocks leaves a dirty log;
      // write-back leaves its data in the log anyway
      const all = runWorkload(cloneArray(a).devs, [{offset: 0, data, mode}]).writes
      const w = runWorkload(a.devs, [{offset: 0, data, mode}], {crashAfter: mode === 'write-through' ? all - 1 - a.devs.length : undefined})
      assert.ok(mode === 'write-back' || w.interrupted === 0, 'the write was cut')
      const seen: number[] = []
      const r = recoverArray(a.devs, {progress: (done, total) => seen.push(done / total)})
      assert.equal(r.state, 'replayed')
      assert.ok(seen.length >= 2, `${seen.length} progress calls`)
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress went from ${seen[i - 1]} back to ${seen[i]} (call ${i})`)
      assert.equal(seen[seen.length - 1], 1)
    })
  }
})

describe('recover: members missing', function () {
  this.timeout(60000)

  for (const [level, mode, gone] of [
    [5, 'write-through', [1]],
    [5, 'write-back', [0]],
    [5, 'write-back', [3]],
    [6, 'write-through', [2]],
    [6, 'write-back', [1, 4]],
    [6, 'write-back', [0, 2]],
  ] as const) {
    it(`RAID${level}, ${mode}, slot(s) ${gone.join(', ')} missing: the journal replays onto the members present, and the array then reads as recover of the whole set would leave it`, () => {
      const devs = dirtyArray(level, mode)
      const whole = recoveredBytes(devs)
      // devs: the journal, then the members in slot order
      const set = devs.filter((_, i) => !gone.includes((i - 1) as never))
      const dry = recoverArray(cloneDevs(set), {dryRun: true})
      assert.ok(dry.writes.length > 0)
      assert.ok(
        dry.writes.every(w => !gone.includes(w.slot as never)),
        'the dry run lists no write to a missing slot',
      )
      const before = snapshot(set)
      const r = recoverArray(set, {})
      assert.equal(r.state, 'replayed')
      assert.equal(examineJournal(set).state, 'clean')
      assert.ok(readBytes(set).equals(whole), 'the degraded set reads as the whole set recovered')
      // every page that changed on a member is one the dry run listed
      set.slice(1).forEach((d, k) => {
        const slot = devs.indexOf(d) - 1
        const listed = new Set<number>()
        for (const w of dry.writes.filter(w => w.slot === slot))
          for (let p = 0; p < w.pages; p++) listed.add((DATA_OFFSET_BYTES + w.offsetSector * 512) / PAGE + p)
        const meta = DATA_OFFSET_BYTES / PAGE
        for (const p of changedPages(before[k + 1], d.data))
          if (p >= meta) assert.ok(listed.has(p), `slot ${slot}: page ${p} changed but was not listed`)
      })
      // rebuilt onto blank devices, the whole set checks clean
      const blanks = gone.map(s => new MemDevice(`new${s}`, devs[s + 1].size))
      rebuildArray(set, blanks, {slots: [...gone]})
      assert.equal(checkArray([...set, ...blanks]).mismatchCount, 0)
      assert.ok(readBytes([...set, ...blanks]).equals(whole))
    })
  }

  it('reclaim with a member missing writes the cache out to the members present: the array reads the same, the journal is clean', () => {
    const devs = dirtyArray(6, 'write-back')
    const whole = recoveredBytes(devs)
    const set = devs.filter((_, i) => i !== 3)
    const r = reclaimArray(set, {})
    assert.ok(r.dataOnlyStripes > 0)
    assert.equal(examineJournal(set).state, 'clean')
    assert.ok(readBytes(set).equals(whole))
  })

  for (const [level, mode, gone] of [
    [5, 'write-back', 2],
    [6, 'write-back', 0],
    [5, 'write-through', 1],
  ] as const)
    it(`RAID${level}, ${mode}, slot ${gone} missing: a power cut at every device write of recover (unflushed writes lost at random too), then recover again, reads as the whole set recovered`, () => {
      const devs = dirtyArray(level, mode)
      const whole = recoveredBytes(devs)
      const set = devs.filter((_, i) => i !== gone + 1)
      let cuts = 0
      for (let after = 0; ; after++) {
        for (const seed of [undefined, after + 1]) {
          const copy = cloneDevs(set)
          const cut = cutAfter(copy, after, d => recoverArray(d, {}), seed)
          if (!cut) {
            assert.ok(cuts > 0)
            return
          }
          cuts++
          recoverArray(copy, {})
          assert.ok(readBytes(copy).equals(whole), `cut after ${after} writes${seed ? `, seed ${seed}` : ''}`)
        }
      }
    })

  it('assemble with a member missing replays the dirty journal onto the members present, as the kernel does at a degraded start', () => {
    const devs = dirtyArray(5, 'write-back')
    const whole = recoveredBytes(devs)
    const set = [devs[0], devs[1], devs[3], devs[4]]
    const r = assembleArray(set, {})
    assert.equal(r.recovery?.state, 'replayed')
    assert.deepEqual(r.recovery.missingSlots, [1])
    assert.deepEqual(r.missingSlots, [1])
    assert.match(r.state, /degraded/)
    assert.equal(r.journal.state, 'clean')
    assert.ok(readBytes(set).equals(whole))
  })

  it('RAID5 with two members missing is refused, nothing written', () => {
    const devs = dirtyArray(5, 'write-back')
    const set = [devs[0], devs[1], devs[4]]
    const before = snapshot(set)
    assert.throws(
      () => recoverArray(set, {}),
      (e: Error & {code?: string}) => e.code === 'refused',
    )
    assert.deepEqual(changedSince(set, before), [])
  })
})
