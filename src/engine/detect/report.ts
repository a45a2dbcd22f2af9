/**
 * What the content could not decide, in words: of the hypotheses whose content evidence equals the
 * first's (rank.ts), each field on which they differ, with the values that fit equally and what the
 * ranking fell back on.
 */
import {layoutName} from '../format/names.js'
import type {Scored} from './rank.js'

const SHOWN = 4

export function undecided(ties: Scored[], names: (x: Scored) => string[]): string[] {
  if (ties.length === 0) return []
  const fields: [string, (x: Scored) => string, string][] = [
    ['level', x => `raid${x.h.level}`, 'a surviving superblock, else RAID4 before RAID5 parity-last (the same bytes on disk)'],
    ['layout', x => layoutName(x.h.level, x.h.layout), "a surviving superblock, else mdadm's default (left-symmetric)"],
    ['chunk', x => `${x.h.chunkSectors / 2} KiB`, "a surviving superblock, else mdadm's default (512 KiB)"],
    ['data offset', x => `${x.h.dataOffsetSector} sectors`, "a surviving superblock, then the journal's own data offset, then mdadm's 2048 sectors"],
    ['member order', x => names(x).join(' '), 'a surviving superblock, else the order the devices were given in'],
  ]
  const out: string[] = []
  for (const [field, value, fallback] of fields) {
    const values = [...new Set(ties.map(value))]
    if (values.length < 2) continue
    const more = values.length > SHOWN ? `, … (${values.length} in all)` : ''
    out.push(`${field}: ${values.slice(0, SHOWN).join('; ')}${more} fit the content equally; ranked by ${fallback}`)
  }
  if (ties.some(x => x.capped)) out.push('member order: the search for orders was cut short (too many fit equally); the list is not exhaustive')
  return out
}
