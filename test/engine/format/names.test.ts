/**
 * mdadm's names (format/names.ts): UUIDs in mdadm's form and the forms operators paste, layout names
 * and their aliases per level, as mdadm's maps.c lists them.
 */
import assert from 'node:assert/strict'
import {formatUuid, layoutName, parseLayout, parseUuid} from '../../../src/engine/format/names.js'

describe('uuid', () => {
  const bytes = Uint8Array.from([0x3a, 0x1f, 0x0c, 0x44, 0x9b, 0x2e, 0x7d, 0x10, 0x55, 0xaa, 0x66, 0xbb, 0x0f, 0x1e, 0x2d, 0x3c])
  it('formats like mdadm', () => {
    assert.equal(formatUuid(bytes), '3a1f0c44:9b2e7d10:55aa66bb:0f1e2d3c')
    assert.throws(() => formatUuid(new Uint8Array(4)), RangeError)
  })
  it('parses mdadm, plain hex and RFC forms (any case) in written byte order', () => {
    for (const s of [
      '3a1f0c44:9b2e7d10:55aa66bb:0f1e2d3c',
      '3A1F0C449B2E7D1055AA66BB0F1E2D3C',
      '3a1f0c44-9b2e-7d10-55aa-66bb0f1e2d3c',
      ' 3a1f0c44:9b2e7d10:55aa66bb:0f1e2d3c\n',
    ]) {
      assert.deepEqual(parseUuid(s), bytes, s)
    }
    assert.equal(formatUuid(parseUuid(formatUuid(bytes))), formatUuid(bytes))
  })
  it('rejects anything else', () => {
    for (const s of [
      '',
      '3a1f0c44:9b2e7d10:55aa66bb',
      '3a1f0c44:9b2e7d10:55aa66bb:0f1e2d3g',
      '3a1f0c449b2e7d1055aa66bb0f1e2d3c00',
      '3a1f-0c44-9b2e-7d10-55aa66bb0f1e2d3c',
      '3a1f0c44:9b2e7d10-55aa66bb:0f1e2d3c',
    ]) {
      assert.throws(() => parseUuid(s), Error, s)
    }
  })
})

describe('layout names (mdadm maps.c)', () => {
  const r5: Array<[number, string]> = [
    [0, 'left-asymmetric'],
    [1, 'right-asymmetric'],
    [2, 'left-symmetric'],
    [3, 'right-symmetric'],
    [4, 'parity-first'],
    [5, 'parity-last'],
  ]
  const r6: Array<[number, string]> = [
    ...r5,
    [8, 'ddf-zero-restart'],
    [9, 'ddf-N-restart'],
    [10, 'ddf-N-continue'],
    [16, 'left-asymmetric-6'],
    [17, 'right-asymmetric-6'],
    [18, 'left-symmetric-6'],
    [19, 'right-symmetric-6'],
    [20, 'parity-first-6'],
  ]
  it('RAID5 names round trip', () => {
    for (const [n, name] of r5) {
      assert.equal(layoutName(5, n), name)
      assert.equal(parseLayout(5, name), n)
    }
  })
  it('RAID6 names round trip', () => {
    for (const [n, name] of r6) {
      assert.equal(layoutName(6, n), name)
      assert.equal(parseLayout(6, name), n)
    }
  })
  it('accepts mdadm aliases', () => {
    assert.equal(parseLayout(5, 'la'), 0)
    assert.equal(parseLayout(5, 'ra'), 1)
    assert.equal(parseLayout(5, 'ls'), 2)
    assert.equal(parseLayout(5, 'rs'), 3)
    assert.equal(parseLayout(5, 'default'), 2)
    assert.equal(parseLayout(6, 'default'), 2)
    assert.equal(parseLayout(6, 'rs'), 3)
    // For RAID5 mdadm maps the DDF names onto the classic layouts.
    assert.equal(parseLayout(5, 'ddf-zero-restart'), 1)
    assert.equal(parseLayout(5, 'ddf-N-restart'), 0)
    assert.equal(parseLayout(5, 'ddf-N-continue'), 2)
  })
  it('unknown numbers and names', () => {
    assert.equal(layoutName(5, 8), '-unknown-')
    assert.equal(layoutName(5, 18), '-unknown-')
    assert.equal(layoutName(6, 6), '-unknown-')
    assert.throws(() => parseLayout(5, 'left-symmetric-6'), /not understood/)
    assert.throws(() => parseLayout(6, 'LS'), /not understood/)
    assert.throws(() => parseLayout(1, 'ls'), /not meaningful/)
  })
  it('RAID4 is parity-last', () => {
    assert.equal(layoutName(4, 0), 'parity-last')
    assert.equal(layoutName(4, 5), 'parity-last')
    assert.equal(parseLayout(4, 'parity-last'), 5)
    assert.equal(parseLayout(4, 'default'), 0)
  })
})
