import {UsageError} from '../engine/errors.js'

/** Number and size formatting shared by the text renderers. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`
}

/** mdadm's "(63.00 MiB 66.06 MB)" style */
export function mdSize(bytes: number): string {
  const mib = bytes / 1048576
  const mb = bytes / 1e6
  if (mib >= 1024) return `(${(mib / 1024).toFixed(2)} GiB ${(mb / 1000).toFixed(2)} GB)`
  return `(${mib.toFixed(2)} MiB ${mb.toFixed(2)} MB)`
}

const UNITS = {'': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n}
export const U32_MAX = 0xffffffffn
export const U64_MAX = 0xffffffffffffffffn
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER)

export interface NumberRule {
  /** bytes: accept K M G T suffixes (binary, optional B or iB) */
  size?: boolean
  /** the largest value accepted (default 2^53 - 1, the largest exact number) */
  max?: bigint
  /** what the value ends up in, said when it exceeds max (e.g. "the superblock's 32-bit chunk field") */
  field?: string
}

/**
 * The one parser for every numeric command-line value: a whole, non-negative decimal number (with a
 * K/M/G/T suffix where `rule.size`), at most `rule.max`. Anything else is a usage error (exit 2)
 * naming the flag: a sign, a fraction, an exponent, hex, an empty value, or a value the field it
 * ends in cannot hold.
 */
export function parseNumber(flag: string, value: string, rule: NumberRule = {}): bigint {
  const m = (rule.size ? /^(\d+)([kmgt]?)(i?b)?$/i : /^(\d+)()()$/).exec(value)
  if (!m || (m[3] && !m[2] && /i/i.test(m[3])))
    throw new UsageError(
      `${flag} ${JSON.stringify(value)} is not ${rule.size ? 'a size (whole bytes, or with a K, M, G or T suffix)' : 'a whole non-negative number'}`,
    )
  const v = BigInt(m[1]) * UNITS[m[2].toLowerCase() as keyof typeof UNITS]
  const max = rule.max ?? SAFE_MAX
  if (v > max) {
    const why = rule.field ?? (max === SAFE_MAX ? 'the largest exact number, 2^53 - 1' : 'the largest value allowed')
    throw new UsageError(`${flag} ${value} is too large: at most ${max} (${why})`)
  }
  return v
}

/** parseNumber for values that are used as JavaScript numbers (max at most 2^53 - 1). */
export function parseInteger(flag: string, value: string, rule: NumberRule = {}): number {
  return Number(parseNumber(flag, value, {...rule, max: rule.max !== undefined && rule.max < SAFE_MAX ? rule.max : SAFE_MAX}))
}

/** A size in bytes (K M G T suffixes); undefined stays undefined. */
export function parseSize(flag: string, value: string | undefined, rule: NumberRule = {}): number | undefined {
  return value === undefined ? undefined : parseInteger(flag, value, {...rule, size: true})
}

/** --offset / --length as given on the command line; a bad value is a usage error (exit 2). */
export function parseRange(offset: string, length: string | undefined): {offset: number; length: number | undefined} {
  return {offset: parseSize('--offset', offset)!, length: parseSize('--length', length)}
}
