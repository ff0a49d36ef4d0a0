/**
 * The ClickHouse gateway (tools/clickhouse-gateway/gateway.ts): enough of ClickHouse's HTTP interface
 * for @clickhouse/client, served from one chDB data dir.
 *
 * - `cdp clickhouse-gateway` as its own process, with the scenarios every ClickHouse backend must
 *   pass (server.test.ts, run against it through CLICKHOUSE_URL and CLICKHOUSE_PASSWORD); its
 *   token is in a 0600 file; its data dir is its own while it runs; after SIGTERM it is
 *   unreachable, which the service sees as clickhouse_unavailable.
 * - Who gets in: only requests with the start-up token, never one with an Origin header or a
 *   Host other than the gateway's address.
 * - The protocol on the wire: /ping, GET read-only, POST with the query in the URL or the body,
 *   FORMAT and default_format, headers, errors as `Code: N. DB::Exception` with the exception
 *   code header, one statement per request.
 * - Through clickhouse-js: errors become ClickHouseError with code and type, settings and
 *   `database` stay with their request, compressed inserts, multipart parameters.
 * - What standard clients send by default (clickhouse-connect, @clickhouse/client): session ids,
 *   compression, binary insert formats, X-ClickHouse-Summary for inserts.
 * - Query parameters arrive as text and are bound by the engine: any string, in a String, an
 *   Array, a Map or a Tuple, comes back as it was sent (property test), and none becomes SQL.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync, statSync, existsSync, watch } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { deflateSync, gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { createClient, TupleParam, type ClickHouseClient } from '@clickhouse/client'
import { processEnv } from '../../src/config/index.js'
import { isCdpError } from '../../src/errors.js'
import { createClickHouse, pingClickHouse } from '../../src/clickhouse/client.js'
import { isClickHouseUnavailable } from '../../src/clickhouse/errors.js'
import { createWriter } from '../../src/clickhouse/writer.js'
import { startClickHouseGateway, type ClickHouseGateway } from '../../tools/clickhouse-gateway/gateway.js'
import { tempDir, uniq, type TestContext } from '../helpers/config.js'
import { ROOT, runCdp, waitFor } from '../helpers/process.js'
import { scenarios } from './fixtures/scenarios.js'
import { eventRow } from './fixtures/harness.js'

/** a gateway in this process on a fresh data dir, and a client for it */
async function gateway(t: TestContext): Promise<{ gw: ClickHouseGateway; client: ClickHouseClient; db: string }> {
  const gw = await startClickHouseGateway({ path: join(tempDir(t), 'chdb'), port: 0 })
  t.teardown(() => gw.close())
  const client = createClient({ url: gw.url, password: gw.token, log: { level: 127 as never } })
  t.teardown(() => client.close())
  const db = uniq('gw')
  await client.command({ query: `CREATE DATABASE ${db}` })
  await client.command({ query: `CREATE TABLE ${db}.t (k String, n UInt32) ENGINE = MergeTree ORDER BY k SETTINGS non_replicated_deduplication_window = 100` })
  return { gw, client, db }
}

const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e)

