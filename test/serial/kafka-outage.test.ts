/**
 * Kafka stopped mid-test (the real broker, via the stack script): requests answer 503 with
 * Retry-After and a retriable code, never 422 and never a hang; once Kafka is back the same
 * request is accepted, and the topic holds exactly one record for it.
 * Runs in the serial group: it stops the broker every other test uses.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { startApi, readTopic } from '../helpers/api.js'
import { ROOT } from '../helpers/process.js'

const stack = (...args: string[]) => {
  const r = spawnSync('bash', [join(ROOT, 'tools/stack/stack.sh'), ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`stack ${args.join(' ')} failed: ${r.stdout}${r.stderr}`)
}

const event = (id: string) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: 'L-1' }, properties: { order_id: id, amount: 5, currency: 'USD' },
})

void t.test('Kafka down: 503 + Retry-After; back up: the retry is accepted once', async (t) => {
  const api = await startApi(t, { kafka: { produceTimeoutMs: 3000 } })
  const key = await api.key('acme')
  const post = (body: unknown) => api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` }, payload: body as object })
  t.equal((await post(event('before'))).statusCode, 202)

  // whatever happens below, leave the broker running for the tests after this one
  t.teardown(() => stack('up', 'kafka'))
  stack('down', 'kafka')
  const started = Date.now()
  const down = await post(event('during'))
  const took = Date.now() - started
  t.equal(down.statusCode, 503, down.body)
  t.match(down.json(), { status: 'error', error_code: /^(kafka_unavailable|timeout)$/ })
  t.ok(Number(down.headers['retry-after']) >= 1, 'Retry-After set')
  t.ok(took < 20_000, `answered while Kafka was down instead of hanging (${took} ms)`)

  stack('up', 'kafka')
  // the client retries with the same externalEventId until Kafka takes it
  let accepted: { statusCode: number; body: string } | undefined
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const r = await post(event('during'))
    if (r.statusCode !== 503) { accepted = r; break }
    await new Promise((res) => setTimeout(res, 500))
  }
  t.ok(accepted, 'accepted after Kafka came back')
  t.equal(accepted?.statusCode, 202, accepted?.body ?? '')
  const records = await readTopic(api.config, 2, { settleMs: 2000, timeoutMs: 40_000 })
  const keys = records.map((r) => r.key).sort()
  t.same(keys, ['["acme","brand.pos","before"]', '["acme","brand.pos","during"]'], 'one record each, no duplicate of the retried fact')
})
