/**
 * The engine's choices are made by the CLI (src/cli/engine-options.ts, src/cli/open.ts) and passed down:
 * R5CTL_CRC and R5CTL_PARITY still choose the implementations, on the fast path and on the oclif path,
 * and --no-flush (the per-device flush policy) changes no byte. The WASM and JS parity implementations
 * write the same bytes through the whole write path (the engine fixes one per process, so the
 * comparison is between two runs of the CLI).
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {r5ctl, ok, jsonOf, pseudoRandom, suiteTempDir} from '../helpers/cli.js'
import {createImageArray, type ImageArray} from '../helpers/array.js'

const SB = [4096, 8192] // the superblock carries the time of the update: compared apart from the rest

/** Every byte of every image but the superblock's, per image. */
function contents(a: ImageArray): Buffer[] {
  return a.all.map(f => {
    const b = fs.readFileSync(f)
    return Buffer.concat([b.subarray(0, SB[0]), b.subarray(SB[1])])
  })
}

function copyArray(a: ImageArray, dir: string): ImageArray {
  fs.mkdirSync(dir, {recursive: true})
  const to = (f: string) => path.join(dir, path.basename(f))
  for (const f of a.all) fs.copyFileSync(f, to(f))
  return {...a, dir, members: a.members.map(to), journal: to(a.journal), all: a.all.map(to)}
}

describe('e2e: implementation choices and the flush policy come from the CLI', function () {
  const tmp = suiteTempDir()
  let base: ImageArray
  let input: string

  before(function () {
    base = createImageArray(tmp.file('base'), {level: 6, raidDevices: 6, chunk: '16K', size: '4M', journalSize: '4M'})
    input = tmp.file('input.bin')
    fs.writeFileSync(input, pseudoRandom(3 * base.rowBytes + 12_288, 7))
  })

  for (const [what, env] of [
    ['fast path', {}],
    ['oclif path', {R5CTL_NO_FAST_START: '1'}],
  ] as const) {
    it(`${what}: R5CTL_CRC chooses the CRC32C implementation examine-journal reports`, () => {
      const report = (crc: string | undefined) =>
        jsonOf<{crcBackend: string}>(ok(r5ctl(['examine-journal', '--json', base.journal], {env: {...env, R5CTL_CRC: crc}}))).crcBackend
      assert.equal(report('js'), 'crc-32 (js)')
      assert.ok(['@node-rs/crc32', 'crc-32 (js)'].includes(report('node-rs')))
      assert.ok(['native addon (sse4.2, batched)', '@node-rs/crc32', 'crc-32 (js)'].includes(report(undefined)))
    })

    it(`${what}: R5CTL_PARITY=js, R5CTL_CRC=js and --no-flush write the same bytes as the defaults`, function () {
      this.timeout(120_000)
      const runs: [string, Record<string, string>, string[]][] = [
        ['default', {}, []],
        ['parity-js', {R5CTL_PARITY: 'js'}, []],
        ['crc-js', {R5CTL_CRC: 'js'}, []],
        ['no-flush', {}, ['--no-flush']],
      ]
      const results = runs.map(([name, extra, flags]) => {
        const a = copyArray(base, tmp.file(`${what.replace(' ', '-')}-${name}`))
        for (const mode of ['write-back', 'write-through'])
          ok(r5ctl(['write', ...flags, '--offset', '12K', '--input', input, '--journal-mode', mode, ...a.all], {env: {...env, ...extra}}))
        return contents(a)
      })
      for (let i = 1; i < results.length; i++)
        results[0].forEach((img, d) =>
          assert.ok(img.equals(results[i][d]), `${runs[i][0]}: ${path.basename(base.all[d])} differs from the default run`),
        )
    })
  }
})
