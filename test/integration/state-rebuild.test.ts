/**
 * `cdp state rebuild` (issue 8 item 3): the state store is lost (the LMDB directory deleted, or
 * the Redis key prefix flushed) after events went through API -> Kafka -> consumer ->
 * ClickHouse. After the rebuild:
 *  - every retry of an old fact is answered duplicate with its original event id;
 *  - a copy of an old record on the topic is not inserted again (count() per tuple stays 1,
 *    without FINAL);
 *  - a new event with an old profile's identifier lands on that profile (identity graph back).
 */
import t, { type Test } from 'tap'
import { rmSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { Config, DeepPartial } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { Resources } from '../../src/app/resources.js'
import { buildShared } from '../../src/app/shared.js'
import { buildApi } from '../../src/app/api.js'
import { buildConsumer, type Consumer } from '../../src/app/consumer.js'
import { createKey } from '../../src/auth/keys.js'
import { createKafka } from '../../src/kafka/client.js'
import { KafkaAdmin } from '../../src/kafka/index.js'
import { rebuildState } from '../../src/cli/commands/state.js'
import { testConfig } from '../helpers/config.js'
import { readTopic } from '../helpers/api.js'
import { waitFor } from '../helpers/process.js'
import { deletePrefix } from '../state/redis-helpers.js'

const N = 24
const log = createLogger({ logLevel: 'silent' })
const event = (i: number) => ({
  source: 'brand.pos', externalEventId: `old-${i}`, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `U-${i % 8}` }, properties: { order_id: `o-${i}`, amount: 5 + i, currency: 'USD' },
})

interface Phase { app: FastifyInstance; consumer: Consumer; key: string; close(): Promise<void> }

/** the service of one process (API + consumer) over `cfg`, as serve role all builds it */
async function phase(cfg: Readonly<Config>): Promise<Phase> {
  const res = new Resources()
  const shared = await buildShared(cfg, log, res)
  const consumer = await buildConsumer(shared, 'live')
  const { app } = await buildApi(shared, { query: consumer.query })
  await consumer.start()
  // keys live in the state store, not on the topic: a lost store means keys issued again
  const { key } = await createKey(shared.stores.keys, { tenant: 'acme', permissions: ['events:write', 'events:batch'] })
  return { app, consumer, key, close: () => res.close() }
}

const post = (p: Phase, body: unknown) => p.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${p.key}` }, payload: body as object })

async function rows<T>(p: Phase, sql: string): Promise<T[]> {
  const text = await p.consumer.query({ sql, format: 'JSONEachRow', principal: { tenant: null, permissions: ['query:all', 'pii:read'] } })
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T)
}

async function scenario(t: Test, overrides: DeepPartial<Config>, lose: (cfg: Readonly<Config>) => Promise<void>): Promise<void> {
  const cfg = testConfig(t, overrides)
  const db = cfg.clickhouse.database
  const first = await phase(cfg)
  const ids = new Map<string, string>()
  for (let i = 0; i < N; i++) {
    const r = await post(first, event(i))
    t.equal(r.statusCode, 202, r.body)
    ids.set(`old-${i}`, (r.json() as { event_id: string }).event_id)
  }
  await waitFor('the facts in ClickHouse', async () => {
    const [c] = await rows<{ c: string }>(first, `SELECT count() AS c FROM ${db}.events`)
    return Number(c?.c) === N ? true : undefined
  }, 60_000, 250)
  const profiles = new Map((await rows<{ external_event_id: string; profile_id: string }>(first,
    `SELECT external_event_id, profile_id FROM ${db}.events`)).map((r) => [r.external_event_id, r.profile_id]))
  await first.close()

  await lose(cfg)

  const lines: string[] = []
  t.equal(await rebuildState(cfg, (l) => lines.push(l), { progressEveryMs: 200 }), 0)
  t.match(lines.join('\n'), new RegExp(`state rebuild: ${N}/${N} records, \\d+ records/s, ETA \\d+ s`), 'progress: records, rate, ETA')
  const last = lines.at(-1) ?? ''
  t.match(last, new RegExp(`done in .*claims restored ${N}, `), last)

  const second = await phase(cfg)
  t.teardown(() => second.close())
  for (let i = 0; i < N; i++) {
    const r = await post(second, event(i))
    t.same([r.statusCode, r.json()], [200, { status: 'duplicate', original_event_id: ids.get(`old-${i}`) }], `old-${i}: duplicate with its original id`)
  }
  const changed = await post(second, { ...event(3), properties: { order_id: 'o-3', amount: 999, currency: 'USD' } })
  t.equal(changed.statusCode, 409, 'another payload for an old tuple is still a conflict')

  // a copy of an old fact's record (a direct producer's retry) and a new event on an old identity
  const [old] = (await readTopic(cfg, N)).filter((r) => r.key.includes('"old-5"'))
  const producer = createKafka(cfg, log, '-test-copy').producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: Buffer.from(old!.key, 'utf8'), value: old!.value }] })
  await producer.disconnect()
  const fresh = await post(second, { ...event(100), externalEventId: 'new-1', identity: { externalUserId: 'U-5' } })
  t.equal(fresh.statusCode, 202, fresh.body)

  const admin = new KafkaAdmin(createKafka(cfg, log, '-test-admin'))
  t.teardown(() => admin.close())
  await waitFor('the consumer past every record', async () => {
    const high = await admin.topicOffsets(cfg.kafka.topic)
    const committed = await admin.groupOffsets(cfg.kafka.consumerGroup, cfg.kafka.topic)
    return high.every((p) => (committed.get(p.partition) ?? 0n) >= p.high) ? true : undefined
  }, 60_000, 250)
  const dup = await rows<{ c: string }>(second, `SELECT count() AS c FROM ${db}.events GROUP BY tenant, source, external_event_id HAVING c > 1`)
  t.same(dup, [], 'count() per tuple is 1 without FINAL: the copy was not inserted again')
  const [total] = await rows<{ c: string }>(second, `SELECT count() AS c FROM ${db}.events`)
  t.equal(Number(total?.c), N + 1)
  const [newRow] = await rows<{ profile_id: string }>(second, `SELECT profile_id FROM ${db}.events WHERE external_event_id = 'new-1'`)
  t.equal(newRow?.profile_id, profiles.get('old-5'), 'the new event lands on the old profile of U-5')
}

void t.test('LMDB directory deleted: rebuild restores claims, dedup and the identity graph', async (t) => {
  await scenario(t, { state: { backend: 'lmdb' } }, async (cfg) => { rmSync(cfg.state.lmdbPath, { recursive: true, force: true }) })
})

void t.test('Redis key prefix flushed: rebuild restores claims, dedup and the identity graph', async (t) => {
  await scenario(t, { state: { backend: 'redis' } }, async (cfg) => { await deletePrefix(cfg.state.redisUrl, cfg.keys.prefix) })
})
