/**
 * Kernel interop harness: runs the real Linux 6.1 md driver (Debian's linux-image-6.1.0-NN-amd64)
 * under qemu (TCG) on image files, with a guest shell script and the serial console as its output.
 *
 * - prerequisites: host packages (qemu-system-x86, busybox-static, mdadm, kmod; installed with
 *   scripts/kernel/prereqs.sh when missing), the kernel package (apt-get download + dpkg-deb -x into
 *   a cache folder; nothing goes into the host's /boot).
 * - an initramfs built once per (kernel, busybox, mdadm, init) and cached: busybox, mdadm with the
 *   libraries ldd names and the loader, the raid456 + virtio_blk module chain (closure from
 *   modules.dep) and /init. Each boot appends a small uncompressed cpio with the scenario script
 *   and its files (the kernel unpacks concatenated archives), so the cached part never changes.
 * - disks: `-drive if=virtio,format=raw,cache=unsafe,serial=NAME` so the guest finds each image as
 *   /dev/r5/NAME whatever the enumeration order; optional snapshot=on and
 *   throttling.bps-write per disk.
 * - power cut: the guest runs `powercut` (prints a marker); the host SIGKILLs qemu the moment the
 *   marker arrives. Every write the guest saw complete is in the files, nothing else.
 *
 * This module has no mocha dependency; scripts/kernel/boot.mjs uses it by hand
 * (`node scripts/kernel/boot.mjs -e "mdadm --examine $(disk m0)" m0.img`).
 */
import {spawn, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'

export const REPO_ROOT = findRepoRoot()

function findRepoRoot(): string {
  let d = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (fs.existsSync(path.join(d, 'package.json')) && fs.existsSync(path.join(d, 'bin', 'run.js'))) return d
    const up = path.dirname(d)
    if (up === d) throw new Error('cannot find the r5ctl repository root')
    d = up
  }
}

/** A prerequisite is missing (no qemu, no kernel package, ...): the suite skips, or fails with R5CTL_REQUIRE_KERNEL=1. */
export class PrereqError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PrereqError'
  }
}

export interface KernelEnv {
  /** the Debian package, e.g. linux-image-6.1.0-56-amd64 */
  package: string
  /** its Debian version, e.g. 6.1.192-2 */
  packageVersion: string
  /** uname -r in the guest, e.g. 6.1.0-56-amd64 */
  release: string
  vmlinuz: string
  /** the cached base initramfs (uncompressed newc cpio) */
  initramfs: string
  modules: string[]
  mdadmVersion: string
  busyboxVersion: string
  qemuVersion: string
  cacheDir: string
  /** seconds spent preparing (download, extraction, initramfs) in this process; 0 when all cached */
  preparedSeconds: number
}

const log = (s: string) => {
  if (process.env.R5CTL_KERNEL_QUIET !== '1') process.stderr.write(`      [kernel] ${s}\n`)
}

function run(
  cmd: string,
  args: string[],
  opts: {cwd?: string; allowFail?: boolean; env?: NodeJS.ProcessEnv} = {},
): {code: number; stdout: string; stderr: string} {
  const r = spawnSync(cmd, args, {cwd: opts.cwd, encoding: 'utf8', env: opts.env ?? process.env, maxBuffer: 64 << 20})
  if (r.error) {
    if (opts.allowFail) return {code: -1, stdout: '', stderr: String(r.error)}
    throw new PrereqError(`${cmd}: ${r.error.message}`)
  }
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync's stdout/stderr are null when the child could not be started
  const res = {code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? ''}
  if (res.code !== 0 && !opts.allowFail)
    throw new PrereqError(`${cmd} ${args.join(' ')} failed (${res.code}): ${res.stderr.trim().split('\n').slice(-3).join(' / ')}`)
  return res
}

function which(cmd: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    const p = path.join(d, cmd)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      /* next */
    }
  }
  return null
}

