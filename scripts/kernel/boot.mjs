#!/usr/bin/env node
// Boot the kernel-suite guest by hand: run a shell script against image files under Linux 6.1.
// Needs a build (npm run build). Each image is /dev/r5/<name> in the guest (name = file name
// without extension); the script may call `powercut` to end the run with a simulated power cut.
//
//   node scripts/kernel/boot.mjs [--snapshot] [--throttle NAME=BYTES_PER_S]... SCRIPT.sh IMG...
//   node scripts/kernel/boot.mjs -e 'mdadm --examine $(disk m0)' m0.img
import * as fs from 'node:fs'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const {prepareKernel, boot} = await import(path.join(root, 'dist', 'test', 'kernel', 'harness.js'))

const args = process.argv.slice(2)
let snapshot = false
let script
const throttle = {}
const images = []
while (args.length) {
  const a = args.shift()
  if (a === '--snapshot') snapshot = true
  else if (a === '--throttle') {
    const [n, v] = args.shift().split('=')
    throttle[n] = Number(v)
  } else if (a === '-e') script = args.shift()
  else if (script === undefined) script = fs.readFileSync(a, 'utf8')
  else images.push(a)
}
if (script === undefined) {
  console.error('usage: boot.mjs [--snapshot] [--throttle NAME=BPS]... (SCRIPT.sh | -e COMMANDS) IMG...')
  process.exit(2)
}
const env = prepareKernel()
const disks = images.map(f => {
  const name = path.basename(f).replace(/\.[^.]*$/, '')
  return {file: f, name, snapshot, writeBps: throttle[name]}
})
const r = await boot(env, {disks, script, label: 'boot.mjs', timeoutMs: 600_000})
process.stdout.write(r.output)
console.error(`[boot ${r.bootSeconds.toFixed(1)} s, total ${r.wallSeconds.toFixed(1)} s${r.powerCut ? ', power cut' : `, exit ${r.rc}`}]`)
process.exit(r.powerCut ? 0 : r.rc ?? 1)
