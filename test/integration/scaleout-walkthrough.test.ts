/**
 * The README's scale-out walk-through ("Scale-out, step by step"), run as written with child
 * processes: Redis state, the ClickHouse gateway standing in for a server (its token as the
 * password), one CDP_CONFIG file read by every process and the CLI, two consumers, two API
 * roles (one with --workers 2), keys created against Redis, events through both APIs, and an
 * analyst query through an API role. Ports are free ones, names are this test's own; everything
 * is stopped with the test.
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { testConfig } from '../helpers/config.js'
import { freePort, runCdp, waitFor, type CdpProcess } from '../helpers/process.js'
import { deletePrefix } from '../state/redis-helpers.js'

/** the parent's environment must not leak into the walk-through: the config file says it all */
const CLEAR_ENV = {
  KAFKA_BROKERS: '', KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', KAFKA_CONSUMER_GROUP: '', KAFKA_PARTITIONS: '',
  CLICKHOUSE_URL: '', CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: '',
  REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '', CDP_URL: '', CDP_API_KEY: '', CDP_PORT: '', CDP_PII_HASH_KEY: '',
}

const purchase = (id: string) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { email: `${id}@example.com` }, properties: { order_id: `o-${id}`, amount: 12.5, currency: 'EUR' },
})

