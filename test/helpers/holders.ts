/**
 * Child processes that hold devices open for writing (holder.ts), for the locking tests: start
 * them, release them together, read what each got.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import * as path from 'node:path'
import {ROOT} from './cli.js'

const HOLDER = path.join(ROOT, 'dist', 'test', 'helpers', 'holder.js')

export interface Holder {
  proc: ChildProcess
  /** the next line the holder prints */
  line(): Promise<string>
  exited: Promise<number | null>
}

export function startHolder(devices: string[], opts: {env?: Record<string, string>; uid?: number; gid?: number} = {}): Holder {
  const proc = spawn(process.execPath, [HOLDER, ...devices], {
    env: {...process.env, ...opts.env},
    uid: opts.uid,
    gid: opts.gid,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines: string[] = []
  const waiting: ((l: string) => void)[] = []
  let buf = ''
  proc.stdout.setEncoding('utf8')
  proc.stdout.on('data', (chunk: string) => {
    buf += chunk
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i)
      buf = buf.slice(i + 1)
      const w = waiting.shift()
      if (w) w(l)
      else lines.push(l)
    }
  })
  const exited = new Promise<number | null>(resolve =>
    proc.on('exit', code => {
      for (const w of waiting.splice(0)) w('exited')
      resolve(code)
    }),
  )
  return {
    proc,
    exited,
    line: () => (lines.length ? Promise.resolve(lines.shift()!) : new Promise(resolve => waiting.push(resolve))),
  }
}

/** Start holders, wait until each is ready, let them all try at once; returns each one's answer. */
export async function race(holders: Holder[]): Promise<string[]> {
  for (const h of holders) if ((await h.line()) !== 'ready') throw new Error('holder did not start')
  for (const h of holders) h.proc.stdin!.write('go\n')
  return Promise.all(holders.map(h => h.line()))
}

/** Let the holders go and wait for them to exit. */
export async function release(holders: Holder[]): Promise<void> {
  for (const h of holders) h.proc.stdin!.end()
  await Promise.all(holders.map(h => h.exited))
}
