/**
 * write: data through the journal (io.ts writeArray), with crash injection and the superblock-
 * update budget checked first.
 */
import type {EngineOptions} from '../compute.js'
import {type MdArray, type DeviceSource, openArray, refuseDuplicateSources} from '../array.js'
import {writeArray, type Source, type WriteResult, type WriteOptions} from '../write/write-array.js'
import {arraySizeBytes} from '../rows.js'
import {CrashController} from '../crash.js'
import {isDeviceRef} from '../device.js'
import {PAGE} from '../journal/ring.js'
import {SimulatedCrash} from '../errors.js'

export interface WriteDataOptions extends WriteOptions, EngineOptions {
  /** simulated power cut after this many device write requests (crash injection) */
  crashAfter?: number
  /** with crashAfter: apply a seeded random subset of each device's unflushed writes */
  crashSeed?: number
}

/**
 * With crashAfter: the power cut was not injected, because the write completed within its budget
 * of device writes. A crash sweep must learn this (its crash point is past the end), so the
 * result says so instead of looking like a plain successful write.
 */
export interface CrashReport {
  injected: false
  deviceWrites: number
}

/**
 * The most superblock updates a write of `length` bytes makes (writeArray): reclaiming cached stripes
 * first, opening the log, at most one checkpoint or reclaim per batch (every batch logs at least one
 * page of the write), closing the log.
 */
export function writeSuperblockUpdates(length: number): number {
  return 3 + Math.ceil(Math.max(0, length) / PAGE)
}

/**
 * Write through the journal. With crashAfter, every device is wrapped by the crash injector and
 * a SimulatedCrash (exit 75) ends the write; `acknowledged` tells how far the write got. A write
 * that needed no more than crashAfter device writes returns `crash` with their count. A `length`
 * of undefined means up to the end of the array (with endAtShortInput: up to the input's end).
 */
export function writeData(
  paths: DeviceSource[],
  offset: number,
  length: number | undefined,
  source: Source,
  opts: WriteDataOptions = {},
): WriteResult & {arrayUuid: string; crash?: CrashReport} {
  let sources = paths
  let ctl: CrashController | undefined
  if (opts.crashAfter !== undefined) {
    ctl = new CrashController(opts.crashAfter, opts.crashSeed)
    refuseDuplicateSources(paths)
    sources = paths.map(p => ctl!.wrap(isDeviceRef(p) ? p.open({writable: true}) : p))
  }
  let arr: MdArray
  try {
    arr = openArray(sources, {
      writable: true,
      compute: opts.compute,
      superblockUpdates: a => writeSuperblockUpdates(length ?? Math.max(0, arraySizeBytes(a) - offset)),
    })
  } catch (error) {
    if (ctl) for (const d of sources) if (!isDeviceRef(d) && !paths.includes(d)) d.close()
    throw error
  }
  let acked = 0
  try {
    const len = length ?? Math.max(0, arraySizeBytes(arr) - offset)
    const res = writeArray(arr, offset, len, source, {
      ...opts,
      onAck: b => {
        acked = b
        opts.onAck?.(b)
      },
    })
    return {...res, arrayUuid: arr.uuid, ...(ctl ? {crash: {injected: false, deviceWrites: ctl.writes} as const} : {})}
  } catch (error) {
    if (error instanceof SimulatedCrash) error.acknowledged = acked
    throw error
  } finally {
    arr.close()
  }
}
