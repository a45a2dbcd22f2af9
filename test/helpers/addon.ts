/**
 * Where the tests find the CRC32C addon and the checksum module, to load them directly or in child
 * processes (independently of how checksum.ts picks its backend), and the addon's exports loosely
 * typed: the tests also call them with wrong types and missing arguments.
 */
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url)) // dist/test/helpers
export const ADDON_PATH = path.resolve(here, '../../../build/Release/crc32c_pages.node')
export const CHECKSUM_MODULE = path.resolve(here, '../../src/engine/checksum.js')

export interface LooseAddon {
  sse42: boolean
  pages(seed: unknown, buf: unknown, out: unknown, outOff?: unknown): void
  raw(seed: unknown, buf?: unknown): number
}
