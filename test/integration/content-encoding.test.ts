/**
 * Content-Encoding on the real API (app.inject): gzip bodies accepted, the route's body limit
 * applied to the decompressed size (413 for a decompression bomb), corrupt gzip 400, other
 * codings 415, all in the API's error format.
 */
import t from 'tap'
import { gzipSync } from 'node:zlib'
import { startApi } from '../helpers/api.js'

const event = (id: string) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { email: `${id}@example.com` }, properties: { order_id: `o-${id}`, amount: 3.5, currency: 'EUR' },
})

void t.test('Content-Encoding on the event routes', async (tt) => {
  const api = await startApi(tt)
  const key = await api.key('acme')
  const post = (url: string, payload: Buffer, encoding?: string) => api.app.inject({
    method: 'POST', url, payload,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(encoding === undefined ? {} : { 'content-encoding': encoding }) },
  })

  const single = await post('/v1/cdp/events', gzipSync(JSON.stringify(event('ce-1'))), 'gzip')
  tt.equal(single.statusCode, 202, single.body)
  tt.equal(single.json<{ status: string }>().status, 'accepted')

  const batch = await post('/v1/cdp/events/batch', gzipSync(JSON.stringify({ items: [event('ce-2'), event('ce-1')] })), 'gzip')
  tt.equal(batch.statusCode, 200, batch.body)
  tt.same(batch.json<{ results: { status: string }[] }>().results.map((r) => r.status), ['accepted', 'duplicate'])

  const identity = await post('/v1/cdp/events', Buffer.from(JSON.stringify(event('ce-3'))), 'identity')
  tt.equal(identity.statusCode, 202, 'identity is plain JSON')

  // 10 MiB of zeros is ~10 KiB of gzip: under the single route's 64 KiB limit on the wire, far over it inflated
  const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024))
  tt.ok(bomb.length < api.config.http.singleBodyLimitBytes)
  const tooLarge = await post('/v1/cdp/events', bomb, 'gzip')
  tt.equal(tooLarge.statusCode, 413)
  tt.match(tooLarge.json(), { status: 'error', error_code: 'payload_too_large' })

  // the batch route's limit (8 MiB) applies there: the same bomb is too large for it as well
  const tooLargeBatch = await post('/v1/cdp/events/batch', bomb, 'gzip')
  tt.equal(tooLargeBatch.statusCode, 413)
  tt.match(tooLargeBatch.json(), { status: 'error', error_code: 'payload_too_large' })

  // a batch between the two limits inflated: fine on the batch route, too large for a single event
  const big = gzipSync(JSON.stringify({ items: Array.from({ length: 400 }, (_, i) => event(`ce-big-${i}`)) }))
  const bigInflated = Buffer.byteLength(JSON.stringify({ items: Array.from({ length: 400 }, (_, i) => event(`ce-big-${i}`)) }))
  tt.ok(bigInflated > api.config.http.singleBodyLimitBytes && big.length < api.config.http.singleBodyLimitBytes)
  const bigBatch = await post('/v1/cdp/events/batch', big, 'gzip')
  tt.equal(bigBatch.statusCode, 200, 'the batch limit is the batch route\'s')
  tt.equal(bigBatch.json<{ results: { status: string }[] }>().results.filter((r) => r.status === 'accepted').length, 400)

  const corrupt = Buffer.from(gzipSync(JSON.stringify(event('ce-4'))))
  corrupt[corrupt.length - 6] = corrupt[corrupt.length - 6]! ^ 0xff
  const bad = await post('/v1/cdp/events', corrupt, 'gzip')
  tt.equal(bad.statusCode, 400)
  tt.match(bad.json(), { status: 'error', error_code: 'bad_request', message: /gzip/ })

  const notGzip = await post('/v1/cdp/events', Buffer.from(JSON.stringify(event('ce-5'))), 'gzip')
  tt.equal(notGzip.statusCode, 400, 'plain JSON labelled gzip')
  tt.match(notGzip.json(), { error_code: 'bad_request' })

  for (const coding of ['br', 'deflate', 'gzip, br']) {
    const res = await post('/v1/cdp/events', Buffer.from(JSON.stringify(event('ce-6'))), coding)
    tt.equal(res.statusCode, 415, coding)
    tt.match(res.json(), { status: 'error', error_code: 'unsupported_media_type', message: /gzip or identity/ })
  }
})
