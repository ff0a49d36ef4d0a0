/**
 * A small HTTP server that speaks enough of ClickHouse's HTTP interface for @clickhouse/client
 * (`createClient({ url })`) and serves it from one embedded chDB data dir.
 *
 * Why it exists: chDB binds a data dir to one process, so several processes (two consumers, a
 * consumer and an analyst's shell, a test and the service under test) cannot share one embedded
 * ClickHouse. Run `cdp clickhouse-gateway` once and point every process at it with
 * CLICKHOUSE_URL: they all take the server code path, as they would against a real ClickHouse.
 * It is a development and test adapter, bound to 127.0.0.1, with one secret (a token generated
 * at start-up, sent as the password) and no users; it refuses browsers and foreign Host names
 * (access.ts). Production runs a ClickHouse server (see docs/CLICKHOUSE-GATEWAY.md).
 *
 * The protocol, as clickhouse-js uses it:
 *   GET  /ping                         -> 200 "Ok.\n"
 *   GET  /?query=...                   -> a read-only query (readonly = 2 unless given, as a server does)
 *   POST /?query=INSERT ... FORMAT F   -> the body is the data
 *   POST /  (query in the body)        -> SELECT (clickhouse-js appends FORMAT F), DDL, commands
 *   POST /  multipart/form-data        -> parts `query` and `param_<name>` (use_multipart_params)
 * URL parameters: `query`, `query_id`, `database`, `default_format`, `param_<name>` (bound by
 * the engine, never spliced into the SQL), and every other name is a setting for this request
 * only (insert_deduplication_token, readonly, date_time_input_format, ...). Settings that only
 * mean something to an HTTP server (wait_end_of_query, enable_http_compression, http_*) are
 * dropped: the whole result is materialized before it is sent, and it is sent uncompressed.
 * Responses carry X-ClickHouse-Query-Id, X-ClickHouse-Format, X-ClickHouse-Summary and
 * X-ClickHouse-Timezone. Errors are `Code: N. DB::Exception: message (TYPE)` with an HTTP status
 * chosen from the type and X-ClickHouse-Exception-Code, which clickhouse-js turns into a
 * ClickHouseError with `code` and `type`, as it does for a server.
 *
 * Isolation: every request runs on its own short-lived chDB session (ChdbSessions.scoped from
 * src/clickhouse/chdb-connection.ts) on the data dir, closed when the request settles. A session keeps its
 * settings and its current database (chdb-connection.ts measures how a setting such as
 * insert_deduplication_token or readonly leaks on a shared session), so one request's
 * settings and `database` never reach another. ChdbSessions' long-lived session holds the data
 * dir for the gateway's lifetime. A server also refuses several statements in one request;
 * so does the gateway (chDB would run them all).
 *
 * Query parameters: a server receives `param_x` as text in the declared type's escaped text
 * format and parses it. chdb's binder (the only binding path the engine offers from Node) takes
 * JS values and formats them itself (a string is TSV-escaped once more), so each value is first
 * turned into the JS string that chdb formats back into text of the same meaning; see paramValue.
 *
 * Binary data: chdb's Connection passes inline insert data as a UTF-8 string, which would alter
 * binary formats (Native, clickhouse-connect's default, RowBinary, Parquet, ...) and text that is
 * not UTF-8. Such data is written to a private file (0600, in a scratch directory of the
 * gateway's own, removed after the statement) and the statement becomes `INSERT INTO t [(cols)]
 * FROM INFILE '<file>' ... FORMAT F`, so the engine parses it with its own reader for F. Bodies
 * in encodings Node lacks (lz4, clickhouse-connect's default, zstd, xz) are decoded the same way,
 * by chDB reading the file with that compression; the size limit applies after decompression.
 * Query results are sent uncompressed whatever Accept-Encoding says, as a server does with
 * enable_http_compression = 0 (clients read the missing Content-Encoding as plain).
 *
 * Sessions: `session_id` is accepted (clickhouse-connect sends one by default) but nothing is kept
 * between requests; SET, USE and temporary tables in a session are refused, session_check=1 is
 * SESSION_NOT_FOUND. Not supported, refused with an error that names the way out: ClickHouse's
 * native compression (compress=1 / decompress=1) and content encodings other than gzip, deflate,
 * br, lz4, zstd and xz; binary data for any other insert shape than `INSERT INTO t [(cols)]
 * [SETTINGS ...] FORMAT F` (INSERT ... SELECT ... FROM input()), external tables in multipart
 * requests, progress headers, users (any user name is accepted; it is only reported to the
 * onExecuted hook). Setting defaults are chDB's, not a server's (for example 64-bit integers are
 * not quoted in JSON output), except async_insert, off unless a request turns it on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import { mkdtempSync, rmSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { ChdbSessions, type ChdbExecParams, type ChdbExecResult } from '../../src/clickhouse/chdb-connection.js'
import { tokenize, type Token } from './tokenize.js'
import { checkOrigin, checkToken, newGatewayToken, type AccessRefusal } from './access.js'

export interface ClickHouseGatewayOptions {
  /** chDB data dir; the gateway holds it for as long as it runs */
  path: string
  /** TCP port on 127.0.0.1; 0 picks a free one (default 8123, ClickHouse's HTTP port) */
  port?: number
  /** largest request body accepted, after decompression (default 256 MiB) */
  maxBodyBytes?: number
  /**
   * the secret every statement must present as its password (see access.ts); default: a new
   * random one, readable as `gateway.token`
   */
  token?: string
  log?: GatewayLog
  /**
   * Called after a statement ran and before its answer is sent. Tests use it to stop a client
   * at an exact point of the protocol, e.g. after ClickHouse wrote a batch but before the
   * writer could learn it and commit its offsets.
   */
  onExecuted?: (statement: ExecutedStatement) => void | Promise<void>
}

