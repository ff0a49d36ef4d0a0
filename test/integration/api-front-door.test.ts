/**
 * Input the API must refuse rather than change (issue 7 item 6, issue 8 finding 5), and rate
 * limits shared through Redis, against the real stack.
 */
import t from 'tap'
import { startApi, readTopic } from '../helpers/api.js'
import { IDENTITY_REQUIRED_MESSAGE } from '../../src/ingest/envelope.js'
import { SEED_EVENT } from '../helpers/seed.js'

const seed = SEED_EVENT
const bearer = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' })
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n)

void t.test('refused with 422 naming the field, never accepted and changed; nothing reaches the topic', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const post = (payload: string) => api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload })
  const cases: [string, string, string][] = [
    ['lone surrogate in externalEventId', JSON.stringify({ ...seed, externalEventId: 'txn_\ud800' }), '/externalEventId'],
    ['NUL in an identity value', JSON.stringify({ ...seed, identity: { externalUserId: 'L-1\u0000' } }), '/identity/externalUserId'],
    ['properties 20,000 levels deep', JSON.stringify({ ...seed, properties: { ...seed.properties, deep: 0 } }).replace('"deep":0', `"deep":${deepArray(20_000)}`), '/properties/deep'],
    ['year 0000', JSON.stringify({ ...seed, occurredAt: '0000-01-01T00:00:00Z' }), '/occurredAt'],
    ['before 1900', JSON.stringify({ ...seed, occurredAt: '1899-06-01T00:00:00Z' }), '/occurredAt'],
    ['sub-millisecond digits', JSON.stringify({ ...seed, occurredAt: '2026-05-20T12:45:00.0001Z' }), '/occurredAt'],
    ['1e400 in properties', JSON.stringify({ ...seed, properties: { ...seed.properties, big: 0 } }).replace('"big":0', '"big":1e400'), '/properties/big'],
    ['1e-400 in properties', JSON.stringify({ ...seed, properties: { ...seed.properties, tiny: 0 } }).replace('"tiny":0', '"tiny":1e-400'), '/properties/tiny'],
    ['integer beyond 2^53', JSON.stringify({ ...seed, properties: { ...seed.properties, n: 0 } }).replace('"n":0', '"n":9007199254740993'), '/properties/n'],
  ]
  for (const [what, payload, pointer] of cases) {
    const r = await post(payload)
    t.equal(r.statusCode, 422, `${what}: ${r.body}`)
    const body = r.json() as { error_code: string; details: { pointer: string }[] }
    t.equal(body.error_code, 'validation_failed', what)
    t.ok(body.details.some((d) => d.pointer.startsWith(pointer)), `${what} names ${pointer}: ${r.body}`)
  }
  const { identity: _i, ...noIdentity } = seed
  const none = await post(JSON.stringify(noIdentity))
  t.equal(none.statusCode, 422)
  t.match(none.json(), { error_code: 'validation_failed', message: IDENTITY_REQUIRED_MESSAGE })
  t.equal((await readTopic(api.config, 0, { settleMs: 1500 })).length, 0, 'no record for any of them')
})

void t.test('in a batch, the refused items get their 422 and the others are accepted', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme')
  const items = [
    JSON.stringify({ ...seed, externalEventId: 'ok-1' }),
    JSON.stringify({ ...seed, externalEventId: 'deep', properties: { ...seed.properties, deep: 0 } }).replace('"deep":0', `"deep":${deepArray(20_000)}`),
    JSON.stringify({ ...seed, externalEventId: 'big', properties: { ...seed.properties, big: 0 } }).replace('"big":0', '"big":1e400'),
    JSON.stringify({ ...seed, externalEventId: 'surrogate\udfff' }),
    JSON.stringify({ ...seed, externalEventId: 'ok-2' }),
  ]
  const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key), payload: `{"items":[${items.join(',')}]}` })
  t.equal(res.statusCode, 200, res.body)
  const { results } = res.json() as { results: { status: string; error_code?: string; details?: { pointer: string; code: string }[] }[] }
  t.same(results.map((r) => r.status), ['accepted', 'error', 'error', 'error', 'accepted'])
  t.match(results[1], { error_code: 'validation_failed', details: [{ code: 'too_deep' }] })
  t.match(results[2], { error_code: 'validation_failed', details: [{ pointer: '/properties/big', code: 'inexact_number' }] })
  t.match(results[3], { error_code: 'validation_failed', details: [{ pointer: '/externalEventId', code: 'invalid_characters' }] })
  const records = await readTopic(api.config, 2)
  t.same(records.map((r) => r.key).sort(), ['["acme","brand.pos","ok-1"]', '["acme","brand.pos","ok-2"]'])
})

void t.test('two API instances sharing Redis share one rate budget per key', async (t) => {
  const first = await startApi(t, { state: { backend: 'redis' }, http: { rateLimitMax: 10, tenantRateLimitMax: 1000, rateLimitWindowMs: 60_000 } })
  const second = await startApi(t, {}, first.config)
  const key = await first.key('acme')
  const batch = (prefix: string, n: number) => ({ items: Array.from({ length: n }, (_, i) => ({ ...seed, externalEventId: `${prefix}-${i}` })) })
  const a = await first.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key), payload: batch('a', 6) })
  t.equal(a.statusCode, 200, a.body)
  const b = await second.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key), payload: batch('b', 6) })
  t.equal(b.statusCode, 429, 'the other instance saw the 6 already spent')
  t.match(b.json(), { status: 'error', error_code: 'rate_limited' })
  t.ok(Number(b.headers['retry-after']) >= 1 && Number(b.headers['retry-after']) <= 60)
  const c = await second.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key), payload: batch('c', 4) })
  t.equal(c.statusCode, 200, 'the remaining 4 fit')
  const d = await first.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: JSON.stringify(seed) })
  t.equal(d.statusCode, 429, 'and the budget is spent on both')
})
