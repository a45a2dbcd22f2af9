/**
 * The NBD server of `r5ctl serve`: a listener on a Unix socket (mode 0600, never over anything but
 * a stale socket) or TCP, its connections (connection.ts) to one export (export.ts), and a close()
 * that ends them cleanly.
 */
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import {RefusedError, UsageError} from '../engine/errors.js'
import {isWritable, type ExportSource, type WritableExport} from './export.js'
import * as P from './protocol.js'
import {Connection} from './connection.js'

export type {ExportSource, WritableExport} from './export.js'
export {OPTION_DATA_CAP} from './connection.js'

export type ListenAddress = {socket: string} | {host: string; port: number}

/** the socket a server bound: closing removes that inode only */
interface Inode {
  dev: number
  ino: number
}

export interface ServeOptions {
  /** a Unix socket path, or a TCP host and port (port 0: any free port) */
  listen: ListenAddress
  /** the export's name; '' (the default export) always matches as well */
  exportName?: string
  description?: string
  /** bytes sent to clients by reads, as they are sent */
  onRead?: (bytes: number) => void
  /** bytes written by clients, as they are written */
  onWrite?: (bytes: number) => void
  /** one line per event worth an operator's attention: connections, errors */
  onLog?: (line: string) => void
  /** connections served at once; more are closed on arrival (default MAX_CONNECTIONS) */
  maxConnections?: number
  /** ms a connection has to finish its handshake before it is closed (default HANDSHAKE_MS, connection.ts) */
  handshakeMs?: number
}

/** each connection holds a few MiB at most (connection.ts): 16 keep the whole server well within 128 MiB */
export const MAX_CONNECTIONS = 16

export interface NbdServer {
  /** where it listens (the actual port when 0 was asked for) */
  readonly address: ListenAddress
  /** an NBD URI of the export for libnbd tools (nbdinfo, nbdcopy) */
  readonly uri: string
  /** connections open now */
  readonly connections: number
  /** stop listening, end every connection once its current reply is out, remove the socket file */
  close(): Promise<void>
}

/** Listen for NBD clients of `source`; writable when `source` has write(). */
export async function startServer(source: ExportSource | WritableExport, options: ServeOptions): Promise<NbdServer> {
  const log = options.onLog ?? (() => undefined)
  const writable = isWritable(source)
  const flags =
    P.TF.HAS_FLAGS | P.TF.SEND_FLUSH | P.TF.CAN_MULTI_CONN | (writable ? P.TF.SEND_FUA | P.TF.SEND_TRIM | P.TF.SEND_WRITE_ZEROES : P.TF.READ_ONLY)
  const exp: P.ExportInfo = {name: options.exportName ?? '', description: options.description ?? '', size: source.size, flags}
  const conns = new Set<Connection>()
  let nextId = 1
  // half-open: a client's end of input does not end the replies still owed to it (connection.ts ends)
  const server = net.createServer({allowHalfOpen: true}, socket => {
    const c = new Connection(nextId++, socket, source, exp, options, () => conns.delete(c))
    conns.add(c)
  })
  server.maxConnections = options.maxConnections ?? MAX_CONNECTIONS
  server.on('drop', () => log(`a connection was refused: ${server.maxConnections} are open already`))
  server.on('error', e => log(`listener: ${e.message}`))
  const {address, inode} = await listen(server, options.listen)
  log(`listening on ${describe(address)}`)
  return {
    address,
    uri: uriOf(address, exp.name),
    get connections() {
      return conns.size
    },
    close: () => closeAll(server, conns, address, inode),
  }
}

async function closeAll(server: net.Server, conns: Set<Connection>, address: ListenAddress, inode: Inode | null): Promise<void> {
  const stopped = new Promise<void>(resolve => server.close(() => resolve()))
  await Promise.all([...conns].map(c => c.shutdown()))
  await stopped
  // only the socket this server bound: whatever has been put at the path since is not its to remove
  if ('socket' in address && inode && sameInode(address.socket, inode)) fs.unlinkSync(address.socket)
}

function sameInode(p: string, inode: Inode): boolean {
  const st = fs.lstatSync(p, {throwIfNoEntry: false})
  return st !== undefined && st.isSocket() && st.dev === inode.dev && st.ino === inode.ino
}