export function cacheRoot(): string {
  if (process.env.R5CTL_KERNEL_CACHE) return process.env.R5CTL_KERNEL_CACHE
  const base = process.env.XDG_CACHE_HOME || (os.homedir() ? path.join(os.homedir(), '.cache') : '')
  const candidates = [base && path.join(base, 'r5ctl-kernel'), path.join(os.tmpdir(), `r5ctl-kernel-${process.getuid?.() ?? 0}`)].filter(Boolean)
  for (const c of candidates) {
    try {
      fs.mkdirSync(c, {recursive: true})
      fs.accessSync(c, fs.constants.W_OK)
      return c
    } catch {
      /* next */
    }
  }
  throw new PrereqError('no writable cache folder for the kernel (set R5CTL_KERNEL_CACHE)')
}

/** Host packages: install what is missing (apt-get, non-interactive) via scripts/kernel/prereqs.sh. */
export function ensureHostPackages(): void {
  const script = path.join(REPO_ROOT, 'scripts', 'kernel', 'prereqs.sh')
  const r = spawnSync('sh', [script], {encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe']})
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync's stdout/stderr are null when the child could not be started
  const stderr = r.stderr ?? ''
  if (r.status !== 0) throw new PrereqError(`host packages missing: ${stderr.trim().split('\n').slice(-2).join(' / ') || 'prereqs.sh failed'}`)
  for (const t of ['qemu-system-x86_64', 'mdadm', 'depmod', 'dpkg-deb'])
    if (!which(t)) throw new PrereqError(`${t} not found after installing host packages`)
  if (!fs.existsSync('/bin/busybox')) throw new PrereqError('/bin/busybox (busybox-static) not found')
}

/** The versioned kernel package linux-image-amd64 depends on (apt-cache; apt-get update once if the lists are empty). */
function resolveKernelPackage(): string | null {
  if (process.env.R5CTL_KERNEL_PACKAGE) return process.env.R5CTL_KERNEL_PACKAGE
  const ask = () => {
    const r = run('apt-cache', ['depends', 'linux-image-amd64'], {allowFail: true})
    const m = /Depends:\s*(linux-image-[0-9][^\s]*)/.exec(r.stdout)
    return m ? m[1] : null
  }
  let p = ask()
  if (!p && process.getuid?.() === 0) {
    log('apt-cache knows no linux-image-amd64: apt-get update')
    run('apt-get', ['update', '-q'], {allowFail: true, env: {...process.env, DEBIAN_FRONTEND: 'noninteractive'}})
    p = ask()
  }
  return p
}

// ext4: the guest mounts a filesystem that `r5ctl serve` exports over NBD
const MODULE_TARGETS = ['crc32c_generic', 'crc32c-intel', 'raid456', 'virtio_pci', 'virtio_blk', 'ext4']
/** loaded when present and loadable; the guest goes on without them */
const OPTIONAL_MODULES = new Set(['crc32c-intel'])

/** Download + extract the kernel package into the cache (once per package version). */
function ensureKernel(root: string): {dir: string; pkg: string; version: string; release: string} {
  const pkg = resolveKernelPackage()
  const cached = fs.readdirSync(root).filter(d => fs.existsSync(path.join(root, d, 'kernel.json')))
  const pick = (want: string | null) =>
    cached
      .map(d => ({d, meta: JSON.parse(fs.readFileSync(path.join(root, d, 'kernel.json'), 'utf8'))}))
      // a cache extracted for other module targets lacks some modules: extract again
      .filter(x => (!want || x.meta.package === want) && String(x.meta.targets) === String(MODULE_TARGETS))
      .sort((a, b) => fs.statSync(path.join(root, b.d)).mtimeMs - fs.statSync(path.join(root, a.d)).mtimeMs)
      .at(0)
  const hit = pick(pkg)
  if (hit) return {dir: path.join(root, hit.d), pkg: hit.meta.package, version: hit.meta.version, release: hit.meta.release}
  if (!pkg) {
    const any = pick(null)
    if (any) {
      log(`apt-cache cannot name the kernel package; using the cached ${any.meta.package} ${any.meta.version}`)
      return {dir: path.join(root, any.d), pkg: any.meta.package, version: any.meta.version, release: any.meta.release}
    }
    throw new PrereqError('cannot find the kernel package: `apt-cache depends linux-image-amd64` names none (no apt lists?)')
  }
  if (!/^linux-image-6\.1\./.test(pkg)) log(`warning: ${pkg} is not a 6.1 kernel; r5ctl targets the Linux 6.1 md driver`)
  const work = fs.mkdtempSync(path.join(root, '.download-'))
  try {
    log(`apt-get download ${pkg}`)
    run('apt-get', ['download', pkg], {cwd: work})
    const deb = fs.readdirSync(work).find(f => f.endsWith('.deb'))
    if (!deb) throw new PrereqError(`apt-get download ${pkg} left no .deb`)
    const version = run('dpkg-deb', ['-f', path.join(work, deb), 'Version']).stdout.trim()
    const x = path.join(work, 'x')
    run('dpkg-deb', ['-x', path.join(work, deb), x])
    const release = fs.readdirSync(path.join(x, 'lib', 'modules'))[0]
    const modRoot = path.join(x, 'lib', 'modules', release)
    if (!fs.existsSync(path.join(modRoot, 'modules.dep'))) run('depmod', ['-b', x, release])
    const dep = parseModulesDep(fs.readFileSync(path.join(modRoot, 'modules.dep'), 'utf8'))
    const order = moduleOrder(dep, MODULE_TARGETS)
    const out = path.join(work, 'kernel')
    fs.mkdirSync(path.join(out, 'modules'), {recursive: true})
    fs.copyFileSync(path.join(x, 'boot', `vmlinuz-${release}`), path.join(out, 'vmlinuz'))
    fs.copyFileSync(path.join(x, 'boot', `config-${release}`), path.join(out, 'config'))
    for (const rel of order) fs.copyFileSync(path.join(modRoot, rel), path.join(out, 'modules', path.basename(rel)))
    fs.writeFileSync(path.join(out, 'modules.list'), order.map(r => path.basename(r)).join('\n') + '\n')
    fs.writeFileSync(
      path.join(out, 'kernel.json'),
      JSON.stringify({package: pkg, version, release, targets: MODULE_TARGETS, modules: order.map(r => path.basename(r))}, null, 2) + '\n',
    )
    const dest = path.join(root, `${pkg}_${version}`)
    fs.rmSync(dest, {recursive: true, force: true})
    fs.renameSync(out, dest)
    return {dir: dest, pkg, version, release}
  } finally {
    fs.rmSync(work, {recursive: true, force: true})
  }
}

export function parseModulesDep(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const i = line.indexOf(':')
    if (i < 0) continue
    m.set(
      line.slice(0, i),
      line
        .slice(i + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    )
  }
  return m
}

/** Module files (paths relative to lib/modules/RELEASE) of the targets and their dependencies, dependencies first. */
export function moduleOrder(dep: Map<string, string[]>, targets: string[]): string[] {
  const byName = new Map<string, string>()
  for (const rel of dep.keys())
    byName.set(
      path
        .basename(rel)
        .replace(/\.ko(\.(xz|zst|gz))?$/, '')
        .replace(/-/g, '_'),
      rel,
    )
  const out: string[] = []
  const visit = (rel: string) => {
    if (out.includes(rel)) return
    for (const d of [...(dep.get(rel) ?? [])].reverse()) visit(d)
    out.push(rel)
  }
  for (const t of targets) {
    const rel = byName.get(t.replace(/-/g, '_'))
    if (!rel) {
      if (OPTIONAL_MODULES.has(t)) continue
      throw new PrereqError(`module ${t} not in the kernel package`)
    }
    if (/\.ko\.(xz|zst|gz)$/.test(rel)) throw new PrereqError(`module ${rel} is compressed; the harness expects plain .ko`)
    visit(rel)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// initramfs

/** newc cpio writer: enough for regular files, directories, symlinks and device nodes. */
export class Cpio {
  private parts: Buffer[] = []
  private ino = 1
  private dirs = new Set<string>()

  private entry(name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0]) {
    const f = (n: number) => n.toString(16).padStart(8, '0')
    const nameBuf = Buffer.from(name + '\0')
    const hdr = '070701' + [this.ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0].map(f).join('')
    const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4)
    this.parts.push(Buffer.from(hdr, 'ascii'), nameBuf, pad(110 + nameBuf.length), data, pad(data.length))
  }

  dir(name: string) {
    name = name.replace(/^\/+/, '').replace(/\/+$/, '')
    if (!name || this.dirs.has(name)) return
    this.dir(path.posix.dirname(name) === '.' ? '' : path.posix.dirname(name))
    this.dirs.add(name)
    this.entry(name, 0o040755, Buffer.alloc(0))
  }
  file(name: string, data: Buffer | string, mode = 0o644) {
    name = name.replace(/^\/+/, '')
    this.dir(path.posix.dirname(name) === '.' ? '' : path.posix.dirname(name))
    this.entry(name, 0o100000 | mode, Buffer.isBuffer(data) ? data : Buffer.from(data))
  }
  symlink(name: string, target: string) {
    name = name.replace(/^\/+/, '')
    this.dir(path.posix.dirname(name) === '.' ? '' : path.posix.dirname(name))
    this.entry(name, 0o120777, Buffer.from(target))
  }
  charDev(name: string, major: number, minor: number) {
    name = name.replace(/^\/+/, '')
    this.dir(path.posix.dirname(name) === '.' ? '' : path.posix.dirname(name))
    this.entry(name, 0o020600, Buffer.alloc(0), [major, minor])
  }
  finish(): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0))
    const b = Buffer.concat(this.parts)
    return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)])
  }
}