export interface ExecutedStatement {
  queryId: string
  /** the user the request named (Basic auth, X-ClickHouse-User or `user`); only the token is checked */
  user: string
  /** first keyword, upper case: SELECT, INSERT, CREATE, ... */
  kind: string
  /** the statement, without insert data */
  sql: string
  settings: Readonly<Record<string, string>>
}

export interface GatewayLog {
  warn(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

export interface ClickHouseGateway {
  /** `http://127.0.0.1:<port>`, the CLICKHOUSE_URL for clients */
  readonly url: string
  readonly port: number
  /** the password clients must send (CLICKHOUSE_PASSWORD) */
  readonly token: string
  /** stops accepting requests, lets requests in flight finish, then releases the data dir */
  close(): Promise<void>
}

const HOST = '127.0.0.1'
const DEFAULT_MAX_BODY = 256 * 1024 * 1024
/** a server accepts URIs up to 1 MiB (http_max_uri_size); Node's default header limit is 16 KiB */
const MAX_HEADER_BYTES = 1024 * 1024

/** URL parameters that are part of the protocol, not settings */
const PROTOCOL_PARAMS = new Set([
  'query', 'query_id', 'database', 'default_format', 'session_id', 'session_timeout', 'session_check',
  'user', 'password', 'quota_key', 'role', 'compress', 'decompress', 'buffer_size', 'wait_end_of_query',
  'stacktrace', 'client_protocol_version',
])

/** settings only an HTTP server acts on; the gateway's answers need none of them */
function httpOnlySetting(name: string): boolean {
  return name.startsWith('http_') || name === 'enable_http_compression' || name === 'send_progress_in_http_headers'
}

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** how the two clients the project meets are told to compress with gzip */
const GZIP_HINT = 'Content-Encoding: gzip; clickhouse-connect: get_client(..., compress=\'gzip\'); @clickhouse/client: compression: { request: true }'

/**
 * Insert formats whose data is not text. chdb's Connection passes insert data inline, as a UTF-8
 * string, which would alter their bytes; their data goes to chDB as a file instead (see handle).
 */
const BINARY_FORMATS = /^(?:Native|RowBinary[A-Za-z]*|Parquet|Arrow|ArrowStream|ORC|Avro|AvroConfluent|Protobuf[A-Za-z]*|CapnProto|MsgPack|BSONEachRow|Npy|RawBLOB)$/i

/**
 * Content encodings Node cannot decode and ClickHouse's own readers can (measured on chDB 26.7:
 * lz4 frames, zstd, xz; its bz2 reader is not built in). clickhouse-connect sends lz4 by default.
 * The body is decoded by chDB reading it from a private file (decodeWithChdb).
 */
const CHDB_ENCODINGS = new Set(['lz4', 'zstd', 'xz'])

/** a scratch path is spliced into SQL as a string literal, and FROM INFILE reads `*?{}` as globs */
const SAFE_PATH = /^[A-Za-z0-9_./-]+$/

/** A failure the gateway itself detects, answered like the server's exception of that type. */
class GatewayError extends Error {
  constructor(readonly code: number, readonly type: string, message: string) {
    super(message)
  }
}

const err = {
  syntax: (m: string) => new GatewayError(62, 'SYNTAX_ERROR', m),
  badArguments: (m: string) => new GatewayError(36, 'BAD_ARGUMENTS', m),
  unknownSetting: (m: string) => new GatewayError(115, 'UNKNOWN_SETTING', m),
  notImplemented: (m: string) => new GatewayError(48, 'NOT_IMPLEMENTED', m),
  aborted: (m: string) => new GatewayError(236, 'ABORTED', m),
  refused: (r: AccessRefusal) => new GatewayError(r.code, r.type, r.message),
}

export async function startClickHouseGateway(opts: ClickHouseGatewayOptions): Promise<ClickHouseGateway> {
  const token = opts.token ?? newGatewayToken()
  if (token.length < 16) throw new Error('the ClickHouse gateway token must have at least 16 characters')
  // binary insert data and bodies chDB decodes are handed to chDB as files (0600) in a directory
  // of this gateway's own (0700), each removed once its statement has run
  const scratch = mkdtempSync(join(tmpdir(), 'cdp-ch-gateway-'))
  if (!SAFE_PATH.test(scratch)) {
    rmSync(scratch, { recursive: true, force: true })
    throw new Error(`the ClickHouse gateway's scratch directory ${scratch} has characters ClickHouse would read as SQL or a glob; set TMPDIR to a plain path`)
  }
  let engine: ChdbSessions
  try {
    engine = new ChdbSessions(opts.path)
  } catch (e) {
    rmSync(scratch, { recursive: true, force: true })
    throw e
  }
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY
  const inflight = new Set<Promise<void>>()
  let closing = false
  /** the bound port, known once listening; requests cannot arrive before */
  let port = 0

  const server: Server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
    const p = handle(req, res).catch((e: unknown) => {
      // a statement ClickHouse refuses is the client's business; anything else is the gateway's
      const { type } = describe(e)
      opts.log?.[type === 'STD_EXCEPTION' ? 'warn' : 'debug']({ err: (e as Error).message }, 'clickhouse gateway: request failed')
      if (!res.headersSent) sendError(res, e)
      else res.destroy()
    })
    inflight.add(p)
    void p.finally(() => inflight.delete(p))
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${HOST}`)
    const queryId = url.searchParams.get('query_id') || randomUUID()
    res.setHeader('X-ClickHouse-Query-Id', queryId)
    res.setHeader('X-ClickHouse-Timezone', 'UTC')
    // before anything else, so a refused request learns nothing but the refusal
    const foreign = checkOrigin(req.headers, port)
    if (foreign !== undefined) throw err.refused(foreign)
    if (closing) throw err.aborted('the ClickHouse gateway is shutting down')
    if (url.pathname === '/ping' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8' })
      res.end('Ok.\n')
      return
    }
    if (url.pathname !== '/') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' })
      res.end(`There is no handle ${url.pathname}\n`)
      return
    }
    if (req.method !== 'GET' && req.method !== 'POST') {
      throw err.badArguments(`HTTP method ${req.method ?? '?'} is not supported; use GET or POST`)
    }

    // checked before the body is read: an unauthenticated request costs no more than its headers
    const unauthenticated = checkToken(req.headers, url, token)
    if (unauthenticated !== undefined) throw err.refused(unauthenticated)
    const request = await parseRequest(req, url, maxBody, (raw, method) => decodeWithChdb(engine, scratch, raw, method, maxBody))
    if (request === undefined) {
      // GET / without a query: the server's liveness answer
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8' })
      res.end('Ok.\n')
      return
    }
    const abort = new AbortController()
    res.on('close', () => { if (!res.writableEnded) abort.abort() })
    const params = {
      query_id: queryId,
      query_params: request.params,
      // default_format becomes chdb's output format option, not a SET. async_insert is off unless
      // the request turns it on, as on a server (chDB's default is on): a client that did not ask
      // for an asynchronous insert expects it written when answered, and counted in the summary
      clickhouse_settings: { async_insert: '0', ...request.settings, default_format: request.defaultFormat } as Record<string, string> as ChdbExecParams['clickhouse_settings'],
    }
    const { data, fromFile } = request
    const result = data !== undefined && fromFile !== undefined
      // the data as a file that chDB reads with its own parser for the format, bytes untouched.
      // No abort signal: chDB would settle early and keep reading a file removed under it
      ? await withScratchFile(scratch, data, (path) => execute(engine, { ...params, query: fromFile(path) }, request.database))
      : await execute(engine, {
        ...params,
        query: request.sql,
        abort_signal: abort.signal,
        ...(data === undefined ? {} : { values: Readable.from([data]) }),
      }, request.database)
    await opts.onExecuted?.({ queryId, user: userOf(req, url), kind: request.kind, sql: request.sql, settings: request.settings })
    const chunks: Buffer[] = []
    for await (const chunk of result.stream as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
    const body = Buffer.concat(chunks)
    const summary: Record<string, string | undefined> = { ...result.summary }
    if (request.kind === 'INSERT' && request.data !== undefined) {
      // chDB reports the rows of an insert's data as read rows (its own insert() maps them alike)
      summary.written_rows = summary.read_rows ?? '0'
      summary.written_bytes = summary.read_bytes ?? '0'
    } else if (request.kind === 'INSERT') {
      // INSERT ... SELECT: chDB counts nothing (measured: 0 for 5 rows written); no number is
      // truer than a wrong one
      delete summary.written_rows
      delete summary.written_bytes
    }
    const format = request.kind === 'INSERT' ? request.defaultFormat : request.format ?? request.defaultFormat
    res.writeHead(200, {
      'Content-Type': contentType(format),
      'Content-Length': body.length,
      'X-ClickHouse-Format': format,
      'X-ClickHouse-Summary': JSON.stringify(summary),
    })
    res.end(body)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 8123, HOST, () => { server.off('error', reject); resolve() })
  }).catch(async (e: unknown) => {
    await engine.close()
    rmSync(scratch, { recursive: true, force: true })
    throw e
  })
  port = (server.address() as { port: number }).port

  let closed: Promise<void> | undefined
  return {
    url: `http://${HOST}:${port}`,
    port,
    token,
    close: () => (closed ??= (async () => {
      closing = true
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      await Promise.allSettled([...inflight])
      server.closeAllConnections()
      await stopped
      await engine.close()
      rmSync(scratch, { recursive: true, force: true })
    })()),
  }
}

/**
 * Every request on a session of its own, so that its settings and `database` never reach
 * another request; the long-lived session of ChdbSessions holds the data dir meanwhile.
 */
function execute(engine: ChdbSessions, params: ChdbExecParams, database: string | undefined): Promise<ChdbExecResult> {
  if (engine.closed) return Promise.reject(err.aborted('the ClickHouse gateway is shutting down'))
  return engine.scoped(async (session) => {
    if (database !== undefined) await session.command({ query: `USE ${quoteIdentifier(database)}` })
    return session.exec(params)
  })
}

function userOf(req: IncomingMessage, url: URL): string {
  const basic = /^Basic\s+(\S+)/i.exec(req.headers.authorization ?? '')
  if (basic !== null) return Buffer.from(basic[1]!, 'base64').toString('utf8').split(':')[0] || 'default'
  const header = req.headers['x-clickhouse-user']
  if (typeof header === 'string' && header !== '') return header
  return url.searchParams.get('user') || 'default'
}

function quoteIdentifier(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``
}

function quoteString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, '\\\'')}'`
}

