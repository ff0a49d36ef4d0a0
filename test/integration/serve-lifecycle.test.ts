/**
 * `cdp serve` (role all) as a child process, issue 8 findings 1 and 3:
 * - after a crash the group still holds the dead member until its session expires, so joining
 *   takes up to a session timeout: the API must answer meanwhile (healthz, an accepted event),
 *   and /readyz says `consumer: false` until the group is joined;
 * - SIGTERM with a long analyst query in flight ends the process within `shutdown.deadlineMs`
 *   with exit code 0 (the deadline path would be SIGKILL), and the next start takes the data dir
 *   (no "Cannot lock file").
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { testConfig } from '../helpers/config.js'
import { ROOT, freePort, runCdp, waitFor, type CdpProcess } from '../helpers/process.js'
import { createStateStores } from '../../src/state/index.js'
import { createKey } from '../../src/auth/keys.js'
import { createKafka } from '../../src/kafka/client.js'
import { ensureTopics } from '../../src/kafka/admin.js'
import { createLogger } from '../../src/observability/logger.js'
import type { Config } from '../../src/config/index.js'
import type { TestContext } from '../helpers/config.js'

/** the child takes its names from its config file, not from this shell's environment */
const CLEAR_ENV = {
  KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', KAFKA_CONSUMER_GROUP: '', KAFKA_PARTITIONS: '',
  CLICKHOUSE_URL: '', CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: '', REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '',
}

const event = (id: string) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: 'L-1' }, properties: { order_id: id, amount: 5, currency: 'USD' },
})

async function setup(t: TestContext & { teardown: (f: () => unknown) => void }, over: Record<string, unknown> = {}) {
  const cfg = testConfig(t, { query: { maxExecutionTime: 300 } })
  const stores = await createStateStores(cfg)
  const ingestKey = (await createKey(stores.keys, { tenant: 'acme', permissions: ['events:write'] })).key
  const operator = (await createKey(stores.keys, { tenant: null, permissions: ['query:all'] })).key
  await stores.close()
  const port = await freePort()
  const config = {
    dataDir: cfg.dataDir, logLevel: 'info',
    http: { port },
    kafka: { brokers: cfg.kafka.brokers, topic: cfg.kafka.topic, deadLetterTopic: cfg.kafka.deadLetterTopic, partitions: cfg.kafka.partitions, consumerGroup: cfg.kafka.consumerGroup },
    schemaRegistry: { url: cfg.schemaRegistry.url },
    clickhouse: { chdbPath: cfg.clickhouse.chdbPath, database: cfg.clickhouse.database },
    state: { backend: 'lmdb', lmdbPath: cfg.state.lmdbPath },
    keys: { prefix: cfg.keys.prefix },
    query: { maxExecutionTime: 300 },
    ...over,
  }
  const url = `http://127.0.0.1:${port}`
  const start = (): CdpProcess => runCdp(t, ['serve'], { dir: cfg.dataDir, config, env: CLEAR_ENV })
  return { cfg, ingestKey, operator, url, start }
}

async function get(url: string): Promise<{ status: number; body: string } | undefined> {
  try {
    const r = await fetch(url)
    return { status: r.status, body: await r.text() }
  } catch { return undefined }
}

/** a group member in its own process, SIGKILLed once it joined: the group keeps it for its 30 s session */
async function deadMember(t: TestContext, cfg: Readonly<Config>): Promise<void> {
  const script = `
    const { Kafka, logLevel } = require('kafkajs')
    const kafka = new Kafka({ clientId: 'stale-member', brokers: ${JSON.stringify(cfg.kafka.brokers)}, logLevel: logLevel.NOTHING })
    const c = kafka.consumer({ groupId: ${JSON.stringify(cfg.kafka.consumerGroup)}, sessionTimeout: 30000, rebalanceTimeout: 30000, heartbeatInterval: 1000 })
    c.on(c.events.GROUP_JOIN, () => console.log('joined'))
    c.connect().then(() => c.subscribe({ topic: ${JSON.stringify(cfg.kafka.topic)}, fromBeginning: true })).then(() => c.run({ eachMessage: async () => undefined }))
  `
  const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('joined')) resolve() })
    child.on('exit', (code) => reject(new Error(`stale member exited early (${code})`)))
  })
  child.kill('SIGKILL')
}

