/**
 * Typed errors. Every failure the engine can report maps to exactly one exit code of the CLI
 * contract (shared/design/CLI.md), so commands never decide codes themselves.
 */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  REFUSED: 3,
  CORRUPT: 4,
  DIRTY: 5,
  CRASH: 75,
  /** write --crash-after N: the write completed in N device writes or fewer, no power cut happened */
  NO_CRASH: 76,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

export class R5Error extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** the device the problem is about, printed as `(device)` */
    readonly device?: string,
    /** what the operator can do next */
    readonly hint?: string,
    /** a stable machine-readable code for --json */
    readonly code: string = 'error',
  ) {
    super(message)
    this.name = 'R5Error'
  }
}

export class UsageError extends R5Error {
  constructor(message: string, hint?: string, device?: string) {
    super(message, EXIT.USAGE, device, hint, 'usage')
  }
}

export class IoError extends R5Error {
  constructor(message: string, device?: string, hint?: string) {
    super(message, EXIT.FAILED, device, hint, 'io')
  }
}

export class RefusedError extends R5Error {
  constructor(message: string, device?: string, hint?: string, code = 'refused') {
    super(message, EXIT.REFUSED, device, hint, code)
  }
}

export class CorruptError extends R5Error {
  constructor(message: string, device?: string, hint?: string, code = 'corrupt') {
    super(message, EXIT.CORRUPT, device, hint, code)
  }
}

/** Thrown by the crash-injection device wrapper once its write budget is spent. */
export class SimulatedCrash extends R5Error {
  /** bytes of the interrupted write that had been acknowledged before the power cut */
  acknowledged = 0
  constructor(readonly writesDone: number) {
    super(`simulated power cut after ${writesDone} device writes`, EXIT.CRASH, undefined, undefined, 'crash')
  }
}
