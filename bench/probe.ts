/**
 * Preloaded into one untimed r5ctl run per operation (`node --import dist/bench/probe.js bin/run.js …`)
 * when R5BENCH_PROBE names an output file. At exit it writes, as JSON:
 *   maxRssKiB  the peak RSS of this process, i.e. of r5ctl itself (VmHWM; maxRSS where /proc is absent)
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
  process.on('exit', () => fs.writeFileSync(out, JSON.stringify({maxRssKiB: peakRssKiB(), syncs})))
}

/**
 * This process's own peak: VmHWM of its address space. getrusage's maxRSS survives exec, so a
 * child forked from a large parent would report the parent's size (Linux keeps the larger).
 */
function peakRssKiB(): number {
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(fs.existsSync('/proc/self/status') ? fs.readFileSync('/proc/self/status', 'utf8') : '')
  return hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS
}