void t.test('after a crash the API answers before the consumer has joined its group', async (t) => {
  const s = await setup(t)
  const kafka = createKafka(s.cfg, createLogger({ logLevel: 'silent' }), '-test')
  await ensureTopics(kafka, s.cfg)
  await deadMember(t, s.cfg)

  const proc = s.start()
  const health = await waitFor('the API to answer /healthz', async () => {
    if (proc.child.exitCode !== null) throw new Error(`serve exited early:\n${proc.output()}`)
    return await get(`${s.url}/healthz`)
  }, 60_000, 100)
  t.equal(health.status, 200)
  const r = await fetch(`${s.url}/v1/cdp/events`, {
    method: 'POST', headers: { authorization: `Bearer ${s.ingestKey}`, 'content-type': 'application/json' }, body: JSON.stringify(event('early')),
  })
  t.equal(r.status, 202, await r.text())
  const ready = await get(`${s.url}/readyz`)
  t.notMatch(proc.output(), /consumer running/, 'the consumer had not joined yet when the API accepted the event')
  t.equal(ready?.status, 503, 'not ready while the consumer is missing')
  t.match(JSON.parse(ready?.body ?? '{}'), { checks: { consumer: false, kafka: true, stateStore: true } }, 'readiness names what is missing')

  const joined = await waitFor('the consumer to join once the dead member expired', async () => {
    const x = await get(`${s.url}/readyz`)
    return x?.status === 200 ? x : undefined
  }, 90_000, 500)
  t.match(JSON.parse(joined.body), { status: 'ready', checks: { consumer: true } })
  t.match(proc.output(), /consumer running/)
  proc.kill('SIGTERM')
  t.equal(await proc.exited, 0, 'clean exit')
})

void t.test('the service itself SIGKILLed under load and started again on its data dir: it listens before its consumer rejoins', async (t) => {
  // the killed process stays in the group for its session: the restarted consumer waits that long
  const s = await setup(t, { consumer: { sessionTimeoutMs: 30_000 } })
  const first = s.start()
  await waitFor('the first serve to be ready', async () => {
    if (first.child.exitCode !== null) throw new Error(`serve exited early:\n${first.output()}`)
    const x = await get(`${s.url}/readyz`)
    return x?.status === 200 ? true : undefined
  }, 60_000, 200)
  const post = (id: string) => fetch(`${s.url}/v1/cdp/events`, {
    method: 'POST', headers: { authorization: `Bearer ${s.ingestKey}`, 'content-type': 'application/json' }, body: JSON.stringify(event(id)),
  })
  // load while it dies: requests in flight, the consumer in the middle of its batches
  let stop = false
  let sent = 0
  const load = (async () => {
    while (!stop) { await post(`load-${sent++}`).then((r) => r.text(), () => undefined) }
  })()
  await waitFor('some events accepted', async () => (sent > 50 ? true : undefined), 30_000, 50)
  first.kill('SIGKILL')
  await first.exited
  stop = true
  await load

  const second = s.start()
  const health = await waitFor('the restarted API to answer /healthz', async () => {
    if (second.child.exitCode !== null) throw new Error(`serve exited early:\n${second.output()}`)
    return await get(`${s.url}/healthz`)
  }, 60_000, 100)
  t.equal(health.status, 200)
  // the order, not a stopwatch: readiness still names the consumer as missing, and an event is
  // accepted, while the group waits for the killed member
  const ready = await get(`${s.url}/readyz`)
  t.equal(ready?.status, 503, 'not ready yet')
  t.match(JSON.parse(ready?.body ?? '{}'), { checks: { consumer: false, kafka: true, stateStore: true, clickhouse: true } }, 'readiness says the consumer is what is missing')
  const r = await post('after-restart')
  t.equal(r.status, 202, await r.text())
  t.notMatch(second.output(), /consumer running/, 'the consumer had not rejoined when the API listened and accepted')
  t.notMatch(second.output(), /Cannot lock|lock file/i, 'nothing the killed process held blocked the start')

  await waitFor('the consumer to rejoin once the killed member expired', async () => {
    const x = await get(`${s.url}/readyz`)
    return x?.status === 200 ? true : undefined
  }, 90_000, 500)
  t.match(second.output(), /consumer running/)
  second.kill('SIGTERM')
  t.equal(await second.exited, 0, 'clean exit')
})

