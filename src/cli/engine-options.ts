/**
 * The engine's implementation choices, read from the environment here at the edge and handed to every
 * operation in its options (EngineOptions): the engine reads no environment (test/engine/structure.test.ts
 * holds it to that).
 *   R5CTL_CRC=js | node-rs   the CRC32C implementation (default: the fastest that passes its self-check)
 *   R5CTL_PARITY=js          the JS parity code instead of the WebAssembly SIMD kernels
 * The flush policy (--no-flush) is per device: src/cli/open.ts opens every device with it.
 */
import {computeFor, type EngineOptions} from '../engine/compute.js'

/** The options an environment asks for (unknown values: the defaults). */
export function engineOptions(env: NodeJS.ProcessEnv = process.env): Required<EngineOptions> {
  const crc = env.R5CTL_CRC
  return {compute: computeFor({crc: crc === 'js' || crc === 'node-rs' ? crc : 'auto', parity: env.R5CTL_PARITY === 'js' ? 'js' : 'wasm'})}
}
