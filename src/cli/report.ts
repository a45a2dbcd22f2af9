/**
 * The error contract of shared/design/CLI.md, shared by R5Command#catch (oclif path) and src/cli/fast.ts:
 * one line `r5ctl: <what> (<device>)` on stderr plus a hint; the JSON error object on stdout with --json;
 * no stack trace unless R5CTL_DEBUG=1; exit codes from the engine's typed errors.
 */
import {R5Error, EXIT, SimulatedCrash} from '../engine/errors.js'
import {err as c} from '../render/colour.js'
import {StdoutClosed, ignoreClosedPipes, writeStdout, stdoutUsable} from '../render/stdio.js'

export function reportError(error: Error & {oclif?: {exit?: number}; exitCode?: number}, json: boolean): void {
  // a reader that went away (`| head`) is no failure: end quietly, with the exit code set so far
  if (error instanceof StdoutClosed) return
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
    // oclif's own parse errors (unknown flag, missing value) and Command#error: usage
    exitCode = error.oclif.exit === 0 ? 0 : EXIT.USAGE
    code = 'usage'
    if (exitCode === 0) return
  } else {
    exitCode = EXIT.FAILED
    code = (error as {code?: string}).code ?? 'error'
  }
  let extra: Record<string, unknown> = {}
  if (error instanceof SimulatedCrash) {
    extra = {writesDone: error.writesDone, acknowledgedBytes: error.acknowledged}
    error.message = `${error.message}; ${error.acknowledged} bytes of the write were acknowledged`
  }
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- anything can be thrown; its message may not be a string
  const message = String(error.message)
    .split('\n')
    .map(l => l.replace(/^\s*›\s*/, '').trim())
    .filter(Boolean)
    .join('; ')
  // with --json the error object goes to stdout, unless stdout is what failed: then the line goes to stderr
  let printed = false
  if (json && stdoutUsable()) {
    try {
      writeStdout(JSON.stringify({error: {code, message, device: device ?? null, hint: hint ?? null, exitCode, ...extra}}, null, 2) + '\n')
      printed = true
    } catch {}
  }
  if (!printed) {
    ignoreClosedPipes()
    process.stderr.write(`${c.red('r5ctl:')} ${message}${device ? ` (${device})` : ''}\n`)
    if (hint) process.stderr.write(`${c.dim('hint:')} ${hint}\n`)
    if (process.env.R5CTL_DEBUG === '1' && error.stack) process.stderr.write(error.stack + '\n')
  }
  process.exitCode = exitCode
}
