/**
 * Two tenants through the whole service (API -> Kafka -> consumer -> ClickHouse) and analyst SQL
 * through `POST /v1/cdp/query`:
 * - a tenant acme `query:read` key never sees tenant globex's rows in any table, whatever the SQL;
 * - an operator key (no tenant, `query:all`, made by `cdp keys create --operator`) sees both, and is
 *   refused (403) on the tenant routes;
 * - `pii:read` sees raw emails, other keys the HMAC (joins and counts still work);
 * - the three examples of issue 7 are refused or bounded, and nothing keeps running afterwards;
 * - a client that goes away, and the service closing, kill the query in ClickHouse;
 * - the HTTP API has no way to create keys.
 * Every value of tenant globex contains "globex"; no answer to acme may contain it.
 */
import t from 'tap'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { runCdp, waitFor } from '../helpers/process.js'
import { buildApp } from '../../src/http/app.js'
import { createKey } from '../../src/auth/keys.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { buildRecord } from '../../src/producer/record.js'
import { createClickHouse } from '../../src/clickhouse/client.js'
import { hmacHex, loadOrCreatePiiKey } from '../../src/clickhouse/analyst.js'

const TABLES = ['events', 'events_resolved', 'identities', 'profile_merges', 'profile_canonical', 'profile_aliases', 'dead_letters']

