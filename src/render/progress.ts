/**
 * A progress line on stderr: shown when stderr is a TTY or --progress is given; never on stdout,
 * so it cannot corrupt `read` output or JSON.
 */
export class ProgressBar {
  private start = process.hrtime.bigint()
  private last = 0
  private shown = false

  constructor(
    private label: string,
    private enabled: boolean,
    /** 'bytes': done and total are bytes (MiB, rate and ETA shown); 'fraction': only the share done is meaningful */
    private unit: 'bytes' | 'fraction' = 'bytes',
    /** more of the line, e.g. where a stopped run would resume */
    private detail?: () => string,
  ) {}

  update = (done: number, total: number): void => {
    if (!this.enabled) return
    const now = Date.now()
    if (now - this.last < 100 && done < total) return
    this.last = now
    const secs = Number(process.hrtime.bigint() - this.start) / 1e9
    const frac = total > 0 ? done / total : 1
    const width = 24
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.')
    let extra = ''
    if (this.unit === 'bytes') {
      const rate = secs > 0 ? done / secs : 0
      const eta = rate > 0 ? (total - done) / rate : 0
      extra = ` ${(done / 1048576).toFixed(1)}/${(total / 1048576).toFixed(1)} MiB  ${(rate / 1e6).toFixed(0)} MB/s  ETA ${eta.toFixed(0)}s`
    }
    const line = `${this.label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%${extra}${this.detail ? `  ${this.detail()}` : ''}`
    process.stderr.write(process.stderr.isTTY ? `\r${line}\x1b[K` : `${line}\n`)
    this.shown = true
  }

  done(): void {
    if (this.enabled && this.shown && process.stderr.isTTY) process.stderr.write('\n')
  }
}
