/**
 * Metrics as an operator sees them: a real Prometheus (the stack script's, on a port of this
 * test) scrapes every role: the API, a `--role consumer` process and `cdp serve` with the default
 * role all (a child process with its own topic, group and database, so its consumer shares no
 * partition with the consumer role's); after a known load on each, PromQL answers the expected
 * counts per job. The shipped alert rules pass `promtool check rules`, and every metric the
 * alerts and the Grafana dashboard name is exposed by one of the /metrics endpoints.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { parse as parseYaml } from 'yaml'
import { startApi } from '../helpers/api.js'
import { tempDir, testConfig } from '../helpers/config.js'
import { ROOT, freePort, runCdp, waitFor } from '../helpers/process.js'
import { serve } from '../../src/app/serve.js'
import { createLogger } from '../../src/observability/logger.js'
import { createStateStores } from '../../src/state/index.js'
import { createKey } from '../../src/auth/keys.js'

const stack = (args: string[], env: Record<string, string>) =>
  spawnSync('bash', [join(ROOT, 'tools/stack/stack.sh'), ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 600_000 })

/** metric names an expression reads: identifiers left once matchers, groupings, ranges and strings are gone */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const out = new Set<string>()
  for (const m of stripped.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    if (m[2] !== undefined) continue // a function
    if (/^(?:and|or|unless|by|without|on|ignoring|group_left|group_right|offset|bool|inf|nan)$/i.test(m[1]!)) continue
    out.add(m[1]!)
  }
  return [...out]
}

/**
 * metric names a text exposition declares (a labelled counter nobody incremented yet has only
 * its # TYPE line); a histogram's series are name_bucket, name_sum and name_count
 */
const exposed = (text: string) => {
  const out = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    out.add(m[1]!)
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(m[1]! + s)
  }
  return out
}

void t.test('promtool accepts the shipped alert rules', async (t) => {
  const r = spawnSync('promtool', ['check', 'rules', join(ROOT, 'ops/prometheus/alerts.yml')], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stdout + r.stderr)
  t.match(r.stdout, /SUCCESS: 5 rules found/)
})

/** the child takes its names from its config file, not from this shell's environment */
const CLEAR_ENV = {
  KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', KAFKA_CONSUMER_GROUP: '', KAFKA_PARTITIONS: '', CDP_PORT: '',
  CLICKHOUSE_URL: '', CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: '', REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '',
}

