/**
 * The HTTP API against the real stack: every seed example, each status and error code, and the
 * records on the topic decoded through the registry.
 */
import t from 'tap'
import { startApi, readTopic } from '../helpers/api.js'
import { IDENTITY_REQUIRED_MESSAGE } from '../../src/ingest/envelope.js'
import { revokeKey } from '../../src/auth/keys.js'
import { parseKey } from '../../src/auth/keys.js'
import { SEED_EVENT } from '../helpers/seed.js'

const seed = SEED_EVENT

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

void t.test('seed: accepted, then duplicate with the original event id; record on the topic equals what was sent', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const first = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: seed })
  t.equal(first.statusCode, 202, first.body)
  const a = first.json() as { status: string; event_id: string }
  t.equal(a.status, 'accepted')
  t.match(a.event_id, /^evt_[0-9a-z]{26}$/)
  t.same(Object.keys(a).sort(), ['event_id', 'status'])

  const again = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: seed })
  t.equal(again.statusCode, 200)
  t.same(again.json(), { status: 'duplicate', original_event_id: a.event_id })

  const records = await readTopic(api.config, 1)
  t.equal(records.length, 1, 'exactly one record for the fact')
  const r = records[0]!
  t.equal(r.key, '["acme","brand.pos","txn_987654321"]')
  t.ok(r.decoded.ok, 'decodes through the registry')
  if (!r.decoded.ok) return
  t.equal(r.decoded.schemaId, api.rt.codec.schemaId)
  const e = r.decoded.event
  t.equal(e.eventId, a.event_id)
  t.equal(e.tenant, 'acme')
  t.equal(e.source, seed.source)
  t.equal(e.externalEventId, seed.externalEventId)
  t.equal(e.eventType, seed.eventType)
  t.equal(e.occurredAt, Date.parse(seed.occurredAt))
  t.equal(e.occurredAtDefaulted, false)
  t.same(e.identity, { externalUserId: 'L-123456789', email: 'customer@example.com', phone: null, deviceKey: null })
  t.same(JSON.parse(e.properties), seed.properties)
})

void t.test('seed batch: accepted, duplicate and the identity error, in request order', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const earlier = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: { ...seed, externalEventId: 'b' } })
  const originalId = (earlier.json() as { event_id: string }).event_id
  const res = await api.app.inject({
    method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key),
    payload: { items: [{ ...seed, externalEventId: 'a' }, { ...seed, externalEventId: 'b' }, { ...seed, externalEventId: 'c', identity: {} }] },
  })
  t.equal(res.statusCode, 200)
  const { results } = res.json() as { results: Record<string, unknown>[] }
  t.equal(results.length, 3)
  t.equal(results[0]?.status, 'accepted')
  t.match(results[0]?.event_id, /^evt_/)
  t.same(results[1], { status: 'duplicate', original_event_id: originalId })
  t.match(results[2], { status: 'error', error_code: 'validation_failed', message: IDENTITY_REQUIRED_MESSAGE })
  const records = await readTopic(api.config, 2)
  t.same(records.map((r) => r.key).sort(), ['["acme","brand.pos","a"]', '["acme","brand.pos","b"]'])
})

void t.test('a batch with the same tuple twice: first accepted, second its duplicate; a changed payload conflicts', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const res = await api.app.inject({
    method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key),
    payload: { items: [seed, seed, { ...seed, properties: { ...seed.properties, amount: 1 } }] },
  })
  const { results } = res.json() as { results: Record<string, unknown>[] }
  t.equal(results[0]?.status, 'accepted')
  t.same(results[1], { status: 'duplicate', original_event_id: results[0]?.event_id })
  t.match(results[2], { status: 'error', error_code: 'idempotency_conflict' })
  t.equal((await readTopic(api.config, 1)).length, 1)
})

