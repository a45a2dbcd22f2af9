/**
 * oclif-free command definitions. Each command lives in src/impl/<id>.ts as a `spec` (help texts, flags,
 * args) plus a `run(ctx, flags, argv, args)` body. src/cli/oclif-defs.ts turns a spec into oclif's flag and
 * arg definitions, once for both paths: src/commands/<id>.ts builds the oclif command class from them (help,
 * manifest, autocomplete, the normal path), and src/cli/fast.ts hands them to oclif's parser to run the same
 * body without loading oclif's Config when the command line is plain (see bin/run.js). A flag is declared
 * here and nowhere else.
 *
 * The kinds of flag are those oclif-defs.ts translates: boolean, string and integer flags with char,
 * aliases, required, default, options, min and dependsOn; string args.
 */
import {UsageError} from '../engine/errors.js'

/** What every kind of flag has. */
interface FlagBase {
  description: string
  char?: string
  aliases?: readonly string[]
  helpGroup?: string
  dependsOn?: readonly string[]
}

export interface BooleanFlag extends FlagBase {
  type: 'boolean'
}

export interface StringFlag extends FlagBase {
  type: 'string'
  required?: boolean
  default?: string
  options?: readonly string[]
}

export interface IntegerFlag extends FlagBase {
  type: 'integer'
  required?: boolean
  default?: number
  min?: number
}

export type FlagSpec = BooleanFlag | StringFlag | IntegerFlag

export interface ArgSpec {
  description: string
  required?: boolean
}

export interface CommandSpec {
  summary: string
  description: string
  examples: readonly string[]
  /** false: any number of positional arguments (the devices) */
  strict: boolean
  args?: Record<string, ArgSpec>
  flags: Record<string, FlagSpec>
}

export const flag = {
  boolean: <const O extends Omit<BooleanFlag, 'type'>>(o: O): O & {type: 'boolean'} => ({type: 'boolean', ...o}),
  string: <const O extends Omit<StringFlag, 'type'>>(o: O): O & {type: 'string'} => ({type: 'string', ...o}),
  integer: <const O extends Omit<IntegerFlag, 'type'>>(o: O): O & {type: 'integer'} => ({type: 'integer', ...o}),
}

/** Flags every command has (R5Command.baseFlags); `--json` is added by oclif's enableJsonFlag. */
export const BASE_FLAGS = {
  progress: flag.boolean({description: 'show progress on stderr even when it is not a terminal', helpGroup: 'GLOBAL'}),
  'no-flush': flag.boolean({
    description: 'skip fdatasync at write barriers (page-cache speed for images you can recreate; not safe against a host crash)',
    helpGroup: 'GLOBAL',
  }),
}

type Value<F> = F extends {type: 'boolean'} ? boolean : F extends {type: 'integer'} ? number : string
type Given<F> = F extends {required: true} ? Value<F> : F extends {default: string | number} ? Value<F> : Value<F> | undefined

/** The parsed flags a body receives: absent booleans and options without a default are undefined, as in oclif. */
export type FlagValues<S extends Record<string, FlagSpec>> = {[K in keyof S]: Given<S[K]>} & {
  json?: boolean
  progress?: boolean
  'no-flush'?: boolean
}

/** What a body may use of its command: the oclif command (R5Command) and the fast path's context both provide it. */
export interface Ctx {
  /** a line on stdout, suppressed with --json (oclif's Command#log) */
  log(message?: string): void
  jsonEnabled(): boolean
  /** raise process.exitCode to `code` without an error (output is still printed) */
  setExit(code: number): void
  progressEnabled(flag: boolean | undefined): boolean
  /** a usage-type failure (oclif's Command#error): reported as code "usage" */
  error(message: string, options: {exit: number}): never
}

export type RunFn<S extends CommandSpec> = (
  ctx: Ctx,
  flags: FlagValues<S['flags']>,
  argv: string[],
  args: Record<string, string | undefined>,
) => Promise<unknown>

/** One command: `spec` and `run`, as exported by every src/impl/<id>.ts. */
export interface CommandImpl<S extends CommandSpec = CommandSpec> {
  spec: S
  run: RunFn<S>
}

/**
 * A string flag given as '' (`--undo ''`, `--output ''`) is a mistake, never "not given": refused as a
 * usage error before the command runs (oclif and the fast path both call this).
 */
export function refuseEmptyFlags(flags: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(flags)) if (value === '') throw new UsageError(`--${name} needs a value (got an empty string)`)
}