/** the Authorization header @clickhouse/client sends for `{ username, password }` */
const basic = (password: string, user = 'default'): Record<string, string> =>
  ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` })

/** a request with exactly these headers (fetch would not let a test set Host) */
function raw(url: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { method: body === undefined ? 'GET' : 'POST', headers, setHost: !('host' in headers) }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

void t.test('`cdp clickhouse-gateway`: the shared ClickHouse scenarios pass through it; it holds its data dir; SIGTERM stops it', async (t) => {
  const dir = tempDir(t)
  const chdb = join(dir, 'chdb')
  const env = { LOG_LEVEL: '', CLICKHOUSE_URL: '' }
  const gw = runCdp(t, ['clickhouse-gateway', '--port', '0', '--path', chdb], { dir, config: { logLevel: 'warn' }, env })
  const [url, tokenFile] = await waitFor('the gateway listening', async () => {
    if (gw.child.exitCode !== null) throw new Error(`the gateway exited:\n${gw.output()}`)
    const m = /listening on (http:\/\/127\.0\.0\.1:[0-9]+) with chDB at .*; token in (\S+) /.exec(gw.output())
    return m === null ? undefined : [m[1]!, m[2]!] as const
  }, 60_000)
  t.equal(tokenFile, `${chdb}.gateway-token`, 'the token file sits next to the data dir')
  t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'the token file is readable by its owner only')
  const token = readFileSync(tokenFile, 'utf8').trim()
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes')
  t.notMatch(gw.output(), token, 'the token itself is never printed')

  // server.test.ts runs the scenarios on the server that CLICKHOUSE_URL names
  const childEnv: Record<string, string | undefined> = { ...processEnv(), CLICKHOUSE_URL: url, CLICKHOUSE_PASSWORD: token }
  for (const k of Object.keys(childEnv)) if (k.startsWith('TAP')) delete childEnv[k]
  const run = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/clickhouse/server.test.ts')], { cwd: ROOT, env: childEnv })
  let tap = ''
  run.stdout.on('data', (d: Buffer) => { tap += d.toString() })
  run.stderr.on('data', (d: Buffer) => { tap += d.toString() })
  const code = await new Promise<number | null>((done) => run.on('exit', done))
  t.equal(code, 0, 'server.test.ts passes against the gateway')
  for (const name of Object.keys(scenarios)) {
    t.match(tap, new RegExp(`^ok \\d+ - server: ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?! # SKIP)`, 'm'), `ran and passed: ${name}`)
  }
  if (code !== 0) t.comment(tap)

  const second = runCdp(t, ['clickhouse-gateway', '--port', '0', '--path', chdb], { dir, config: { logLevel: 'warn' }, env })
  t.equal(await second.exited, 1, 'a second gateway on the same data dir refuses to start')
  t.match(second.output(), /clickhouse_unavailable.*cannot start the ClickHouse gateway/)
  t.equal(readFileSync(tokenFile, 'utf8').trim(), token, '... and leaves the running one\'s token alone')

  gw.kill('SIGTERM')
  t.equal(await gw.exited, 0, 'SIGTERM: drains and exits 0')
  t.notOk(existsSync(tokenFile), 'and removes its token file')
  const client = createClickHouse({ clickhouse: { url, username: undefined, password: token, chdbPath: chdb } })
  t.teardown(() => client.close())
  const ping = await pingClickHouse(client, { timeoutMs: 3000 })
  t.ok(!ping.ok && ping.error.code === 'clickhouse_unavailable', 'a stopped gateway pings as clickhouse_unavailable')
  const err = await rejection(createWriter(client, { database: 'cdp' }).insertEvents([eventRow()], { dedupToken: 'x' }))
  t.ok(isCdpError(err) && err.code === 'clickhouse_unavailable' && err.retriable, 'an insert to a stopped gateway is a retriable clickhouse_unavailable')
})

void t.test('the wire: ping, GET read-only, query in URL or body, formats, headers, errors', async (t) => {
  const { gw, db } = await gateway(t)
  const get = (path: string) => fetch(`${gw.url}${path}`, { headers: basic(gw.token) })
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) => fetch(`${gw.url}${path}`, { method: 'POST', body, headers: { ...basic(gw.token), ...headers } })

  const ping = await get('/ping')
  t.equal(ping.status, 200)
  t.equal(await ping.text(), 'Ok.\n')
  t.equal(await (await get('/')).text(), 'Ok.\n', 'GET / without a query answers like /ping')

  const sel = await get(`/?query=${encodeURIComponent('SELECT 1 AS one, \'a\' AS s')}&query_id=q-42`)
  t.equal(sel.status, 200)
  t.equal(await sel.text(), '1\ta\n', 'TabSeparated unless asked otherwise')
  t.equal(sel.headers.get('x-clickhouse-format'), 'TabSeparated')
  t.equal(sel.headers.get('x-clickhouse-query-id'), 'q-42', 'the query id is echoed')
  const summary = JSON.parse(sel.headers.get('x-clickhouse-summary') ?? 'null') as Record<string, unknown>
  t.equal(typeof summary.read_rows, 'string', 'X-ClickHouse-Summary as the server writes it (numbers as strings)')
  t.equal(typeof summary.elapsed_ns, 'string')

  const roGet = await get(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t VALUES ('x', 1)`)}`)
  t.equal(roGet.status, 403, 'GET is read-only')
  t.equal(roGet.headers.get('x-clickhouse-exception-code'), '164')

  const json = await post('/', 'SELECT 2 AS two FORMAT JSONEachRow')
  t.equal(await json.text(), '{"two":2}\n', 'the query in the body, with its FORMAT clause')
  t.equal(json.headers.get('x-clickhouse-format'), 'JSONEachRow')
  const csv = await post('/?default_format=CSV', 'SELECT 3 AS three, \'x\' AS s')
  t.equal(await csv.text(), '3,"x"\n', 'default_format applies when the statement has no FORMAT')

  const ins = await post(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t FORMAT JSONEachRow`)}`, '{"k":"a","n":1}\n{"k":"b","n":2}\n')
  t.equal(ins.status, 200, 'insert: the statement in the URL, the rows in the body')
  const insBody = await post('/', `INSERT INTO ${db}.t FORMAT JSONEachRow\n{"k":"c","n":3}\n`)
  t.equal(insBody.status, 200, 'insert: statement and rows in the body')
  const gz = await post(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t FORMAT JSONEachRow`)}`, gzipSync('{"k":"d","n":4}\n'), { 'content-encoding': 'gzip' })
  t.equal(gz.status, 200, 'a gzip body')
  t.equal(await (await post('/', `SELECT groupArray(k) FROM (SELECT k FROM ${db}.t ORDER BY k)`)).text(), '[\'a\',\'b\',\'c\',\'d\']\n')

  const syntax = await post('/', 'SELEC 1')
  t.equal(syntax.status, 400)
  t.equal(syntax.headers.get('x-clickhouse-exception-code'), '62')
  t.match(await syntax.text(), /^Code: 62\. DB::Exception: .*\(SYNTAX_ERROR\)/)
  const multi = await post('/', `SELECT 1; DROP TABLE ${db}.t`)
  t.equal(multi.status, 400, 'several statements in one request are refused, as a server does')
  t.match(await multi.text(), /Multi-statements are not allowed/)
  const missing = await post('/', `SELECT * FROM ${db}.nope`)
  t.equal(missing.status, 404)
  t.equal(missing.headers.get('x-clickhouse-exception-code'), '60')
  t.equal((await post('/', '')).status, 400, 'an empty query')
  t.equal((await get('/elsewhere')).status, 404)
  t.equal(Number(await (await post('/', `SELECT count() FROM ${db}.t`)).text()), 4, 'the table survived')
})

