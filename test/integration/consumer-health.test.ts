/**
 * `--role consumer` health: its own port answers /healthz, /readyz and /metrics. With ClickHouse
 * paused (the test's gateway holds every statement), the consumer cannot write, so it commits
 * nothing: /readyz turns 503 naming ClickHouse and consumer progress, and the lag gauge rises.
 * Resumed, it catches up and is ready again with no lag.
 */
import t from 'tap'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { startClickHouseGateway } from '../../tools/clickhouse-gateway/gateway.js'
import { sendPurchases, startApi } from '../helpers/api.js'
import { tempDir, testConfig } from '../helpers/config.js'
import { waitFor } from '../helpers/process.js'
import { serve } from '../../src/app/serve.js'
import { createLogger } from '../../src/observability/logger.js'

void t.test('a consumer whose ClickHouse is paused turns /readyz false and its lag up', async (t) => {
  let paused: Promise<void> | undefined
  let resume = () => undefined as void
  const gw = await startClickHouseGateway({ path: join(tempDir(t), 'chdb'), port: 0, onExecuted: async () => { await paused } })
  t.teardown(async () => { resume(); await gw.close() })
  const cfg = testConfig(t, {
    http: { readinessIntervalMs: 200 },
    consumer: { httpPort: 0, stallAfterMs: 1500, lagIntervalMs: 200 },
    clickhouse: { url: gw.url, password: gw.token },
  })
  const api = await startApi(t, {}, cfg)
  const key = await api.key('acme')
  const consumer = await serve(cfg, 'consumer', createLogger({ logLevel: 'silent' }))
  t.teardown(async () => { resume(); await consumer.close() })
  const base = `http://127.0.0.1:${(consumer.opsApp!.server.address() as AddressInfo).port}`

  const ready = async () => { const r = await fetch(`${base}/readyz`); return { status: r.status, body: await r.json() as { checks: Record<string, boolean> } } }
  const lag = async () => {
    const text = await (await fetch(`${base}/metrics`)).text()
    return [...text.matchAll(/^cdp_consumer_lag\{partition="\d+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
  }
  const stalled = async () => /^cdp_consumer_stalled 1$/m.test(await (await fetch(`${base}/metrics`)).text())

  t.equal((await fetch(`${base}/healthz`)).status, 200)
  await sendPurchases(api, key, { prefix: 'h', count: 5, sharedIds: 2, currency: 'EUR' })
  await waitFor('written and ready', async () => ((await ready()).status === 200 && await lag() === 0 ? true : undefined), 60_000, 200)
  t.pass('healthy: ready with no lag after the first load')

  paused = new Promise<void>((r) => { resume = r })
  await sendPurchases(api, key, { prefix: 'h', from: 5, count: 20, sharedIds: 2, currency: 'EUR' })
  const notReady = await waitFor('/readyz 503', async () => { const r = await ready(); return r.status === 503 && r.body.checks.consumerProgress === false ? r : undefined }, 60_000, 200)
  t.equal(notReady.body.checks.clickhouse, false, 'ClickHouse named')
  t.equal(notReady.body.checks.kafka, true, 'Kafka still fine')
  t.ok(await lag() > 0, 'the lag gauge is up')
  t.ok(await stalled(), 'cdp_consumer_stalled is 1')

  resume()
  paused = undefined
  await waitFor('ready again with no lag', async () => ((await ready()).status === 200 && await lag() === 0 ? true : undefined), 60_000, 200)
  t.notOk(await stalled(), 'no longer stalled')
})
