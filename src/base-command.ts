/**
 * Shared behaviour of every command: `--json`, the error contract of shared/design/CLI.md
 * (one line `r5ctl: <what> (<device>)` on stderr plus a hint; JSON error object on stdout with
 * --json; no stack trace unless R5CTL_DEBUG=1) and exit codes from the engine's typed errors.
 */
import {Command, Flags} from '@oclif/core'
import {R5Error, EXIT, SimulatedCrash} from './engine/errors.js'
import {err as c} from './render/colour.js'
import {FileDevice} from './engine/device.js'

export abstract class R5Command extends Command {
  static enableJsonFlag = true
  static baseFlags = {
    progress: Flags.boolean({description: 'show progress on stderr even when it is not a terminal', helpGroup: 'GLOBAL'}),
    'no-flush': Flags.boolean({description: 'skip fdatasync at write barriers (page-cache speed for images you can recreate; not safe against a host crash)', helpGroup: 'GLOBAL'}),
  }

  public async init(): Promise<void> {
    await super.init()
    if (this.argv.includes('--no-flush')) FileDevice.syncOnFlush = false
  }

  /** Report a result code without an error (e.g. examine found corruption): output still printed. */
  protected setExit(code: number): void {
    if (code > (process.exitCode as number ?? 0)) process.exitCode = code
  }

  protected progressEnabled(flag: boolean | undefined): boolean {
    return Boolean(flag) || (process.stderr.isTTY && !this.jsonEnabled())
  }

  protected async catch(error: Error & {oclif?: {exit?: number}; exitCode?: number}): Promise<any> {
    let exitCode: number
    let code = 'error'
    let device: string | undefined
    let hint: string | undefined
    if (error instanceof R5Error) {
      exitCode = error.exitCode
      code = error.code
      device = error.device
      hint = error.hint
    } else if (error.oclif?.exit !== undefined) {
      // oclif's own parse errors (unknown flag, missing value): usage
      exitCode = error.oclif.exit === 0 ? 0 : EXIT.USAGE
      code = 'usage'
      if (exitCode === 0) return
    } else {
      exitCode = EXIT.FAILED
      code = (error as any).code ?? 'error'
    }
    let extra: Record<string, unknown> = {}
    if (error instanceof SimulatedCrash) {
      extra = {writesDone: error.writesDone, acknowledgedBytes: error.acknowledged}
      error.message = `${error.message}; ${error.acknowledged} bytes of the write were acknowledged`
    }
    const message = String(error.message).split('\n').map(l => l.replace(/^\s*›\s*/, '').trim()).filter(Boolean).join('; ')
    if (this.jsonEnabled()) {
      process.stdout.write(JSON.stringify({error: {code, message, device: device ?? null, hint: hint ?? null, exitCode, ...extra}}, null, 2) + '\n')
    } else {
      process.stderr.write(`${c.red('r5ctl:')} ${message}${device ? ` (${device})` : ''}\n`)
      if (hint) process.stderr.write(`${c.dim('hint:')} ${hint}\n`)
      if (process.env.R5CTL_DEBUG === '1' && error.stack) process.stderr.write(error.stack + '\n')
    }
    process.exitCode = exitCode
  }
}

/** Positional device list: every command takes devices in any order. */
export function devicesFrom(argv: unknown[]): string[] {
  return argv.map(String)
}