export const MARK_BEGIN = '@@R5 BEGIN@@'
export const MARK_END = '@@R5 END rc='
export const MARK_POWERCUT = '@@R5 POWERCUT@@'

const INIT = `#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /run/mdadm /tmp /dev/r5 /etc/mdadm
exec </dev/console >/dev/console 2>&1
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/r5/$m" 2>/tmp/insmod.err || { grep -qx "$m" /etc/r5-optional-modules || { echo "R5 insmod-failed=$m"; cat /tmp/insmod.err; }; }
done < /etc/r5-modules
want=$(cat /r5/disk-count 2>/dev/null || echo 0)
i=0
while [ "$(ls /sys/block | grep -c '^vd')" -lt "$want" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
for b in /sys/block/vd*; do
  [ -e "$b" ] || continue
  s=$(cat "$b/serial" 2>/dev/null)
  [ -n "$s" ] && ln -sf "/dev/\${b##*/}" "/dev/r5/$s"
done
echo "${MARK_BEGIN}"
cd /r5
sh /r5/scenario.sh 2>&1
rc=$?
echo "${MARK_END}$rc@@"
sync
poweroff -f
`

/** Helpers every scenario script gets (prepended). */
export const GUEST_PRELUDE = `# r5ctl kernel harness prelude
kv() { echo "R5 $1=$2"; }
disk() { echo "/dev/r5/$1"; }
powercut() { echo "${MARK_POWERCUT}"; while :; do sleep 1; done; }
md5of() { dd if="$1" bs=1M 2>/dev/null | md5sum | cut -d' ' -f1; }
`

