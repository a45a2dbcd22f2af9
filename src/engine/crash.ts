/**
 * Crash injection as a device wrapper, never as `if`s in the engine. A CrashController is shared by
 * every device of an array; it lets the first `after` write requests through and then drops every
 * write and throws SimulatedCrash (a power cut). With a seed, the writes each device received since
 * its last flush are additionally applied as a random subset (seeded): a disk whose volatile cache
 * reorders or loses unflushed writes.
 */
import {SimulatedCrash} from './errors.js'
import {DeviceWrapper, type BlockDevice} from './device.js'

/** xorshift32: small, seedable, reproducible */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 0x100000000
  }
}

interface Pending {
  offset: number
  data: Uint8Array
  old: Uint8Array
}

export class CrashController {
  /** write requests let through so far */
  writes = 0
  crashed = false
  private devices: CrashDevice[] = []

  constructor(
    readonly after: number,
    readonly seed?: number,
  ) {}

  wrap(dev: BlockDevice): CrashDevice {
    const d = new CrashDevice(dev, this)
    this.devices.push(d)
    return d
  }

  /** called before each write request; throws once the budget is spent */
  admit(): void {
    if (this.crashed) throw new SimulatedCrash(this.writes)
    if (this.writes >= this.after) this.crash()
    this.writes++
  }

  crash(): never {
    if (!this.crashed) {
      this.crashed = true
      if (this.seed !== undefined) {
        const rand = rng(this.seed)
        for (const d of this.devices) d.loseUnflushed(rand)
      }
    }
    throw new SimulatedCrash(this.writes)
  }
}

export class CrashDevice extends DeviceWrapper {
  private pending: Pending[] = []

  constructor(
    inner: BlockDevice,
    private ctl: CrashController,
  ) {
    super(inner)
  }

  override writev(bufs: Uint8Array[], offset: number): void {
    this.ctl.admit()
    if (this.ctl.seed !== undefined) {
      let len = 0
      for (const b of bufs) len += b.length
      const old = new Uint8Array(len)
      this.inner.read(old, offset)
      const data = new Uint8Array(len)
      let p = 0
      for (const b of bufs) {
        data.set(b, p)
        p += b.length
      }
      this.pending.push({offset, data, old})
    }
    this.inner.writev(bufs, offset)
  }

  override flush(): void {
    if (this.ctl.crashed) this.ctl.crash()
    this.inner.flush()
    this.pending = []
  }

  /** Undo every unflushed write, then re-apply a random subset of them in their original order. */
  loseUnflushed(rand: () => number): void {
    for (let i = this.pending.length - 1; i >= 0; i--) this.inner.write(this.pending[i].old, this.pending[i].offset)
    for (const w of this.pending) if (rand() < 0.5) this.inner.write(w.data, w.offset)
    this.pending = []
  }
}
