import {type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs} from '../cli/open.js'
import {detectArray, type DetectResult} from '../engine/index.js'
import {EXIT} from '../engine/errors.js'
import {renderDetect} from '../render/detect.js'

export const spec = {
  summary: "Find an array's lost geometry from its members' content (superblocks zeroed or overwritten); writes nothing",
  description: `Given the devices of one array in any order, finds its journal by the r5l meta blocks on it (their
positions give its data offset, their checksums the seed the array UUID gives), and from a bounded sample of the
members' stripes the level, chunk size, layout, member order and data offset: the hypotheses whose parity holds
(RAID4/5: every stripe XORs to zero; RAID6: P and Q), whose parity pages are never empty beside data, that the
journal's records agree with, and that lay the written data out most contiguously. A surviving superblock supplies
what it states (and the array UUID, which the journal's checksums confirm or not). The candidates are ranked with
the evidence for each, and what the content cannot decide is said. Every device is opened read-only. Exit 0 when
the first candidate's parity held on every stripe checked, 4 when no candidate fits.`,
  examples: ['<%= config.bin %> detect d.img b.img j.img a.img c.img', '<%= config.bin %> detect --json /dev/sd[b-f] | jq .candidates[0]'],
  strict: false,
  flags: {},
} satisfies CommandSpec

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]): Promise<DetectResult> {
  // read-only: the flush policy does not matter
  const r = detectArray(deviceRefs(devices, flags), engineOptions())
  if (!ctx.jsonEnabled()) ctx.log(renderDetect(r))
  if (!r.found) ctx.setExit(EXIT.CORRUPT)
  return r
}
