/**
 * Independent references shared by the codec tests: a bit-at-a-time crc32c_le (no table, no
 * library) and a superblock written by mdadm + a running kernel, transcribed from a public hexdump.
 */

/** Bit-at-a-time crc32c_le (reflected, polynomial 0x82F63B78, no inversion): independent of the module. */
export function refRaw(seed: number, buf: Uint8Array): number {
  let c = seed >>> 0
  for (const b of buf) {
    c ^= b
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return c >>> 0
}

/**
 * A v1.2 superblock created by mdadm and written by a running kernel (RAID1, 2 devices,
 * max_dev 128, events 17), transcribed from a public `hexdump -C` of the member
 * (blog post "what's inside a freshly created md array"). Rows not listed are zero; dev_roles are
 * [0, 1] then 0xffff up to max_dev.
 */
export function goldenKernelSuperblock(): Buffer {
  const rows: Record<number, string> = {
    0x000: 'fc4e2ba9010000000000000000000000',
    0x010: '6865ede1f1a76b4845071d66a55755bd',
    0x020: '6672616d65776f726b3a61727261796e',
    0x030: '616d6500000000000000000000000000',
    0x040: '8ef3b866000000000100000000000000',
    0x050: '00180300000000000000000002000000',
    0x080: '00080000000000000018030000000000',
    0x090: '08000000000000000000000000000000',
    0x0a0: '0000000000000000a5cc7f3aa6bc32e7',
    0x0b0: '97b772897554b62f0000080010000000',
    0x0c0: '8ef3b866000000001100000000000000',
    0x0d0: 'ffffffffffffffff6f63646080000000',
  }
  const b = Buffer.alloc(4096)
  for (const [off, hex] of Object.entries(rows)) Buffer.from(hex, 'hex').copy(b, Number(off))
  b.writeUInt16LE(0, 0x100)
  b.writeUInt16LE(1, 0x102)
  b.fill(0xff, 0x104, 0x200)
  return b
}

/** Deterministic PRNG (mulberry32) so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function randomBytes(r: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0
  return b
}

export const u32 = (r: () => number): number => (r() * 4294967296) >>> 0