void t.test('the scale-out walk-through of the README', async (t) => {
  const base = testConfig(t, { kafka: { partitions: 4 } })
  const dir = base.dataDir
  t.teardown(() => deletePrefix(base.state.redisUrl, base.keys.prefix))
  const db = base.clickhouse.database
  const procs: CdpProcess[] = []
  const run = (args: string[], env: Record<string, string> = {}) => {
    const p = runCdp(t, args, { dir, config: {}, env: { ...CLEAR_ENV, CDP_CONFIG: configFile, ...env } })
    procs.push(p)
    return p
  }
  const alive = () => { for (const p of procs.filter((x) => x.child.spawnargs.includes('serve') || x.child.spawnargs.includes('clickhouse-gateway'))) if (p.child.exitCode !== null) throw new Error(`a process exited:\n${p.output()}`) }

  // 1. ClickHouse: the gateway over a chDB directory, its token in a 0600 file
  const configFile = join(dir, 'cdp.json')
  writeFileSync(configFile, '{}')
  const chdb = join(dir, 'chdb')
  const gw = run(['clickhouse-gateway', '--port', '0', '--path', chdb])
  const chUrl = await waitFor('the gateway', async () => {
    alive()
    return /listening on (http:\/\/127\.0\.0\.1:[0-9]+)/.exec(gw.output())?.[1]
  }, 90_000)
  const token = readFileSync(`${chdb}.gateway-token`, 'utf8').trim()

  // 2. one configuration file for every process and the CLI
  const [apiA, apiB] = [await freePort(), await freePort()]
  writeFileSync(configFile, JSON.stringify({
    dataDir: dir, logLevel: 'warn',
    kafka: { brokers: base.kafka.brokers, topic: base.kafka.topic, deadLetterTopic: base.kafka.deadLetterTopic, consumerGroup: base.kafka.consumerGroup, partitions: 4 },
    schemaRegistry: { url: base.schemaRegistry.url },
    state: { backend: 'redis', redisUrl: base.state.redisUrl },
    keys: { prefix: base.keys.prefix },
    clickhouse: { url: chUrl, database: db },
    query: { piiHashKey: 'walkthrough-pii-hash-key-0123456789' },
  }))
  const ch = { CLICKHOUSE_PASSWORD: token }

  // 3. two consumers (they create the schema), then two API roles: one process, and two workers
  // each consumer's health and metrics on a port of its own (README: 9101, 9102)
  const [opsA, opsB] = [await freePort(), await freePort()]
  run(['serve', '--role', 'consumer'], { ...ch, CDP_CONSUMER_PORT: String(opsA) })
  run(['serve', '--role', 'consumer'], { ...ch, CDP_CONSUMER_PORT: String(opsB) })
  run(['serve', '--role', 'api', '--workers', '1'], { ...ch, CDP_PORT: String(apiA) })
  run(['serve', '--role', 'api', '--workers', '2'], { ...ch, CDP_PORT: String(apiB) })
  for (const port of [apiA, apiB]) {
    await waitFor(`API on ${port} ready`, async () => {
      alive()
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).ok ? true : undefined
    }, 120_000)
  }

  // 4. keys, created against Redis (the CLI checks the API at CDP_URL uses the same store)
  const urlA = `http://127.0.0.1:${apiA}`
  const urlB = `http://127.0.0.1:${apiB}`
  const keyCli = run(['keys', 'create', '--tenant', 'acme'], { CDP_URL: urlA })
  t.equal(await keyCli.exited, 0, keyCli.output())
  t.match(keyCli.output(), `store:       Redis at ${base.state.redisUrl}/0 (prefix ${base.keys.prefix})`)
  const key = keyCli.output().trim().split('\n').at(-1)!
  const analystCli = run(['keys', 'create', '--tenant', 'acme', '--permission', 'query:read'], { CDP_URL: urlB })
  t.equal(await analystCli.exited, 0, analystCli.output())
  const analystKey = analystCli.output().trim().split('\n').at(-1)!

  // 5. events through both APIs; a fact sent to both is one fact
  const post = async (url: string, items: unknown[]) => {
    const r = await fetch(`${url}/v1/cdp/events/batch`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ items }) })
    t.equal(r.status, 200)
    return (await r.json() as { results: { status: string }[] }).results.map((x) => x.status)
  }
  const a = Array.from({ length: 100 }, (_, i) => purchase(`walk-a-${i}`))
  const b = Array.from({ length: 100 }, (_, i) => purchase(`walk-b-${i}`))
  t.same(new Set(await post(urlA, a)), new Set(['accepted']))
  t.same(new Set(await post(urlB, b)), new Set(['accepted']))
  t.same(new Set(await post(urlB, a.slice(0, 10))), new Set(['duplicate']), 'B knows what A accepted')

  // 6. an analyst query through an API role (cdp query against CDP_URL)
  const sql = `SELECT count() AS n, uniqExact(external_event_id) AS u FROM ${db}.events`
  const answer = await waitFor('200 rows in ClickHouse', async () => {
    alive()
    const q = run(['query', '--format', 'json', sql], { CDP_URL: urlB, CDP_API_KEY: analystKey })
    if (await q.exited !== 0) return undefined
    const row = JSON.parse(q.output().trim().split('\n').at(-1)!) as { n: string; u: string }
    return Number(row.n) >= 200 ? row : undefined
  }, 120_000, 1000)
  t.same({ n: Number(answer.n), u: Number(answer.u) }, { n: 200, u: 200 }, 'every event stored once')

  // the analyst's isolation holds on the API role: PII is masked without pii:read, other tenants are invisible
  const masked = run(['query', '--format', 'json', `SELECT email FROM ${db}.events WHERE external_event_id = 'walk-a-1'`], { CDP_URL: urlA, CDP_API_KEY: analystKey })
  t.equal(await masked.exited, 0, masked.output())
  t.match(masked.output(), /"email":"[0-9a-f]{64}"/)
  t.notMatch(masked.output(), /@example\.com/)
  const other = run(['keys', 'create', '--tenant', 'globex', '--permission', 'query:read'], { CDP_URL: urlA })
  t.equal(await other.exited, 0)
  const globex = run(['query', '--format', 'json', `SELECT count() AS n FROM ${db}.events`], { CDP_URL: urlA, CDP_API_KEY: other.output().trim().split('\n').at(-1)! })
  t.equal(await globex.exited, 0, globex.output())
  t.match(globex.output(), /"n":"?0"?/)
  alive()
})