/**
 * Writes `data` to a new file of its own in the gateway's scratch directory (mode 0600, never an
 * existing file), runs `op` with its path and removes it once `op` settled. The name is the
 * gateway's choice, never the client's.
 */
async function withScratchFile<T>(dir: string, data: Buffer, op: (path: string) => Promise<T>): Promise<T> {
  const path = join(dir, `${randomUUID()}.bin`)
  await writeFile(path, data, { mode: 0o600, flag: 'wx' })
  try {
    return await op(path)
  } finally {
    await rm(path, { force: true })
  }
}

/**
 * A body in an encoding Node cannot decode (lz4, zstd, xz), decoded by ClickHouse's own reader:
 * chDB reads the file back as one RawBLOB value. The limit applies to the decoded size, as for
 * gzip; the memory cap stops a decompression bomb inside chDB before it is materialized (reading
 * one value grows its buffer by doubling, hence the margin), the length check makes the limit exact.
 */
async function decodeWithChdb(engine: ChdbSessions, dir: string, raw: Buffer, method: string, maxBody: number): Promise<Buffer> {
  const cap = 4 * maxBody + 64 * 1024 * 1024
  const tooLarge = (): GatewayError => err.badArguments(`request body larger than ${maxBody} bytes after ${method} decompression`)
  const malformed = method === 'lz4' ? lz4FramesMalformed(raw) : undefined
  if (malformed !== undefined) throw err.badArguments(`cannot decompress the lz4 request body: ${malformed}`)
  let decoded: Buffer
  try {
    decoded = await withScratchFile(dir, raw, async (path) => {
      const result = await execute(engine, {
        query: `SELECT raw_blob FROM file(${quoteString(path)}, 'RawBLOB', 'raw_blob String', ${quoteString(method)}) SETTINGS max_memory_usage = ${cap}`,
        clickhouse_settings: { default_format: 'RawBLOB' } as Record<string, string> as ChdbExecParams['clickhouse_settings'],
      }, undefined)
      const chunks: Buffer[] = []
      for await (const chunk of result.stream as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
      return Buffer.concat(chunks)
    })
  } catch (e) {
    if (e instanceof GatewayError) throw e
    if (describe(e).type === 'MEMORY_LIMIT_EXCEEDED') throw tooLarge()
    throw err.badArguments(`cannot decompress the ${method} request body: ${describe(e).text.replace(/^Code: [0-9]+\. DB::Exception: /, '')}`)
  }
  if (decoded.length > maxBody) throw tooLarge()
  return decoded
}

/**
 * Why `buf` is not a sequence of complete LZ4 frames, or undefined when it is. ClickHouse's lz4
 * reader ends without an error where a frame is cut short or followed by junk, keeping what it
 * decoded (measured on chDB 26.7): a malformed body would become a partial insert. So the
 * frames' structure is walked here first (headers, block sizes, end marks, checksum fields;
 * the data itself is left to chDB).
 */
function lz4FramesMalformed(buf: Buffer): string | undefined {
  let at = 0
  while (at < buf.length) {
    const magic = at + 4 <= buf.length ? buf.readUInt32LE(at) : undefined
    if (magic !== undefined && (magic & 0xfffffff0) === 0x184d2a50) {
      // a skippable frame: its size, then that many bytes
      if (at + 8 > buf.length) return 'a skippable frame cut short'
      at += 8 + buf.readUInt32LE(at + 4)
      if (at > buf.length) return 'a skippable frame cut short'
      continue
    }
    if (magic !== 0x184d2204) return `no LZ4 frame at byte ${at}`
    if (at + 7 > buf.length) return `an LZ4 frame header cut short at byte ${at}`
    const flags = buf[at + 4]!
    if (flags >> 6 !== 1) return `an LZ4 frame of unknown version at byte ${at}`
    at += 6 + (flags & 0x08 ? 8 : 0) + (flags & 0x01 ? 4 : 0) + 1 // FLG, BD, content size, dictionary id, HC
    const blockChecksum = flags & 0x10 ? 4 : 0
    for (;;) {
      if (at + 4 > buf.length) return 'an LZ4 frame cut short (no end mark)'
      const size = buf.readUInt32LE(at) & 0x7fffffff
      at += 4
      if (size === 0) break
      at += size + blockChecksum
      if (at > buf.length) return 'an LZ4 block cut short'
    }
    at += flags & 0x04 ? 4 : 0 // content checksum
    if (at > buf.length) return 'an LZ4 frame cut short (content checksum)'
  }
  return undefined
}

interface ParsedRequest {
  /** the statement, without insert data */
  sql: string
  /** insert data that follows the statement */
  data: Buffer | undefined
  /**
   * for data that cannot go to chDB inline (a binary format, bytes that are not UTF-8): the
   * statement that reads it from a file at `path` instead (`INSERT ... FROM INFILE path ...`)
   */
  fromFile: ((path: string) => string) | undefined
  kind: string
  /** the statement's own FORMAT clause, if any */
  format: string | undefined
  defaultFormat: string
  database: string | undefined
  params: Record<string, unknown>
  settings: Record<string, string>
}

/** decodes a body in one of CHDB_ENCODINGS */
type Decode = (raw: Buffer, method: string) => Promise<Buffer>

async function parseRequest(req: IncomingMessage, url: URL, maxBody: number, decode: Decode): Promise<ParsedRequest | undefined> {
  const search = url.searchParams
  for (const name of ['compress', 'decompress']) {
    if (search.get(name) === '1') {
      throw err.notImplemented(`${name}=1 (ClickHouse's native LZ4 block compression) is not supported by the gateway; ` +
        `use HTTP compression with gzip instead (${GZIP_HINT})`)
    }
  }
  // clickhouse-connect sends a session id with every request unless told otherwise. Accepted, but
  // the gateway keeps nothing between requests, so it says so where a client relies on a session.
  const sessionId = search.get('session_id') || undefined
  if (sessionId !== undefined && search.get('session_check') === '1') {
    throw new GatewayError(372, 'SESSION_NOT_FOUND', `Session ${sessionId} not found: the gateway keeps no sessions`)
  }

  const rawParams = new Map<string, string>()
  const settings: Record<string, string> = {}
  for (const [name, value] of search) {
    if (name.startsWith('param_')) rawParams.set(name.slice('param_'.length), value)
    else if (!PROTOCOL_PARAMS.has(name) && !httpOnlySetting(name)) {
      if (!SETTING_NAME.test(name)) throw err.unknownSetting(`Unknown setting '${name}'`)
      settings[name] = value
    }
  }
  // a server reads every GET as read-only (readonly = 2 still allows settings)
  if (req.method === 'GET' && settings.readonly === undefined) settings.readonly = '2'
  // chDB applies settings one SET at a time, and readonly = 1 refuses any SET after it
  if (settings.readonly !== undefined) {
    const readonly = settings.readonly
    delete settings.readonly
    settings.readonly = readonly
  }

  let urlQuery = search.get('query') ?? undefined
  let body = req.method === 'POST' ? await readBody(req, maxBody, decode) : Buffer.alloc(0)
  const contentTypeHeader = req.headers['content-type'] ?? ''
  if (/^multipart\/form-data/i.test(contentTypeHeader)) {
    const parts = parseMultipart(body, contentTypeHeader)
    for (const [name, value] of parts) {
      if (name === 'query') urlQuery = urlQuery === undefined ? value : `${urlQuery}\n${value}`
      else if (name.startsWith('param_')) rawParams.set(name.slice('param_'.length), value)
      else throw err.notImplemented(`multipart part ${JSON.stringify(name)} is not supported by the gateway (only query and param_*)`)
    }
    body = Buffer.alloc(0)
  }

  // the statement, and what follows it in the body: an INSERT's data, as bytes
  let sql: string
  let rest: Buffer
  if (urlQuery !== undefined && urlQuery.trim() !== '') {
    sql = urlQuery
    rest = body
  } else if (body.length > 0) {
    // INSERT ... FORMAT F <data>: only the statement is SQL, and the data may be binary. Matched on
    // the bytes (latin1 maps each byte to one character), so offsets are byte offsets
    const m = /^\s*INSERT\b[\s\S]*?\bFORMAT\s+[A-Za-z0-9_]+/i.exec(body.toString('latin1'))
    if (m !== null) {
      sql = body.subarray(0, m[0].length).toString('utf8')
      // the data starts after the rest of the FORMAT line, as on a server
      const after = /^[ \t]*\r?\n?/.exec(body.subarray(m[0].length, m[0].length + 64).toString('latin1'))![0].length
      rest = body.subarray(m[0].length + after)
    } else {
      sql = body.toString('utf8')
      rest = Buffer.alloc(0)
    }
    if (!isUtf8(body.subarray(0, m?.[0].length ?? body.length))) throw err.syntax('the query is not valid UTF-8')
  } else if (req.method === 'GET') {
    return undefined
  } else {
    throw err.syntax('Empty query')
  }

  const shape = statementShape(sql)
  if (sessionId !== undefined && (shape.kind === 'SET' || shape.kind === 'USE' || /^\s*CREATE\s+TEMPORARY\b/i.test(sql))) {
    throw err.notImplemented(`${shape.kind} in session ${sessionId}: the gateway runs every request on its own and keeps nothing ` +
      'between requests; pass settings with each query (URL parameters) and name the database in the statement or the database parameter')
  }
  const binary = shape.kind === 'INSERT' && shape.format !== undefined && BINARY_FORMATS.test(shape.format)
  // No data is no data, not an empty insert: chdb would answer that without running the statement
  const data = rest.length > 0 && (binary || /\S/.test(rest.toString('latin1'))) ? rest : undefined
  let fromFile: ParsedRequest['fromFile']
  // chdb's Connection passes inline data as a UTF-8 string: binary data, and text that is not
  // UTF-8, would reach the engine altered. Such data is read by the engine from a file instead
  if (data !== undefined && (binary || !isUtf8(data))) {
    fromFile = shape.kind === 'INSERT' && shape.format !== undefined ? fromInfile(sql, shape.tokens) : undefined
    if (fromFile === undefined) {
      throw err.notImplemented(binary
        ? `insert format ${shape.format ?? ''} is binary, and the gateway passes binary data only to INSERT INTO table [(columns)] [SETTINGS ...] FORMAT F`
        : 'the insert data is not valid UTF-8, and the gateway passes such data only to INSERT INTO table [(columns)] [SETTINGS ...] FORMAT F')
    }
  }
  const types = placeholderTypes(sql)
  const params: Record<string, unknown> = {}
  for (const [name, raw] of rawParams) params[name] = paramValue(raw, types.get(name))
  const database = search.get('database') ?? undefined
  return {
    sql, data, fromFile, kind: shape.kind, format: shape.format,
    defaultFormat: search.get('default_format') || 'TabSeparated',
    database: database === undefined || database === '' || database === 'default' ? undefined : database,
    params, settings,
  }
}

/** The statement's first keyword and its FORMAT clause; refuses several statements, as a server does. */
function statementShape(sql: string): { kind: string; format: string | undefined; tokens: Token[] } {
  const t = tokenize(sql)
  if (!t.ok) throw err.syntax(`cannot parse the query: ${t.reason}`)
  const tokens = t.tokens
  while (tokens.length > 0 && tokens[tokens.length - 1]?.kind === 'punct' && tokens[tokens.length - 1]?.text === ';') tokens.pop()
  if (tokens.length === 0) throw err.syntax('Empty query')
  if (tokens.some((tk) => tk.kind === 'punct' && tk.text === ';')) throw err.syntax('Multi-statements are not allowed')
  const first = tokens.find((tk) => !(tk.kind === 'punct' && tk.text === '('))
  const kind = first?.kind === 'word' ? first.text.toUpperCase() : ''
  const a = tokens[tokens.length - 2]
  const b = tokens[tokens.length - 1]
  const format = a?.kind === 'word' && a.text.toUpperCase() === 'FORMAT' && (b?.kind === 'word' || b?.kind === 'quoted') ? b.text : undefined
  return { kind, format, tokens }
}

/**
 * For `INSERT INTO [TABLE|FUNCTION] target [(columns)] [SETTINGS ...] FORMAT F` (tokens without a
 * trailing `;`): the same statement reading its data from a file, with `FROM INFILE 'path'` where
 * ClickHouse's grammar wants it (after the columns, before SETTINGS and FORMAT). The engine then
 * parses the data with the statement's own format, columns and settings, exactly as inline data.
 * Undefined for any other shape (INSERT ... SELECT ... FROM input(...) FORMAT F, a statement that
 * already names a file), which keeps inline data only.
 */
function fromInfile(sql: string, tokens: Token[]): ((path: string) => string) | undefined {
  const word = (tk: Token | undefined, w: string): boolean => tk?.kind === 'word' && tk.text.toUpperCase() === w
  const format = tokens.length - 2
  if (!word(tokens[0], 'INSERT') || !word(tokens[1], 'INTO') || !word(tokens[format], 'FORMAT')) return undefined
  let at = format
  let depth = 0
  for (let i = 2; i < format; i++) {
    const tk = tokens[i]!
    if (tk.kind === 'punct' && tk.text === '(') depth++
    else if (tk.kind === 'punct' && tk.text === ')') depth--
    else if (depth === 0 && tk.kind === 'word') {
      const w = tk.text.toUpperCase()
      if (w === 'SELECT' || w === 'WITH' || w === 'VALUES' || w === 'INFILE') return undefined
      // SETTINGS name = ...: a table called `settings` is followed by neither
      if (w === 'SETTINGS' && tokens[i + 1]?.kind === 'word' && tokens[i + 2]?.kind === 'punct' && tokens[i + 2]?.text === '=') {
        at = Math.min(at, i)
      }
    }
  }
  const start = tokens[at]!.start
  return (path) => `${sql.slice(0, start)} FROM INFILE ${quoteString(path)} COMPRESSION 'none' ${sql.slice(start)}`
}

/** declared type of each `{name:Type}` placeholder */
function placeholderTypes(sql: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const m of sql.matchAll(/\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}/g)) {
    if (!out.has(m[1]!)) out.set(m[1]!, m[2]!)
  }
  return out
}

