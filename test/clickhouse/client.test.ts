import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { isCdpError } from '../../src/errors.js'
import { clickHouseBackend, createClickHouse, pingClickHouse } from '../../src/clickhouse/client.js'
import { isClickHouseUnavailable, clickHouseError } from '../../src/clickhouse/errors.js'
import { createWriter } from '../../src/clickhouse/writer.js'
import { testConfig } from '../helpers/config.js'
import { eventRow, harness } from './fixtures/harness.js'

async function closedPort(): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as { port: number }).port
  srv.close()
  await once(srv, 'close')
  return port
}

void t.test('with a url the factory talks to a server: a closed port pings ok:false as clickhouse_unavailable', async (t) => {
  const port = await closedPort()
  const config = testConfig(t, { clickhouse: { url: `http://127.0.0.1:${port}`, username: 'default', password: '' } })
  t.equal(clickHouseBackend(config), 'server')
  const client = createClickHouse(config)
  t.teardown(() => client.close())
  const res = await pingClickHouse(client, { timeoutMs: 3000 })
  t.equal(res.ok, false)
  if (!res.ok) {
    t.equal(res.error.code, 'clickhouse_unavailable')
    t.equal(res.error.retriable, true)
    t.match(String((res.error.cause as Error | undefined)?.message ?? res.error.message), /ECONNREFUSED|connect/)
  }
})

void t.test('an insert to an unreachable server is a retriable clickhouse_unavailable', async (t) => {
  const port = await closedPort()
  const config = testConfig(t, { clickhouse: { url: `http://127.0.0.1:${port}` } })
  const client = createClickHouse(config)
  t.teardown(() => client.close())
  const writer = createWriter(client, { database: config.clickhouse.database })
  const err = await writer.insertEvents([eventRow()], { dedupToken: 'x' }).then(() => undefined, (e: unknown) => e)
  t.ok(isCdpError(err), 'a CdpError')
  if (isCdpError(err)) {
    t.equal(err.code, 'clickhouse_unavailable')
    t.equal(err.retriable, true)
    t.ok(err.cause !== undefined, 'keeps the cause')
  }
})

void t.test('without a url the factory opens chDB at chdbPath; ping, close, ping again', async (t) => {
  const config = testConfig(t)
  const ch = { clickhouse: { ...config.clickhouse, url: undefined } }
  t.equal(clickHouseBackend(ch), 'chdb')
  const client = createClickHouse(ch)
  t.same(await pingClickHouse(client), { ok: true })
  await client.close()
  await client.close() // twice is fine
  const after = await pingClickHouse(client)
  t.equal(after.ok, false)
  if (!after.ok) t.equal(after.error.code, 'clickhouse_unavailable')
})

void t.test('a chDB data dir held by another process is clickhouse_unavailable at creation', async (t) => {
  const config = testConfig(t)
  // another process binds the dir first, then says so on stdout
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `
    import { createChdbConnection } from 'chdb/connection'
    import { mkdirSync } from 'node:fs'
    mkdirSync(${JSON.stringify(config.clickhouse.chdbPath)}, { recursive: true })
    const c = createChdbConnection({ path: ${JSON.stringify(config.clickhouse.chdbPath)} })
    process.stdout.write('ready\\n')
    process.stdin.on('data', () => {})
    process.stdin.on('end', () => { c.close().then(() => process.exit(0)) })
  `], { stdio: ['pipe', 'pipe', 'inherit'], cwd: process.cwd() })
  t.teardown(() => { holder.stdin.end(); if (holder.exitCode === null) return once(holder, 'exit') })
  const [chunk] = await once(holder.stdout, 'data') as [Buffer]
  t.equal(chunk.toString().trim(), 'ready')
  let err: unknown
  try {
    createClickHouse({ clickhouse: { ...config.clickhouse, url: undefined } })
  } catch (e) {
    err = e
  }
  t.ok(isCdpError(err) && err.code === 'clickhouse_unavailable', 'refused with clickhouse_unavailable')
  if (isCdpError(err)) t.match(err.message, /another cdp process/)
})

void t.test('SQL errors stay SQL errors (not retriable)', async (t) => {
  const h = await harness(t, 'chdb')
  const err = await h.client.query({ query: 'SELEC 1' }).then(() => undefined, (e: unknown) => e)
  t.equal(isClickHouseUnavailable(err), false)
  t.equal(clickHouseError(err, 'test'), err, 'returned unchanged')
  t.equal((err as { type?: string }).type, 'SYNTAX_ERROR')
})

void t.test('error classification', async (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
  t.equal(isClickHouseUnavailable(refused), true)
  t.equal(isClickHouseUnavailable(new Error('outer', { cause: refused })), true, 'looks through causes')
  t.equal(isClickHouseUnavailable(new AggregateError([refused], 'all addresses failed')), true)
  t.equal(isClickHouseUnavailable(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true)
  t.equal(isClickHouseUnavailable(new Error('Timeout error.')), true)
  t.equal(isClickHouseUnavailable(Object.assign(new Error('too many parts'), { code: '252', type: 'TOO_MANY_PARTS' })), true)
  t.equal(isClickHouseUnavailable(Object.assign(new Error('unknown table'), { code: '60', type: 'UNKNOWN_TABLE' })), false)
  t.equal(isClickHouseUnavailable(new Error('something else')), false)
  const mapped = clickHouseError(refused, 'insert into events')
  t.ok(isCdpError(mapped) && mapped.code === 'clickhouse_unavailable' && mapped.cause === refused)
})
