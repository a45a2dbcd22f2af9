/**
 * Colour that respects NO_COLOR, FORCE_COLOR and non-TTY output (https://no-color.org), through
 * chalk. chalk is imported only when stdout or stderr will actually be coloured: most runs (scripts,
 * pipes, CI, --json) print no colour at all, and need not pay for loading it; those get plain
 * pass-through styles.
 */
import type {ChalkInstance} from 'chalk'

function level(stream: NodeJS.WriteStream): 0 | 1 {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return 0
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return 1
  if (process.env.TERM === 'dumb') return 0
  return stream.isTTY ? 1 : 0
}

export type Style = (...text: unknown[]) => string

export interface Colours {
  readonly level: 0 | 1
  red: Style
  green: Style
  yellow: Style
  bold: Style
  dim: Style
}

const outLevel = level(process.stdout)
const errLevel = level(process.stderr)
/** loaded once, before any output, when some stream gets colour */
let chalkModule: typeof import('chalk') | null = outLevel || errLevel ? await import('chalk') : null

// eslint-disable-next-line @typescript-eslint/restrict-plus-operands -- stringifies exactly as chalk does
const plainStyle: Style = (...text) => (text.length === 1 ? '' + text[0] : text.join(' '))
const plain: Colours = {level: 0, red: plainStyle, green: plainStyle, yellow: plainStyle, bold: plainStyle, dim: plainStyle}

function fromChalk(c: ChalkInstance): Colours {
  return {level: 1, red: c.red, green: c.green, yellow: c.yellow, bold: c.bold, dim: c.dim}
}

/** Styles at `lvl` (0: plain text; 1: chalk's basic 16 colours). */
export async function coloursAsync(lvl: 0 | 1): Promise<Colours> {
  if (lvl === 0) return plain
  chalkModule ??= await import('chalk')
  return fromChalk(new chalkModule.Chalk({level: 1}))
}

/** Styles at `lvl`; level 1 needs chalk loaded (it is whenever a stream is coloured; else use coloursAsync). */
export function colours(lvl: 0 | 1): Colours {
  if (lvl === 0) return plain
  if (!chalkModule) throw new Error('colours(1) before chalk was loaded: use coloursAsync')
  return fromChalk(new chalkModule.Chalk({level: 1}))
}

export const out = colours(outLevel)
export const err = colours(errLevel)