function sha256File(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16)
}

function lddPaths(bin: string): string[] {
  const r = run('ldd', [bin], {allowFail: true})
  if (r.code !== 0) return []
  const out: string[] = []
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line)
    if (m) out.push(m[1])
  }
  return out
}

function ensureInitramfs(kdir: string, release: string): {file: string; modules: string[]} {
  const mdadm = which('mdadm')!
  const busybox = '/bin/busybox'
  const libs = lddPaths(mdadm)
  const modules = fs.readFileSync(path.join(kdir, 'modules.list'), 'utf8').split('\n').filter(Boolean)
  const key = createHash('sha256')
    .update(INIT)
    .update(release)
    .update(modules.join(','))
    .update(sha256File(mdadm))
    .update(sha256File(busybox))
    .update(libs.map(l => `${l}:${sha256File(l)}`).join(','))
    .digest('hex')
    .slice(0, 16)
  const file = path.join(kdir, `initramfs-${key}.cpio`)
  if (fs.existsSync(file)) return {file, modules}
  log(`building initramfs (${modules.length} modules, mdadm + ${libs.length} libraries)`)
  const c = new Cpio()
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'run', 'tmp', 'etc', 'r5', 'lib/modules/r5']) c.dir(d)
  c.charDev('dev/console', 5, 1)
  c.charDev('dev/null', 1, 3)
  c.file('bin/busybox', fs.readFileSync(busybox), 0o755)
  c.symlink('bin/sh', 'busybox')
  c.file('sbin/mdadm', fs.readFileSync(mdadm), 0o755)
  for (const l of libs) c.file(l, fs.readFileSync(fs.realpathSync(l)), 0o755)
  for (const m of modules) c.file(`lib/modules/r5/${m}`, fs.readFileSync(path.join(kdir, 'modules', m)))
  c.file('etc/r5-modules', modules.join('\n') + '\n')
  c.file('etc/r5-optional-modules', [...OPTIONAL_MODULES].map(m => `${m}.ko`).join('\n') + '\n')
  c.file('init', INIT, 0o755)
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, c.finish())
  fs.renameSync(tmp, file)
  return {file, modules}
}

