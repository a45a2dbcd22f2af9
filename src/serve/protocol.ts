/**
 * The NBD wire protocol as `r5ctl serve` speaks it (doc/proto.md of the NBD project): constants, and
 * pure encoding and decoding of the fixed-newstyle handshake, option requests and replies,
 * transmission requests, simple and structured replies. Nothing here touches a socket, so every
 * message can be checked byte for byte against the specification.
 */

export const NBD_MAGIC = 0x4e42444d41474943n // 'NBDMAGIC'
export const IHAVEOPT = 0x49484156454f5054n // 'IHAVEOPT'
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n
export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef

/** handshake flags (server) and client flags */
export const FLAG_FIXED_NEWSTYLE = 1 << 0
export const FLAG_NO_ZEROES = 1 << 1
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0
export const FLAG_C_NO_ZEROES = 1 << 1

/** transmission flags */
export const TF = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
} as const

export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const

const ERR = 0x80000000
export const REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  ERR_UNSUP: ERR + 1,
  ERR_POLICY: ERR + 2,
  ERR_INVALID: ERR + 3,
  ERR_PLATFORM: ERR + 4,
  ERR_TLS_REQD: ERR + 5,
  ERR_UNKNOWN: ERR + 6,
  ERR_SHUTDOWN: ERR + 7,
  ERR_BLOCK_SIZE_REQD: ERR + 8,
  ERR_TOO_BIG: ERR + 9,
} as const

export const INFO = {EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3} as const

export const CMD = {READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7} as const

export const CMD_FLAG = {FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3, FAST_ZERO: 1 << 4} as const

export const REPLY_FLAG_DONE = 1 << 0
export const REPLY_TYPE = {NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, ERROR: 0x8001, ERROR_OFFSET: 0x8002} as const

/** error values of replies (NBD's own numbering, which happens to be Linux errno) */
export const NBD_EPERM = 1
export const NBD_EIO = 5
export const NBD_ENOMEM = 12
export const NBD_EINVAL = 22
export const NBD_ENOSPC = 28
export const NBD_EOVERFLOW = 75
export const NBD_ENOTSUP = 95
export const NBD_ESHUTDOWN = 108

/** the size constraints advertised with NBD_INFO_BLOCK_SIZE */
export const MIN_BLOCK = 1
export const PREFERRED_BLOCK = 4096
export const MAX_PAYLOAD = 32 * 1024 * 1024
/** proto.md's limit on any string (export names, descriptions, messages) */
export const MAX_STRING = 4096

export const GREETING_BYTES = 18
export const OPTION_HEADER_BYTES = 16
export const REQUEST_BYTES = 28
export const SIMPLE_REPLY_BYTES = 16
export const STRUCTURED_HEADER_BYTES = 20

// ---- handshake ----

/** S: NBDMAGIC, IHAVEOPT, 16-bit handshake flags */
export function encodeGreeting(handshakeFlags: number = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES): Buffer {
  const b = Buffer.alloc(GREETING_BYTES)
  b.writeBigUInt64BE(NBD_MAGIC, 0)
  b.writeBigUInt64BE(IHAVEOPT, 8)
  b.writeUInt16BE(handshakeFlags, 16)
  return b
}

export function decodeGreeting(b: Uint8Array): {handshakeFlags: number} | null {
  const v = view(b)
  if (b.length < GREETING_BYTES || v.getBigUint64(0) !== NBD_MAGIC || v.getBigUint64(8) !== IHAVEOPT) return null
  return {handshakeFlags: v.getUint16(16)}
}

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(flags >>> 0, 0)
  return b
}

// ---- options ----

export interface OptionHeader {
  magic: bigint
  option: number
  length: number
}

export function decodeOptionHeader(b: Uint8Array): OptionHeader {
  const v = view(b)
  return {magic: v.getBigUint64(0), option: v.getUint32(8), length: v.getUint32(12)}
}

/** C: IHAVEOPT, option, length, data (what a client sends; the tests' clients use it) */
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(OPTION_HEADER_BYTES + data.length)
  b.writeBigUInt64BE(IHAVEOPT, 0)
  b.writeUInt32BE(option >>> 0, 8)
  b.writeUInt32BE(data.length, 12)
  b.set(data, OPTION_HEADER_BYTES)
  return b
}

/** S: reply magic, option, reply type, length, data */
export function encodeOptionReply(option: number, type: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(20 + data.length)
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0)
  b.writeUInt32BE(option >>> 0, 8)
  b.writeUInt32BE(type >>> 0, 12)
  b.writeUInt32BE(data.length, 16)
  b.set(data, 20)
  return b
}

