/**
 * A log's start found from the ring alone, for a journal whose superblock (and so journal_tail) is
 * lost: the oldest meta block of the chain that ends at the newest one. Each block of a chain sits
 * where the one before it ends and carries the next seq, as the kernel writes them; the scan that
 * replays (scan.ts) checks the same links again from here.
 *
 * Starting earlier than the lost journal_tail is safe: every write after the chain's first block is
 * in the chain, so replaying from there ends in the same bytes.
 */
import {alignedBuffer} from '../device.js'
import {META_MAGIC, decodeMetaBlock, pagesOf} from '../format/meta.js'
import {BLOCK_SECTORS, PAGE, type Ring} from './ring.js'

const WINDOW = 4 << 20

interface Block {
  position: number
  seq: bigint
  /** where the next block of its chain would be */
  next: number
}

/** Every whole meta block of the ring checksummed with `seed`, in ring order. */
function metaBlocks(ring: Ring, seed: number): Block[] {
  const out: Block[] = []
  const buf = alignedBuffer(WINDOW)
  for (let pos = 0; pos < ring.sizeSectors; pos += WINDOW / 512) {
    const w = buf.subarray(0, Math.min(WINDOW, (ring.sizeSectors - pos) * 512))
    ring.read(w, pos)
    for (let o = 0; o < w.length; o += PAGE) {
      if (w.readUInt32LE(o) !== META_MAGIC) continue
      const position = pos + o / 512
      const {meta, problems} = decodeMetaBlock(w.subarray(o, o + PAGE), seed, {position: BigInt(position)})
      if (meta && problems.length === 0) out.push({position, seq: meta.seq, next: ring.add(position, BLOCK_SECTORS * (1 + pagesOf(meta)))})
    }
  }
  return out
}

/** The ring position to replay from, or null when the ring holds no meta block of this seed. */
export function findTail(ring: Ring, seed: number): number | null {
  const blocks = metaBlocks(ring, seed)
  if (blocks.length === 0) return null
  const bySeq = new Map(blocks.map(b => [b.seq, b]))
  let at = blocks.reduce((a, b) => (b.seq > a.seq ? b : a))
  for (;;) {
    const before = bySeq.get(at.seq - 1n)
    if (!before || before.next !== at.position) return at.position
    at = before
  }
}
