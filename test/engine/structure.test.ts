/**
 * The engine's shape, checked on its sources: each job in one place. One meta block decoder, one
 * stripe state machine, one replay (plan, then apply); the engine imports nothing from the CLI,
 * the commands or the renderers; the addon only computes: no threads, no format rules, no work
 * stealing and no polling. Environment variables the engine still reads are listed here by
 * name, so that a new one fails this test.
 */
import assert from 'node:assert/strict'
import * as fs from 'node:fs'
import * as path from 'node:path'
import {ROOT} from '../helpers/cli.js'

function sources(dir: string, ext: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const entry of fs.readdirSync(dir, {withFileTypes: true, recursive: true})) {
    if (!entry.isFile() || !entry.name.endsWith(ext)) continue
    const file = path.join(entry.parentPath, entry.name)
    out.set(path.relative(ROOT, file), fs.readFileSync(file, 'utf8'))
  }
  return out
}

/** files (relative to the root) whose text matches `re`, with the number of matches */
function where(files: Map<string, string>, re: RegExp): string[] {
  const hits: string[] = []
  for (const [file, text] of files) {
    const n = [...text.matchAll(new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g'))].length
    if (n > 0) hits.push(`${file} (${n})`)
  }
  return hits
}

describe('engine structure', () => {
  const engine = sources(path.join(ROOT, 'src', 'engine'), '.ts')
  const native = sources(path.join(ROOT, 'native'), '.c')

  it('has one meta block decoder (format/meta.ts decodeMeta)', () => {
    assert.deepEqual(where(engine, /export function decode\w*Meta\w*\(/), ['src/engine/format/meta.ts (2)'])
    // decodeMetaBlock is the object view over decodeMeta, not a second parser
    const meta = engine.get('src/engine/format/meta.ts')!
    const from = meta.indexOf('export function decodeMetaBlock(')
    const body = meta.slice(from, meta.indexOf('\n}\n', from))
    assert.match(body, /decodeMeta\(block/)
    assert.doesNotMatch(body, /getUint16|getUint32/, 'decodeMetaBlock reads no fields itself')
  })

  it('has one stripe state machine and one replay: scan -> stripes -> plan -> apply', () => {
    assert.deepEqual(where(engine, /class StripeMachine\b/), ['src/engine/journal/stripes.ts (1)'])
    // the FLUSH rule (a stripe forgotten) is applied in one place
    assert.deepEqual(where(engine, /\bstates\.drop\(/), ['src/engine/journal/stripes.ts (1)'])
    assert.deepEqual(where(engine, /export function planRecovery\(/), ['src/engine/journal/plan.ts (1)'])
    assert.deepEqual(where(engine, /export function applyRecovery\(/), ['src/engine/journal/writeout.ts (1)'])
    // cached stripes go to the members in one place, their parity logged first (recover, reclaim and a full ring alike);
    // writeout.ts writes without logged parity only the stripes whole in the log (first) and those no room is left for (last)
    assert.deepEqual(where(engine, /\bapplyDataOnly\(/), ['src/engine/journal/apply.ts (1)', 'src/engine/journal/writeout.ts (2)'])
    for (const gone of ['recoverStreaming', 'LogWindow', 'walkMetaNative', 'setReplayWindow', 'decodeMetaColumns'])
      assert.deepEqual(where(engine, new RegExp(`\\b${gone}\\b`)), [], gone)
  })

  it('imports nothing from src/cli, src/commands, src/impl or src/render', () => {
    assert.deepEqual(where(engine, /from '(?:\.\.\/)+(?:cli|commands|impl|render)\//), [])
  })

  it('reads no environment: the CLI chooses the implementations (src/cli/engine-options.ts)', () => {
    assert.deepEqual(where(engine, /\bprocess\.env\b|\bprocess\[['"]env['"]\]/), [])
  })

  it('has no switch callers flip: no mutable static field, no set*Backend', () => {
    // `static x = ...` without readonly is state every caller shares (as FileDevice.syncOnFlush was)
    assert.deepEqual(where(engine, /^\s*(?:public\s+|private\s+|protected\s+)?static\s+(?!readonly\b|async\b|get\b|set\b)\w+\s*[:=]/m), [])
    assert.deepEqual(where(engine, /export function set\w*Backend\b|\blet useWasm\b/), [])
  })

  it('has no module state that decides behaviour: the implementations are a value each operation takes (compute.ts)', () => {
    assert.deepEqual(where(engine, /export function select\w*\(|\bparityInUse\b|\bcrcBackend\(/), [])
    // scratch belongs to the operation that uses it; the two module-level `let`s left are caches that
    // change no result (the compiled WASM module, and one spare arena so that consecutive writes do not
    // each reserve a WASM memory): listed, so that a new one is looked at
    const lets = [...engine].flatMap(([file, text]) => [...text.matchAll(/^(?:export )?let (\w+)/gm)].map(m => `${file}: ${m[1]}`)).sort()
    assert.deepEqual(lets, ['src/engine/parity-arena.ts: spare', 'src/engine/parity-wasm.ts: compiled'])
  })

  it('opens no path outside the device module: operations take DeviceRefs the CLI made (src/cli/open.ts)', () => {
    // FileDevice.open / createSparse and FileRef (which calls them) belong to device.ts alone
    assert.deepEqual(where(engine, /\bFileDevice\.(?:open|createSparse)\(|\bnew FileRef\(/), ['src/engine/device.ts (2)'])
    // fs.openSync: device.ts (devices), record-file.ts (the undo file as a RecordFileRef the CLI names)
    // and the lock on a loop device's backing file (lock.ts, called by FileDevice.open)
    assert.deepEqual(where(engine, /\bfs\.openSync\(/), ['src/engine/device.ts (2)', 'src/engine/lock.ts (1)', 'src/engine/record-file.ts (3)'])
    // no other engine file touches the file system at all
    assert.deepEqual(where(engine, /from 'node:fs'/), [
      'src/engine/device.ts (1)',
      'src/engine/identity.ts (1)',
      'src/engine/lock.ts (1)',
      'src/engine/record-file.ts (1)',
    ])
    // nor does any other file ask whether a path exists, make or remove one (identity.ts: what a path is, for device.ts)
    assert.deepEqual(where(engine, /\bfs\.(?:existsSync|rmSync|statSync|ftruncateSync)\(/), [
      'src/engine/device.ts (5)',
      'src/engine/identity.ts (1)',
      'src/engine/record-file.ts (1)',
    ])
    // a device is never a string: no `typeof ... === 'string'` tests on sources
    assert.deepEqual(where(engine, /typeof (?:src|p|s|d) [!=]== 'string'/), [])
  })

  it('the addon has no meta walk, no work stealing and no polling', () => {
    for (const re of [/walkMeta|walk_meta|walk_block/, /steal/i, /sched_yield|_mm_pause|cpu_relax/, /META_MAGIC|0x6433c509/])
      assert.deepEqual(where(native, re), [], String(re))
  })

  it('the addon is pure compute: no threads and no file I/O', () => {
    for (const re of [/pthread/, /pwrite|writev|\bwrite\(/, /uv_queue_work|napi_create_async_work/])
      assert.deepEqual(where(native, re), [], String(re))
    assert.doesNotMatch(fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8'), /pthread/)
  })
})
