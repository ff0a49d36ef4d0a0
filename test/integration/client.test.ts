/**
 * clients/node against the real service (real Kafka, registry, state store) listening on a local
 * port: single events, duplicates on resend, a mixed batch, a gzip batch of 500, and a Kafka
 * outage (a proxy of the test's own between the service and the shared broker) that the client
 * rides through with every event on the topic exactly once.
 */
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { createCdpClient, type CdpEvent, type RetryInfo } from '../../clients/node/src/index.js'
import { readTopic, startApi, type TestApi } from '../helpers/api.js'
import { startKafkaProxy } from '../helpers/kafka-proxy.js'
import { loadConfig } from '../../src/config/index.js'

const purchase = (id: string, extra: Partial<CdpEvent> = {}): CdpEvent => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { email: `${id}@example.com` }, properties: { order_id: `o-${id}`, amount: 12.5, currency: 'EUR' }, ...extra,
})

async function listen(api: TestApi): Promise<string> {
  await api.app.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`
}

/** externalEventId -> number of records on the topic */
function countByExternalId(records: { key: string }[]): Map<string, number> {
  const n = new Map<string, number>()
  for (const r of records) {
    const [, , ext] = JSON.parse(r.key) as [string, string, string]
    n.set(ext, (n.get(ext) ?? 0) + 1)
  }
  return n
}

void t.test('single event, duplicate on resend, mixed batch', async (tt) => {
  const api = await startApi(tt)
  const key = await api.key('acme')
  const client = createCdpClient({ baseUrl: await listen(api), apiKey: key, deadlineMs: 20_000 })

  const first = await client.sendEvent(purchase('c-1'))
  tt.equal(first.status, 'accepted')
  const again = await client.sendEvent(purchase('c-1'))
  tt.same(again, { status: 'duplicate', original_event_id: first.status === 'accepted' ? first.event_id : '?' })

  const invalid = await client.sendEvent(purchase('c-2', { eventType: 'not_registered' }))
  tt.match(invalid, { status: 'error', error_code: 'validation_failed', httpStatus: 422, retriable: false, details: [{ pointer: '/eventType' }] })

  const results = await client.sendBatch([
    purchase('c-3'),
    purchase('c-1'), // sent before: duplicate
    purchase('c-4', { identity: {} }), // no identity field: invalid
    purchase('c-1', { properties: { order_id: 'other', amount: 1, currency: 'EUR' } }), // same id, other payload
    purchase('c-5'),
  ])
  tt.same(results.map((r) => r.status), ['accepted', 'duplicate', 'error', 'error', 'accepted'])
  tt.match(results[1], { original_event_id: first.status === 'accepted' ? first.event_id : '?' })
  tt.match(results[2], { error_code: 'validation_failed' })
  tt.match(results[3], { error_code: 'idempotency_conflict' })

  const topic = countByExternalId(await readTopic(api.config, 3))
  tt.same([...topic.entries()].sort(), [['c-1', 1], ['c-3', 1], ['c-5', 1]], 'each accepted fact once on the topic')
})

void t.test('a gzip batch of 500 items is accepted', async (tt) => {
  const api = await startApi(tt)
  const key = await api.key('acme')
  let gzipped = 0
  api.app.addHook('onResponse', async (request) => { if (request.headers['content-encoding'] === 'gzip') gzipped++ })
  const client = createCdpClient({ baseUrl: await listen(api), apiKey: key, gzipThresholdBytes: 1024, deadlineMs: 30_000 })
  const items = Array.from({ length: 500 }, (_, i) => purchase(`g-${i}`))
  const results = await client.sendBatch(items)
  tt.equal(results.length, 500)
  tt.equal(results.filter((r) => r.status === 'accepted').length, 500)
  tt.equal(gzipped, 1, 'the batch went as one gzip request')
  const topic = countByExternalId(await readTopic(api.config, 500))
  tt.equal(topic.size, 500)
  tt.ok([...topic.values()].every((n) => n === 1))
})

void t.test('a Kafka outage: the API answers 503 kafka_unavailable, the client rides through, every event once on the topic', async (tt) => {
  const realBrokers = loadConfig({ overrides: {} }).kafka.brokers
  const proxy = await startKafkaProxy(realBrokers[0]!)
  tt.teardown(() => proxy.close())
  const api = await startApi(tt, { kafka: { brokers: [proxy.address], produceTimeoutMs: 2000 } })
  const key = await api.key('acme')
  const baseUrl = await listen(api)
  const retries: RetryInfo[] = []
  const client = createCdpClient({ baseUrl, apiKey: key, timeoutMs: 10_000, deadlineMs: 90_000, backoffBaseMs: 200, backoffMaxMs: 2000, onRetry: (r) => retries.push(r) })

  tt.equal((await client.sendEvent(purchase('k-warm'))).status, 'accepted')
  tt.ok(proxy.rewrites() > 0, 'the service talks to Kafka through the proxy')

  proxy.cut()
  // the raw answer while Kafka is unreachable
  const probe = await fetch(`${baseUrl}/v1/cdp/events`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(purchase('k-probe')),
  })
  tt.equal(probe.status, 503)
  tt.match(await probe.json(), { status: 'error', error_code: 'kafka_unavailable' })
  tt.ok(probe.headers.get('retry-after') !== null, 'with Retry-After')

  // sends start while Kafka is away; it comes back after ~5 s
  const singles = Array.from({ length: 10 }, (_, i) => client.sendEvent(purchase(`k-${i}`)))
  const batch = client.sendBatch(Array.from({ length: 40 }, (_, i) => purchase(`kb-${i}`)))
  await new Promise((r) => setTimeout(r, 5000))
  proxy.restore()
  const results = [...await Promise.all(singles), ...await batch, await client.sendEvent(purchase('k-probe'))]

  tt.equal(results.length, 51)
  const notStored = results.filter((r) => r.status !== 'accepted' && r.status !== 'duplicate')
  tt.same(notStored, [], 'every event accepted (or a duplicate of an earlier attempt that got through)')
  tt.ok(retries.some((r) => r.httpStatus === 503), `the client retried after 503s (${retries.length} retries)`)

  const ids = ['k-warm', 'k-probe', ...Array.from({ length: 10 }, (_, i) => `k-${i}`), ...Array.from({ length: 40 }, (_, i) => `kb-${i}`)]
  const records = await readTopic({ ...api.config, kafka: { ...api.config.kafka, brokers: realBrokers } }, ids.length, { settleMs: 2000 })
  const topic = countByExternalId(records)
  tt.same([...topic.keys()].sort(), [...ids].sort(), 'every event on the topic')
  tt.same([...topic.entries()].filter(([, n]) => n !== 1), [], 'none twice')
})
