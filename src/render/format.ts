import {UsageError} from '../engine/errors.js'

/** Number and size formatting shared by the text renderers. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`
}

/** mdadm's "(63.00 MiB 66.06 MB)" style */
export function mdSize(bytes: number): string {
  const mib = bytes / 1048576
  const mb = bytes / 1e6
  if (mib >= 1024) return `(${(mib / 1024).toFixed(2)} GiB ${(mb / 1000).toFixed(2)} GB)`
  return `(${mib.toFixed(2)} MiB ${mb.toFixed(2)} MB)`
}

/** Parse sizes: plain bytes or binary suffixes K M G T (case-insensitive, optional B/iB). */
export function parseSize(s: string): number {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(String(s).trim())
  if (!m) throw new Error(`bad size '${s}' (use bytes or a K, M, G, T suffix)`)
  const mult = {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4}[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  const v = Number(m[1]) * mult
  if (!Number.isSafeInteger(v)) throw new Error(`size '${s}' is too large`)
  return v
}

/** --offset / --length as given on the command line; a bad value is a usage error (exit 2). */
export function parseRange(offset: string, length: string | undefined): {offset: number; length: number | undefined} {
  try {
    return {offset: parseSize(offset), length: length === undefined ? undefined : parseSize(length)}
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}
