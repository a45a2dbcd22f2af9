/**
 * Arithmetic in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1 (0x11d) and generator g = 2, the field
 * of the kernel's RAID6 syndrome (lib/raid6): log/exp tables and per-constant multiplication tables.
 */

const POLY = 0x11d
/** EXP[i] = g^i for i in 0..509, doubled so EXP[LOG[a] + LOG[b]] needs no modulo. */
const EXP = new Uint8Array(510)
/** LOG[a] = i with g^i = a (LOG[0] is unused). */
const LOG = new Uint8Array(256)
{
  let x = 1
  for (let i = 0; i < 255; i++) {
    EXP[i] = x
    EXP[i + 255] = x
    LOG[x] = i
    x <<= 1
    if (x & 0x100) x ^= POLY
  }
}

export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0
  return EXP[LOG[a & 255] + LOG[b & 255]]
}

/** g^e for any integer e (g has order 255, so negative exponents are inverses). */
export function gfPow2(e: number): number {
  const r = e % 255
  return EXP[r < 0 ? r + 255 : r]
}

export function gfInv(a: number): number {
  a &= 255
  if (a === 0) throw new RangeError('0 has no inverse in GF(2^8)')
  return EXP[255 - LOG[a]]
}

/** Byte-wise multiplication tables, built on first use: MUL_TABLES[c][x] = c·x. */
const MUL_TABLES: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(256)
export function mulTable(c: number): Uint8Array {
  let t = MUL_TABLES[c]
  if (t === undefined) {
    t = new Uint8Array(256)
    for (let x = 1; x < 256; x++) t[x] = gfMul(c, x)
    MUL_TABLES[c] = t
  }
  return t
}

/** log_g(a) for a ≠ 0: the e with g^e = a, 0..254. */
export function gfLog(a: number): number {
  a &= 255
  if (a === 0) throw new RangeError('0 has no logarithm in GF(2^8)')
  return LOG[a]
}