void t.test('through clickhouse-js: errors, per-request settings and database, compression, multipart parameters', async (t) => {
  const { gw, client, db } = await gateway(t)
  const count = async (c: ClickHouseClient = client) => Number((await (await c.query({ query: `SELECT count() AS c FROM ${db}.t`, format: 'JSONEachRow' })).json<{ c: string }>())[0]?.c)

  const err = await rejection(client.query({ query: `SELECT * FROM ${db}.nope` })) as { code?: string; type?: string }
  t.equal(err?.constructor?.name, 'ClickHouseError')
  t.same({ code: err.code, type: err.type }, { code: '60', type: 'UNKNOWN_TABLE' }, 'code and type as a server sends them')
  t.equal(isClickHouseUnavailable(err), false, 'a SQL error is not "unavailable": the service does not retry it')

  // settings belong to their request: a token or readonly never sticks to later requests
  const rows = [{ k: 'a', n: 1 }, { k: 'b', n: 2 }]
  await client.insert({ table: `${db}.t`, values: rows, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'tok-1' } })
  await client.insert({ table: `${db}.t`, values: rows, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'tok-1' } })
  t.equal(await count(), 2, 'the same token twice: one copy')
  await client.insert({ table: `${db}.t`, values: [{ k: 'c', n: 3 }], format: 'JSONEachRow' })
  t.equal(await count(), 3, 'an insert without a token is not dropped as a duplicate of tok-1')
  const ro = await rejection(client.command({ query: `INSERT INTO ${db}.t VALUES ('z', 9)`, clickhouse_settings: { readonly: '1' } })) as { type?: string }
  t.equal(ro?.type, 'READONLY', 'readonly = 1 refuses the write')
  await client.command({ query: `INSERT INTO ${db}.t VALUES ('d', 4)` })
  t.equal(await count(), 4, 'and the next request writes again')
  await Promise.all(Array.from({ length: 16 }, (_, i) => i % 2 === 0
    ? client.insert({ table: `${db}.t`, values: [{ k: `p${i}`, n: i }], format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: `par-${i}` } })
    : client.query({ query: 'SELECT 1', clickhouse_settings: { readonly: '1' } }).then((r) => r.text())))
  t.equal(await count(), 12, 'concurrent requests keep their own settings')

  const scoped = createClient({ url: gw.url, password: gw.token, database: db })
  t.teardown(() => scoped.close())
  t.equal(Number((await (await scoped.query({ query: 'SELECT count() AS c FROM t', format: 'JSONEachRow' })).json<{ c: string }>())[0]?.c), 12, '`database` names the default database of the request')
  t.equal(isClickHouseUnavailable(await rejection(client.query({ query: 'SELECT count() FROM t' }))), false, '... of that request only')

  const gzip = createClient({ url: gw.url, password: gw.token, compression: { request: true, response: true } })
  t.teardown(() => gzip.close())
  await gzip.insert({ table: `${db}.t`, values: [{ k: 'gz', n: 1 }], format: 'JSONEachRow' })
  t.same(await (await gzip.query({ query: `SELECT n FROM ${db}.t WHERE k = 'gz'`, format: 'JSONEachRow' })).json(), [{ n: 1 }], 'gzip request bodies; uncompressed answers')

  const multipart = createClient({ url: gw.url, password: gw.token, use_multipart_params: true })
  t.teardown(() => multipart.close())
  const keys = Array.from({ length: 3000 }, (_, i) => `key-${i}-${'x'.repeat(20)}`)
  const r = await multipart.query({ query: `SELECT count() AS c FROM ${db}.t WHERE k IN {keys:Array(String)} OR k = {one:String}`, query_params: { keys, one: 'gz' }, format: 'JSONEachRow' })
  t.same(await r.json(), [{ c: 1 }], 'parameters in a multipart body (100 KB of them)')
})