void t.test('a real Prometheus scrapes every role; PromQL counts the load per job', async (t) => {
  const cfg = testConfig(t, { http: { port: 0, readinessIntervalMs: 200 }, consumer: { httpPort: 0, lagIntervalMs: 250 } })
  const api = await startApi(t, {}, cfg)
  await api.app.listen({ host: '127.0.0.1', port: 0 })
  const apiPort = (api.app.server.address() as AddressInfo).port
  const consumer = await serve(cfg, 'consumer', createLogger({ logLevel: 'silent' }))
  t.teardown(() => consumer.close())
  const consumerPort = (consumer.opsApp!.server.address() as AddressInfo).port

  // `cdp serve` (role all, the default) over a config of its own; its key is made before it starts
  const allCfg = testConfig(t)
  const allStores = await createStateStores(allCfg)
  const allKey = (await createKey(allStores.keys, { tenant: 'acme', permissions: ['events:write'] })).key
  await allStores.close()
  const allPort = await freePort()
  const all = runCdp(t, ['serve'], {
    dir: allCfg.dataDir, env: CLEAR_ENV,
    config: {
      dataDir: allCfg.dataDir, logLevel: 'warn', http: { port: allPort, readinessIntervalMs: 200 }, consumer: { lagIntervalMs: 250 },
      kafka: { brokers: allCfg.kafka.brokers, topic: allCfg.kafka.topic, deadLetterTopic: allCfg.kafka.deadLetterTopic, partitions: allCfg.kafka.partitions, consumerGroup: allCfg.kafka.consumerGroup },
      schemaRegistry: { url: allCfg.schemaRegistry.url },
      clickhouse: { chdbPath: allCfg.clickhouse.chdbPath, database: allCfg.clickhouse.database },
      state: { backend: 'lmdb', lmdbPath: allCfg.state.lmdbPath },
      keys: { prefix: allCfg.keys.prefix },
    },
  })
  const allUrl = `http://127.0.0.1:${allPort}`
  // ready: the API listens and the consumer joined its group
  await waitFor('role all ready', async () => {
    if (all.child.exitCode !== null) throw new Error(`cdp serve exited ${all.child.exitCode}: ${all.output()}`)
    try { return (await fetch(`${allUrl}/readyz`)).status === 200 ? true : undefined } catch { return undefined }
  }, 120_000, 250).catch((err: unknown) => { throw new Error(`${(err as Error).message}\n${all.output()}`) })

  // Prometheus from the stack script, in a STACK_DIR of this test, scraping every second
  const stackDir = tempDir(t, 'cdp-prom-')
  const promPort = await freePort()
  const env = {
    STACK_DIR: stackDir, PROMETHEUS_PORT: String(promPort), PROMETHEUS_SCRAPE_INTERVAL: '1s',
    PROMETHEUS_TARGETS: `api=127.0.0.1:${apiPort},consumer=127.0.0.1:${consumerPort},all=127.0.0.1:${allPort}`,
  }
  t.teardown(() => { stack(['down', 'prometheus'], env) })
  const up = stack(['up', 'prometheus'], env)
  t.equal(up.status, 0, `stack up prometheus: ${up.stdout}${up.stderr}`)
  if (up.status !== 0) return

  const promql = async (query: string): Promise<number | undefined> => {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(query)}`)
    const body = await r.json() as { status: string; data: { result: { value: [number, string] }[] } }
    const v = body.data.result[0]?.value[1]
    return v === undefined ? undefined : Number(v)
  }

  // the known load: N accepted, one duplicate, one invalid (by its problem's code)
  const N = 7
  const key = await api.key('acme')
  const event = (i: number) => ({
    source: 'brand.pos', externalEventId: `prom-${i}`, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
    identity: { email: `p${i}@example.com` }, properties: { order_id: `o-${i}`, amount: 1.5, currency: 'EUR' },
  })
  const post = (payload: object, base = `http://127.0.0.1:${apiPort}`, bearer = key) => fetch(`${base}/v1/cdp/events`, {
    method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify(payload),
  })
  for (let i = 0; i < N; i++) t.equal((await post(event(i))).status, 202)
  t.equal((await post(event(0))).status, 200, 'duplicate')
  const { eventType: _omit, ...missing } = event(99)
  t.equal((await post(missing)).status, 422, 'invalid')
  // role all: a load of another size, so a count read from the wrong job cannot match
  const M = 4
  for (let i = 0; i < M; i++) t.equal((await post(event(100 + i), allUrl, allKey)).status, 202, 'role all accepts')
  t.equal((await post(event(100), allUrl, allKey)).status, 200, 'role all: duplicate')

  const expect = async (query: string, want: number) => {
    const got = await waitFor(`${query} == ${want}`, async () => { const v = await promql(query); return v === want ? v : undefined }, 60_000, 500)
    t.equal(got, want, query)
  }
  await expect('up{job="api"}', 1)
  await expect('up{job="consumer"}', 1)
  await expect('sum(cdp_events_total{job="api",outcome="accepted"})', N)
  await expect('sum(cdp_events_total{job="api",outcome="duplicate"})', 1)
  await expect('sum(cdp_events_total{job="api",outcome="invalid",code="required"})', 1)
  await expect('sum(cdp_http_requests_total{job="api",route="/v1/cdp/events",status="202"})', N)
  await expect('sum(cdp_consumer_events_written_total{job="consumer"})', N)
  await expect('sum(cdp_clickhouse_inserted_rows_total{job="consumer",table="events"})', N)
  await expect('sum(cdp_consumer_records_total{job="consumer"})', N)
  await expect('sum(cdp_consumer_lag{job="consumer"})', 0)
  await expect('sum(cdp_consumer_end_to_end_seconds_count{job="consumer"})', N)
  await expect('sum(cdp_produce_batch_records_sum{job="api"})', N)
  // role all answers for its API and its consumer on one endpoint
  await expect('up{job="all"}', 1)
  await expect('sum(cdp_events_total{job="all",outcome="accepted"})', M)
  await expect('sum(cdp_events_total{job="all",outcome="duplicate"})', 1)
  await expect('sum(cdp_http_requests_total{job="all",route="/v1/cdp/events",status="202"})', M)
  await expect('sum(cdp_consumer_events_written_total{job="all"})', M)
  await expect('sum(cdp_clickhouse_inserted_rows_total{job="all",table="events"})', M)
  await expect('sum(cdp_consumer_lag{job="all"})', 0)
  // the rule file loaded: Prometheus evaluates the alerts (none firing on a healthy service)
  const rules = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json() as { data: { groups: { rules: unknown[] }[] } }
  t.equal(rules.data.groups.flatMap((g) => g.rules).length, 5)

  // the alerts and the dashboard name only metrics the roles expose
  const names = new Set<string>()
  for (const port of [apiPort, consumerPort, allPort]) {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`)
    t.match(r.headers.get('content-type'), /text\/plain/)
    for (const n of exposed(await r.text())) names.add(n)
  }
  const alerts = parseYaml(readFileSync(join(ROOT, 'ops/prometheus/alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'ops/grafana/cdp-ingest.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] }
  const exprs = [
    ...alerts.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }))),
    ...dashboard.panels.flatMap((p) => p.targets.map((x) => ({ where: `panel ${p.title}`, expr: x.expr }))),
  ]
  t.ok(exprs.length >= 20)
  const missingNames = exprs.flatMap(({ where, expr }) => metricNames(expr).filter((n) => !names.has(n)).map((n) => `${where}: ${n}`))
  t.same(missingNames, [], 'every metric the alerts and the dashboard use is exposed')
})

void t.test('metricNames reads metric names, not functions, labels or keywords', async (t) => {
  t.same(metricNames('histogram_quantile(0.99, sum by (le, route) (rate(cdp_x_bucket{status=~"5.."}[5m])))'), ['cdp_x_bucket'])
  t.same(metricNames('sum(a) > 1 and on () deriv(sum(b)[10m:1m]) > 0'), ['a', 'b'])
  t.same(metricNames('sum(rate(x[5m])) / clamp_min(sum(rate(y[5m])), 1e-9) > 0.01'), ['x', 'y'])
})