function isComposite(type: string): boolean {
  let t = type.trim()
  for (;;) {
    const m = /^(?:Nullable|LowCardinality)\s*\(([\s\S]*)\)$/i.exec(t)
    if (m === null) break
    t = m[1]!.trim()
  }
  return /^(?:Array|Tuple|Map|Nested)\s*\(/i.test(t)
}

/**
 * The JS value to hand chdb's binder for the text a client sent as `param_<name>`.
 *
 * The engine parses a parameter's text in the escaped (TSV) format of its declared type. chdb
 * formats a JS string for the binder by TSV-escaping it (backslash, NUL, \b \f \n \r \t), and
 * `null` as `\N`. So:
 *   - `\N` becomes null, which chdb sends as `\N` again;
 *   - a scalar's text is unescaped here exactly as the engine would unescape it, and chdb's
 *     escaping brings it back;
 *   - an Array, Tuple or Map is parsed as it stands (quoted strings inside, each with its own
 *     escapes, and no TSV layer around them), so only the quoted strings are rewritten: their
 *     escapes decoded, a quote doubled (`''`, which the engine reads as one quote), everything
 *     else left for chdb's escaping, which the engine's quoted-string reader undoes.
 * Verified against the engine for every character class by test/clickhouse/gateway.test.ts.
 */
export function paramValue(raw: string, declaredType: string | undefined): string | null {
  if (raw === '\\N') return null
  if (declaredType === undefined || !isComposite(declaredType)) return unescape(raw, 0, raw.length)
  let out = ''
  let i = 0
  while (i < raw.length) {
    const c = raw[i]!
    if (c !== '\'') { out += c; i++; continue }
    // a quoted string: find its end (a quote that is neither escaped nor doubled)
    let j = i + 1
    while (j < raw.length) {
      if (raw[j] === '\\') { j += 2; continue }
      if (raw[j] === '\'') {
        if (raw[j + 1] === '\'') { j += 2; continue }
        break
      }
      j++
    }
    const content = unescape(raw, i + 1, Math.min(j, raw.length))
    out += `'${content.replace(/'/g, '\'\'')}'`
    i = j + 1
  }
  return out
}

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', e: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '0': '\0' }

/** ClickHouse's escape sequences: the ones above, `\xHH` (a byte), `''` and `\c` for any other c */
function unescape(s: string, from: number, to: number): string {
  let out = ''
  let bytes: number[] = []
  const flush = (): void => {
    if (bytes.length > 0) { out += Buffer.from(bytes).toString('utf8'); bytes = [] }
  }
  for (let i = from; i < to; i++) {
    const c = s[i]!
    if (c === '\\' && i + 1 < to) {
      const n = s[i + 1]!
      const hex = n === 'x' || n === 'X' ? /^[0-9A-Fa-f]{2}$/.exec(s.slice(i + 2, i + 4)) : null
      if (hex !== null && i + 3 < to) { bytes.push(parseInt(hex[0], 16)); i += 3; continue }
      flush()
      out += ESCAPES[n] ?? n
      i++
      continue
    }
    flush()
    if (c === '\'' && s[i + 1] === '\'' && i + 1 < to) { out += '\''; i++; continue }
    out += c
  }
  flush()
  return out
}

async function readBody(req: IncomingMessage, maxBody: number, decode: Decode): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBody) throw err.badArguments(`request body larger than ${maxBody} bytes`)
    chunks.push(chunk)
  }
  const raw = Buffer.concat(chunks)
  const encoding = (req.headers['content-encoding'] ?? '').toLowerCase().trim()
  if (encoding === '' || encoding === 'identity' || raw.length === 0) return raw
  let out: Buffer
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') out = gunzipSync(raw, { maxOutputLength: maxBody })
    else if (encoding === 'deflate') out = inflateSync(raw, { maxOutputLength: maxBody })
    else if (encoding === 'br') out = brotliDecompressSync(raw, { maxOutputLength: maxBody })
    else if (CHDB_ENCODINGS.has(encoding)) out = await decode(raw, encoding)
    else throw err.notImplemented(`Content-Encoding ${encoding} is not supported by the gateway; use gzip (${GZIP_HINT}), or deflate, br, lz4, zstd or xz`)
  } catch (e) {
    if (e instanceof GatewayError) throw e
    throw err.badArguments(`cannot decompress the ${encoding} request body: ${(e as Error).message}`)
  }
  return out
}

