/**
 * Shared behaviour of every command on the oclif path: `--json`, the error contract of shared/design/CLI.md
 * (src/cli/report.ts) and exit codes from the engine's typed errors. The commands themselves are defined
 * oclif-free in src/impl/<id>.ts; `commandClass` turns one into the oclif command class that
 * src/commands/<id>.ts exports. bin/run.js runs plain command lines without oclif (src/cli/fast.ts), with
 * the same definitions and the same error reporting.
 */
import {format, inspect} from 'node:util'
import {Args, Command, Flags, ux, type Interfaces} from '@oclif/core'
import {BASE_FLAGS, refuseEmptyFlags, type ArgSpec, type CommandImpl, type CommandSpec, type Ctx, type FlagSpec, type FlagValues} from './cli/spec.js'
import {reportError} from './cli/report.js'
import {writeStdout} from './render/stdio.js'

/** oclif flag definitions from our flag specs (only the keys that are set, so the manifest stays minimal). */
export function oclifFlags(specs: Record<string, FlagSpec>): Interfaces.FlagInput {
  const out: Interfaces.FlagInput = {}
  for (const [name, s] of Object.entries(specs)) {
    const {type, ...opts} = s
    // the spec's keys are a subset of oclif's flag options; oclif's generic option types cannot see which
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- optional keys may be present as undefined
    const o = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Record<string, never>
    out[name] = type === 'boolean' ? Flags.boolean(o) : type === 'integer' ? Flags.integer(o) : Flags.string(o)
  }
  return out
}

function oclifArgs(specs: Record<string, ArgSpec> | undefined): Record<string, ReturnType<typeof Args.string>> {
  const out: Record<string, ReturnType<typeof Args.string>> = {}
  for (const [name, s] of Object.entries(specs ?? {})) out[name] = Args.string({...s})
  return out
}

export abstract class R5Command extends Command implements Ctx {
  static enableJsonFlag = true
  static baseFlags = oclifFlags(BASE_FLAGS)

  /** Report a result code without an error (e.g. examine found corruption): output still printed. */
  public setExit(code: number): void {
    if (code > ((process.exitCode as number | undefined) ?? 0)) process.exitCode = code
  }

  public progressEnabled(flag: boolean | undefined): boolean {
    return Boolean(flag) || (process.stderr.isTTY && !this.jsonEnabled())
  }

  /** Command#log, through the one writer of stdout (a failure there is the command's error) */
  public log(message = '', ...args: unknown[]): void {
    if (!this.jsonEnabled()) writeStdout(format(typeof message === 'string' ? message : inspect(message), ...args) + '\n')
  }

  /** Command#logJson, which oclif calls after the command: a stdout failure is reported here */
  public logJson(json: unknown): void {
    try {
      writeStdout(ux.colorizeJson(json, {pretty: true, theme: this.config.theme?.json}) + '\n')
    } catch (error) {
      reportError(error as Error, true)
    }
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- overrides oclif's async catch(), which it awaits
  protected async catch(error: Error & {oclif?: {exit?: number}; exitCode?: number}): Promise<void> {
    reportError(error, this.jsonEnabled())
  }
}

/** The oclif command class of an oclif-free command definition (src/impl/<id>.ts). */
export function commandClass<S extends CommandSpec>(impl: CommandImpl<S>): typeof R5Command {
  const {spec, run} = impl
  class Cmd extends R5Command {
    static summary = spec.summary
    static description = spec.description
    static examples = [...spec.examples]
    static strict = spec.strict
    static args = oclifArgs(spec.args)
    static flags = oclifFlags(spec.flags)

    async run(): Promise<unknown> {
      const {flags, argv, args} = await this.parse(this.ctor)
      refuseEmptyFlags(flags)
      return run(this, flags as FlagValues<S['flags']>, argv.map(String), args)
    }
  }
  return Cmd
}
