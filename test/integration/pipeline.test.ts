/**
 * HTTP to ClickHouse end to end: the seed examples land exactly once, resolved to one profile.
 */
import t from 'tap'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { SEED_EVENT } from '../helpers/seed.js'

// the seed example with an email as a sender might really write it
const seed = { ...SEED_EVENT, identity: { ...SEED_EVENT.identity, email: 'Customer@Example.com ' } }

void t.test('seed single and batch examples: one row per fact in ClickHouse, identities normalized, one profile', async (t) => {
  const api = await startApi(t)
  const db = api.config.clickhouse.database
  const key = await api.key('acme')
  const h = { authorization: `Bearer ${key}` }
  const a = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: seed })
  t.equal(a.statusCode, 202)
  const eventId = (a.json() as { event_id: string }).event_id
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: seed })).statusCode, 200)
  const batch = await api.app.inject({
    method: 'POST', url: '/v1/cdp/events/batch', headers: h,
    payload: { items: [
      { ...seed, externalEventId: 'txn_2', identity: { email: 'customer@example.com', phone: '+1 (415) 555-0132' } },
      { ...seed, externalEventId: 'txn_987654321' },
      { ...seed, externalEventId: 'txn_3', identity: {} },
    ] },
  })
  const results = (batch.json() as { results: { status: string }[] }).results
  t.same(results.map((r) => r.status), ['accepted', 'duplicate', 'error'])

  const p = await startPipeline(t, api.config)
  const rows = await p.until<{ external_event_id: string; event_id: string; email: string; phone: string | null; external_user_id: string | null; profile_id: string; p_store_id?: string }>(
    `SELECT * FROM ${db}.events ORDER BY external_event_id`, (r) => r.length >= 2)
  t.equal(rows.length, 2, 'two facts, the duplicate not stored')
  const [first, second] = rows
  t.equal(first?.external_event_id, 'txn_2')
  t.equal(second?.external_event_id, 'txn_987654321')
  t.equal(second?.event_id, eventId, 'the event id the API answered')
  t.equal(second?.email, 'customer@example.com', 'email trimmed and lowercased')
  t.equal(second?.external_user_id, 'L-123456789')
  t.equal(first?.phone, '+14155550132', 'phone in E.164')
  t.ok(second?.profile_id, 'resolved to a profile')
  const canonical = await p.rows<{ n: string }>(`SELECT uniqExact(profile_id) AS n FROM ${db}.events_resolved`)
  t.equal(Number(canonical[0]?.n), 1, 'the shared email puts both events on one profile')
  const perTuple = await p.rows<{ c: string }>(`SELECT count() AS c FROM ${db}.events GROUP BY tenant, source, external_event_id HAVING c > 1`)
  t.same(perTuple, [], 'count() per tuple is 1 without FINAL')
})