let prepared: KernelEnv | null = null

/** Everything a boot needs: host packages, the kernel, the initramfs. Cached on disk and per process. */
export function prepareKernel(): KernelEnv {
  if (prepared) return prepared
  const t0 = Date.now()
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new PrereqError(`the kernel suite needs an x86-64 Linux host (this is ${process.platform}/${process.arch})`)
  ensureHostPackages()
  const root = cacheRoot()
  const k = ensureKernel(root)
  const ir = ensureInitramfs(k.dir, k.release)
  const firstLine = (s: string) => s.split('\n')[0].trim()
  prepared = {
    package: k.pkg,
    packageVersion: k.version,
    release: k.release,
    vmlinuz: path.join(k.dir, 'vmlinuz'),
    initramfs: ir.file,
    modules: ir.modules,
    mdadmVersion: firstLine(run('mdadm', ['--version'], {allowFail: true}).stderr || run('mdadm', ['--version'], {allowFail: true}).stdout),
    busyboxVersion: firstLine(run('/bin/busybox', [], {allowFail: true}).stdout),
    qemuVersion: firstLine(run('qemu-system-x86_64', ['--version']).stdout),
    cacheDir: k.dir,
    preparedSeconds: (Date.now() - t0) / 1000,
  }
  return prepared
}

// ---------------------------------------------------------------------------------------------
// booting

export interface Disk {
  /** image file on the host, or `nbd:unix:SOCKET` (an NBD export, which qemu connects to at start) */
  file: string
  /** the guest sees it as /dev/r5/NAME (virtio serial, at most 20 characters) */
  name: string
  /** throttling.bps-write (bytes/s) */
  writeBps?: number
  /** guest writes go to a throw-away overlay (snapshot=on) */
  snapshot?: boolean
  readonly?: boolean
}

export interface BootOptions {
  disks: Disk[]
  /** shell script (busybox sh) run as /r5/scenario.sh, after GUEST_PRELUDE; its cwd is /r5 */
  script: string
  /** extra files for the guest, under /r5/ (name -> content) */
  files?: Record<string, Buffer | string>
  /** whole run (boot + script), default 240 s */
  timeoutMs?: number
  /** label for the timing line */
  label?: string
  memoryMiB?: number
  /** echo the console to stderr as it arrives (also R5CTL_KERNEL_VERBOSE=1) */
  verbose?: boolean
}