void t.test('query parameters: any string comes back as sent, in any shape, and never becomes SQL', async (t) => {
  const { gw, client, db } = await gateway(t)
  const multipart = createClient({ url: gw.url, password: gw.token, use_multipart_params: true })
  t.teardown(() => multipart.close())
  const sql = `SELECT {s:String} AS s, {a:Array(String)} AS a, {m:Map(String, String)} AS m,
    {tp:Tuple(String, Array(String))} AS tp, {n:Nullable(String)} AS n, {lc:LowCardinality(String)} AS lc`
  const roundTrip = async (c: ClickHouseClient, s: string, a: string[]) => {
    const m = new Map(a.map((v, i) => [`${v}${i}`, s]))
    const res = await c.query({ query: sql, format: 'JSONEachRow', query_params: { s, a, m, tp: new TupleParam([s, a]), n: a.length % 2 === 0 ? null : s, lc: s } })
    const [row] = await res.json<{ s: string; a: string[]; m: Record<string, string>; tp: [string, string[]]; n: string | null; lc: string }>()
    return row!
  }
  const tricky = ['', '\\N', '\\', '\'', '\'\'', '\\\'', 'a\tb\nc\rd', '\0', '\x07\x1b\v\b\f', '\\x41', '{x:String}', 'é 😀 中', '\']); DROP TABLE t; --']
  for (const s of tricky) {
    const row = await roundTrip(client, s, tricky)
    t.same(row, { s, a: tricky, m: Object.fromEntries(tricky.map((v, i) => [`${v}${i}`, s])), tp: [s, tricky], n: tricky.length % 2 === 0 ? null : s, lc: s }, `round trip: ${JSON.stringify(s)}`)
  }
  await fc.assert(fc.asyncProperty(
    fc.string({ unit: 'binary', maxLength: 24 }), fc.array(fc.string({ unit: 'binary', maxLength: 12 }), { maxLength: 6 }), fc.boolean(),
    async (s, a, viaMultipart) => {
      const row = await roundTrip(viaMultipart ? multipart : client, s, a)
      return row.s === s && row.lc === s && JSON.stringify(row.a) === JSON.stringify(a) && JSON.stringify(row.tp) === JSON.stringify([s, a]) &&
        row.n === (a.length % 2 === 0 ? null : s) && Object.entries(row.m).every(([k, v]) => v === s && a.some((x, i) => `${x}${i}` === k))
    }), { numRuns: 150 })
  t.pass('150 random strings and arrays round-tripped, in the URL and in multipart bodies')

  await client.insert({ table: `${db}.t`, values: [{ k: 'keep', n: 1 }], format: 'JSONEachRow' })
  const injected = await client.query({ query: `SELECT count() AS c FROM ${db}.t WHERE k = {k:String} OR k IN {ks:Array(String)}`, format: 'JSONEachRow',
    query_params: { k: `x' OR 1 = 1 --`, ks: [`x') OR (1 = 1`, `'] OR 1 = 1 OR k IN ['`] } })
  t.same(await injected.json(), [{ c: 0 }], 'quotes in values stay values')
  t.equal(Number(await (await client.query({ query: `SELECT count() FROM ${db}.t`, format: 'TabSeparated' })).text()), 1)
})

