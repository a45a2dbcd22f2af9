/**
 * Start-up fast path (bin/run.js): runs a plain r5ctl command line without loading oclif's Config.
 *
 * Loading @oclif/core's index (config, plugins, semver, help, …) and running Config.load costs more start-up
 * than node itself. For a command line that names one of our commands, this module does what oclif's
 * Command#_run would do, with oclif's own pieces wherever the behaviour lives in them: the flag and arg
 * definitions are those of the command class (src/cli/oclif-defs.ts, from src/impl/<id>.ts), and they go
 * through oclif's parser (`@oclif/core/parser`) with the flag set Command#parse gives it (oclif's
 * aggregateFlags: --json, the base flags, the command's). The body, the `--json` output, the error reporting
 * (src/cli/report.ts) and the exit codes are the oclif path's; also `r5ctl --version`.
 *
 * Everything else returns false before anything is printed, and bin/run.js hands the command line to oclif
 * unchanged: help, plugin commands (autocomplete), unknown commands (not-found's suggestions), every parse
 * error (so that every error message is oclif's), oclif's environment variables (DEBUG, R5CTL_DEBUG,
 * R5CTL_CONTENT_TYPE, NODE_ENV=development|test), oclif settings in package.json or in its plugins that
 * could change the behaviour (hooks, themes, user plugins), a manifest oclif would warn about.
 * R5CTL_NO_FAST_START=1 turns the fast path off.
 */
import * as fs from 'node:fs'
import {createRequire} from 'node:module'
import * as os from 'node:os'
import * as path from 'node:path'
import {fileURLToPath} from 'node:url'
import {format} from 'node:util'
import type {FlagInput} from '@oclif/core/interfaces'
import {refuseEmptyFlags, type CommandImpl, type CommandSpec, type Ctx, type FlagSpec, type FlagValues} from './spec.js'
import {ignoreClosedPipes, writeStdout} from '../render/stdio.js'

/** the package root: this file is dist/src/cli/fast.js */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** Plugins that add commands (which go to oclif) but nothing that runs for ours; their hooks are checked too. */
const KNOWN_PLUGINS = new Set(['@oclif/plugin-autocomplete', '@oclif/plugin-not-found', '@oclif/plugin-help'])
const HARMLESS_HOOKS = new Set(['command_not_found', 'command_incomplete', 'plugins:postinstall', 'plugins:postuninstall', 'plugins:preinstall'])
/** package.json "oclif" keys the fast path reproduces; any other (hooks, theme, additional*Flags, …) sends every run to oclif */
const KNOWN_OCLIF_KEYS = new Set(['bin', 'dirname', 'commands', 'topicSeparator', 'plugins'])

interface PackageJson {
  name: string
  version: string
  oclif?: Record<string, unknown> & {bin?: string; dirname?: string; plugins?: unknown[]}
}

/**
 * Run `argv` (process.argv.slice(2)) if it is a plain command line; false when oclif must handle it (nothing
 * has been printed or changed then). Resolves once the command has finished; process.exitCode is set as on
 * the oclif path.
 */
export async function fastRun(argv: string[]): Promise<boolean> {
  let go: (() => Promise<void> | void) | undefined
  try {
    go = await prepare(argv)
  } catch {
    go = undefined // a surprise while deciding: oclif decides
  }
  if (!go) return false
  await go()
  return true
}

/** What to run, or undefined when oclif must handle the command line. Prints nothing, changes nothing. */
async function prepare(argv: string[]): Promise<(() => Promise<void> | void) | undefined> {
  if (argv.length === 0 || process.env.R5CTL_NO_FAST_START) return
  const id = argv[0]
  const version = id === '--version' // oclif checks this first, then --help anywhere before `--`
  if (!version && (!/^[a-z][a-z0-9-]*$/.test(id) || isHelp(argv))) return
  const pj = readPackageJson()
  if (!pj || !environmentAllows(pj) || !oclifConfigAllows(pj)) return
  if (version) return versionPrinter(pj)
  // a command in a topic (`journal add`): oclif's id joins the words with ':' (topicSeparator ' ')
  const nested = argv.length > 1 && /^[a-z][a-z0-9-]*$/.test(argv[1]) && isOurCommand(`${id}:${argv[1]}`, pj)
  if (!nested && !isOurCommand(id, pj)) return
  const module = nested ? `${id}/${argv[1]}` : id
  const input = argv.slice(nested ? 2 : 1)
  if (jsonRequested(input) && userThemeExists(pj)) return
  let impl: CommandImpl | undefined
  let report: typeof import('./report.js')
  try {
    ;[impl, report] = await Promise.all([import(`../impl/${module}.js`) as Promise<CommandImpl | undefined>, import('./report.js')])
  } catch {
    return
  }
  if (!impl?.spec || typeof impl.run !== 'function') return
  const ctx = new FastContext(input)
  const parsed = await parseCommandLine(impl.spec, input, ctx)
  if (!parsed) return
  return () => runCommand(impl, ctx, parsed, report.reportError, scopedKey(pj, 'REDIRECTED'))
}