function parseMultipart(body: Buffer, contentTypeHeader: string): [string, string][] {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentTypeHeader)
  const boundary = m?.[1] ?? m?.[2]
  if (boundary === undefined) throw err.badArguments('multipart/form-data without a boundary')
  const delimiter = Buffer.from(`--${boundary}`)
  const parts: [string, string][] = []
  let pos = body.indexOf(delimiter)
  while (pos >= 0) {
    const start = pos + delimiter.length
    if (body.subarray(start, start + 2).toString() === '--') break
    const next = body.indexOf(delimiter, start)
    if (next < 0) throw err.badArguments('multipart/form-data body is not terminated')
    const part = body.subarray(start, next)
    const headerEnd = part.indexOf('\r\n\r\n')
    if (headerEnd < 0) throw err.badArguments('multipart part without headers')
    const headers = part.subarray(0, headerEnd).toString('utf8')
    const name = /name="([^"]*)"/i.exec(headers)?.[1]
    if (name === undefined) throw err.badArguments('multipart part without a name')
    if (/filename=/i.test(headers)) throw err.notImplemented('external tables (file parts) are not supported by the gateway')
    let value = part.subarray(headerEnd + 4)
    if (value.subarray(value.length - 2).toString() === '\r\n') value = value.subarray(0, value.length - 2)
    parts.push([name, value.toString('utf8')])
    pos = next
  }
  return parts
}