void t.test('409 idempotency_conflict for the same tuple with another payload; tenants do not collide', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const other = await api.key('globex')
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: seed })).statusCode, 202)
  const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: { ...seed, properties: { ...seed.properties, amount: 99 } } })
  t.equal(res.statusCode, 409)
  t.match(res.json(), { status: 'error', error_code: 'idempotency_conflict' })
  const otherTenant = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(other), payload: { ...seed, properties: { ...seed.properties, amount: 99 } } })
  t.equal(otherTenant.statusCode, 202, 'the tuple includes the tenant from the key')
})

void t.test('422 lists every problem; it is not remembered, so the corrected retry is accepted', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const bad = { ...seed, eventType: 'purchase_completed', occurredAt: 'yesterday', identity: { email: 'not-an-email' }, properties: { amount: 'lots' } }
  const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: bad })
  t.equal(res.statusCode, 422)
  const body = res.json() as { status: string; error_code: string; message: string; details: { pointer: string; code: string }[] }
  t.equal(body.status, 'error')
  t.equal(body.error_code, 'validation_failed')
  const pointers = body.details.map((d) => d.pointer)
  for (const p of ['/occurredAt', '/identity/email', '/properties/amount', '/properties/order_id', '/properties/currency']) t.ok(pointers.includes(p), `reports ${p}`)
  const fixed = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: seed })
  t.equal(fixed.statusCode, 202)
})

void t.test('422 for an unregistered eventType, unknown fields and a missing identity', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const unregistered = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: { ...seed, eventType: 'made_up_event' } })
  t.equal(unregistered.statusCode, 422)
  t.match(unregistered.json(), { details: [{ pointer: '/eventType', code: 'unregistered_event_type' }] })
  const unknown = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: { ...seed, tenant: 'evil' } })
  t.equal(unknown.statusCode, 422, 'the tenant cannot be set from the body')
  t.match(unknown.json(), { details: [{ pointer: '/tenant', code: 'unknown_field' }] })
  const noIdentity = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: { ...seed, identity: { email: '  ' } } })
  t.equal(noIdentity.statusCode, 422)
  t.equal((noIdentity.json() as { message: string }).message.includes(IDENTITY_REQUIRED_MESSAGE), true)
})

void t.test('omitted occurredAt defaults to receipt time, and a retry without it is a duplicate', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const { occurredAt: _omit, ...noTime } = seed
  const before = Date.now()
  const a = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: noTime })
  t.equal(a.statusCode, 202)
  await new Promise((r) => setTimeout(r, 20))
  const b = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: noTime })
  t.equal(b.statusCode, 200)
  const [rec] = await readTopic(api.config, 1)
  t.ok(rec?.decoded.ok)
  if (rec?.decoded.ok) {
    t.ok(rec.decoded.event.occurredAt >= before && rec.decoded.event.occurredAt <= Date.now())
    t.equal(rec.decoded.event.occurredAtDefaulted, true)
  }
})

void t.test('401 for missing, malformed, unknown, revoked and expired keys; 403 for permissions and sources', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme', ['events:write'], ['brand.pos'])
  const post = (headers: Record<string, string>, payload: unknown = seed, url = '/v1/cdp/events') => api.app.inject({ method: 'POST', url, headers, payload: payload as object })
  for (const [name, headers] of [
    ['missing', {}],
    ['not bearer', { authorization: `Basic ${key}` }],
    ['malformed', { authorization: 'Bearer abc' }],
    ['unknown', { authorization: `Bearer ${key.slice(0, -4)}aaaa` }],
  ] as const) {
    const res = await post(headers)
    t.equal(res.statusCode, 401, name)
    t.match(res.json(), { status: 'error', error_code: 'unauthorized' }, name)
    t.equal(res.headers['www-authenticate'], 'Bearer')
  }
  const batch = await post(bearer(key), { items: [seed] }, '/v1/cdp/events/batch')
  t.equal(batch.statusCode, 403, 'no events:batch permission')
  t.match(batch.json(), { error_code: 'forbidden' })
  const source = await post(bearer(key), { ...seed, source: 'brand.crm' })
  t.equal(source.statusCode, 403, 'source not allowed for this key')
  t.match(source.json(), { error_code: 'forbidden' })

  const expired = await api.key('acme')
  const rec = await api.rt.stores.keys.getKey(parseKey(expired)!.id)
  await api.rt.stores.keys.putKey({ ...rec!, expiresAt: new Date(Date.now() - 1000).toISOString() })
  t.equal((await post(bearer(expired))).statusCode, 401, 'expired')

  const revoked = await api.key('acme')
  await revokeKey(api.rt.stores.keys, parseKey(revoked)!.id)
  t.equal((await post(bearer(revoked))).statusCode, 401, 'revoked')
})

