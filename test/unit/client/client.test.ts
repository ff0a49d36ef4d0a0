/**
 * The client's own logic (retries, Retry-After, deadline, gzip, per-item results) against a local
 * HTTP server whose answers each test scripts. The real service is exercised in
 * test/integration/client.test.ts.
 */
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { createCdpClient, parseRetryAfter, type CdpClientOptions, type CdpEvent, type RetryInfo } from '../../../clients/node/src/index.js'

interface Seen { path: string; headers: IncomingMessage['headers']; raw: Buffer; body: unknown }
type Step = (req: Seen, res: ServerResponse) => void

/** a server that answers the n-th request with steps[n] (the last step repeats) and records every request */
async function scripted(tt: { teardown: (fn: () => unknown) => void }, steps: Step[]): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString()
      const s: Seen = { path: req.url ?? '', headers: req.headers, raw, body: JSON.parse(text) as unknown }
      seen.push(s)
      steps[Math.min(seen.length - 1, steps.length - 1)]!(s, res)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  tt.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Step => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}
const accepted = (id = 'ev_1'): Step => json(202, { status: 'accepted', event_id: id })
const unavailable = (headers: Record<string, string> = {}) => json(503, { status: 'error', error_code: 'kafka_unavailable', message: 'Kafka is unavailable' }, headers)
const reset: Step = (req, res) => { res.socket?.destroy() }
const hang: Step = () => { /* never answers */ }

const event = (id: string, extra: Partial<CdpEvent> = {}): CdpEvent => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', identity: { email: 'a@example.com' }, properties: { amount: 1 }, ...extra,
})

function client(url: string, opts: Partial<CdpClientOptions> = {}) {
  const retries: RetryInfo[] = []
  const c = createCdpClient({ baseUrl: url, apiKey: 'rfcdp_test_secret', timeoutMs: 2000, deadlineMs: 10_000, backoffBaseMs: 10, backoffMaxMs: 50, onRetry: (i) => retries.push(i), ...opts })
  return { c, retries }
}

void t.test('503 with Retry-After, then 202: one retry after the given wait, same body, key in the header only', async (tt) => {
  const s = await scripted(tt, [unavailable({ 'retry-after': '1' }), accepted('ev_42')])
  const { c, retries } = client(s.url)
  const r = await c.sendEvent(event('txn-1'))
  tt.same(r, { status: 'accepted', event_id: 'ev_42' })
  tt.equal(s.seen.length, 2)
  tt.equal(retries.length, 1)
  tt.equal(retries[0]!.delayMs, 1000, 'Retry-After seconds honoured')
  tt.equal(retries[0]!.httpStatus, 503)
  tt.same(s.seen[0]!.raw, s.seen[1]!.raw, 'the retry sends the same bytes')
  tt.equal((s.seen[1]!.body as CdpEvent).externalEventId, 'txn-1')
  tt.equal(s.seen[0]!.headers.authorization, 'Bearer rfcdp_test_secret')
  tt.equal(s.seen[0]!.path, '/v1/cdp/events')
  tt.notOk(JSON.stringify(retries).includes('rfcdp_test_secret'), 'retry reports never carry the key')
})

void t.test('Retry-After as an HTTP date', async (tt) => {
  const now = Date.parse('2026-05-20T12:00:00Z')
  tt.equal(parseRetryAfter('Wed, 20 May 2026 12:00:03 GMT', now), 3000)
  tt.equal(parseRetryAfter('Wed, 20 May 2026 11:00:00 GMT', now), 0, 'a date in the past means now')
  tt.equal(parseRetryAfter('7', now), 7000)
  tt.equal(parseRetryAfter('soon', now), undefined)
  tt.equal(parseRetryAfter(null, now), undefined)
})

void t.test('429 is retried; its Retry-After is honoured', async (tt) => {
  const s = await scripted(tt, [json(429, { status: 'error', error_code: 'rate_limited', message: 'slow down' }, { 'retry-after': '0' }), accepted()])
  const { c, retries } = client(s.url)
  const r = await c.sendEvent(event('txn-429'))
  tt.equal(r.status, 'accepted')
  tt.equal(retries.length, 1)
  tt.equal(retries[0]!.httpStatus, 429)
  tt.equal(retries[0]!.delayMs, 0)
})

void t.test('429 until the retries run out: rate_limited, not "unknown" (nothing was accepted)', async (tt) => {
  const s = await scripted(tt, [json(429, { status: 'error', error_code: 'rate_limited', message: 'slow down' }, { 'retry-after': '0' })])
  const { c } = client(s.url, { maxRetries: 2 })
  const r = await c.sendEvent(event('txn-429b'))
  tt.match(r, { status: 'error', error_code: 'rate_limited', httpStatus: 429, attempts: 3, retriable: true })
  tt.equal(s.seen.length, 3)
})

void t.test('a connection reset is retried with backoff (full jitter below the cap)', async (tt) => {
  const s = await scripted(tt, [reset, reset, accepted('ev_after_reset')])
  const { c, retries } = client(s.url, { random: () => 0.999 })
  const r = await c.sendEvent(event('txn-reset'))
  tt.same(r, { status: 'accepted', event_id: 'ev_after_reset' })
  tt.equal(retries.length, 2)
  tt.equal(retries[0]!.httpStatus, 0)
  tt.ok(retries[0]!.delayMs < 10 && retries[1]!.delayMs < 20, 'the ceiling doubles: base 10 ms, then 20 ms')
  tt.ok(retries[1]!.delayMs >= 10, 'with random near 1 the wait is near the ceiling')
})

