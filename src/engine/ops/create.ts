/**
 * create: the whole array planned and validated, then written (array.ts planCreate/applyCreate),
 * parity synced or zero-filled.
 */
import {planCreate, applyCreate, type CreateOptions} from '../array.js'
import {syncParity} from '../io.js'
import {arraySizeBytes, type Progress} from '../rows.js'
import {formatUuid, layoutName} from '../format/names.js'

export interface CreateResult {
  arrayUuid: string
  level: number
  /** null for RAID4, whose layout md ignores (mdadm prints none) */
  layout: string | null
  raidDevices: number
  chunkBytes: number
  memberDataSectors: number
  arraySizeBytes: number
  journal: string
  journalSizeBytes: number
  firstSeq: string
  parity: 'synced' | 'zero-filled' | 'assumed-clean'
  devices: {device: string; role: string}[]
}

export function createArray(o: CreateOptions & {assumeClean?: boolean}, progress?: Progress): CreateResult {
  const plan = planCreate(o)
  let parity: CreateResult['parity'] = 'assumed-clean'
  const arr = applyCreate(plan, o, a => {
    if (o.assumeClean) return
    // freshly created sparse files read as zeros, whose parity is zero: already consistent
    if (plan.paths.slice(0, o.raidDevices).every(m => plan.freshFiles.has(m))) {
      parity = 'zero-filled'
      return
    }
    syncParity(a, progress)
    parity = 'synced'
  })
  const sb = plan.sbs[0]
  const result: CreateResult = {
    arrayUuid: formatUuid(sb.setUuid),
    level: sb.level,
    layout: sb.level === 4 ? null : layoutName(sb.level, sb.layout),
    raidDevices: sb.raidDisks,
    chunkBytes: sb.chunkSize * 512,
    memberDataSectors: Number(sb.size),
    arraySizeBytes: arraySizeBytes(arr),
    journal: plan.paths[o.raidDevices],
    journalSizeBytes: arr.ring!.sizeBytes,
    firstSeq: plan.firstSeq.toString(),
    parity,
    devices: plan.paths.map((p, i) => ({device: p, role: i === o.raidDevices ? 'journal' : `active ${i}`})),
  }
  arr.close()
  return result
}
