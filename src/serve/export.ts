/**
 * What `r5ctl serve` exports: the contract between the NBD server (server.ts), the copy-on-write
 * overlay (overlay.ts) and the array's replayed view that the command supplies.
 */

/** What the server serves: fixed-size bytes. Calls are synchronous; the server serialises them. */
export interface ExportSource {
  /** bytes; a multiple of 4096 */
  readonly size: number
  /** the bytes at [offset, offset + length), in a buffer the caller may keep; throws on an I/O error */
  read(offset: number, length: number): Uint8Array
}

/** An export that takes writes (the overlay over an ExportSource). */
export interface WritableExport extends ExportSource {
  write(offset: number, data: Uint8Array): void
  /** make every write so far durable (fsync of the overlay file) */
  flush(): void
  close(): void
}

export function isWritable(e: ExportSource | WritableExport): e is WritableExport {
  return typeof (e as Partial<WritableExport>).write === 'function'
}
