/**
 * Shared behaviour of every command on the oclif path: `--json`, the error contract of shared/design/CLI.md
 * (src/cli/report.ts) and exit codes from the engine's typed errors. The commands themselves are defined
 * oclif-free in src/impl/<id>.ts; `commandClass` turns one into the oclif command class that
 * src/commands/<id>.ts exports; the flag and arg definitions come from src/cli/oclif-defs.ts, which the
 * start-up fast path (src/cli/fast.ts) gives to oclif's parser as well. The error reporting is shared too.
 */
import {format, inspect} from 'node:util'
import {Command, ux} from '@oclif/core'
import {BASE_FLAGS, refuseEmptyFlags, type CommandImpl, type CommandSpec, type Ctx, type FlagValues} from './cli/spec.js'
import {oclifFlags, parserDefinitions} from './cli/oclif-defs.js'
import {reportError} from './cli/report.js'
import {writeStdout} from './render/stdio.js'

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

/**
 * A description's source line breaks are for the source's width: oclif wraps to the terminal's, so
 * only a blank line (a new paragraph) survives.
 */
function paragraphs(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map(p => p.replace(/\s*\n\s*/g, ' '))
    .join('\n\n')
}

/** The oclif command class of an oclif-free command definition (src/impl/<id>.ts). */
export function commandClass<S extends CommandSpec>(impl: CommandImpl<S>): typeof R5Command {
  const {spec, run} = impl
  const defs = parserDefinitions(spec)
  class Cmd extends R5Command {
    static summary = spec.summary
    static description = paragraphs(spec.description)
    static examples = [...spec.examples]
    static strict = defs.strict
    static args = defs.args
    static flags = defs.flags

    async run(): Promise<unknown> {
      const {flags, argv, args} = await this.parse(this.ctor)
      refuseEmptyFlags(flags)
      return run(this, flags as FlagValues<S['flags']>, argv.map(String), args)
    }
  }
  return Cmd
}