/** a name beside `p` to bind at, or `p` itself when that would not fit a socket path */
function privateName(p: string): string {
  const name = path.join(path.dirname(p), `.r5ctl-${process.pid}-${Date.now().toString(36)}.sock`)
  return Buffer.byteLength(name) <= SOCKET_PATH_MAX ? name : p
}

/** the most bytes a Unix socket path may have (sockaddr_un's sun_path, 108 with its NUL) */
const SOCKET_PATH_MAX = 107

/** A path the kernel would truncate, or in a folder that is not there, is refused before anything is bound. */
function checkSocketPath(p: string): void {
  const bytes = Buffer.byteLength(p)
  if (bytes > SOCKET_PATH_MAX)
    throw new UsageError(`--socket ${p}: ${bytes} bytes, and a Unix socket path holds at most ${SOCKET_PATH_MAX}`, 'choose a shorter path')
  const dir = path.dirname(p)
  if (!fs.statSync(dir, {throwIfNoEntry: false})?.isDirectory())
    throw new UsageError(`--socket ${p}: ${dir} is not a directory`, 'create it, or choose another path')
}

async function listen(server: net.Server, where: ListenAddress): Promise<{address: ListenAddress; inode: Inode | null}> {
  const name = describe(where)
  if ('socket' in where) {
    checkSocketPath(where.socket)
    await clearStaleSocket(where.socket)
    // bound at a private name, then linked at the path asked for: closing unlinks the name it was bound
    // at (libuv does), and that must never be a path someone else may have put a file at since
    const bound = privateName(where.socket)
    // listen() binds a path at once: a umask held just for that call makes the socket 0600 from its
    // first moment, and leaves the rest of the process's files alone
    const old = process.umask(0o177)
    try {
      server.listen(bound)
    } finally {
      process.umask(old)
    }
    await listening(server, name)
    try {
      fs.chmodSync(bound, 0o600)
      if (bound !== where.socket) {
        // link() fails if anything appeared at the path since it was cleared: nothing is replaced
        fs.linkSync(bound, where.socket)
        fs.unlinkSync(bound)
      }
    } catch (error) {
      server.close()
      throw error
    }
    const st = fs.lstatSync(where.socket)
    return {address: {socket: where.socket}, inode: {dev: st.dev, ino: st.ino}}
  }
  server.listen(where.port, where.host)
  await listening(server, name)
  return {address: {host: where.host, port: (server.address() as net.AddressInfo).port}, inode: null}
}

function listening(server: net.Server, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) => {
      server.off('listening', ok)
      if (e.code === 'EADDRINUSE') reject(new RefusedError(`cannot listen on ${name}: address in use`, undefined, 'choose another port', 'in-use'))
      else reject(new UsageError(`cannot listen on ${name}: ${e.message}`))
    }
    const ok = () => {
      server.off('error', fail)
      resolve()
    }
    server.once('error', fail)
    server.once('listening', ok)
  })
}

/** A socket left by a server that died may be replaced; anything else at the path may not. */
async function clearStaleSocket(path: string): Promise<void> {
  let st: fs.Stats
  try {
    st = fs.lstatSync(path)
  } catch {
    return
  }
  if (!st.isSocket()) throw new UsageError(`${path} exists and is not a socket`, 'choose another --socket path; nothing was removed')
  const live = await new Promise<boolean>(resolve => {
    const probe = net.connect(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (live) throw new RefusedError('another server is listening on this socket', path, 'stop it, or choose another --socket path', 'in-use')
  fs.unlinkSync(path)
}

function describe(a: ListenAddress): string {
  return 'socket' in a ? `unix:${a.socket}` : `${a.host}:${a.port}`
}

function uriOf(a: ListenAddress, name: string): string {
  const n = encodeURIComponent(name)
  // the path stays readable: only what would end or garble a query value is escaped
  const esc = (p: string) => p.replace(/[%&#+ ]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  if ('socket' in a) return `nbd+unix:///${n}?socket=${esc(a.socket)}`
  const host = a.host.includes(':') ? `[${a.host}]` : a.host
  return `nbd://${host}:${a.port}/${n}`
}