/** oclif's helpAddition (main.js) without additional help flags: `--help` before any `--`. */
function isHelp(argv: string[]): boolean {
  for (const arg of argv) {
    if (arg === '--help') return true
    if (arg === '--') return false
  }
  return false
}

/** Command#jsonEnabled of a command with enableJsonFlag, without R5CTL_CONTENT_TYPE (which goes to oclif). */
const jsonRequested = (input: string[]): boolean => {
  const json = input.indexOf('--json')
  const dashdash = input.indexOf('--')
  return json !== -1 && (dashdash === -1 || json < dashdash)
}

/**
 * Whether oclif's root plugin has command `id`: listed in oclif.manifest.json (or .oclif.manifest.json), or
 * without a manifest, a compiled command file. A manifest oclif would warn about (unreadable, another
 * version) sends the run to oclif.
 */
function isOurCommand(id: string, pj: PackageJson): boolean {
  for (const name of ['oclif.manifest.json', '.oclif.manifest.json']) {
    let text: string
    try {
      text = fs.readFileSync(path.join(ROOT, name), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
      return false
    }
    const manifest = JSON.parse(text) as {version?: unknown; commands?: Record<string, unknown>}
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- package.json is read from disk, unchecked
    if (String(manifest.version).split('-')[0] !== String(pj.version).split('-')[0] || !manifest.commands) return false
    return Object.hasOwn(manifest.commands, id)
  }
  return fs.existsSync(path.join(ROOT, 'dist', 'src', 'commands', `${id.replaceAll(':', '/')}.js`))
}

function environmentAllows(pj: PackageJson): boolean {
  const env = process.env
  // oclif's debug output, its debug mode, --json by environment, and its development mode (ts-node, dev plugins)
  if (env.DEBUG || scoped(pj, 'DEBUG') || scoped(pj, 'CONTENT_TYPE')) return false
  if (env.NODE_ENV === 'development' || env.NODE_ENV === 'test') return false
  if (process.platform === 'win32') return false
  try {
    process.cwd() // oclif warns when the current directory is gone
  } catch {
    return false
  }
  return true
}

/** oclif's config.scopedEnvVarKey: R5CTL_<KEY> for bin r5ctl. */
function scopedKey(pj: PackageJson, key: string): string {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- package.json is read from disk, unchecked
  const bin = String(pj.oclif?.bin || pj.name)
  return `${bin.replaceAll('@', '').replaceAll(/[/-]/g, '_')}_${key}`.toUpperCase()
}

/** oclif's config.scopedEnvVar (an empty value counts as unset) */
const scoped = (pj: PackageJson, key: string): string | undefined => process.env[scopedKey(pj, key)] || undefined

function readPackageJson(): PackageJson | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson
  } catch {
    return undefined
  }
}

function oclifConfigAllows(pj: PackageJson): boolean {
  const oc = pj.oclif
  if (!oc || typeof pj.name !== 'string') return false
  for (const k of Object.keys(oc)) if (!KNOWN_OCLIF_KEYS.has(k)) return false
  if (oc.commands !== './dist/src/commands' || (oc.topicSeparator !== undefined && oc.topicSeparator !== ' ')) return false
  for (const p of oc.plugins ?? []) {
    if (typeof p !== 'string' || !KNOWN_PLUGINS.has(p)) return false
    // a plugin's init/prerun/postrun/finally hooks would run on every command
    const file = findPackageJson(p)
    if (!file) return false
    const ppj = JSON.parse(fs.readFileSync(file, 'utf8')) as {oclif?: {hooks?: Record<string, unknown>}}
    for (const h of Object.keys(ppj.oclif?.hooks ?? {})) if (!HARMLESS_HOOKS.has(h)) return false
  }
  // user plugins (oclif reads <data dir>/package.json) could add commands and hooks
  const dataDir = scoped(pj, 'DATA_DIR') || path.join(process.env.XDG_DATA_HOME || path.join(home(), '.local', 'share'), dirname(pj))
  if (fs.existsSync(path.join(dataDir, 'package.json'))) return false
  return true
}

/** <dir>/node_modules/<name>/package.json from the package root upwards (the plugins do not export package.json). */
function findPackageJson(name: string): string | undefined {
  for (let dir = ROOT; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'node_modules', name, 'package.json')
    if (fs.existsSync(file)) return file
    if (path.dirname(dir) === dir) return undefined
  }
}

const home = () => process.env.HOME || os.homedir() || os.tmpdir()
const dirname = (pj: PackageJson) => pj.oclif?.dirname || pj.name