export interface OptionReplyHeader {
  magic: bigint
  option: number
  type: number
  length: number
}

export function decodeOptionReplyHeader(b: Uint8Array): OptionReplyHeader {
  const v = view(b)
  return {magic: v.getBigUint64(0), option: v.getUint32(8), type: v.getUint32(12), length: v.getUint32(16)}
}

/** an error reply carrying a message for the human at the client */
export function encodeOptionError(option: number, type: number, message: string): Buffer {
  return encodeOptionReply(option, type, utf8(message))
}

/** NBD_REP_SERVER: 32-bit name length, name, description */
export function encodeRepServer(option: number, name: string, description: string): Buffer {
  const n = utf8(name)
  const d = utf8(description)
  const data = Buffer.alloc(4 + n.length + d.length)
  data.writeUInt32BE(n.length, 0)
  data.set(n, 4)
  data.set(d, 4 + n.length)
  return encodeOptionReply(option, REP.SERVER, data)
}

/** NBD_INFO_EXPORT: size and transmission flags */
export function encodeInfoExport(option: number, size: number, flags: number): Buffer {
  const d = Buffer.alloc(12)
  d.writeUInt16BE(INFO.EXPORT, 0)
  d.writeBigUInt64BE(BigInt(size), 2)
  d.writeUInt16BE(flags, 10)
  return encodeOptionReply(option, REP.INFO, d)
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION: a string */
export function encodeInfoString(option: number, info: typeof INFO.NAME | typeof INFO.DESCRIPTION, text: string): Buffer {
  const s = utf8(text)
  const d = Buffer.alloc(2 + s.length)
  d.writeUInt16BE(info, 0)
  d.set(s, 2)
  return encodeOptionReply(option, REP.INFO, d)
}

/** NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum payload */
export function encodeInfoBlockSize(option: number, min = MIN_BLOCK, preferred = PREFERRED_BLOCK, max = MAX_PAYLOAD): Buffer {
  const d = Buffer.alloc(14)
  d.writeUInt16BE(INFO.BLOCK_SIZE, 0)
  d.writeUInt32BE(min, 2)
  d.writeUInt32BE(preferred, 6)
  d.writeUInt32BE(max, 10)
  return encodeOptionReply(option, REP.INFO, d)
}

export interface InfoRequest {
  name: string
  infos: number[]
}

/** The data of NBD_OPT_INFO / NBD_OPT_GO; null when its lengths do not add up. */
export function decodeInfoRequest(data: Uint8Array): InfoRequest | null {
  if (data.length < 6) return null
  const v = view(data)
  const nameLength = v.getUint32(0)
  if (nameLength > data.length - 6) return null
  const count = v.getUint16(4 + nameLength)
  if (data.length !== 6 + nameLength + 2 * count) return null
  const infos: number[] = []
  for (let i = 0; i < count; i++) infos.push(v.getUint16(6 + nameLength + 2 * i))
  return {name: Buffer.from(data.subarray(4, 4 + nameLength)).toString('utf8'), infos}
}

export function encodeInfoRequest(name: string, infos: number[]): Buffer {
  const n = utf8(name)
  const b = Buffer.alloc(6 + n.length + 2 * infos.length)
  b.writeUInt32BE(n.length, 0)
  b.set(n, 4)
  b.writeUInt16BE(infos.length, 4 + n.length)
  infos.forEach((info, i) => b.writeUInt16BE(info, 6 + n.length + 2 * i))
  return b
}

/** the answer to NBD_OPT_EXPORT_NAME: size, transmission flags, 124 zeroes unless NO_ZEROES */
export function encodeExportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(noZeroes ? 10 : 134)
  b.writeBigUInt64BE(BigInt(size), 0)
  b.writeUInt16BE(flags, 8)
  return b
}

// ---- transmission ----

export interface Request {
  magic: number
  flags: number
  type: number
  cookie: bigint
  /** u64 on the wire: a bigint, since a client may send any value */
  offset: bigint
  length: number
}

export function decodeRequest(b: Uint8Array): Request {
  const v = view(b)
  return {
    magic: v.getUint32(0),
    flags: v.getUint16(4),
    type: v.getUint16(6),
    cookie: v.getBigUint64(8),
    offset: v.getBigUint64(16),
    length: v.getUint32(24),
  }
}

export function encodeRequest(r: Omit<Request, 'magic'> & {magic?: number}): Buffer {
  const b = Buffer.alloc(REQUEST_BYTES)
  b.writeUInt32BE(r.magic ?? REQUEST_MAGIC, 0)
  b.writeUInt16BE(r.flags, 4)
  b.writeUInt16BE(r.type, 6)
  b.writeBigUInt64BE(r.cookie, 8)
  b.writeBigUInt64BE(r.offset, 16)
  b.writeUInt32BE(r.length >>> 0, 24)
  return b
}

