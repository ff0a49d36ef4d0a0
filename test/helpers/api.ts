/**
 * Integration helpers: a real API (real Kafka, registry, state store) per test, with its own
 * topic and key namespace, torn down with the test.
 */
import type { FastifyInstance } from 'fastify'
import type { Config, DeepPartial } from '../../src/config/index.js'
import { createLogger, type Logger } from '../../src/observability/logger.js'
import { Resources } from '../../src/app/resources.js'
import { buildShared, type Shared } from '../../src/app/shared.js'
import { buildApi, type Api } from '../../src/app/api.js'
import { createKey, type Permission } from '../../src/auth/keys.js'
import { createKafka } from '../../src/kafka/client.js'
import { SchemaCodec, type DecodeResult } from '../../src/avro/codec.js'
import { testConfig, type TestContext } from './config.js'

export interface TestApi {
  app: FastifyInstance
  config: Readonly<Config>
  /** what the API was built over, and the API's parts */
  rt: Shared & Omit<Api, 'app'>
  /** tenant null: an operator key (query:all, dlq:manage, pii:read) */
  key(tenant: string | null, permissions?: Permission[], sources?: string[]): Promise<string>
}

export async function startApi(t: TestContext, overrides: DeepPartial<Config> = {}, config?: Readonly<Config>, logger?: Logger): Promise<TestApi> {
  const cfg = config ?? testConfig(t, overrides)
  const log = logger ?? createLogger({ logLevel: 'silent' })
  const res = new Resources()
  t.teardown(() => res.close())
  const shared = await buildShared(cfg, log, res)
  const { app, ...api } = await buildApi(shared)
  const rt = { ...shared, ...api }
  return {
    app, config: cfg, rt,
    key: async (tenant, permissions = ['events:write', 'events:batch'], sources = []) =>
      (await createKey(rt.stores.keys, { tenant, permissions, sources })).key,
  }
}

export interface TopicRecord { key: string; value: Buffer; partition: number; offset: string; decoded: DecodeResult }

/** Reads every record of a topic from the beginning until `count` arrived or the deadline passed. */
export async function readTopic(cfg: Readonly<Config>, count: number, opts: { timeoutMs?: number; settleMs?: number } = {}): Promise<TopicRecord[]> {
  const log = createLogger({ logLevel: 'silent' })
  const kafka = createKafka(cfg, log, '-test-reader')
  const codec = new SchemaCodec(cfg.schemaRegistry)
  const consumer = kafka.consumer({ groupId: `reader-${Math.random().toString(36).slice(2)}` })
  const out: TopicRecord[] = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topic: cfg.kafka.topic, fromBeginning: true })
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000)
    let lastAt = Date.now()
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        out.push({
          key: message.key?.toString('utf8') ?? '',
          value: message.value ?? Buffer.alloc(0),
          partition,
          offset: message.offset,
          decoded: await codec.decode(message.value),
        })
        lastAt = Date.now()
      },
    })
    // wait for the expected count, then a little longer to catch records that should not exist
    while (Date.now() < deadline && (out.length < count || Date.now() - lastAt < (opts.settleMs ?? 1000))) {
      await new Promise((r) => setTimeout(r, 100))
    }
  } finally {
    await consumer.disconnect()
  }
  return out
}

/**
 * Sends purchases `<prefix>-<from>` … `<prefix>-<from+count-1>` through the batch route, 500 per
 * request: a new email per event (identity rows in every batch) and, on every third event, a
 * loyalty id shared among `sharedIds` people (merges). Every item must be accepted; returns
 * externalEventId -> the event id the API answered.
 */
export async function sendPurchases(api: TestApi, key: string, opts: { prefix: string; from?: number; count: number; sharedIds: number; currency: string }): Promise<Map<string, string>> {
  const from = opts.from ?? 0
  const accepted = new Map<string, string>()
  for (let at = from; at < from + opts.count; at += 500) {
    const items = Array.from({ length: Math.min(500, from + opts.count - at) }, (_, k) => {
      const i = at + k
      return {
        source: 'brand.pos', externalEventId: `${opts.prefix}-${i}`, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
        identity: { email: `shopper${i}@example.com`, ...(i % 3 === 0 ? { externalUserId: `L-${i % opts.sharedIds}` } : {}) },
        properties: { order_id: `order-${i}`, amount: (i % 97) + 0.5, currency: opts.currency },
      }
    })
    const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: { authorization: `Bearer ${key}` }, payload: { items } })
    if (res.statusCode !== 200) throw new Error(`batch answered ${res.statusCode}: ${res.body}`)
    for (const [k, r] of (res.json() as { results: { status: string; event_id?: string }[] }).results.entries()) {
      if (r.status !== 'accepted' || r.event_id === undefined) throw new Error(`item ${at + k}: ${JSON.stringify(r)}`)
      accepted.set(`${opts.prefix}-${at + k}`, r.event_id)
    }
  }
  return accepted
}
