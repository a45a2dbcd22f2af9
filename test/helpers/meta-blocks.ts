/**
 * Meta blocks for the decoder tests: random payload lists (DATA, PARITY, FLUSH; locations past 2^32
 * and 2^53) and the ways of breaking a block that the kernel's checks must catch.
 */
import {crc32cRaw, uuidSeed} from '../../src/engine/checksum.js'
import {type Payload, BLOCK_SIZE, PAYLOAD_DATA, PAYLOAD_FLUSH, PAYLOAD_PARITY} from '../../src/engine/format/meta.js'

export const SEED = uuidSeed(Uint8Array.from({length: 16}, (_, i) => i * 29 + 5))

export function randomPayloads(r: () => number, opts: {maxPayloads?: number; location?: (r: () => number) => bigint} = {}): Payload[] {
  const out: Payload[] = []
  let bytes = 32
  const want = Math.floor(r() * (opts.maxPayloads ?? 60))
  for (let i = 0; i < want; i++) {
    const kind = r()
    if (kind < 0.1) {
      const n = Math.floor(r() * 6)
      if (bytes + 8 + 8 * n > BLOCK_SIZE) break
      out.push({type: PAYLOAD_FLUSH, flags: 1, stripes: Array.from({length: n}, () => BigInt(Math.floor(r() * 2 ** 40)) * 8n)})
      bytes += 8 + 8 * n
    } else {
      const pages = 1 + Math.floor(r() * 3)
      if (bytes + 16 + 4 * pages > BLOCK_SIZE) break
      // locations: mostly ordinary, some above 2^32, some at or above 2^53
      const big = r()
      const location = opts.location
        ? opts.location(r)
        : big < 0.05
          ? 2n ** 53n + BigInt(Math.floor(r() * 1000)) * 8n
          : big < 0.2
            ? BigInt(Math.floor(r() * 2 ** 44)) * 8n
            : BigInt(Math.floor(r() * 2 ** 20)) * 8n
      out.push({
        type: kind < 0.6 ? PAYLOAD_DATA : PAYLOAD_PARITY,
        flags: 0,
        sizeSectors: 8 * pages,
        location,
        checksums: Array.from({length: pages}, () => Math.floor(r() * 2 ** 32)),
      })
      bytes += 16 + 4 * pages
    }
  }
  return out
}

export function rechecksum(page: Uint8Array): void {
  const dv = new DataView(page.buffer, page.byteOffset, BLOCK_SIZE)
  dv.setUint32(4, 0, true)
  dv.setUint32(4, crc32cRaw(SEED, page), true)
}

/** one way of breaking a block, at a random place */
export function mutate(page: Uint8Array, r: () => number): string {
  const dv = new DataView(page.buffer, page.byteOffset, BLOCK_SIZE)
  const metaSize = dv.getUint32(12, true)
  const what = Math.floor(r() * 9)
  switch (what) {
    case 0:
      dv.setUint32(0, dv.getUint32(0, true) ^ (1 << Math.floor(r() * 32)), true)
      return 'magic'
    case 1:
      dv.setUint8(8, Math.floor(r() * 4))
      return 'version'
    case 2:
      dv.setUint32(12, Math.floor(r() * 5000), true)
      return 'meta_size'
    case 3:
      dv.setUint32(12, Math.max(32, metaSize - 1 - Math.floor(r() * 20)), true)
      return 'meta_size cut into a payload'
    case 4:
      page[Math.floor(r() * BLOCK_SIZE)] ^= 1 + Math.floor(r() * 255)
      return 'any byte'
    case 5:
      dv.setUint16(32 + 4 * Math.floor(r() * 16), Math.floor(r() * 5), true)
      return 'a payload type (maybe)'
    case 6:
      dv.setUint32(36 + 4 * Math.floor(r() * 16), Math.floor(r() * 40), true)
      return 'a payload size (maybe)'
    case 7:
      page[Math.floor(r() * 32)] ^= 0x80
      return 'a header byte'
    default:
      return 'nothing'
  }
}
