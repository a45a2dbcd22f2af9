#!/usr/bin/env node
// Writes oclif.manifest.json (what `oclif manifest` writes) from the built commands in dist/src/commands.
// With it, the CLI reads every command's id, flags and help from one JSON file at start-up instead of
// importing every command module (and through them the engine). Run by `npm run build`, after tsc; the
// file is ignored by git and shipped in the package ("files"). Without it oclif still works, just slower.
import {Plugin} from '@oclif/core'
import {readFileSync, renameSync, writeFileSync} from 'node:fs'
import {join, dirname} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const plugin = new Plugin({root, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true})
await plugin.load()
const file = join(root, 'oclif.manifest.json')
const text = JSON.stringify(plugin.manifest, null, 2) + '\n'
let old = null
try { old = readFileSync(file, 'utf8') } catch {}
// unchanged: leave the file alone; changed: write a temp file and rename it over, so that a CLI starting
// meanwhile (tests running in parallel) reads the old manifest or the new one, never half of one
if (old !== text) {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, text)
  renameSync(tmp, file)
}
console.log(`wrote ${Object.keys(plugin.manifest.commands).length} commands to oclif.manifest.json (version ${plugin.manifest.version})`)
