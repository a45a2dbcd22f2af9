/** Colour that respects NO_COLOR, FORCE_COLOR and non-TTY output (https://no-color.org). */
import {Chalk} from 'chalk'

function level(stream: NodeJS.WriteStream): 0 | 1 {
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') return 0
  if (process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0') return 1
  if (process.env.TERM === 'dumb') return 0
  return stream.isTTY ? 1 : 0
}

export const out = new Chalk({level: level(process.stdout)})
export const err = new Chalk({level: level(process.stderr)})