export function encodeSimpleReply(error: number, cookie: bigint): Buffer {
  const b = Buffer.alloc(SIMPLE_REPLY_BYTES)
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0)
  b.writeUInt32BE(error, 4)
  b.writeBigUInt64BE(cookie, 8)
  return b
}

export function decodeSimpleReply(b: Uint8Array): {magic: number; error: number; cookie: bigint} {
  const v = view(b)
  return {magic: v.getUint32(0), error: v.getUint32(4), cookie: v.getBigUint64(8)}
}

export interface ChunkHeader {
  magic: number
  flags: number
  type: number
  cookie: bigint
  length: number
}

export function encodeChunkHeader(flags: number, type: number, cookie: bigint, length: number): Buffer {
  const b = Buffer.alloc(STRUCTURED_HEADER_BYTES)
  writeChunkHeader(b, flags, type, cookie, length)
  return b
}

function writeChunkHeader(b: Buffer, flags: number, type: number, cookie: bigint, length: number): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0)
  b.writeUInt16BE(flags, 4)
  b.writeUInt16BE(type, 6)
  b.writeBigUInt64BE(cookie, 8)
  b.writeUInt32BE(length, 16)
}

export function decodeChunkHeader(b: Uint8Array): ChunkHeader {
  const v = view(b)
  return {magic: v.getUint32(0), flags: v.getUint16(4), type: v.getUint16(6), cookie: v.getBigUint64(8), length: v.getUint32(16)}
}

/** The header and offset of an NBD_REPLY_TYPE_OFFSET_DATA chunk; `dataLength` bytes of data follow it. */
export function encodeOffsetDataHeader(cookie: bigint, offset: number, dataLength: number, done: boolean): Buffer {
  const b = Buffer.alloc(STRUCTURED_HEADER_BYTES + 8)
  writeChunkHeader(b, done ? REPLY_FLAG_DONE : 0, REPLY_TYPE.OFFSET_DATA, cookie, 8 + dataLength)
  b.writeBigUInt64BE(BigInt(offset), STRUCTURED_HEADER_BYTES)
  return b
}

/** NBD_REPLY_TYPE_NONE with the done flag: success with nothing (more) to say */
export function encodeNoneChunk(cookie: bigint): Buffer {
  return encodeChunkHeader(REPLY_FLAG_DONE, REPLY_TYPE.NONE, cookie, 0)
}

/** NBD_REPLY_TYPE_ERROR, final: the error and a message for the human at the client */
export function encodeErrorChunk(cookie: bigint, error: number, message: string): Buffer {
  const m = utf8(message)
  const b = Buffer.alloc(STRUCTURED_HEADER_BYTES + 6 + m.length)
  writeChunkHeader(b, REPLY_FLAG_DONE, REPLY_TYPE.ERROR, cookie, 6 + m.length)
  b.writeUInt32BE(error, STRUCTURED_HEADER_BYTES)
  b.writeUInt16BE(m.length, STRUCTURED_HEADER_BYTES + 4)
  b.set(m, STRUCTURED_HEADER_BYTES + 6)
  return b
}

// ---- negotiation and request checks (pure decisions; server.ts does the I/O) ----

/** what the negotiation needs to know of the one export */
export interface ExportInfo {
  name: string
  description: string
  size: number
  /** transmission flags */
  flags: number
}

export interface OptionOutcome {
  replies: Buffer[]
  /** after the replies: more options, the transmission phase, or the end of the connection */
  then: 'continue' | 'transmit' | 'close'
  /** structured replies are negotiated from now on */
  structured?: true
}

/** The empty name is proto.md's default export; the export's own name is the other one that matches. */
export function nameMatches(requested: string, exp: ExportInfo): boolean {
  return requested === '' || requested === exp.name
}

