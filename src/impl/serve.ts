import * as fs from 'node:fs'
import * as path from 'node:path'
import {engineOptions} from '../cli/engine-options.js'
import {deviceRefs} from '../cli/open.js'
import {flag, type CommandSpec, type Ctx, type FlagValues} from '../cli/spec.js'
import {openForView, viewOf, type ArrayView} from '../engine/index.js'
import {UsageError} from '../engine/errors.js'
import {humanBytes} from '../render/format.js'
import {err} from '../render/colour.js'
import {startServer, type ListenAddress, type NbdServer} from '../serve/server.js'
import {openOverlay, type OverlayExport} from '../serve/overlay.js'

export const spec = {
  summary: 'Serve the array, journal replayed in memory, read-only over NBD (writes only into an --overlay file)',
  description: `Exports the array as \`read\` presents it: a dirty journal is laid over the members in memory, as Linux
replays it at assemble, and nothing is written to any device. Clients (nbdinfo, nbdcopy, qemu-img, qemu, nbd-client)
see the replayed array, so a filesystem inside can be mounted, checked and copied from before anything is recovered.

Listens on a Unix socket (--socket, mode 0600; default r5ctl-<uuid>.sock in the current directory) or, when asked,
on TCP (--listen HOST:PORT; a bare PORT listens on 127.0.0.1). The export is read-only; with --overlay FILE it takes
writes, which go into that copy-on-write file (created when missing, kept across runs) and never to the members.
Runs until SIGINT or SIGTERM (Ctrl-C), then ends every connection and exits 0. Members may be left out as for
\`read\`; --no-replay serves the members as they are. See docs/serve.md.`,
  examples: [
    '<%= config.bin %> serve --socket /tmp/md.sock j.img a.img b.img c.img d.img &\nnbdinfo "nbd+unix:///?socket=/tmp/md.sock"',
    'nbdcopy "nbd+unix:///?socket=/tmp/md.sock" copy.img    # the replayed array, to a file',
    '<%= config.bin %> serve --socket /tmp/md.sock --overlay fsck.ovl j.img a.img b.img c.img d.img &\nqemu-system-x86_64 ... -drive file=nbd:unix:/tmp/md.sock,format=raw',
    '<%= config.bin %> serve --listen 127.0.0.1:10809 j.img a.img b.img c.img d.img',
  ],
  strict: false,
  flags: {
    socket: flag.string({description: 'Unix socket to listen on (created mode 0600; default r5ctl-<uuid>.sock here)'}),
    listen: flag.string({description: 'listen on TCP instead: HOST:PORT, or PORT for 127.0.0.1:PORT'}),
    overlay: flag.string({description: 'take writes into this copy-on-write file (never into the members)'}),
    name: flag.string({description: 'export name clients may ask for (the default export "" always answers)'}),
    'no-replay': flag.boolean({description: 'serve the members as they are, without laying a dirty journal over them'}),
    force: flag.boolean({char: 'f', description: 'accept a set without its journal device (the members are then served as they are)'}),
  },
} satisfies CommandSpec

/** --listen's HOST:PORT (or PORT), or the socket path */
export function listenAddress(flags: {socket?: string; listen?: string}, uuid: string): ListenAddress {
  if (flags.socket !== undefined && flags.listen !== undefined) throw new UsageError('--socket and --listen: give one')
  // absolute, so that the URI printed works from any directory
  if (flags.listen === undefined) return {socket: path.resolve(flags.socket ?? `r5ctl-${uuid.replace(/:/g, '').slice(0, 8)}.sock`)}
  const m = /^(?:(.*):)?(\d{1,5})$/.exec(flags.listen)
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535) throw new UsageError(`--listen ${flags.listen}: expected HOST:PORT or PORT (0-65535)`)
  // a group that did not take part is undefined at run time, whatever the type says
  const given = m[1] as string | undefined
  const host = given ? given.replace(/^\[(.*)\]$/, '$1') : '127.0.0.1'
  return {host, port}
}

