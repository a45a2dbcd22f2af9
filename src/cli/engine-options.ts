/**
 * The engine's implementation choices, made here at the edge, once per process, before any command runs:
 * the engine reads no environment (test/engine/structure.test.ts holds it to that).
 *   R5CTL_CRC=js | node-rs   the CRC32C implementation (checksum.ts selectCrc; default: the fastest that
 *                            passes its self-check)
 *   R5CTL_PARITY=js          the JS parity code instead of the WebAssembly SIMD kernels (parity.ts selectParity)
 * The flush policy (--no-flush) is per device: src/cli/open.ts opens every device with it.
 */
import {selectCrc, type CrcChoice} from '../engine/checksum.js'
import {selectParity, type ParityChoice} from '../engine/parity.js'

export interface EngineChoices {
  crc: CrcChoice
  parity: ParityChoice
}

/** The choices an environment asks for (unknown values: the defaults). */
export function engineChoices(env: NodeJS.ProcessEnv): EngineChoices {
  const crc = env.R5CTL_CRC
  return {crc: crc === 'js' || crc === 'node-rs' ? crc : 'auto', parity: env.R5CTL_PARITY === 'js' ? 'js' : 'wasm'}
}

/** Fix the engine's implementations for this process. */
export function configureEngine(choices: EngineChoices): void {
  selectCrc(choices.crc)
  selectParity(choices.parity)
}