/** The answer to one option whose data (at most the server's cap) has arrived. */
export function answerOption(option: number, data: Uint8Array, exp: ExportInfo, st: {structured: boolean; noZeroes: boolean}): OptionOutcome {
  const fail = (type: number, message: string): OptionOutcome => ({replies: [encodeOptionError(option, type, message)], then: 'continue'})
  switch (option) {
    case OPT.EXPORT_NAME: {
      const name = Buffer.from(data).toString('utf8')
      // proto.md: an export that cannot be served ends the session, there being no error reply
      if (!nameMatches(name, exp)) return {replies: [], then: 'close'}
      return {replies: [encodeExportNameReply(exp.size, exp.flags, st.noZeroes)], then: 'transmit'}
    }
    case OPT.ABORT:
      return {replies: [encodeOptionReply(option, REP.ACK)], then: 'close'}
    case OPT.LIST:
      if (data.length !== 0) return fail(REP.ERR_INVALID, 'NBD_OPT_LIST takes no data')
      return {replies: [encodeRepServer(option, exp.name, exp.description), encodeOptionReply(option, REP.ACK)], then: 'continue'}
    case OPT.INFO:
    case OPT.GO:
      return answerInfo(option, data, exp)
    case OPT.STRUCTURED_REPLY:
      if (data.length !== 0) return fail(REP.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data')
      if (st.structured) return fail(REP.ERR_INVALID, 'structured replies are already negotiated')
      return {replies: [encodeOptionReply(option, REP.ACK)], then: 'continue', structured: true}
    default:
      return fail(REP.ERR_UNSUP, `option ${option} is not supported by this server`)
  }
}

function answerInfo(option: number, data: Uint8Array, exp: ExportInfo): OptionOutcome {
  const req = decodeInfoRequest(data)
  if (!req) return {replies: [encodeOptionError(option, REP.ERR_INVALID, 'lengths of the option data do not add up')], then: 'continue'}
  if (!nameMatches(req.name, exp)) {
    const message = `no export named ${JSON.stringify(req.name)} (this server has ${JSON.stringify(exp.name)})`
    return {replies: [encodeOptionError(option, REP.ERR_UNKNOWN, message)], then: 'continue'}
  }
  const replies = [encodeInfoExport(option, exp.size, exp.flags)]
  if (req.infos.includes(INFO.NAME)) replies.push(encodeInfoString(option, INFO.NAME, exp.name))
  if (req.infos.includes(INFO.DESCRIPTION) && exp.description) replies.push(encodeInfoString(option, INFO.DESCRIPTION, exp.description))
  // the defaults of proto.md, sent unasked as well: they cost nothing and tell tools the preferred size
  replies.push(encodeInfoBlockSize(option))
  replies.push(encodeOptionReply(option, REP.ACK))
  return {replies, then: option === OPT.GO ? 'transmit' : 'continue'}
}

/** the flags a command may carry; FUA is accepted on every command (proto.md: clients set it on any) */
const ALLOWED_FLAGS: Record<number, number> = {
  [CMD.READ]: CMD_FLAG.FUA,
  [CMD.WRITE]: CMD_FLAG.FUA,
  [CMD.DISC]: CMD_FLAG.FUA,
  [CMD.FLUSH]: CMD_FLAG.FUA,
  [CMD.TRIM]: CMD_FLAG.FUA,
  [CMD.WRITE_ZEROES]: CMD_FLAG.FUA | CMD_FLAG.NO_HOLE,
}

export interface RequestError {
  error: number
  message: string
}

/**
 * Why a request cannot be carried out, or null. Reads past the end are NBD_EINVAL, writes past it
 * NBD_ENOSPC (proto.md's error values); any write on a read-only export NBD_EPERM.
 */
export function requestError(r: Request, exp: {size: number; writable: boolean}): RequestError | null {
  const allowed = ALLOWED_FLAGS[r.type] as number | undefined
  if (allowed === undefined) return {error: NBD_EINVAL, message: `command ${r.type} is not supported`}
  if ((r.flags & ~allowed) !== 0) return {error: NBD_EINVAL, message: `flags 0x${r.flags.toString(16)} are not valid for command ${r.type}`}
  const writes = r.type === CMD.WRITE || r.type === CMD.WRITE_ZEROES || r.type === CMD.TRIM
  if (writes && !exp.writable) return {error: NBD_EPERM, message: 'the export is read-only'}
  if (r.type === CMD.READ || r.type === CMD.WRITE) {
    if (r.length > MAX_PAYLOAD) return {error: NBD_EINVAL, message: `length ${r.length} exceeds the maximum payload ${MAX_PAYLOAD}`}
  }
  if (r.type === CMD.READ || writes) {
    if (r.offset + BigInt(r.length) > BigInt(exp.size)) {
      const error = r.type === CMD.READ || r.type === CMD.TRIM ? NBD_EINVAL : NBD_ENOSPC
      return {error, message: `offset ${r.offset} + length ${r.length} is beyond the export's ${exp.size} bytes`}
    }
  }
  return null
}

// ---- helpers ----

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength)
}

/** UTF-8 of `s`, cut to proto.md's string limit (on a character boundary) */
export function utf8(s: string): Buffer {
  const b = Buffer.from(s, 'utf8')
  if (b.length <= MAX_STRING) return b
  let end = MAX_STRING
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--
  return b.subarray(0, end)
}