function contentType(format: string): string {
  const f = format.toLowerCase()
  if (f === 'jsoneachrow' || f === 'jsonstringseachrow' || f === 'jsoncompacteachrow') return 'application/x-ndjson; charset=UTF-8'
  if (f.startsWith('json')) return 'application/json; charset=UTF-8'
  if (f.startsWith('csv')) return 'text/csv; charset=UTF-8; header=absent'
  if (f.startsWith('tabseparated') || f.startsWith('tsv')) return 'text/tab-separated-values; charset=UTF-8'
  return 'text/plain; charset=UTF-8'
}

/** The HTTP status a server answers an exception type with (the common ones; else 500). */
function statusFor(type: string): number {
  if (type === 'AUTHENTICATION_FAILED' || type === 'REQUIRED_PASSWORD') return 401
  if (type === 'READONLY' || type === 'ACCESS_DENIED') return 403
  if (type === 'SESSION_NOT_FOUND') return 404
  if (/^UNKNOWN_(TABLE|DATABASE|IDENTIFIER|FUNCTION|TYPE|FORMAT|STORAGE|AGGREGATE_FUNCTION)$/.test(type)) return 404
  if (type === 'NOT_IMPLEMENTED') return 501
  if (type === 'ABORTED') return 503
  if (type === 'SYNTAX_ERROR' || type === 'BAD_ARGUMENTS' || type === 'UNKNOWN_SETTING' || type === 'TYPE_MISMATCH' ||
    type === 'BAD_QUERY_PARAMETER' || type === 'UNKNOWN_QUERY_PARAMETER' || type === 'ILLEGAL_TYPE_OF_ARGUMENT' ||
    type === 'NUMBER_OF_ARGUMENTS_DOESNT_MATCH' || type === 'INCORRECT_DATA' || type === 'EMPTY_DATA_PASSED' ||
    type.startsWith('CANNOT_PARSE') || type.startsWith('CANNOT_READ')) return 400
  return 500
}

