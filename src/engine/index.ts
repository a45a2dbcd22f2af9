/**
 * The engine's front door: every command calls exactly one of these operations (one file each in
 * ops/) and renders what it returns. Nothing here prints.
 */
export {refuseDeviceAsFile} from './identity.js'
export {openArray, type DeviceSource, type MdArray} from './array.js'
export {type CreateOptions} from './ops/create.js'
export {type DeviceRef} from './device.js'
export {arraySizeBytes, type Progress} from './rows.js'
export {type Source, type WriteResult} from './write/write-array.js'
export {type JournalState} from './journal/state.js'
export * from './ops/create.js'
export * from './ops/write.js'
export * from './ops/recover.js'
export * from './ops/read.js'
export * from './ops/examine.js'
export * from './ops/dump.js'
export * from './ops/assemble.js'
export * from './ops/copy.js'
export {withUndo} from './undo/log.js'
export {undoRestore, type UndoResult} from './undo/restore.js'
export * from './ops/check.js'
export * from './ops/repair.js'
export * from './ops/detect.js'