export interface BootResult {
  /** what the scenario printed (between the BEGIN and END markers), \r\n normalised */
  output: string
  /** the whole serial console */
  console: string
  /** `kv NAME VALUE` lines of the scenario (last value wins) */
  kv: Record<string, string | undefined>
  /** the scenario script's exit status; null after a power cut */
  rc: number | null
  powerCut: boolean
  /** seconds from qemu start to the scenario's first line */
  bootSeconds: number
  /** seconds from qemu start to qemu's end */
  wallSeconds: number
}

export class BootError extends Error {
  constructor(
    message: string,
    readonly console: string,
  ) {
    super(`${message}\n----- guest console (last 60 lines) -----\n${console.split('\n').slice(-60).join('\n')}`)
    this.name = 'BootError'
  }
}

/** Each boot's whole console goes to R5CTL_KERNEL_LOGS (default: <tmp>/r5ctl-kernel-logs), named by its label. */
export function logDir(): string {
  const d = process.env.R5CTL_KERNEL_LOGS || path.join(os.tmpdir(), 'r5ctl-kernel-logs')
  fs.mkdirSync(d, {recursive: true})
  return d
}

function saveConsole(label: string, text: string, args: string[]): string {
  const f = path.join(logDir(), `${label.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '')}.log`)
  fs.writeFileSync(f, `# qemu-system-x86_64 ${args.join(' ')}\n${text}`)
  return f
}

/** `-drive if=none,...` (the image, cache mode, snapshot, throttling) + `-device virtio-blk-pci` (the serial the guest names it by). */
function diskArgs(d: Disk, i: number): string[] {
  const esc = (s: string) => s.replace(/,/g, ',,')
  if (!/^[A-Za-z0-9_.-]{1,20}$/.test(d.name)) throw new Error(`disk name ${d.name} must be 1-20 characters [A-Za-z0-9_.-]`)
  const file = d.file.startsWith('nbd:') ? d.file : path.resolve(d.file)
  let a = `file=${esc(file)},format=raw,if=none,id=d${i},cache=unsafe`
  if (d.snapshot) a += ',snapshot=on'
  if (d.readonly) a += ',readonly=on'
  if (d.writeBps) a += `,throttling.bps-write=${d.writeBps}`
  // the root bus has ~29 free slots: from the 25th disk on, disks go behind PCI-PCI bridges (31 each)
  const bus =
    i < DISKS_ON_ROOT_BUS ? '' : `,bus=br${Math.floor((i - DISKS_ON_ROOT_BUS) / 31)},addr=0x${(((i - DISKS_ON_ROOT_BUS) % 31) + 1).toString(16)}`
  return ['-drive', a, '-device', `virtio-blk-pci,drive=d${i},serial=${d.name}${bus}`]
}

const DISKS_ON_ROOT_BUS = 24

function bridgeArgs(disks: number): string[] {
  const out: string[] = []
  for (let b = 0; b * 31 < disks - DISKS_ON_ROOT_BUS; b++) out.push('-device', `pci-bridge,id=br${b},chassis_nr=${b + 1}`)
  return out
}

