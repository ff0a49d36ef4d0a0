/**
 * Kafka stopped mid-test (the real broker, via the stack script): requests answer 503 with
 * Retry-After and a retriable code, never 422 and never a hang; once Kafka is back the same
 * request is accepted, and the topic holds exactly one record for it.
 * The consumer (issue 8 finding 2) resumes as the same group member after the broker's return.
 * Runs in the serial group: it stops the broker every other test uses.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { join } from 'node:path'
import { startApi, readTopic } from '../helpers/api.js'
import { ROOT, waitFor } from '../helpers/process.js'
import { testConfig } from '../helpers/config.js'
import { startService } from '../helpers/service.js'

const OUTAGE_MS = 15_000
const SESSION_MS = 30_000

// A kafkajs consumer that lived through the outage can leave one connection's request queue
// re-arming a 1 ms timer after the consumer disconnected (kafkajs#1556/#1704: scheduleCheckPendingRequests
// with nothing pending; the loop ends only when that connection is destroyed, which kafkajs never
// does for it). Seen after the second test whenever kafkajs did not restart the consumer: every
// assertion passed and the file then ran into tap's timeout. `cdp serve` ends with process.exit
// and is not held; here the file ends itself once its tests are done, 5 s after them at the latest.
t.teardown(() => {
  setTimeout(() => {
    console.log('# ending the process: a stopped kafkajs consumer left its request-queue timer loop running (kafkajs#1704)')
    process.exit()
  }, 5000).unref()
})

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

/**
 * Issue 8 finding 2: after the broker returns, the consumer carries on within seconds. Before the
 * fix its client gave up after 3 short retries while the broker was away
 * (KafkaJSNumberOfRetriesExceeded, 9 crashes in a 15 s outage), kafkajs restarted it as a NEW
 * group member each time, and the coordinator held the group for the old member until its
 * session expired: an event sent after the return was stored only after that session (9.6 s with
 * a 10 s session timeout; 28.7-30.3 s with 30 s in bench/broker-outage.ts). Now the consumer's
 * client retries without a limit (CONSUMER_RETRY), and should kafkajs still restart it (a
 * `No broker available` bail), the member it was is removed (members.ts).
 * The session timeout here is 30 s: stored in less than half of it means no dead member was
 * waited for.
 */
void t.test('broker away for longer than the old retries last: the consumer resumes without waiting for a dead member', async (t) => {
  const cfg = testConfig(t, { kafka: { produceTimeoutMs: 3000 }, consumer: { sessionTimeoutMs: SESSION_MS } })
  // the service's warnings and errors: the crash lines, and what to show should it fail
  const lines: string[] = []
  const log = pino({ level: 'warn' }, new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb() } }))
  const svc = await startService(t, cfg, { log })
  const key = await svc.key('acme', ['events:write', 'events:read'])
  const post = (body: unknown) => svc.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` }, payload: body as object })
  const status = async (id: string) => (await svc.app.inject({ method: 'GET', url: `/v1/cdp/events/brand.pos/${id}`, headers: { authorization: `Bearer ${key}` } })).json() as { status: string }
  const stored = (id: string, timeoutMs: number) => waitFor(`${id} stored`, async () => ((await status(id)).status === 'stored' ? true : undefined), timeoutMs, 250)

  t.equal((await post(event('first'))).statusCode, 202)
  await stored('first', 30_000)
  t.ok(svc.consumer.joined(), 'the consumer is in its group before the outage')

  t.teardown(() => stack('up', 'kafka'))
  stack('down', 'kafka')
  // long enough for the old policy (3 retries at most 1 s apart) to run out several times
  await new Promise((r) => setTimeout(r, OUTAGE_MS))
  stack('up', 'kafka')
  const back = Date.now()

  // a client retries its 503s with the same externalEventId until the API takes the event
  const accepted = await waitFor('the API to accept again', async () => {
    const r = await post(event('after'))
    return r.statusCode === 503 ? undefined : r
  }, 60_000, 500)
  t.equal(accepted.statusCode, 202, accepted.body)
  await stored('after', 90_000)
  const storedAfterMs = Date.now() - back
  const crashes = lines.filter((l) => l.includes('"msg":"Crash: '))
  t.comment(`stored ${(storedAfterMs / 1000).toFixed(1)} s after the broker answered again; kafkajs crashes: ${crashes.length}`)
  t.same(crashes.filter((l) => l.includes('NumberOfRetriesExceeded')), [], 'the consumer\'s retries never ran out')
  t.equal(svc.consumer.runner.rejoins, 0, 'no crash kafkajs gave up on (the runner never had to make a new consumer)')
  t.ok(svc.consumer.joined(), 'in its group')
  t.ok(storedAfterMs < SESSION_MS / 2, `stored ${(storedAfterMs / 1000).toFixed(1)} s after the broker's return, before a dead member's session (${SESSION_MS / 1000} s) could have ended`)
  if (storedAfterMs >= SESSION_MS / 2) t.comment(lines.filter((l) => /Crash|Restarting|removed/.test(l)).slice(-20).join(''))
})