void t.test('who gets in: the start-up token, from the gateway\'s own address, never from a web page', async (t) => {
  const { gw, db } = await gateway(t)
  const select = `/?query=${encodeURIComponent(`SELECT count() FROM ${db}.t`)}`
  const insert = `/?query=${encodeURIComponent(`INSERT INTO ${db}.t FORMAT JSONEachRow`)}`
  const rows = async () => Number((await raw(gw.url, select, basic(gw.token))).text)

  const none = await raw(gw.url, select, {})
  t.equal(none.status, 401, 'no token: 401')
  t.equal(none.headers['x-clickhouse-exception-code'], '194')
  t.match(none.text, /^Code: 194\. DB::Exception: .*token.*\(REQUIRED_PASSWORD\)\n$/)
  const noneInsert = await raw(gw.url, insert, {}, '{"k":"a","n":1}\n')
  t.equal(noneInsert.status, 401, 'no token: an insert is refused too')
  const wrong = await raw(gw.url, insert, basic(`${gw.token}x`), '{"k":"b","n":2}\n')
  t.equal(wrong.status, 401, 'a wrong token: 401')
  t.match(wrong.text, /^Code: 516\. DB::Exception: Authentication failed.*\(AUTHENTICATION_FAILED\)\n$/)
  t.notMatch(wrong.text, gw.token, 'the answer does not echo the token')
  t.equal((await raw(gw.url, select, basic(''))).status, 401, 'a user without a password: 401')
  t.equal(await rows(), 0, 'nothing was written by the refused inserts')

  const origin = await raw(gw.url, insert, { ...basic(gw.token), origin: 'https://evil.example' }, '{"k":"c","n":3}\n')
  t.equal(origin.status, 403, 'an Origin header: 403, even with the right token')
  t.match(origin.text, /^Code: 497\. DB::Exception: .*Origin.*\(ACCESS_DENIED\)\n$/)
  const rebound = await raw(gw.url, insert, { ...basic(gw.token), host: `evil.example:${gw.port}` }, '{"k":"d","n":4}\n')
  t.equal(rebound.status, 403, 'a foreign Host (DNS rebinding): 403, even with the right token')
  t.match(rebound.text, /Host "evil\.example:[0-9]+" is not the gateway's address.*\(ACCESS_DENIED\)/)
  t.equal((await raw(gw.url, '/ping', { host: 'evil.example' })).status, 403, '... also for /ping')
  t.equal((await raw(gw.url, '/ping', { origin: 'null' })).status, 403, 'an opaque Origin is an Origin')
  t.equal(await rows(), 0, 'nothing was written by the refused inserts')

  t.equal((await raw(gw.url, '/ping', {})).text, 'Ok.\n', '/ping needs no token, as on a server')
  t.equal((await raw(gw.url, insert, basic(gw.token, 'anyone'), '{"k":"e","n":5}\n')).status, 200, 'the right token as the basic-auth password, any user')
  t.equal((await raw(gw.url, insert, { 'x-clickhouse-user': 'u', 'x-clickhouse-key': gw.token }, '{"k":"f","n":6}\n')).status, 200, 'as X-ClickHouse-Key')
  t.equal((await raw(gw.url, insert, { authorization: `Bearer ${gw.token}` }, '{"k":"g","n":7}\n')).status, 200, 'as a bearer token')
  t.equal((await raw(gw.url, `${insert}&password=${gw.token}`, {}, '{"k":"h","n":8}\n')).status, 200, 'as the password URL parameter')
  t.equal((await raw(gw.url, select, { ...basic(gw.token), host: `localhost:${gw.port}` })).status, 200, 'Host localhost:<port> is the gateway too')
  t.equal(await rows(), 4, 'the four accepted inserts, nothing else')

  const anonymous = createClient({ url: gw.url, log: { level: 127 as never } })
  t.teardown(() => anonymous.close())
  const e1 = await rejection(anonymous.query({ query: 'SELECT 1' })) as { type?: string }
  t.equal(e1?.type, 'REQUIRED_PASSWORD', '@clickhouse/client without a password gets a ClickHouseError')
  const guessing = createClient({ url: gw.url, password: 'not-the-token', log: { level: 127 as never } })
  t.teardown(() => guessing.close())
  const e2 = await rejection(guessing.query({ query: 'SELECT 1' })) as { type?: string }
  t.equal(e2?.type, 'AUTHENTICATION_FAILED', '... and with a wrong one')
  const service = createClickHouse({ clickhouse: { url: gw.url, username: undefined, password: undefined, chdbPath: '' } })
  t.teardown(() => service.close())
  t.notOk((await pingClickHouse(service, { timeoutMs: 3000 })).ok, 'the service without CLICKHOUSE_PASSWORD does not pass its ping')
})

void t.test('bodies chDB decodes or reads from a file: the size limit after decompression, the files private and removed', async (t) => {
  // the scratch directory goes where os.tmpdir() says when the gateway starts
  const tmp = tempDir(t)
  const path = join(tempDir(t), 'chdb')
  const before = process.env.TMPDIR
  process.env.TMPDIR = tmp
  let gw: ClickHouseGateway
  try {
    gw = await startClickHouseGateway({ path, port: 0, maxBodyBytes: 64 * 1024 })
  } finally {
    if (before === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = before
  }
  t.teardown(() => gw.close())
  const scratch = readdirSync(tmp).filter((name) => name.startsWith('cdp-ch-gateway-')).map((name) => join(tmp, name))
  t.equal(scratch.length, 1, 'one scratch directory')
  t.equal(statSync(scratch[0]!).mode & 0o777, 0o700, 'readable by its owner only')
  const files: string[] = []
  const watcher = watch(scratch[0]!, (_event, name) => { if (name !== null && !files.includes(name)) files.push(name) })
  t.teardown(() => watcher.close())
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}${path}`, { method: 'POST', body, headers: { ...basic(gw.token), ...headers } })
  t.equal((await post('/', 'CREATE TABLE blobs (b String) ENGINE = MergeTree ORDER BY tuple()')).status, 200)
  const work = tempDir(t)
  const encoded = async (method: string, expr: string): Promise<Buffer> => {
    const file = join(work, `${uniq('bomb')}.${method}`)
    const made = await post('/', `INSERT INTO FUNCTION file('${file}', 'RawBLOB', 'raw_blob String', '${method}') SELECT ${expr}`)
    if (made.status !== 200) throw new Error(await made.text())
    return readFileSync(file)
  }
  const insert = `/?query=${encodeURIComponent('INSERT INTO blobs FORMAT RawBLOB')}`

  const fits = await post(insert, await encoded('lz4', `repeat('a', ${60 * 1024})`), { 'content-encoding': 'lz4' })
  t.equal(fits.status, 200, '60 KiB after decompression, under the 64 KiB limit: inserted (RawBLOB, from a file)')
  // 1 MiB: decoded, then found too large; 200 MiB: stopped inside chDB by the memory cap
  for (const [method, what, expr] of [['lz4', '1 MiB', `repeat(repeat('b', 1024), 1024)`], ['zstd', '200 MiB', `repeat(repeat('c', 1000000), 200)`]] as const) {
    const body = await encoded(method, expr)
    const over = await post(insert, body, { 'content-encoding': method })
    t.equal(over.status, 400, `${body.length} bytes of ${method} that decompress to ${what}: refused`)
    t.match(await over.text(), new RegExp(`request body larger than 65536 bytes after ${method} decompression.*\\(BAD_ARGUMENTS\\)`))
  }
  t.same(await (await post('/', 'SELECT length(b) FROM blobs')).text(), `${60 * 1024}\n`, 'only the body within the limit stored')
  t.ok(files.length >= 3, `the bodies went through files of the scratch directory (${files.length} seen)`)
  t.same(readdirSync(scratch[0]!), [], 'each removed once its statement ran')
  await gw.close()
  t.notOk(existsSync(scratch[0]!), 'the scratch directory removed when the gateway stops')
})

void t.test('what standard clients send by default: session ids, compression, binary formats, the insert summary', async (t) => {
  const { gw, client, db } = await gateway(t)
  const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}${path}`, { method: 'POST', body, headers: { ...basic(gw.token), ...headers } })
  const insert = `/?query=${encodeURIComponent(`INSERT INTO ${db}.t FORMAT JSONEachRow`)}`
  const count = async () => Number(await (await post('/', `SELECT count() FROM ${db}.t`)).text())
  const rows = async <R = Record<string, unknown>>(sql: string): Promise<R[]> => (await client.query({ query: sql, format: 'JSONEachRow' })).json<R>()

  // clickhouse-connect sends a session id with every request unless told not to
  const inSession = await post('/?session_id=s1&session_timeout=60', 'SELECT 1')
  t.equal(inSession.status, 200, 'a request in a session is answered')
  t.equal(await inSession.text(), '1\n')
  const set = await post('/?session_id=s1', 'SET max_threads = 1')
  t.equal(set.status, 501, 'SET in a session, which the gateway would forget: refused')
  t.match(await set.text(), /SET in session s1: the gateway .* keeps nothing between requests.*\(NOT_IMPLEMENTED\)/)
  t.equal((await post('/?session_id=s1', 'CREATE TEMPORARY TABLE tmp (x UInt8)')).status, 501, 'so is a temporary table')
  const check = await post('/?session_id=s1&session_check=1', 'SELECT 1')
  t.equal(check.status, 404, 'session_check=1: the session does not exist')
  t.equal(check.headers.get('x-clickhouse-exception-code'), '372')
  const sessionClient = createClient({ url: gw.url, password: gw.token, session_id: 'js-session' })
  t.teardown(() => sessionClient.close())
  t.same(await (await sessionClient.query({ query: 'SELECT 2 AS two', format: 'JSONEachRow' })).json(), [{ two: 2 }], '@clickhouse/client with a session_id')

  // compression: gzip, deflate and br decoded by Node; lz4 (clickhouse-connect's default), zstd and
  // xz by chDB's own readers; ClickHouse's native block compression refused
  const native = await post(`/?compress=1&query=${encodeURIComponent('SELECT 1')}`, '')
  t.equal(native.status, 501, 'compress=1 (ClickHouse\'s LZ4 blocks): refused')
  t.match(await native.text(), /use HTTP compression with gzip instead.*compress='gzip'/)
  t.equal((await post(insert, deflateSync('{"k":"df","n":1}\n'), { 'content-encoding': 'deflate' })).status, 200, 'deflate works')
  t.equal(await count(), 1)
  const work = tempDir(t)
  /** `text` compressed by ClickHouse's own writer (an LZ4 frame, a zstd frame, an xz stream) */
  const encode = async (method: string, text: string): Promise<Buffer> => {
    const file = join(work, `${uniq('enc')}.${method}`)
    const made = await post('/', `INSERT INTO FUNCTION file('${file}', 'RawBLOB', 'raw_blob String', '${method}') SELECT '${text.replace(/\n/g, '\\n')}'`)
    if (made.status !== 200) throw new Error(await made.text())
    return readFileSync(file)
  }
  // clickhouse-connect compresses each block of an insert as an LZ4 frame of its own
  const frames = Buffer.concat([await encode('lz4', '{"k":"lz1","n":1}\n'), await encode('lz4', '{"k":"lz2","n":2}\n')])
  t.equal((await post(insert, frames, { 'content-encoding': 'lz4' })).status, 200, 'Content-Encoding lz4, two frames one after the other')
  t.equal((await post(insert, await encode('zstd', '{"k":"zs","n":3}\n'), { 'content-encoding': 'zstd' })).status, 200, 'zstd')
  t.equal((await post(insert, await encode('xz', '{"k":"xz","n":4}\n'), { 'content-encoding': 'xz' })).status, 200, 'xz')
  t.same(await rows(`SELECT k, n FROM ${db}.t WHERE k IN ('lz1', 'lz2', 'zs', 'xz') ORDER BY n`),
    [{ k: 'lz1', n: 1 }, { k: 'lz2', n: 2 }, { k: 'zs', n: 3 }, { k: 'xz', n: 4 }], 'every row of each body stored')
  const frame = await encode('lz4', '{"k":"cut","n":5}\n'.repeat(20))
  const corrupt = await post(insert, frame.subarray(0, Math.floor(frame.length / 2)), { 'content-encoding': 'lz4' })
  t.equal(corrupt.status, 400, 'an LZ4 frame cut short: refused (ClickHouse\'s reader would keep what it decoded)')
  t.match(await corrupt.text(), /cannot decompress the lz4 request body: an LZ4 block cut short.*\(BAD_ARGUMENTS\)/)
  const junk = await post(insert, Buffer.concat([frame, Buffer.from('junk')]), { 'content-encoding': 'lz4' })
  t.equal(junk.status, 400, 'bytes after the last frame: refused')
  t.match(await junk.text(), new RegExp(`no LZ4 frame at byte ${frame.length}`))
  const notLz4 = await post(insert, Buffer.from('{"k":"plain","n":1}\n'), { 'content-encoding': 'lz4' })
  t.equal(notLz4.status, 400, 'a body that is not LZ4 at all: refused')
  const bz2 = await post(insert, Buffer.from('BZh9'), { 'content-encoding': 'bz2' })
  t.equal(bz2.status, 501, 'an encoding neither Node nor chDB decodes: refused')
  t.match(await bz2.text(), /Content-Encoding bz2 is not supported by the gateway; use gzip .*lz4, zstd or xz/)
  t.equal(await count(), 5)

  // binary insert formats, and text that is not UTF-8: read by chDB from a file, bytes unaltered
  const hexOf = async (where: string) => (await rows<{ h: string }>(`SELECT hex(k) AS h FROM ${db}.t WHERE ${where}`)).map((r) => r.h)
  const rowBinary = Buffer.concat([Buffer.from([2]), Buffer.from('rb'), Buffer.from([7, 0, 0, 0])])
  const rb = await post(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t FORMAT RowBinary`)}`, rowBinary)
  t.equal(rb.status, 200, 'RowBinary with the statement in the URL')
  t.same(await rows(`SELECT k, n FROM ${db}.t WHERE k = 'rb'`), [{ k: 'rb', n: 7 }])
  t.equal(JSON.parse(rb.headers.get('x-clickhouse-summary') ?? '{}').written_rows, '1', 'written_rows counted')
  // Native: one column `k` String, one row, the single byte 0xFF (not UTF-8)
  const nativeBlock = Buffer.from([1, 1, 1, 107, 6, 83, 116, 114, 105, 110, 103, 1, 0xff])
  const inBody = await post('/', Buffer.concat([Buffer.from(`INSERT INTO ${db}.t (k) FORMAT Native\n`), nativeBlock]))
  t.equal(inBody.status, 200, 'Native with the statement in the body (clickhouse-connect without compression)')
  t.same(await hexOf('n = 0'), ['FF'], 'the byte 0xFF stored as sent')
  const withSettings = await post(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t SETTINGS insert_deduplicate = 0 FORMAT RowBinary`)}`,
    Buffer.concat([Buffer.from([3]), Buffer.from('set'), Buffer.from([8, 0, 0, 0])]))
  t.equal(withSettings.status, 200, 'a binary insert with SETTINGS before FORMAT')
  const latin1 = await post(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t FORMAT TabSeparated`)}`, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x09, 0x39, 0x0a]))
  t.equal(latin1.status, 200, 'a text body that is not UTF-8: inserted, not altered')
  t.same(await hexOf('n = 9'), ['636166E9'], 'its bytes as sent')
  const input = await post(`/?query=${encodeURIComponent(`INSERT INTO ${db}.t SELECT k, n FROM input('k String, n UInt32') FORMAT RowBinary`)}`, rowBinary)
  t.equal(input.status, 501, 'binary data for INSERT ... SELECT FROM input(): refused')
  t.match(await input.text(), /insert format RowBinary is binary, and the gateway passes binary data only to INSERT INTO table/)
  t.equal(await count(), 9, 'the refused insert wrote nothing')
  await post('/', `TRUNCATE TABLE ${db}.t`)
  t.equal(await count(), 0)

  // X-ClickHouse-Summary: an insert reports the rows it wrote
  const three = await client.insert({ table: `${db}.t`, values: [{ k: 'a', n: 1 }, { k: 'b', n: 2 }, { k: 'c', n: 3 }], format: 'JSONEachRow' })
  t.equal(three.summary?.written_rows, '3', '@clickhouse/client reads written_rows = 3 for three rows')
  const two = await post(insert, '{"k":"d","n":4}\n{"k":"e","n":5}\n')
  const summary = JSON.parse(two.headers.get('x-clickhouse-summary') ?? '{}') as Record<string, string>
  t.equal(summary.written_rows, '2', 'the header on the wire: written_rows = 2')
  const select = JSON.parse((await post('/', `SELECT * FROM ${db}.t`)).headers.get('x-clickhouse-summary') ?? '{}') as Record<string, string>
  t.equal(select.written_rows ?? '0', '0', 'a SELECT wrote nothing')
  t.equal(select.result_rows ?? select.read_rows, '5', 'and read the five rows')
  const fromSelect = await post('/', `INSERT INTO ${db}.t SELECT toString(number), number FROM numbers(5)`)
  const unknown = JSON.parse(fromSelect.headers.get('x-clickhouse-summary') ?? '{}') as Record<string, string>
  t.equal(unknown.written_rows, undefined, 'INSERT ... SELECT: no written_rows rather than a wrong one (chDB does not count them)')
  t.equal(await count(), 10)
  const asked = await client.insert({ table: `${db}.t`, values: [{ k: 'x', n: 1 }], format: 'JSONEachRow', clickhouse_settings: { async_insert: 0 } })
  t.equal(asked.summary?.written_rows, '1', 'async_insert = 0 asked for explicitly: the same')
})
