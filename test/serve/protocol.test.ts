/**
 * The NBD wire format (serve/protocol.ts) byte for byte: golden messages written out by hand from
 * proto.md's layouts and magic numbers, round trips of what is decoded, and the pure decisions about
 * options and requests.
 */
import assert from 'node:assert/strict'
import * as P from '../../src/serve/protocol.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const h = (s: string) => s.replace(/\s+/g, '')
const COOKIE = 0x0102030405060708n

describe('serve protocol: NBD messages', () => {
  it("magic numbers are proto.md's: NBDMAGIC, IHAVEOPT, option reply, request, simple and structured reply", () => {
    assert.equal(Buffer.from(P.NBD_MAGIC.toString(16), 'hex').toString('latin1'), 'NBDMAGIC')
    assert.equal(Buffer.from(P.IHAVEOPT.toString(16), 'hex').toString('latin1'), 'IHAVEOPT')
    assert.equal(P.IHAVEOPT, 0x49484156454f5054n)
    assert.equal(P.OPTION_REPLY_MAGIC, 0x3e889045565a9n)
    assert.equal(P.REQUEST_MAGIC, 0x25609513)
    assert.equal(P.SIMPLE_REPLY_MAGIC, 0x67446698)
    assert.equal(P.STRUCTURED_REPLY_MAGIC, 0x668e33ef)
    assert.equal(P.REP.ERR_UNSUP, 2 ** 31 + 1)
    assert.equal(P.REP.ERR_UNKNOWN, 2 ** 31 + 6)
    assert.equal(P.REP.ERR_TOO_BIG, 2 ** 31 + 9)
    assert.equal(P.REPLY_TYPE.ERROR, 2 ** 15 + 1)
    assert.deepEqual([P.NBD_EPERM, P.NBD_EIO, P.NBD_EINVAL, P.NBD_ENOSPC, P.NBD_ESHUTDOWN], [1, 5, 22, 28, 108])
  })

  it('golden handshake and option bytes', () => {
    assert.equal(hex(P.encodeGreeting()), h('4e42444d41474943 49484156454f5054 0003'))
    assert.deepEqual(P.decodeGreeting(P.encodeGreeting(1)), {handshakeFlags: 1})
    assert.equal(P.decodeGreeting(Buffer.alloc(18)), null)
    assert.equal(hex(P.encodeClientFlags(3)), '00000003')
    assert.equal(
      hex(P.encodeOption(P.OPT.GO, P.encodeInfoRequest('', [P.INFO.BLOCK_SIZE]))),
      h('49484156454f5054 00000007 00000008 00000000 0001 0003'),
    )
    assert.equal(hex(P.encodeOptionReply(P.OPT.GO, P.REP.ACK)), h('0003e889045565a9 00000007 00000001 00000000'))
    assert.equal(hex(P.encodeOptionError(P.OPT.LIST, P.REP.ERR_INVALID, 'no')), h('0003e889045565a9 00000003 80000003 00000002 6e6f'))
    assert.equal(hex(P.encodeRepServer(P.OPT.LIST, 'md0', 'd')), h('0003e889045565a9 00000003 00000002 00000008 00000003 6d6430 64'))
    assert.equal(hex(P.encodeInfoExport(P.OPT.GO, 1 << 20, 0x0103)), h('0003e889045565a9 00000007 00000003 0000000c 0000 0000000000100000 0103'))
    assert.equal(hex(P.encodeInfoBlockSize(P.OPT.INFO)), h('0003e889045565a9 00000006 00000003 0000000e 0003 00000001 00001000 02000000'))
    assert.equal(hex(P.encodeInfoString(P.OPT.GO, P.INFO.NAME, 'x')), h('0003e889045565a9 00000007 00000003 00000003 0001 78'))
    const en = P.encodeExportNameReply(4096, 3, false)
    assert.equal(en.length, 134)
    assert.equal(hex(en.subarray(0, 10)), h('0000000000001000 0003'))
    assert.equal(P.encodeExportNameReply(4096, 3, true).length, 10)
  })

  it('golden transmission bytes: request, simple reply, data / none / error chunks', () => {
    const req = P.encodeRequest({flags: 1, type: P.CMD.WRITE, cookie: COOKIE, offset: 0x1000n, length: 0x200})
    assert.equal(hex(req), h('25609513 0001 0001 0102030405060708 0000000000001000 00000200'))
    assert.deepEqual(P.decodeRequest(req), {magic: P.REQUEST_MAGIC, flags: 1, type: 1, cookie: COOKIE, offset: 0x1000n, length: 0x200})
    assert.equal(hex(P.encodeSimpleReply(22, COOKIE)), h('67446698 00000016 0102030405060708'))
    assert.deepEqual(P.decodeSimpleReply(P.encodeSimpleReply(5, 9n)), {magic: P.SIMPLE_REPLY_MAGIC, error: 5, cookie: 9n})
    assert.equal(hex(P.encodeOffsetDataHeader(COOKIE, 4096, 512, true)), h('668e33ef 0001 0001 0102030405060708 00000208 0000000000001000'))
    assert.equal(hex(P.encodeOffsetDataHeader(COOKIE, 0, 1, false)).slice(8, 12), '0000')
    assert.equal(hex(P.encodeNoneChunk(COOKIE)), h('668e33ef 0001 0000 0102030405060708 00000000'))
    assert.equal(hex(P.encodeErrorChunk(COOKIE, 5, 'x')), h('668e33ef 0001 8001 0102030405060708 00000007 00000005 0001 78'))
    assert.deepEqual(P.decodeChunkHeader(P.encodeNoneChunk(7n)), {magic: P.STRUCTURED_REPLY_MAGIC, flags: 1, type: 0, cookie: 7n, length: 0})
    // the full u64 range of offsets and cookies survives
    const big = {flags: 0, type: 0, cookie: 2n ** 64n - 1n, offset: 2n ** 64n - 512n, length: 2 ** 32 - 1}
    assert.deepEqual(P.decodeRequest(P.encodeRequest(big)), {magic: P.REQUEST_MAGIC, ...big})
  })

  it('NBD_OPT_INFO/GO data: round trip, and lengths that do not add up are rejected', () => {
    assert.deepEqual(P.decodeInfoRequest(P.encodeInfoRequest('md0', [3, 1, 2])), {name: 'md0', infos: [3, 1, 2]})
    assert.deepEqual(P.decodeInfoRequest(P.encodeInfoRequest('', [])), {name: '', infos: []})
    assert.equal(P.decodeInfoRequest(Buffer.from('0000000100', 'hex')), null, 'shorter than 6')
    assert.equal(P.decodeInfoRequest(Buffer.from('00000009 0000 0000'.replace(/ /g, ''), 'hex')), null, 'name longer than the data')
    assert.equal(P.decodeInfoRequest(Buffer.from('00000000 0002 0001'.replace(/ /g, ''), 'hex')), null, 'fewer info requests than counted')
    assert.equal(P.decodeInfoRequest(Buffer.from('00000000 0000 00'.replace(/ /g, ''), 'hex')), null, 'a stray byte')
    assert.equal(P.decodeInfoRequest(Buffer.from('ffffffff 0000'.replace(/ /g, ''), 'hex')), null)
  })

  it('strings are cut to 4096 bytes on a character boundary', () => {
    assert.equal(P.utf8('a'.repeat(5000)).length, 4096)
    const cut = P.utf8('é'.repeat(3000)) // 2 bytes each
    assert.equal(cut.length, 4096)
    assert.equal(P.utf8('x' + 'é'.repeat(3000)).length, 4095)
  })

  describe('option answers', () => {
    const exp: P.ExportInfo = {name: 'md0', description: 'view', size: 1 << 20, flags: P.TF.HAS_FLAGS | P.TF.READ_ONLY}
    const st = {structured: false, noZeroes: true}
    const types = (o: P.OptionOutcome) => o.replies.map(r => P.decodeOptionReplyHeader(r).type)

    it('LIST, INFO, GO, STRUCTURED_REPLY, ABORT, EXPORT_NAME, and the rest unsupported', () => {
      assert.deepEqual(types(P.answerOption(P.OPT.LIST, Buffer.alloc(0), exp, st)), [P.REP.SERVER, P.REP.ACK])
      const info = P.answerOption(P.OPT.INFO, P.encodeInfoRequest('md0', [P.INFO.NAME, P.INFO.DESCRIPTION]), exp, st)
      assert.deepEqual(types(info), [P.REP.INFO, P.REP.INFO, P.REP.INFO, P.REP.INFO, P.REP.ACK])
      assert.equal(info.then, 'continue')
      assert.equal(P.answerOption(P.OPT.GO, P.encodeInfoRequest('', []), exp, st).then, 'transmit')
      const unknown = P.answerOption(P.OPT.GO, P.encodeInfoRequest('md1', []), exp, st)
      assert.deepEqual(types(unknown), [P.REP.ERR_UNKNOWN])
      assert.equal(unknown.then, 'continue')
      const sr = P.answerOption(P.OPT.STRUCTURED_REPLY, Buffer.alloc(0), exp, st)
      assert.deepEqual([types(sr), sr.structured], [[P.REP.ACK], true])
      assert.deepEqual(types(P.answerOption(P.OPT.STRUCTURED_REPLY, Buffer.alloc(0), exp, {...st, structured: true})), [P.REP.ERR_INVALID])
      assert.deepEqual(types(P.answerOption(P.OPT.STRUCTURED_REPLY, Buffer.alloc(1), exp, st)), [P.REP.ERR_INVALID])
      assert.deepEqual(P.answerOption(P.OPT.ABORT, Buffer.alloc(3), exp, st).then, 'close')
      assert.deepEqual(P.answerOption(P.OPT.EXPORT_NAME, Buffer.from('md1'), exp, st), {replies: [], then: 'close'})
      const en = P.answerOption(P.OPT.EXPORT_NAME, Buffer.from('md0'), exp, st)
      assert.deepEqual([en.then, en.replies[0].length], ['transmit', 10])
      for (const o of [P.OPT.STARTTLS, P.OPT.LIST_META_CONTEXT, P.OPT.SET_META_CONTEXT, 4, 11, 0xffffffff])
        assert.deepEqual(types(P.answerOption(o, Buffer.alloc(0), exp, st)), [P.REP.ERR_UNSUP], `option ${o}`)
    })
  })

  describe('request checks', () => {
    const r = (type: number, offset: bigint, length: number, flags = 0): P.Request => ({
      magic: P.REQUEST_MAGIC,
      flags,
      type,
      cookie: 1n,
      offset,
      length,
    })
    const ro = {size: 1 << 20, writable: false}
    const rw = {size: 1 << 20, writable: true}
    const err = (req: P.Request, e: {size: number; writable: boolean}) => P.requestError(req, e)?.error ?? 0

    it('bounds, lengths, flags and permissions', () => {
      assert.equal(err(r(P.CMD.READ, 0n, 1 << 20), ro), 0)
      assert.equal(err(r(P.CMD.READ, 1n, 1 << 20), ro), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.READ, 2n ** 64n - 1n, 2), ro), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.READ, 0n, 0), ro), 0)
      assert.equal(err(r(P.CMD.READ, 0n, P.MAX_PAYLOAD + 1), {size: 2 ** 40, writable: false}), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.READ, 0n, 512, P.CMD_FLAG.FUA), ro), 0)
      assert.equal(err(r(P.CMD.READ, 0n, 512, P.CMD_FLAG.DF), ro), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.WRITE, 0n, 512), ro), P.NBD_EPERM)
      assert.equal(err(r(P.CMD.TRIM, 0n, 512), ro), P.NBD_EPERM)
      assert.equal(err(r(P.CMD.WRITE_ZEROES, 0n, 512), ro), P.NBD_EPERM)
      assert.equal(err(r(P.CMD.WRITE, 0n, 512, P.CMD_FLAG.FUA), rw), 0)
      assert.equal(err(r(P.CMD.WRITE, BigInt((1 << 20) - 511), 512), rw), P.NBD_ENOSPC)
      assert.equal(err(r(P.CMD.WRITE_ZEROES, BigInt(1 << 20), 1), rw), P.NBD_ENOSPC)
      assert.equal(err(r(P.CMD.TRIM, BigInt(1 << 20), 1), rw), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.WRITE, 0n, P.MAX_PAYLOAD + 1), {size: 2 ** 40, writable: true}), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.WRITE_ZEROES, 0n, 64 << 20, P.CMD_FLAG.NO_HOLE), {size: 2 ** 40, writable: true}), 0)
      assert.equal(err(r(P.CMD.WRITE_ZEROES, 0n, 512, P.CMD_FLAG.FAST_ZERO), rw), P.NBD_EINVAL)
      assert.equal(err(r(P.CMD.FLUSH, 0n, 0), ro), 0)
      for (const t of [P.CMD.CACHE, P.CMD.BLOCK_STATUS, 8, 0xffff]) assert.equal(err(r(t, 0n, 512), rw), P.NBD_EINVAL, `command ${t}`)
    })
  })
})
