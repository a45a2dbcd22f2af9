/**
 * The journal's logged data pages located on the members: a data page logged for array sector L was
 * written (unless the crash came first, or a later write replaced it) to the member sector that the
 * chunk size and number of data disks give — the same on every member, whatever the layout and
 * order — of the member that holds L. Reading that page of every member and finding the logged bytes
 * on exactly one names that member: evidence that settles member order and layout where parity cannot
 * (RAID5 parity is symmetric in its members).
 */
import type {BlockDevice} from '../device.js'
import {alignedBuffer} from '../device.js'
import type {Geometry} from '../geometry.js'
import type {LoggedPage} from './journal.js'

/** Not found on any member, or on more than one: no evidence. */
export const NOWHERE = -1

/**
 * For each logged page, the member (index in `devs`) whose page at the member sector L maps to holds
 * its bytes, or NOWHERE. `memberSectors`: sectors each member holds past the data offset.
 */
export function locateLogged(
  devs: BlockDevice[],
  logged: LoggedPage[],
  chunkSectors: number,
  dataDisks: number,
  offsetSector: number,
  memberSectors: number,
): Int16Array {
  const out = new Int16Array(logged.length).fill(NOWHERE)
  const page = alignedBuffer(4096)
  logged.forEach((l, i) => {
    const chunk = Math.floor(l.arraySector / chunkSectors)
    const memberSector = Math.floor(chunk / dataDisks) * chunkSectors + (l.arraySector % chunkSectors)
    if (memberSector + 8 > memberSectors) return
    let found = NOWHERE
    for (let m = 0; m < devs.length; m++) {
      devs[m].read(page, (offsetSector + memberSector) * 512)
      if (Buffer.compare(page, l.page) !== 0) continue
      if (found !== NOWHERE) return
      found = m
    }
    out[i] = found
  })
  return out
}

/** [matching, located]: located pages whose member the hypothesis (order[slot] = device) puts them on. */
export function loggedAgreement(logged: LoggedPage[], located: Int16Array, g: Geometry, order: number[]): [number, number] {
  const at = {member: 0, memberSector: 0}
  let match = 0
  let total = 0
  const limit = Number(g.arraySectors)
  logged.forEach((l, i) => {
    if (located[i] === NOWHERE || l.arraySector >= limit) return
    g.locate(l.arraySector, at)
    total++
    if (order[at.member] === located[i]) match++
  })
  return [match, total]
}

/** Add to cost[slot][device] one unit against every slot other than the one each located page's member should fill. */
export function loggedCosts(logged: LoggedPage[], located: Int16Array, g: Geometry, cost: number[][], weight: number): void {
  const at = {member: 0, memberSector: 0}
  const limit = Number(g.arraySectors)
  logged.forEach((l, i) => {
    if (located[i] === NOWHERE || l.arraySector >= limit) return
    g.locate(l.arraySector, at)
    cost[at.member][located[i]] -= weight
  })
}
