/**
 * The README's example analyst queries run as written (database name aside) and give the
 * answers the data implies; `cdp query`'s route refuses writes.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { buildApp } from '../../src/http/app.js'
import { createKey } from '../../src/auth/keys.js'
import { createLogger } from '../../src/observability/logger.js'
import { ROOT } from '../helpers/process.js'

/** the ```sql blocks of README.md, in order */
function readmeSql(): string[] {
  const md = readFileSync(`${ROOT}README.md`, 'utf8')
  return [...md.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!.trim())
}

void t.test('README example queries: daily counts, one profile timeline, a two-step funnel', async (t) => {
  const api = await startApi(t)
  const db = api.config.clickhouse.database
  const key = await api.key('acme')
  const post = (id: string, eventType: string, occurredAt: string, email: string, properties: Record<string, unknown>) =>
    api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` },
      payload: { source: 'brand.web', externalEventId: id, eventType, occurredAt, identity: { email }, properties } })
  const checkout = { checkout_id: 'c1', cart_value: 10, currency: 'USD', item_count: 1 }
  const purchase = { order_id: 'o1', amount: 10, currency: 'USD' }
  for (const [id, type, at, email, props] of [
    ['e1', 'checkout_started', '2026-05-20T10:00:00Z', 'ann@example.com', checkout],
    ['e2', 'purchase_completed', '2026-05-20T10:05:00Z', 'ann@example.com', purchase],
    ['e3', 'checkout_started', '2026-05-20T11:00:00Z', 'bob@example.com', checkout],
    ['e4', 'checkout_started', '2026-05-21T09:00:00Z', 'cy@example.com', checkout],
  ] as const) {
    const r = await post(id, type, at, email, props)
    t.equal(r.statusCode, 202, `${id}: ${r.body}`)
  }
  const p = await startPipeline(t, api.config)
  await p.until(`SELECT count() AS c FROM ${db}.events`, (rows: { c: string }[]) => Number(rows[0]?.c) === 4)

  const sql = readmeSql().map((q) => q.replaceAll('cdp.', `${db}.`))
  t.equal(sql.length, 3, 'three example queries in the README')
  const [daily, timeline, funnel] = sql as [string, string, string]

  const counts = (await p.rows<{ day: string; event_type: string; events: string | number }>(daily)).map((r) => ({ ...r, events: Number(r.events) }))
  t.same(counts, [
    { day: '2026-05-20', event_type: 'checkout_started', events: 2 },
    { day: '2026-05-20', event_type: 'purchase_completed', events: 1 },
    { day: '2026-05-21', event_type: 'checkout_started', events: 1 },
  ], 'daily counts by event type')

  const ann = await p.rows<{ profile_id: string }>(`SELECT profile_id FROM ${db}.events_resolved WHERE external_event_id = 'e1'`)
  const steps = await p.rows<{ event_type: string }>(timeline.replaceAll('PROFILE_ID', ann[0]!.profile_id))
  t.same(steps.map((s) => s.event_type), ['checkout_started', 'purchase_completed'], "one profile's timeline, in order")

  const f = (await p.rows<{ started: string | number; purchased: string | number }>(funnel)).map((r) => ({ started: Number(r.started), purchased: Number(r.purchased) }))
  t.same(f, [{ started: 3, purchased: 1 }], 'funnel: three started, one purchased')
})

void t.test('the query route answers read-only SQL in the asked format and refuses writes', async (t) => {
  const api = await startApi(t)
  const p = await startPipeline(t, api.config)
  const app = await buildApp(api.config, {
    ingest: api.rt.ingest, keys: api.rt.keys, readiness: api.rt.readiness, logger: createLogger({ logLevel: 'silent' }),
    query: async (r) => p.rowsText(r.sql, r.format),
  })
  t.teardown(() => app.close())
  const { key } = await createKey(api.rt.stores.keys, { tenant: 'acme', permissions: ['query:read'] })
  const writer = await api.key('acme')
  const q = (k: string, body: object) => app.inject({ method: 'POST', url: '/v1/cdp/query', headers: { authorization: `Bearer ${k}` }, payload: body })
  const csv = await q(key, { sql: 'SELECT 1 AS one, \'a\' AS txt', format: 'CSVWithNames' })
  t.equal(csv.statusCode, 200)
  t.equal(csv.body, '"one","txt"\n1,"a"\n')
  const write = await q(key, { sql: `DROP DATABASE ${api.config.clickhouse.database}` })
  t.equal(write.statusCode, 400)
  t.match(write.json(), { error_code: 'bad_request' })
  t.equal((await q(writer, { sql: 'SELECT 1' })).statusCode, 403, 'a key without query:read')
})
