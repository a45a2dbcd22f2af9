/**
 * apply.ts errors that are about the set: a replay on an array opened with a member missing
 * names no device (the journal is not the problem) and says which slot of which array; nothing is written.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, expectExit, pseudoRandom, suiteTempDir, fingerprint} from '../../helpers/cli.js'
import {createImageArray, type ImageArray} from '../../helpers/array.js'
import {FileRef} from '../../../src/engine/device.js'
import {openArray} from '../../../src/engine/array.js'
import {planRecovery} from '../../../src/engine/journal/plan.js'
import {applyRecovery} from '../../../src/engine/journal/writeout.js'
import {R5Error, EXIT} from '../../../src/engine/errors.js'

describe('engine recover: replay with a member missing', function () {
  const tmp = suiteTempDir()
  let a: ImageArray
  before(function () {
    a = createImageArray(tmp.file('r5'), {level: 5, raidDevices: 4, size: '16M', journalSize: '4M'})
    fs.writeFileSync(tmp.file('in.bin'), pseudoRandom(64 << 10, 5))
    expectExit(r5ctl(['write', '--offset', '0', '--input', tmp.file('in.bin'), '--crash-after', '8', ...a.all]), 75)
    expectExit(r5ctl(['examine-journal', ...a.all]), 5)
  })

  const expectSetError = (e: unknown) => {
    assert.ok(e instanceof R5Error)
    assert.equal(e.exitCode, EXIT.REFUSED)
    assert.equal(e.code, 'missing-member')
    assert.equal(e.device, undefined, `names ${e.device}`)
    assert.match(e.message, /slot 2/)
    assert.ok(e.message.includes(a.uuid), e.message)
    return true
  }

  it('applyRecovery: recovery needs every member, refused naming no device, with the slot and the array uuid', function () {
    const given = [a.journal, a.members[0], a.members[1], a.members[3]]
    const before = fingerprint(a.all)
    const arr = openArray(
      given.map(p => new FileRef(p)),
      {writable: true, allowMissingMembers: true},
    )
    try {
      assert.throws(() => applyRecovery(arr, planRecovery(arr)), expectSetError)
    } finally {
      arr.close()
    }
    assert.deepEqual(fingerprint(a.all), before)
  })
})
