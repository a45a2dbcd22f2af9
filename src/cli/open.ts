/**
 * The devices a command names, as the engine takes them: FileRefs (engine/device.ts), which the engine
 * opens when and as it needs them (read-only to look, writable and locked once the set is checked), with
 * the command's flush policy (--no-flush: flush() skips fdatasync). The engine never opens a path itself.
 */
import {FileRef, type DeviceRef} from '../engine/device.js'

/** The flags every command has that decide how its devices are opened. */
export interface OpenFlags {
  'no-flush'?: boolean
}

/** One device by path. */
export function deviceRef(path: string, flags: OpenFlags): DeviceRef {
  return new FileRef(path, {flush: !flags['no-flush']})
}

/** The devices named on the command line, in order. */
export function deviceRefs(paths: string[], flags: OpenFlags): DeviceRef[] {
  return paths.map(p => deviceRef(p, flags))
}
