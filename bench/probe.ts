/**
 * Preloaded into one untimed r5ctl run per operation (`node --import dist/bench/probe.js bin/run.js …`)
 * when R5BENCH_PROBE names an output file. At exit it writes, as JSON:
 *   maxRssKiB  process.resourceUsage().maxRSS: the peak RSS of this process, i.e. of r5ctl itself
 *   syncs      fdatasync/fsync calls per file path (r5ctl's only barrier is FileDevice.flush, which
 *              calls fs.fdatasyncSync, so wrapping fs counts every barrier it issues)
 * Timed runs never load it: they are plain `node bin/run.js …`.
 */
import fs from 'node:fs'
import {syncBuiltinESMExports} from 'node:module'

const out = process.env.R5BENCH_PROBE
if (out) {
  const paths = new Map<number, string>()
  const syncs: Record<string, number> = {}
  const openSync = fs.openSync
  fs.openSync = (...a: Parameters<typeof fs.openSync>) => {
    const fd = openSync(...a)
    paths.set(fd, String(a[0]))
    return fd
  }
  const count = (f: (fd: number) => void) => (fd: number) => {
    const p = paths.get(fd) ?? `fd ${fd}`
    syncs[p] = (syncs[p] ?? 0) + 1
    f(fd)
  }
  fs.fdatasyncSync = count(fs.fdatasyncSync)
  fs.fsyncSync = count(fs.fsyncSync)
  syncBuiltinESMExports()
  process.on('exit', () => fs.writeFileSync(out, JSON.stringify({maxRssKiB: process.resourceUsage().maxRSS, syncs})))
}
