/**
 * The devices a command names, as the engine takes them: FileRefs (engine/device.ts), which the engine
 * opens when and as it needs them (read-only to look, writable and locked once the set is checked), with
 * the command's flush policy (--no-flush: flush() skips fdatasync); and the undo file, as a RecordFileRef.
 * The engine never opens a path itself.
 */
import {FileRef, type DeviceRef} from '../engine/device.js'
import {RecordFileRef} from '../engine/record-file.js'

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

/** The undo file a command names (--undo FILE, or undo's FILE), if any. */
export function undoFile(path: string): RecordFileRef
export function undoFile(path: string | undefined): RecordFileRef | undefined
export function undoFile(path: string | undefined): RecordFileRef | undefined {
  return path === undefined ? undefined : new RecordFileRef(path)
}