/** Boot the guest with the disks, run the script, return its output. A power cut ends the run early. */
export async function boot(env: KernelEnv, o: BootOptions): Promise<BootResult> {
  const verbose = o.verbose || process.env.R5CTL_KERNEL_VERBOSE === '1'
  const names = new Set<string>()
  for (const d of o.disks) {
    if (names.has(d.name)) throw new Error(`disk name ${d.name} used twice`)
    names.add(d.name)
    if (!d.file.startsWith('nbd:') && !fs.existsSync(d.file)) throw new Error(`disk image ${d.file} does not exist`)
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'r5ctl-boot-'))
  const initrd = path.join(tmp, 'initrd.cpio')
  const c = new Cpio()
  c.file('r5/scenario.sh', GUEST_PRELUDE + o.script, 0o755)
  c.file('r5/disk-count', String(o.disks.length))
  for (const [name, data] of Object.entries(o.files ?? {})) c.file(`r5/${name}`, data)
  fs.copyFileSync(env.initramfs, initrd)
  fs.appendFileSync(initrd, c.finish())
  const args = [
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-smp',
    '2',
    '-m',
    String(o.memoryMiB ?? 1024),
    '-nographic',
    '-no-reboot',
    '-nic',
    'none',
    '-vga',
    'none',
    '-kernel',
    env.vmlinuz,
    '-initrd',
    initrd,
    '-append',
    'console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init',
  ]
  args.push(...bridgeArgs(o.disks.length))
  o.disks.forEach((d, i) => args.push(...diskArgs(d, i)))
  const t0 = Date.now()
  // set by the guest's output handlers, which control-flow analysis does not follow
  let tBegin = 0 as number
  let powerCut = false as boolean
  let text = ''
  let timedOut = false as boolean
  try {
    await new Promise<void>((resolve, reject) => {
      const q = spawn('qemu-system-x86_64', args, {stdio: ['pipe', 'pipe', 'pipe']})
      const timer = setTimeout(() => {
        timedOut = true
        q.kill('SIGKILL')
      }, o.timeoutMs ?? 240_000)
      let scanFrom = 0
      const onData = (chunk: Buffer) => {
        text += chunk.toString('latin1')
        if (verbose) process.stderr.write(chunk)
        if (!tBegin && text.includes(MARK_BEGIN)) tBegin = Date.now()
        if (!powerCut && text.indexOf(MARK_POWERCUT, scanFrom) >= 0) {
          // the power cut: nothing the guest does after this point reaches the files
          q.kill('SIGKILL')
          powerCut = true
        }
        scanFrom = Math.max(0, text.length - MARK_POWERCUT.length)
      }
      q.stdout.on('data', onData)
      let stderr = ''
      q.stderr.on('data', (b: Buffer) => {
        stderr += b.toString()
      })
      q.on('error', e => {
        clearTimeout(timer)
        reject(e)
      })
      q.on('close', code => {
        clearTimeout(timer)
        if (stderr.trim() && !powerCut) text += `\n[qemu stderr] ${stderr.trim()}\n`
        if (code !== 0 && !powerCut && !timedOut) text += `\n[qemu exited ${code}]\n`
        resolve()
      })
    })
  } finally {
    fs.rmSync(tmp, {recursive: true, force: true})
  }
  const wallSeconds = (Date.now() - t0) / 1000
  const consoleText = text.replace(/\r\n/g, '\n').replace(/\r/g, '')
  if (timedOut || !consoleText.includes(MARK_BEGIN)) saveConsole(o.label ?? 'boot', consoleText, args)
  if (timedOut) throw new BootError(`guest timed out after ${(o.timeoutMs ?? 240_000) / 1000} s`, consoleText)
  const b = consoleText.indexOf(MARK_BEGIN)
  if (b < 0) throw new BootError('the guest never reached the scenario (no BEGIN marker)', consoleText)
  let output = consoleText.slice(b + MARK_BEGIN.length + 1)
  let rc: number | null = null
  const e = output.indexOf(MARK_END)
  if (e >= 0) {
    rc = Number(/^(\d+)/.exec(output.slice(e + MARK_END.length))?.[1] ?? NaN)
    output = output.slice(0, e)
  } else if (powerCut) {
    output = output.slice(0, output.indexOf(MARK_POWERCUT))
  } else {
    throw new BootError('the guest stopped before the scenario ended (no END marker)', consoleText)
  }
  const kv: Record<string, string | undefined> = {}
  for (const line of output.split('\n')) {
    const m = /^R5 ([A-Za-z0-9_.-]+)=(.*)$/.exec(line)
    if (m) kv[m[1]] = m[2].trim()
  }
  const bootSeconds = ((tBegin || Date.now()) - t0) / 1000
  const logFile = saveConsole(o.label ?? 'boot', consoleText, args)
  if (o.label)
    log(`${o.label}: boot ${bootSeconds.toFixed(1)} s, total ${wallSeconds.toFixed(1)} s${powerCut ? ' (power cut)' : ''}; console in ${logFile}`)
  return {output, console: consoleText, kv, rc, powerCut, bootSeconds, wallSeconds}
}