void t.test('SIGTERM while the consumer is still joining: the drain ends the process cleanly', async (t) => {
  const s = await setup(t, { shutdown: { deadlineMs: 15_000 } })
  await ensureTopics(createKafka(s.cfg, createLogger({ logLevel: 'silent' }), '-test'), s.cfg)
  await deadMember(t, s.cfg)
  const proc = s.start()
  await waitFor('the API to answer', async () => {
    if (proc.child.exitCode !== null) throw new Error(`serve exited early:\n${proc.output()}`)
    return await get(`${s.url}/healthz`)
  }, 60_000, 100)
  t.notMatch(proc.output(), /consumer running/, 'still joining')
  proc.kill('SIGTERM')
  const code = await proc.exited
  t.equal(proc.child.signalCode, null, 'ended by its own drain, not by the signal or the deadline')
  t.equal(code, 0)
  t.notMatch(proc.output(), /shutdown deadline passed/)
  if (code !== 0) t.comment(proc.output().slice(-3000))
})

void t.test('SIGTERM with a long analyst query in flight: exit 0 within the deadline, and the next start works', async (t) => {
  const s = await setup(t, { shutdown: { deadlineMs: 15_000 } })
  const proc = s.start()
  await waitFor('serve ready', async () => {
    if (proc.child.exitCode !== null) throw new Error(`serve exited early:\n${proc.output()}`)
    const x = await get(`${s.url}/readyz`)
    return x?.status === 200 ? true : undefined
  }, 60_000, 200)
  // minutes of hashing on one thread, far beyond the deadline unless it is killed
  const sql = 'SELECT sum(arraySum(arrayMap(x -> sipHash64(x, number), range(200)))) AS s FROM numbers(399999999)'
  const answer = fetch(`${s.url}/v1/cdp/query`, {
    method: 'POST', headers: { authorization: `Bearer ${s.operator}`, 'content-type': 'application/json' }, body: JSON.stringify({ sql }),
  }).then(async (r) => ({ status: r.status, body: await r.text() }), (e: unknown) => e)
  // the query is running once the request is in (the route answers only when it ends)
  await new Promise((r) => setTimeout(r, 1500))
  proc.kill('SIGTERM')
  const code = await proc.exited
  t.equal(proc.child.signalCode, null, 'not killed by a signal')
  t.equal(code, 0, 'drained in time: exit code 0')
  if (code !== 0) t.comment(proc.output().slice(-3000))
  t.notMatch(proc.output(), /shutdown deadline passed/)
  t.match(await answer, { status: 503 }, 'the query was answered (cancelled), not cut off')

  const next = s.start()
  await waitFor('the next serve to take the data dir', async () => {
    if (next.child.exitCode !== null) throw new Error(`next serve exited:\n${next.output()}`)
    const x = await get(`${s.url}/readyz`)
    return x?.status === 200 ? true : undefined
  }, 60_000, 200)
  t.notMatch(next.output(), /Cannot lock file/)
  next.kill('SIGTERM')
  t.equal(await next.exited, 0)
})