/** what the operator sees on stderr at the start: where, what, and what the journal changed */
function banner(view: ArrayView, server: NbdServer, overlay: OverlayExport | null): string {
  const j = view.journal()
  const what = j.replayed
    ? `journal dirty: ${j.stripes} stripe${j.stripes === 1 ? '' : 's'} served from the journal`
    : j.state === 'corrupt'
      ? `journal corrupt (${j.message}): the members as they are`
      : `journal ${j.state}`
  const writes = overlay ? `writes go to the overlay (${overlay.heldBlocks()} blocks held)` : 'read-only'
  return `${err.green('r5ctl:')} serving ${humanBytes(view.size)} at ${server.uri} (${writes}); ${what}; nothing written to the array. Ctrl-C stops.\n`
}

/**
 * How to take back what opening the overlay at `file` makes, when serving is then refused: a file
 * that was not there is removed, one that was empty is emptied again; an existing overlay is kept.
 */
function madeBy(file: string): {undo(): void} {
  const before = fs.statSync(file, {throwIfNoEntry: false})
  return {
    undo() {
      if (!before) fs.rmSync(file, {force: true})
      else if (before.isFile() && before.size === 0) fs.truncateSync(file, 0)
    },
  }
}

/** resolves at SIGINT or SIGTERM */
function untilSignal(): Promise<string> {
  return new Promise(resolve => {
    const on = (sig: string) => () => {
      process.off('SIGINT', int)
      process.off('SIGTERM', term)
      resolve(sig)
    }
    const int = on('SIGINT')
    const term = on('SIGTERM')
    process.on('SIGINT', int)
    process.on('SIGTERM', term)
  })
}

export async function run(ctx: Ctx, flags: FlagValues<typeof spec.flags>, devices: string[]) {
  const opts = {...engineOptions(), force: flags.force, replay: !flags['no-replay']}
  // held: a writer (recover, write) would change the array under the view it serves
  const arr = openForView(deviceRefs(devices, flags), {...opts, hold: true})
  let overlay: OverlayExport | null = null
  try {
    const listen = listenAddress(flags, arr.uuid)
    const view = viewOf(arr, opts)
    const made = flags.overlay === undefined ? null : madeBy(flags.overlay)
    if (flags.overlay !== undefined)
      overlay = openOverlay(flags.overlay, view, {arrayUuid: arr.uuid, events: arr.sb.events, view: view.journal().replayed ? 'replayed' : 'members'})
    let read = 0
    let written = 0
    const progress = ctx.progressEnabled(flags.progress)
    const server = await startServer(overlay ?? view, {
      listen,
      exportName: flags.name,
      description: `r5ctl array ${arr.uuid}`,
      onRead: b => (read += b),
      onWrite: b => (written += b),
      onLog: line => progress && process.stderr.write(`r5ctl: ${line}\n`),
    }).catch((error: unknown) => {
      overlay?.close()
      overlay = null
      made?.undo()
      throw error
    })
    // caught from before the banner, which tells a script it may connect (or stop it) from now on
    const stopped = untilSignal()
    process.stderr.write(banner(view, server, overlay))
    const tick = progress
      ? setInterval(
          () => process.stderr.write(`serve: ${humanBytes(read)} read, ${humanBytes(written)} written, ${server.connections} connected\n`),
          1000,
        )
      : null
    const signal = await stopped
    if (tick) clearInterval(tick)
    await server.close()
    if (!ctx.jsonEnabled()) ctx.log(`served ${humanBytes(read)} read, ${humanBytes(written)} written; stopped by ${signal}`)
    return {address: server.address, uri: server.uri, bytesRead: read, bytesWritten: written, arrayUuid: arr.uuid, journal: view.journal(), signal}
  } finally {
    overlay?.close()
    arr.close()
  }
}