void t.test('analyst isolation through POST /v1/cdp/query', async (t) => {
  // max_rows_to_read lowered so that the unbounded example stops quickly on a shared machine;
  // max_execution_time far beyond the polls' deadlines, so only a kill ends the slow queries in time
  const api = await startApi(t, { query: { maxRowsToRead: 50_000_000, maxExecutionTime: 300 } })
  const cfg = api.config
  const db = cfg.clickhouse.database

  // the data: per tenant an email-only event and an id-only event (two profiles), then one with
  // both once those have landed (a merge), a profile_updated with pii properties, a dead letter
  const p = await startPipeline(t, cfg)
  const senders = new Map<string, (id: string, eventType: string, identity: Record<string, string>, properties: Record<string, unknown>) => Promise<void>>()
  for (const tenant of ['acme', 'globex']) {
    const key = await api.key(tenant)
    senders.set(tenant, async (id, eventType, identity, properties) => {
      const r = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` },
        payload: { source: `${tenant}.web`, externalEventId: `${tenant}-${id}`, eventType, occurredAt: '2026-05-20T10:00:00Z', identity, properties } })
      t.equal(r.statusCode, 202, `${tenant} ${id}: ${r.body}`)
    })
  }
  const who = (tenant: string) => ({ email: `${tenant}-ann@${tenant}.example`, externalUserId: `${tenant}-U1` })
  const purchase = (tenant: string, n: number) => ({ order_id: `${tenant}-o${n}`, amount: 10 + n, currency: 'USD' })
  for (const [tenant, send] of senders) {
    await send('e1', 'purchase_completed', { email: who(tenant).email }, purchase(tenant, 1))
    await send('e2', 'purchase_completed', { externalUserId: who(tenant).externalUserId }, purchase(tenant, 2))
  }
  await p.until(`SELECT count() AS c FROM ${db}.events`, (r: { c: string }[]) => Number(r[0]?.c) === 4)
  for (const [tenant, send] of senders) {
    await send('e3', 'purchase_completed', who(tenant), purchase(tenant, 3))
    await send('e4', 'profile_updated', { email: who(tenant).email }, { first_name: `${tenant}-Ann`, country: 'US' })
  }
  // a record without identity dead-letters with its tenant (the API would refuse it: straight to the topic)
  const kafka = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-raw')
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  t.teardown(() => producer.disconnect())
  await producer.send({
    topic: cfg.kafka.topic, acks: -1,
    messages: ['acme', 'globex'].map((tenant) => {
      const r = buildRecord({ tenant, source: `${tenant}.dl`, externalEventId: `${tenant}-dl1`, eventType: 'purchase_completed', occurredAt: '2026-05-20T10:00:00Z',
        identity: {}, properties: { order_id: `${tenant}-dl`, amount: 1, currency: 'USD' } }, api.rt.codec)
      return { key: r.key, value: r.value }
    }),
  })
  await p.until(`SELECT count() AS c FROM ${db}.events`, (r: { c: string }[]) => Number(r[0]?.c) === 8)
  await p.until(`SELECT count() AS c FROM ${db}.dead_letters`, (r: { c: string }[]) => Number(r[0]?.c) === 2)
  for (const table of TABLES) {
    const seen = await p.until<{ tenant: string }>(`SELECT DISTINCT toString(tenant) AS tenant FROM ${db}.${table} ORDER BY tenant`, (r) => r.length === 2)
    t.same(seen.map((r) => r.tenant), ['acme', 'globex'], `${table} holds both tenants`)
  }

  const app = await buildApp(cfg, { ingest: api.rt.ingest, keys: api.rt.keys, readiness: api.rt.readiness, logger: createLogger({ logLevel: 'silent' }), query: p.query })
  t.teardown(() => app.close())
  const acme = (await createKey(api.rt.stores.keys, { tenant: 'acme', permissions: ['query:read'] })).key
  const acmePii = (await createKey(api.rt.stores.keys, { tenant: 'acme', permissions: ['query:read', 'pii:read'] })).key

  // the operator key comes from the CLI, the only way to make one
  const cli = runCdp(t, ['keys', 'create', '--operator', '--permission', 'query:all'], {
    dir: cfg.dataDir,
    config: { dataDir: cfg.dataDir, logLevel: 'warn', keys: { prefix: cfg.keys.prefix },
      state: { backend: cfg.state.backend, lmdbPath: cfg.state.lmdbPath, ...(cfg.state.redisUrl === undefined ? {} : { redisUrl: cfg.state.redisUrl }) } },
    // CDP_URL: no service there, so whatever listens on the default port is not asked about its store
    env: { REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '', CDP_URL: 'http://127.0.0.1:9' },
  })
  t.equal(await cli.exited, 0, `cdp keys create: ${cli.output()}`)
  t.match(cli.output(), /tenant: +\(none: an operator key\)/)
  t.match(cli.output(), /permissions: query:all\n/)
  const operator = cli.output().trim().split('\n').at(-1)!.trim()

  // a second session on the service's chDB data dir (same process), to watch system.processes
  const probe = createClickHouse(cfg)
  t.teardown(() => probe.close())
  async function analystQueriesRunning(marker = ''): Promise<number> {
    const rs = await probe.query({
      query: "SELECT count() AS c FROM system.processes WHERE startsWith(Settings['log_comment'], 'cdp-analyst-') AND position(query, {m:String}) > 0",
      format: 'JSONEachRow', query_params: { m: marker },
    })
    return Number((await rs.json<{ c: string | number }>())[0]?.c)
  }
  // under max_rows_to_read, but minutes of hashing on one thread
  const slow = (marker: string) => `SELECT sum(arraySum(arrayMap(x -> sipHash64(x, number), range(200)))) AS s FROM numbers(${marker})`
  const query = (key: string, sql: string) => app.inject({ method: 'POST', url: '/v1/cdp/query', headers: { authorization: `Bearer ${key}` }, payload: { sql } })
  const rows = (body: string) => body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)

  await t.test('an acme query:read key sees acme rows only, in every table', async (t) => {
    for (const table of TABLES) {
      const r = await query(acme, `SELECT * FROM ${db}.${table}`)
      t.equal(r.statusCode, 200, `${table}: ${r.body.slice(0, 200)}`)
      t.ok(rows(r.body).length > 0, `${table}: acme has rows`)
      t.notMatch(r.body, /globex/i, `${table}: nothing of globex`)
      t.ok(rows(r.body).every((row) => row.tenant === 'acme'), `${table}: tenant acme on every row`)
    }
    const tricks = [
      `SELECT * FROM ${db}.events WHERE tenant = 'globex'`,
      `SELECT * FROM ${db}.events WHERE tenant != 'acme' OR 1 = 1`,
      `SELECT email FROM ${db}.events WHERE tenant IN (SELECT tenant FROM ${db}.identities WHERE tenant = 'globex')`,
      `SELECT a.email, b.identity_value FROM ${db}.events AS a CROSS JOIN ${db}.identities AS b`,
      `SELECT external_event_id FROM ${db}.events UNION ALL SELECT external_event_id FROM ${db}.events_resolved`,
      `WITH g AS (SELECT * FROM ${db}.profile_canonical) SELECT * FROM g`,
      `SELECT * FROM (SELECT * FROM ${db}.profile_aliases) WHERE 1`,
      `SELECT * FROM merge('${db}', '.*')`,
      `SELECT * FROM view(SELECT * FROM ${db}.events)`,
      `SELECT * FROM cluster('default', '${db}', 'events')`,
      `SELECT * FROM remote('127.0.0.1', '${db}', 'events')`,
      `SELECT * FROM ${db}.events SETTINGS additional_table_filters = {'${db}.events': '1'}`,
      `SELECT * FROM system.parts WHERE database = '${db}'`,
      'SELECT query FROM system.processes',
      'SELECT query FROM system.query_log',
      `SELECT * FROM ${db}_masked.events`,
      `SELECT * FROM ${db}.events FINAL`,
      `SELECT groupArray(email) FROM ${db}.events_resolved`,
      `SELECT * FROM ${db}.events AS e LEFT JOIN ${db}.dead_letters AS d ON 1 = 1`,
    ]
    for (const sql of tricks) {
      const r = await query(acme, sql)
      t.ok(r.statusCode === 400 || (r.statusCode === 200 && !/globex/i.test(r.body)), `${sql} -> ${r.statusCode}`)
      if (r.statusCode !== 200) t.match(r.json(), { error_code: 'bad_request' })
    }
  })

  await t.test('an operator key (query:all) reads both tenants', async (t) => {
    for (const table of TABLES) {
      const r = await query(operator, `SELECT DISTINCT toString(tenant) AS tenant FROM ${db}.${table} ORDER BY tenant`)
      t.equal(r.statusCode, 200, r.body)
      t.same(rows(r.body), [{ tenant: 'acme' }, { tenant: 'globex' }], `${table}: both tenants`)
    }
    const both = rows((await query(operator, `SELECT toString(tenant) AS tenant, external_event_id FROM ${db}.events WHERE external_event_id LIKE '%-e1' ORDER BY tenant`)).body)
    t.same(both, [{ tenant: 'acme', external_event_id: 'acme-e1' }, { tenant: 'globex', external_event_id: 'globex-e1' }], "each tenant's rows")
  })

  await t.test('the operator key is refused on the tenant routes (403); a tenant key cannot hold query:all', async (t) => {
    const event = { source: 'acme.web', externalEventId: 'op-1', eventType: 'purchase_completed', occurredAt: '2026-05-20T10:00:00Z', identity: { email: 'x@acme.example' }, properties: purchase('acme', 9) }
    const single = await app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${operator}` }, payload: event })
    t.equal(single.statusCode, 403, single.body)
    t.match(single.json(), { error_code: 'forbidden', message: /operator key/ })
    const batch = await app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: { authorization: `Bearer ${operator}` }, payload: { items: [event] } })
    t.equal(batch.statusCode, 403, batch.body)
    t.match(batch.json(), { error_code: 'forbidden' })
    await t.rejects(createKey(api.rt.stores.keys, { tenant: 'acme', permissions: ['query:read', 'query:all'] }), { code: 'bad_request' })
  })

  await t.test('pii:read sees raw emails; other keys the HMAC, and joins and counts still work', async (t) => {
    const piiKey = loadOrCreatePiiKey(cfg.query.piiHashKey, join(cfg.dataDir, 'pii-hash.key'))
    const sql = `SELECT email, JSONExtractString(properties, 'first_name') AS first_name FROM ${db}.events WHERE external_event_id = 'acme-e4'`
    const raw = await query(acmePii, sql)
    t.same(rows(raw.body), [{ email: 'acme-ann@acme.example', first_name: 'acme-Ann' }], 'raw with pii:read')
    const masked = await query(acme, sql)
    t.same(rows(masked.body), [{ email: hmacHex(piiKey, 'acme-ann@acme.example'), first_name: hmacHex(piiKey, '"acme-Ann"') }], 'HMAC without pii:read')
    t.notMatch(masked.body, /acme-ann|acme-Ann/, 'no raw value')
    const joined = `SELECT count() AS c, uniqExact(e.email) AS people FROM ${db}.events AS e JOIN ${db}.identities AS i ON e.email = i.identity_value WHERE i.identity_type = 'email'`
    const a = rows((await query(acme, joined)).body)
    const b = rows((await query(acmePii, joined)).body)
    t.same(a.map((r) => [Number(r.c), Number(r.people)]), [[3, 1]], 'hashed: the email events join their identity')
    t.same(a, b, 'the same counts as on raw values')
  })

  await t.test("issue 7's examples through the API; nothing keeps running", async (t) => {
    const canary = join(cfg.dataDir, 'canary.txt')
    writeFileSync(canary, 'CANARY\n')
    const unicode = await query(acme, `SELECT \u2018--\u2019 AS u, file('${canary}') AS f`)
    t.equal(unicode.statusCode, 400)
    t.match(unicode.json(), { error_code: 'bad_request', message: /file\(\) is not allowed/ })
    t.notMatch(unicode.body, /CANARY/)
    const numbers = await query(acme, 'SELECT count() FROM system.numbers')
    t.equal(numbers.statusCode, 400)
    t.match(numbers.json(), { error_code: 'bad_request', message: /limit/i })
    const across = await query(acme, `SELECT tenant, email FROM ${db}.events`)
    t.equal(across.statusCode, 200)
    t.notMatch(across.body, /globex/)
    t.same(await analystQueriesRunning(), 0, 'no analyst query left in system.processes')
  })


  await t.test('a client that goes away: the query is killed in ClickHouse', async (t) => {
    // a listening app on the same runner (inject() cannot hang up); handed the bare function, so
    // that closing this second app does not cancel the runner the next test uses
    const served = await buildApp(cfg, { ingest: api.rt.ingest, keys: api.rt.keys, readiness: api.rt.readiness, logger: createLogger({ logLevel: 'silent' }), query: (r) => p.query(r) })
    t.teardown(() => served.close())
    const url = await served.listen({ host: '127.0.0.1', port: 0 })
    const ac = new AbortController()
    const pending = fetch(`${url}/v1/cdp/query`, { method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${acme}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sql: slow('39999999') }) }).catch((e: unknown) => e)
    t.ok(await waitFor('the query to run', async () => ((await analystQueriesRunning('39999999')) > 0 ? true : undefined), 20_000, 20), 'running')
    ac.abort()
    t.type(await pending, Error, 'the client gave up')
    const gone = await waitFor('the query to leave system.processes', async () => ((await analystQueriesRunning('39999999')) === 0 ? true : undefined), 30_000)
    t.ok(gone, 'killed: gone long before max_execution_time')
  })

  await t.test('closing the service cancels the analyst query in flight first', async (t) => {
    const inFlight = query(operator, slow('39999998'))
    t.ok(await waitFor('the query to run', async () => ((await analystQueriesRunning('39999998')) > 0 ? true : undefined), 20_000, 20), 'running')
    // app.close() waits for requests in flight: it returns only because the query was killed
    await app.close()
    const r = await inFlight
    t.equal(r.statusCode, 503, r.body)
    t.match(r.json(), { error_code: 'clickhouse_unavailable', message: /shutting down/ })
    t.equal(await analystQueriesRunning('39999998'), 0, 'nothing left once the app closed')
    // the runner refuses new work from then on (the service is stopping)
    const after = await p.query({ sql: 'SELECT 1', format: 'JSONEachRow', principal: { tenant: 'acme', permissions: ['query:read'] } }).catch((e: unknown) => e)
    t.match(after, { code: 'clickhouse_unavailable' }, 'a new query after the close is refused')
  })

  await t.test('the HTTP API has no way to create keys', async (t) => {
    const app2 = await buildApp(cfg, { ingest: api.rt.ingest, keys: api.rt.keys, readiness: api.rt.readiness, logger: createLogger({ logLevel: 'silent' }) })
    t.teardown(() => app2.close())
    for (const url of ['/v1/keys', '/v1/cdp/keys', '/v1/admin/keys', '/keys']) {
      const r = await app2.inject({ method: 'POST', url, headers: { authorization: `Bearer ${operator}` }, payload: { tenant: 'x', permissions: ['query:all'] } })
      t.equal(r.statusCode, 404, `POST ${url}`)
    }
    const routes = app2.printRoutes({ commonPrefix: false })
    t.notMatch(routes, /key/i, 'no route mentions keys')
  })
})