/** The server's text of an exception, and its code and type. */
function describe(e: unknown): { code: number; type: string; text: string } {
  if (e instanceof GatewayError) return { code: e.code, type: e.type, text: `Code: ${e.code}. DB::Exception: ${e.message}. (${e.type})` }
  const o = e as { code?: unknown; type?: unknown; message?: unknown; cause?: unknown }
  if (typeof o.code === 'string' && /^[0-9]+$/.test(o.code) && typeof o.type === 'string') {
    // chdb keeps the engine's own text as the cause of the ClickHouseError it throws
    const original = (o.cause as { message?: unknown } | undefined)?.message
    const text = typeof original === 'string' && /^Code: [0-9]+\./.test(original)
      ? original
      : `Code: ${o.code}. DB::Exception: ${String(o.message).trim()} (${o.type})`
    return { code: Number(o.code), type: o.type, text }
  }
  const message = e instanceof Error ? e.message : String(e)
  if (/^Code: [0-9]+\./.test(message)) {
    const m = /^Code: ([0-9]+)\.[\s\S]*\(([A-Z0-9_]*[A-Z]{3}[A-Z0-9_]*)\)/.exec(message)
    if (m !== null) return { code: Number(m[1]), type: m[2]!, text: message }
  }
  return { code: 1001, type: 'STD_EXCEPTION', text: `Code: 1001. DB::Exception: ${message}. (STD_EXCEPTION)` }
}

function sendError(res: ServerResponse, e: unknown): void {
  const { code, type, text } = describe(e)
  const body = Buffer.from(`${text.replace(/\s+$/, '')}\n`, 'utf8')
  const status = statusFor(type)
  res.writeHead(status, {
    ...(status === 401 ? { 'WWW-Authenticate': 'Basic realm="ClickHouse gateway", charset="UTF-8"' } : {}),
    'Content-Type': 'text/plain; charset=UTF-8',
    'Content-Length': body.length,
    'X-ClickHouse-Exception-Code': String(code),
  })
  res.end(body)
}
