/**
 * The implementations the engine computes with: CRC32C (checksum.ts) and parity (parity.ts). A value
 * the caller passes in (OpenOptions.compute; the CLI builds it from R5CTL_CRC and R5CTL_PARITY), so two
 * arrays in one process may use two implementations; every implementation computes the same bytes.
 */
import {DEFAULT_CRC, crcFor, type Crc, type CrcChoice} from './checksum.js'
import {DEFAULT_PARITY, parityKernels, type ParityChoice, type ParityKernels} from './parity.js'

export interface Compute {
  readonly crc: Crc
  readonly parity: ParityKernels
}

/** The fastest implementations this machine runs that pass their checks. */
export const DEFAULT_COMPUTE: Compute = {crc: DEFAULT_CRC, parity: DEFAULT_PARITY}

/** The implementations for a choice (unnamed: the defaults). */
export function computeFor(choice: {crc?: CrcChoice; parity?: ParityChoice}): Compute {
  return {crc: crcFor(choice.crc ?? 'auto'), parity: parityKernels(choice.parity ?? 'wasm')}
}

/** What every operation takes besides its own options. */
export interface EngineOptions {
  /** the implementations to compute with (default: DEFAULT_COMPUTE) */
  compute?: Compute
}
