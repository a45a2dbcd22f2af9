/**
 * The one parser of numeric command-line values: whole non-negative decimals (sizes with K M G T),
 * bounded by 2^53 - 1 or by the on-disk field the value ends in; everything else is a usage error
 * naming the flag.
 */
import assert from 'node:assert/strict'
import {UsageError} from '../../src/engine/errors.js'
import {parseInteger, parseNumber, parseSize, U32_MAX, U64_MAX} from '../../src/render/format.js'

function refused(fn: () => unknown, flag: string): void {
  assert.throws(fn, (e: unknown) => e instanceof UsageError && e.message.startsWith(flag), `${flag} must be refused`)
}

describe('parseNumber: strict numeric flags', () => {
  it('accepts whole decimals and binary size suffixes', () => {
    assert.equal(parseSize('--size', '4096'), 4096)
    assert.equal(parseSize('--size', '64K'), 65536)
    assert.equal(parseSize('--size', '64kib'), 65536)
    assert.equal(parseSize('--size', '2MB'), 2 << 20)
    assert.equal(parseSize('--size', '1T'), 2 ** 40)
    assert.equal(parseSize('--size', '4096B'), 4096)
    assert.equal(parseSize('--size', undefined), undefined)
    assert.equal(parseInteger('--crash-after', '0'), 0)
    assert.equal(parseInteger('--from', '007'), 7)
    assert.equal(parseNumber('--until-seq', '18446744073709551615', {max: U64_MAX}), U64_MAX)
  })

  it('refuses signs, fractions, exponents, hex, empty values and suffixes where none belong', () => {
    for (const v of ['-1', '+1', '1.5', '1e3', '0x10', '', ' ', '1 2', 'abc', '4K.5', '64X', '1iB', 'Infinity', 'NaN'])
      refused(() => parseSize('--offset', v), '--offset')
    // surrounding white space too: a value copied with a newline or a space is refused, not guessed at
    for (const v of [' 4096', '4096\n', '4096 ']) refused(() => parseSize('--offset', v), '--offset')
    for (const v of ['4K', '1.0', '-0']) refused(() => parseInteger('--crash-after', v), '--crash-after')
  })

  it('refuses values beyond 2^53 - 1, or beyond the field they end in', () => {
    assert.equal(parseInteger('--offset', '9007199254740991'), Number.MAX_SAFE_INTEGER)
    refused(() => parseInteger('--offset', '9007199254740992'), '--offset')
    refused(() => parseSize('--size', '8192T'), '--size')
    refused(() => parseNumber('--until-seq', '18446744073709551616', {max: U64_MAX}), '--until-seq')
    assert.equal(parseInteger('--crash-seed', '4294967295', {max: U32_MAX}), 4294967295)
    refused(() => parseInteger('--crash-seed', '4294967296', {max: U32_MAX}), '--crash-seed')
    // chunk sectors are a u32: bytes up to (2^32 - 1) * 512
    refused(() => parseSize('--chunk', '2048G', {max: U32_MAX * 512n}), '--chunk')
    assert.equal(parseSize('--chunk', '1T', {max: U32_MAX * 512n}), 2 ** 40)
  })
})
