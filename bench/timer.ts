/**
 * Paired timing. A step is one command line, spawned and timed whole (wall clock from spawn to exit,
 * start-up included, nothing subtracted), with an untimed `before` (restore a pre-state, fsync the
 * files the step touches) that never counts. `paired` runs one warm-up of every step, then RUNS
 * rounds of A B C …, so that each baseline run sits next to the r5ctl run it is compared with and
 * both see the same machine; a ratio is the median of the per-round ratios A/B.
 */
import {spawnSync} from 'node:child_process'

export interface Step {
  argv: string[]
  /** untimed, before every run of this step */
  before?: () => void
  env?: NodeJS.ProcessEnv
}

export interface Run {
  seconds: number
  stdout: string
  status: number
}

/** Spawn argv, wait for it, return its wall time; an exit status not in `ok` is an error (the bench stops). */
export function run(argv: string[], env?: NodeJS.ProcessEnv, ok = [0]): Run {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(argv[0], argv.slice(1), {encoding: 'utf8', env: {...process.env, NO_COLOR: '1', ...env}, maxBuffer: 64 << 20})
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.error) throw r.error
  const status = r.status ?? -1
  if (!ok.includes(status)) throw new Error(`${argv.join(' ')}: exit ${status}\n${r.stderr}`)
  return {seconds, stdout: r.stdout, status}
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export interface Paired {
  /** seconds of every timed run, per step (steps[0] is A) */
  seconds: number[][]
  /** per baseline step (1…): the median over rounds of A's time / that step's time */
  ratios: number[]
}

/** One untimed warm-up of each step (but A's when `warmA` is false: it ran already, probed), then `rounds` rounds of A, B, … */
export function paired(steps: Step[], rounds: number, warmA = true): Paired {
  const once = (s: Step) => {
    s.before?.()
    return run(s.argv, s.env).seconds
  }
  for (const s of warmA ? steps : steps.slice(1)) once(s)
  const seconds: number[][] = steps.map(() => [])
  for (let i = 0; i < rounds; i++) steps.forEach((s, j) => seconds[j].push(once(s)))
  return {seconds, ratios: seconds.slice(1).map(b => median(b.map((t, i) => seconds[0][i] / t)))}
}
