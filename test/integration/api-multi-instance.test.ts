/**
 * Two API processes sharing Redis (the scale-out mode): each answers `duplicate` for the other's
 * events, and concurrent identical requests across them yield one accepted event. And
 * `serve --workers 2` on LMDB: one answer per fact and one rate budget across the workers.
 */
import t from 'tap'
import { request } from 'node:http'
import { testConfig, uniq } from '../helpers/config.js'
import { freePort, runCdp, waitFor } from '../helpers/process.js'
import { readTopic } from '../helpers/api.js'
import { createStateStores } from '../../src/state/index.js'
import { createKey } from '../../src/auth/keys.js'

const event = (id: string) => ({
  source: 'brand.crm', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { email: 'someone@example.com' },
  properties: { order_id: `o-${id}`, amount: 10, currency: 'EUR' },
})

void t.test('two API instances share claims and keys through Redis', async (t) => {
  const cfg = testConfig(t, { state: { backend: 'redis' } })
  const stores = await createStateStores(cfg)
  t.teardown(() => stores.close())
  const { key } = await createKey(stores.keys, { tenant: 'acme', permissions: ['events:write', 'events:batch'] })

  const ports = [await freePort(), await freePort()]
  const base = {
    dataDir: cfg.dataDir, logLevel: 'warn',
    kafka: { topic: cfg.kafka.topic, deadLetterTopic: cfg.kafka.deadLetterTopic, partitions: cfg.kafka.partitions, brokers: cfg.kafka.brokers },
    schemaRegistry: { url: cfg.schemaRegistry.url },
    state: { backend: 'redis', redisUrl: cfg.state.redisUrl },
    keys: { prefix: cfg.keys.prefix },
  }
  const procs = ports.map((port) => runCdp(t, ['serve', '--role', 'api'], { dir: cfg.dataDir, config: { ...base, http: { port } } }))
  for (const [i, port] of ports.entries()) {
    await waitFor(`instance ${i} ready`, async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`)
      return r.ok ? true : undefined
    }, 60_000).catch((err: unknown) => { throw new Error(`${(err as Error).message}\n${procs[i]!.output()}`) })
  }
  const post = async (port: number, body: unknown) => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/cdp/events`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    })
    return { status: r.status, body: await r.json() as Record<string, string> }
  }

  const a = await post(ports[0]!, event('one'))
  t.equal(a.status, 202)
  const dupOnB = await post(ports[1]!, event('one'))
  t.same(dupOnB, { status: 200, body: { status: 'duplicate', original_event_id: a.body.event_id } }, 'B knows A\'s event')
  const b = await post(ports[1]!, event('two'))
  t.equal(b.status, 202)
  const dupOnA = await post(ports[0]!, event('two'))
  t.same(dupOnA.body, { status: 'duplicate', original_event_id: b.body.event_id }, 'A knows B\'s event')
  const conflict = await post(ports[0]!, { ...event('two'), properties: { order_id: 'x', amount: 1, currency: 'EUR' } })
  t.equal(conflict.status, 409)

  // the same new fact sent to both instances at once, 20 times each
  const id = uniq('race')
  const all = await Promise.all(Array.from({ length: 40 }, (_, i) => post(ports[i % 2]!, event(id))))
  t.equal(all.filter((r) => r.status === 202).length, 1, 'one accepted across both instances')
  t.equal(all.filter((r) => r.status === 200).length, 39)
  t.equal(new Set(all.map((r) => r.body.event_id ?? r.body.original_event_id)).size, 1, 'one event id')

  const records = await readTopic(cfg, 3, { settleMs: 1500 })
  t.equal(records.length, 3, 'one record per fact on the topic')
})

void t.test('`serve --role api --workers 2`: two processes on one port, one answer per fact, one rate budget, clean stop', async (t) => {
  const cfg = testConfig(t)
  const port = await freePort()
  // the per-key limit the two workers share (LMDB counters, issue 7 item 5): not 2 x 60
  const LIMIT = 60
  const proc = runCdp(t, ['serve', '--role', 'api', '--workers', '2'], { dir: cfg.dataDir, config: {
    dataDir: cfg.dataDir, logLevel: 'warn', http: { port, rateLimitMax: LIMIT, tenantRateLimitMax: 100_000, rateLimitWindowMs: 600_000 },
    kafka: { topic: cfg.kafka.topic, deadLetterTopic: cfg.kafka.deadLetterTopic, partitions: cfg.kafka.partitions, brokers: cfg.kafka.brokers },
    schemaRegistry: { url: cfg.schemaRegistry.url },
    state: { lmdbPath: cfg.state.lmdbPath },
    keys: { prefix: cfg.keys.prefix },
  } })
  await waitFor('workers ready', async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok ? true : undefined), 60_000)
    .catch((err: unknown) => { throw new Error(`${(err as Error).message}\n${proc.output()}`) })
  // the key goes into the same LMDB environment the workers use (LMDB locks across processes)
  const stores = await createStateStores(cfg)
  const { key } = await createKey(stores.keys, { tenant: 'acme', permissions: ['events:write', 'events:batch'] })
  await stores.close()
  const post = async () => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/cdp/events`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(event('w-1')),
    })
    return { status: r.status, body: await r.json() as Record<string, string> }
  }
  const answers = await Promise.all(Array.from({ length: 20 }, post))
  t.equal(answers.filter((a) => a.status === 202).length, 1, 'one accepted across the workers')
  t.equal(new Set(answers.map((a) => a.body.event_id ?? a.body.original_event_id)).size, 1, 'one event id')
  // one scrape answers for every worker (the primary aggregates), whichever worker takes it
  for (let i = 0; i < 4; i++) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    const count = (outcome: string) => Number(new RegExp(`^cdp_events_total\\{outcome="${outcome}",code=""\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
    t.equal(count('accepted') + count('duplicate'), 20, `scrape ${i + 1}: the 20 answers of both workers, counted once`)
  }
  // the 20 requests above spent 20 of the 60: 8 batches of 10 at once, each on its own connection
  // (node:cluster hands connections to the workers in turn), and exactly 4 fit across both workers
  const batch = (n: number) => new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    const body = JSON.stringify({ items: Array.from({ length: 10 }, (_, i) => event(`rl-${n}-${i}`)) })
    const req = request({ host: '127.0.0.1', port, path: '/v1/cdp/events/batch', method: 'POST', agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }))
    })
    req.on('error', reject)
    req.end(body)
  })
  const batches = await Promise.all(Array.from({ length: 8 }, (_, n) => batch(n)))
  t.equal(batches.filter((b) => b.status === 200).length, 4, `4 batches of 10 in the 40 left: ${batches.map((b) => b.status).join(' ')}`)
  const refused = batches.filter((b) => b.status !== 200)
  t.equal(refused.length, 4)
  for (const r of refused) t.match(r, { status: 429, body: { status: 'error', error_code: 'rate_limited' } })
  proc.kill('SIGTERM')
  t.equal(await proc.exited, 0, 'the primary exits 0 after its workers drained')
  t.equal((await readTopic(cfg, 41, { settleMs: 1000 })).length, 41, 'one record for the fact, 40 for the accepted batches')
})
