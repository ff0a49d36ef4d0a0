/**
 * GET /v1/cdp/events/{source}/{externalEventId} against the real stack: accepted while only the
 * claim knows the event, stored once the consumer wrote it, dead_lettered with the reason for a
 * direct record the consumer refused; another tenant's key learns nothing; events:read required;
 * malformed path parameters refused. An API-only process (no ClickHouse) answers from the claim.
 */
import t from 'tap'
import { createDirectProducer, type DirectEvent } from '../../src/producer/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { testConfig } from '../helpers/config.js'
import { startService } from '../helpers/service.js'
import { startApi } from '../helpers/api.js'
import { waitFor } from '../helpers/process.js'

const event = (externalEventId: string) => ({
  source: 'brand.pos', externalEventId, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { email: 'status@example.com' }, properties: { order_id: `o-${externalEventId}`, amount: 12.5, currency: 'EUR' },
})

interface Status { status: string; event_id: string | null; received_at: string | null; stored_at: string | null; reason_code: string | null }

void t.test('status: accepted -> stored, dead_lettered with its reason, never another tenant\'s, permission and path checks', async (t) => {
  const cfg = testConfig(t)
  const svc = await startService(t, cfg, { start: false })
  const writer = await svc.key('acme', ['events:write', 'events:read'])
  const other = await svc.key('globex', ['events:write', 'events:read'])
  const noRead = await svc.key('acme', ['events:write'])
  const get = async (key: string, path: string) => svc.app.inject({ method: 'GET', url: `/v1/cdp/events/${path}`, headers: { authorization: `Bearer ${key}` } })

  const posted = await svc.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${writer}` }, payload: event('st-1') })
  t.equal(posted.statusCode, 202)
  const eventId = (posted.json() as { event_id: string }).event_id

  // the consumer has not joined yet: only the claim knows the event
  const before = await get(writer, 'brand.pos/st-1')
  t.equal(before.statusCode, 200)
  const b = before.json() as Status
  t.same({ ...b, received_at: typeof b.received_at }, { status: 'accepted', event_id: eventId, received_at: 'string', stored_at: null, reason_code: null })

  const theirs = (await get(other, 'brand.pos/st-1')).json() as Status
  t.same(theirs, { status: 'unknown', event_id: null, received_at: null, stored_at: null, reason_code: null }, 'another tenant: unknown')
  t.equal((await get(noRead, 'brand.pos/st-1')).statusCode, 403, 'events:read is required')
  t.equal((await svc.app.inject({ method: 'GET', url: '/v1/cdp/events/brand.pos/st-1' })).statusCode, 401)
  t.same((await get(writer, 'brand.pos/never-sent')).json(), { status: 'unknown', event_id: null, received_at: null, stored_at: null, reason_code: null })

  const bad = await get(writer, `${encodeURIComponent('-bad source')}/x`)
  t.equal(bad.statusCode, 422, 'a source that cannot exist')
  t.equal((bad.json() as { error_code: string }).error_code, 'validation_failed')
  t.equal((await get(writer, `brand.pos/${'x'.repeat(cfg.validation.maxIdLength + 1)}`)).statusCode, 422, 'an id longer than any accepted one')
  t.equal((await get(writer, 'brand.pos/a%0Ab')).statusCode, 422, 'a control character in the id')
  t.equal((await get(writer, 'brand.pos')).statusCode, 404, 'a missing segment')

  // a direct record with a property the contract lacks: dead-lettered by the consumer
  const log = createLogger({ logLevel: 'silent' })
  const dp = await createDirectProducer({ brokers: [...cfg.kafka.brokers], topic: cfg.kafka.topic, registryUrl: cfg.schemaRegistry.url, logger: log })
  t.teardown(() => dp.close())
  const direct: DirectEvent = {
    tenant: 'acme', source: 'svc.direct', externalEventId: 'dl-1', eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
    identity: { externalUserId: 'U-1' }, properties: { order_id: 'o-dl-1', amount: 1, currency: 'USD', coupon: 'SPRING' },
  }
  const sent = await dp.send(direct)

  await svc.consumer.start()
  const stored = await waitFor('st-1 stored', async () => {
    const s = (await get(writer, 'brand.pos/st-1')).json() as Status
    return s.status === 'stored' ? s : undefined
  })
  t.equal(stored.event_id, eventId, 'the same event id')
  t.equal(stored.reason_code, null)
  t.ok(stored.stored_at !== null && stored.received_at !== null && Date.parse(stored.stored_at) >= Date.parse(stored.received_at), 'stored after it was received')

  const dead = await waitFor('dl-1 dead-lettered', async () => {
    const s = (await get(writer, 'svc.direct/dl-1')).json() as Status
    return s.status === 'dead_lettered' ? s : undefined
  })
  t.equal(dead.reason_code, 'contract_violation')
  t.equal(dead.event_id, sent.eventId, 'the event id decoded from the dead-lettered record')
  t.equal(dead.stored_at, null)
  t.equal(((await get(other, 'svc.direct/dl-1')).json() as Status).status, 'unknown', 'another tenant never sees a dead letter')
})

void t.test('status in an API-only process over embedded chDB: from the claim alone', async (t) => {
  const api = await startApi(t)
  const key = await api.key('acme', ['events:write', 'events:read'])
  const auth = { authorization: `Bearer ${key}` }
  const posted = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: event('api-1') })
  t.equal(posted.statusCode, 202)
  const s = (await api.app.inject({ method: 'GET', url: '/v1/cdp/events/brand.pos/api-1', headers: auth })).json() as Status
  t.equal(s.status, 'accepted')
  t.equal(s.event_id, (posted.json() as { event_id: string }).event_id)
  const dl = await api.app.inject({ method: 'GET', url: '/v1/cdp/dead-letters', headers: { authorization: `Bearer ${await api.key(null, ['dlq:manage'])}` } })
  t.equal(dl.statusCode, 503, 'dead letters need a process that reads ClickHouse')

  type Op = { responses: Record<string, { content?: { 'application/json'?: { schema?: { properties?: { status?: { enum?: string[] } } } } } }> }
  const doc = (await api.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, Op>> }
  const op = doc.paths['/v1/cdp/events/{source}/{externalEventId}']?.get
  t.same(Object.keys(op?.responses ?? {}).sort(), ['200', '401', '403', '422', '429', '503'], 'OpenAPI: every status of the route')
  t.same(op?.responses['200']?.content?.['application/json']?.schema?.properties?.status?.enum, ['accepted', 'stored', 'dead_lettered', 'unknown'])
  t.ok(doc.paths['/v1/cdp/dead-letters']?.get && doc.paths['/v1/cdp/dead-letters/redrive']?.post, 'OpenAPI: the operator routes')
})