void t.test('100 concurrent identical requests: one record, one event id', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const responses = await Promise.all(Array.from({ length: 100 }, () =>
    api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: seed })))
  const bodies = responses.map((r) => r.json() as { status: string; event_id?: string; original_event_id?: string })
  t.equal(bodies.filter((b) => b.status === 'accepted').length, 1, 'exactly one accepted')
  t.equal(bodies.filter((b) => b.status === 'duplicate').length, 99)
  t.equal(new Set(bodies.map((b) => b.event_id ?? b.original_event_id)).size, 1, 'one event id in every answer')
  const records = await readTopic(api.config, 1, { settleMs: 1500 })
  t.equal(records.length, 1, 'exactly one record on the topic')
})

void t.test('limits: 413 body, 400 proto poisoning and bad JSON, 415 content type, 422 batch size, 429 rate', async (t) => {
  const api = await startApi(t, { http: { singleBodyLimitBytes: 4096, maxBatchItems: 3, rateLimitMax: 2, rateLimitWindowMs: 60_000 } })
  const key = await api.key('acme')
  const h = { ...bearer(key), 'content-type': 'application/json' }
  const big = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: JSON.stringify({ ...seed, properties: { ...seed.properties, note: 'x'.repeat(5000) } }) })
  t.equal(big.statusCode, 413)
  t.match(big.json(), { status: 'error', error_code: 'payload_too_large' })
  const proto = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: '{"source":"a","__proto__":{"admin":true}}' })
  t.equal(proto.statusCode, 400)
  t.match(proto.json(), { error_code: 'bad_request' })
  const badJson = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: '{"source":' })
  t.equal(badJson.statusCode, 400)
  const text = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { ...bearer(key), 'content-type': 'text/plain' }, payload: 'hi' })
  t.equal(text.statusCode, 415)
  const tooMany = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: h, payload: JSON.stringify({ items: [seed, seed, seed, seed] }) })
  t.equal(tooMany.statusCode, 422)
  // body errors (413, 400, 415) and a malformed batch (422) are not charged: 2 of 2 used after these
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: JSON.stringify(seed) })).statusCode, 202)
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: JSON.stringify(seed) })).statusCode, 200)
  const limited = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: h, payload: JSON.stringify(seed) })
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { error_code: 'rate_limited' })
  t.ok(Number(limited.headers['retry-after']) >= 1)
})

void t.test('health, readiness and the OpenAPI document', async (t) => {
  const api = await startApi(t)
  t.same((await api.app.inject({ url: '/healthz' })).json(), { status: 'ok' })
  const ready = await api.app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200)
  const body = ready.json() as { status: string; checks: Record<string, boolean>; state: { backend: string; id: string } }
  t.same({ status: body.status, checks: body.checks }, { status: 'ready', checks: { kafka: true, schemaRegistry: true, stateStore: true } })
  t.equal(body.state.backend, api.config.state.backend, 'names the state backend (cdp keys create compares it)')
  t.match(body.state.id, /^[0-9a-f]+$/, 'and an opaque id, not the address')
  const doc = (await api.app.inject({ url: '/openapi.json' })).json() as { openapi: string; paths: Record<string, unknown> }
  t.match(doc.openapi, /^3\./)
  t.ok(doc.paths['/v1/cdp/events'])
  t.ok(doc.paths['/v1/cdp/events/batch'])
  const ui = await api.app.inject({ url: '/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /html/)
})