/** A theme colours oclif's JSON output: leave such runs to oclif. */
function userThemeExists(pj: PackageJson): boolean {
  if (scoped(pj, 'DISABLE_THEME') === '1' || scoped(pj, 'DISABLE_THEME') === 'true') return false
  const configDir = scoped(pj, 'CONFIG_DIR') || path.join(process.env.XDG_CONFIG_HOME || path.join(home(), '.config'), dirname(pj))
  return fs.existsSync(path.join(configDir, 'theme.json'))
}

/** oclif's config.userAgent, as printed by `--version`; WSL detection is left to oclif. */
function versionPrinter(pj: PackageJson): (() => Promise<void>) | undefined {
  const platform = os.platform()
  if (platform === 'linux') {
    if (os.release().toLowerCase().includes('microsoft')) return
    try {
      if (fs.readFileSync('/proc/version', 'utf8').toLowerCase().includes('microsoft')) return
    } catch {}
    if (fs.existsSync('/proc/sys/fs/binfmt_misc/WSLInterop') || fs.existsSync('/run/WSL')) return
  }
  const arch = os.arch() === 'ia32' ? 'x86' : os.arch()
  return async () => {
    try {
      writeStdout(format(`${pj.name}/${pj.version || '0.0.0'} ${platform}-${arch} node-${process.version}`) + '\n')
    } catch (error) {
      ;(await import('./report.js')).reportError(error as Error, false)
    }
  }
}

interface Parsed {
  flags: Record<string, unknown>
  argv: string[]
  args: Record<string, string | undefined>
}

type AggregateFlags = (flags: FlagInput, baseFlags: FlagInput, enableJsonFlag: boolean) => FlagInput

/**
 * oclif's parse of a command line for the command of `spec`, as Command#parse runs it: the command class's
 * definitions (src/cli/oclif-defs.ts), oclif's aggregateFlags (the --json flag oclif adds), oclif's parser
 * and validation. null on any parse error (oclif reports it).
 */
export async function parseCommandLine(spec: CommandSpec, input: string[], context: object): Promise<Parsed | null> {
  const require = createRequire(import.meta.url)
  const [{parse}, {parserDefinitions}] = await Promise.all([import('@oclif/core/parser'), import('./oclif-defs.js')])
  // lib/util/aggregate-flags.js is not among @oclif/core's exports: loaded by its path next to the parser's
  // (another oclif layout throws here, and the command line goes to oclif)
  const parserDir = path.dirname(require.resolve('@oclif/core/parser'))
  const {aggregateFlags} = require(path.join(parserDir, '..', 'util', 'aggregate-flags.js')) as {aggregateFlags: AggregateFlags}
  const defs = parserDefinitions(spec)
  const flags = aggregateFlags(defs.flags, defs.baseFlags, true)
  try {
    const out = await parse([...input], {flags, args: defs.args, strict: defs.strict, context: context as Parameters<typeof parse>[1]['context']})
    return {flags: out.flags, argv: out.argv.map(String), args: out.args}
  } catch {
    return null
  }
}

/** Command#_run of oclif with R5Command's init and catch. */
async function runCommand(
  impl: CommandImpl,
  ctx: FastContext,
  parsed: Parsed,
  reportError: typeof import('./report.js').reportError,
  redirectedVar: string,
): Promise<void> {
  ignoreClosedPipes()
  // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- an environment variable is unset by deleting it
  delete process.env[redirectedVar] // Command#_run: removeEnvVar('REDIRECTED')
  let result: unknown
  try {
    refuseEmptyFlags(parsed.flags)
    result = await impl.run(ctx, parsed.flags as FlagValues<Record<string, FlagSpec>>, parsed.argv, parsed.args)
  } catch (error) {
    reportError(error as Error, ctx.jsonEnabled())
  }
  // Command#logJson: oclif's colorizeJson without a theme prints JSON.stringify(result, null, 2)
  if (result && ctx.jsonEnabled()) {
    let text: string
    try {
      text = format(JSON.stringify(result, null, 2)) + '\n'
    } catch (error) {
      // a result JSON cannot carry (a bug): oclif's handle() prints the stack and exits 1
      console.error((error as Error).stack)
      process.exit(1)
    }
    try {
      writeStdout(text)
    } catch (error) {
      reportError(error as Error, true)
    }
  }
}

class FastContext implements Ctx {
  constructor(private readonly argv: string[]) {}

  jsonEnabled(): boolean {
    return jsonRequested(this.argv)
  }

  log(message = ''): void {
    if (!this.jsonEnabled()) writeStdout(format(message) + '\n')
  }

  setExit(code: number): void {
    if (code > ((process.exitCode as number | undefined) ?? 0)) process.exitCode = code
  }

  progressEnabled(flag: boolean | undefined): boolean {
    return Boolean(flag) || (process.stderr.isTTY && !this.jsonEnabled())
  }

  error(message: string, options: {exit: number}): never {
    throw Object.assign(new Error(message), {oclif: {exit: options.exit}})
  }
}