void t.test('deadline reached: outcome_unknown, says resending the same externalEventId is safe', async (tt) => {
  const s = await scripted(tt, [unavailable(), hang])
  const { c } = client(s.url, { timeoutMs: 300, deadlineMs: 1000 })
  const r = await c.sendEvent(event('txn-deadline'))
  tt.match(r, { status: 'error', error_code: 'outcome_unknown', retriable: true })
  if (r.status !== 'error') return
  tt.match(r.message, /may or may not have been accepted/)
  tt.match(r.message, /same externalEventId/)
  tt.ok(r.attempts >= 2)
  tt.ok(s.seen.length >= 2)
})

void t.test('a Retry-After that ends after the deadline stops at once', async (tt) => {
  const s = await scripted(tt, [unavailable({ 'retry-after': '3600' })])
  const { c } = client(s.url, { deadlineMs: 2000 })
  const r = await c.sendEvent(event('txn-late'))
  tt.match(r, { status: 'error', error_code: 'outcome_unknown', httpStatus: 503, attempts: 1 })
  tt.equal(s.seen.length, 1)
})

void t.test('422 is final: not retried, details passed through', async (tt) => {
  const details = [{ pointer: '/properties/amount', code: 'type', message: 'properties.amount must be number' }]
  const s = await scripted(tt, [json(422, { status: 'error', error_code: 'validation_failed', message: 'invalid', details }), accepted()])
  const { c, retries } = client(s.url)
  const r = await c.sendEvent(event('txn-422'))
  tt.same(r, { status: 'error', error_code: 'validation_failed', message: 'invalid', details, httpStatus: 422, attempts: 1, retriable: false })
  tt.equal(s.seen.length, 1)
  tt.equal(retries.length, 0)
})

void t.test('duplicate answers come back as duplicate', async (tt) => {
  const s = await scripted(tt, [json(200, { status: 'duplicate', original_event_id: 'ev_orig' })])
  const { c } = client(s.url)
  tt.same(await c.sendEvent(event('txn-dup')), { status: 'duplicate', original_event_id: 'ev_orig' })
})

void t.test('batch: per-item results in order; a request-level 503 retried; larger arrays split at maxBatchItems', async (tt) => {
  const answer: Step = (req, res) => {
    const items = (req.body as { items: CdpEvent[] }).items
    json(200, { results: items.map((it) => it.externalEventId.endsWith('-bad')
      ? { status: 'error', error_code: 'validation_failed', message: 'bad', details: [{ pointer: '/eventType', code: 'pattern', message: 'no' }] }
      : it.externalEventId.endsWith('-dup') ? { status: 'duplicate', original_event_id: `orig-${it.externalEventId}` }
        : { status: 'accepted', event_id: `ev-${it.externalEventId}` }) })(req, res)
  }
  const s = await scripted(tt, [unavailable({ 'retry-after': '0' }), answer])
  const { c } = client(s.url, { maxBatchItems: 2 })
  const r = await c.sendBatch([event('a'), event('b-bad'), event('c-dup'), event('d')])
  tt.same(r.map((x) => x.status), ['accepted', 'error', 'duplicate', 'accepted'])
  tt.match(r[0], { event_id: 'ev-a' })
  tt.match(r[1], { error_code: 'validation_failed', httpStatus: 200, retriable: false, details: [{ pointer: '/eventType' }] })
  tt.match(r[2], { original_event_id: 'orig-c-dup' })
  tt.match(r[3], { event_id: 'ev-d' })
  tt.equal(s.seen.length, 3, 'chunk 1 twice (503, then 200), chunk 2 once')
  tt.same(s.seen.map((x) => x.path), ['/v1/cdp/events/batch', '/v1/cdp/events/batch', '/v1/cdp/events/batch'])
  tt.same(s.seen[0]!.raw, s.seen[1]!.raw)
})

void t.test('batch: a request-level 4xx is repeated for each item of that request', async (tt) => {
  const s = await scripted(tt, [json(401, { status: 'error', error_code: 'unauthorized', message: 'invalid API key' })])
  const { c } = client(s.url)
  const r = await c.sendBatch([event('x1'), event('x2')])
  tt.equal(r.length, 2)
  for (const x of r) tt.match(x, { status: 'error', error_code: 'unauthorized', httpStatus: 401, retriable: false })
  tt.same(await c.sendBatch([]), [], 'an empty batch sends nothing')
  tt.equal(s.seen.length, 1)
})

void t.test('gzip above the threshold only', async (tt) => {
  const s = await scripted(tt, [json(200, { results: [{ status: 'accepted', event_id: 'e1' }] })])
  const { c } = client(s.url, { gzipThresholdBytes: 1024 })
  await c.sendBatch([event('small')])
  tt.equal(s.seen[0]!.headers['content-encoding'], undefined, 'small body sent plain')
  const big = event('big', { properties: { note: 'x'.repeat(5000) } })
  await c.sendBatch([big])
  tt.equal(s.seen[1]!.headers['content-encoding'], 'gzip')
  tt.ok(s.seen[1]!.raw.length < 1024, `compressed on the wire (${s.seen[1]!.raw.length} bytes)`)
  tt.same(s.seen[1]!.body, { items: [big] }, 'inflates to the same JSON')
})

void t.test('options are checked', async (tt) => {
  tt.throws(() => createCdpClient({ baseUrl: 'localhost:1', apiKey: 'k' }), TypeError)
  tt.throws(() => createCdpClient({ baseUrl: 'http://localhost:1', apiKey: '' }), TypeError)
})
