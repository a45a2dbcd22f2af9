/**
 * writeArray's errors that are about the set, not about one device: writeArray on an array opened with a
 * member missing names no device (the member is not there to name) and says which slot of which array.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import {r5ctl, expectExit, pseudoRandom, suiteTempDir, fingerprint} from '../../helpers/cli.js'
import {createImageArray, type ImageArray} from '../../helpers/array.js'
import {FileRef} from '../../../src/engine/device.js'
import {openArray} from '../../../src/engine/array.js'
import {writeArray} from '../../../src/engine/write/write-array.js'
import {R5Error, EXIT} from '../../../src/engine/errors.js'

describe('engine write: writeArray with a member missing', function () {
  const tmp = suiteTempDir()
  let a: ImageArray
  before(function () {
    a = createImageArray(tmp.file('r5'), {level: 5, raidDevices: 4, size: '16M', journalSize: '4M'})
    expectExit(r5ctl(['examine', a.journal]), 0)
  })

  it('writing needs every member: refused naming no device, with the missing slot and the array uuid; nothing written', function () {
    const given = [a.journal, ...a.members.slice(0, 3)]
    const before = fingerprint(a.all)
    const arr = openArray(
      given.map(p => new FileRef(p)),
      {writable: true, allowMissingMembers: true},
    )
    const data = pseudoRandom(4096, 3)
    try {
      assert.throws(
        () =>
          writeArray(arr, 0, 4096, buf => {
            buf.set(data.subarray(0, buf.length))
            return buf.length
          }),
        (e: unknown) => {
          assert.ok(e instanceof R5Error)
          assert.equal(e.exitCode, EXIT.REFUSED)
          assert.equal(e.device, undefined, `names ${e.device}`)
          assert.match(e.message, /slot 3/)
          assert.ok(e.message.includes(a.uuid), e.message)
          return true
        },
      )
    } finally {
      arr.close()
    }
    assert.deepEqual(fingerprint(a.all), before)
    assert.ok(fs.existsSync(a.members[3]))
  })
})
