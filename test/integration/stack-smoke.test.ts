/**
 * The foundation's smoke test: each real service does what the product relies on.
 *   Kafka: a compacted topic created with configs that read back; a wrongly configured topic refused, named
 *   registry + Kafka: an Avro record produced and consumed through the registry
 *   chDB: insert and select on a MergeTree table with query_params
 *   Redis: SET and GET
 */
import t from 'tap'
import kafkajs from 'kafkajs'
import { Redis } from 'ioredis'
import { testConfig, uniq } from '../helpers/config.js'
import { readTopic } from '../helpers/api.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { ensureTopics, readTopicSettings } from '../../src/kafka/admin.js'
import { SchemaCodec } from '../../src/avro/codec.js'
import { encodeKey } from '../../src/avro/key.js'
import { newEventId, type CdpEvent } from '../../src/avro/event.js'
import { createClickHouse, closeClickHouse } from '../../src/clickhouse/client.js'

const log = createLogger({ logLevel: 'silent' })

void t.test('Kafka: the events topic is created compacted, and its settings read back', async (t) => {
  const cfg = testConfig(t, { kafka: { minCompactionLagMs: 3_600_000 } })
  const kafka = createKafka(cfg, log)
  const { created } = await ensureTopics(kafka, cfg)
  t.same(created.sort(), [cfg.kafka.topic, cfg.kafka.deadLetterTopic].sort())
  const s = await readTopicSettings(kafka, cfg.kafka.topic)
  t.equal(s.configs['cleanup.policy'], 'compact')
  t.equal(s.configs['min.compaction.lag.ms'], '3600000')
  t.equal(s.partitions, cfg.kafka.partitions)
  const again = await ensureTopics(kafka, cfg)
  t.same(again.created, [], 'a second start creates nothing')
})

void t.test('Kafka: start-up refuses a topic that is not compacted, naming the setting', async (t) => {
  const cfg = testConfig(t)
  const kafka = createKafka(cfg, log)
  const admin = kafka.admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  await admin.createTopics({ topics: [{ topic: cfg.kafka.topic, numPartitions: cfg.kafka.partitions, configEntries: [{ name: 'cleanup.policy', value: 'delete' }] }] })
  const err = await ensureTopics(kafka, cfg).then(() => undefined, (e: unknown) => e as { code: string; message: string })
  t.equal(err?.code, 'topic_misconfigured')
  t.match(err?.message, /cleanup\.policy is delete, expected compact/)
  t.match(err?.message, /min\.compaction\.lag\.ms/, 'every wrong setting is listed')
  t.equal(kafkajs.ConfigResourceTypes.TOPIC, 2, 'kafkajs runtime values come from the default export')
})

void t.test('registry + Kafka: an Avro record produced and consumed through the registry', async (t) => {
  const cfg = testConfig(t)
  const kafka = createKafka(cfg, log)
  await ensureTopics(kafka, cfg)
  const codec = new SchemaCodec(cfg.schemaRegistry)
  const id = await codec.init(cfg.kafka.topic)
  t.ok(id > 0, `schema id ${id}`)
  const event: CdpEvent = {
    eventId: newEventId(), tenant: 'acme', source: 'smoke', externalEventId: uniq('e'), eventType: 'purchase_completed',
    occurredAt: Date.parse('2026-05-20T12:45:00Z'), occurredAtDefaulted: false, receivedAt: Date.now(),
    identity: { externalUserId: 'L-1', email: null, phone: null, deviceKey: null },
    properties: JSON.stringify({ order_id: 'o', amount: 1, currency: 'USD' }), contractVersion: 1,
  }
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: encodeKey(event), value: codec.encode(event) }] })
  await producer.disconnect()
  const [rec] = await readTopic(cfg, 1, { settleMs: 200 })
  t.ok(rec?.decoded.ok)
  if (rec?.decoded.ok) {
    t.equal(rec.decoded.schemaId, id)
    t.same(rec.decoded.event, event)
  }
})

void t.test('chDB: insert and select on a MergeTree table with query_params', async (t) => {
  const cfg = testConfig(t)
  const ch = createClickHouse(cfg)
  t.teardown(() => closeClickHouse(ch))
  const db = cfg.clickhouse.database
  await ch.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` })
  await ch.command({ query: `CREATE TABLE ${db}.smoke (k String, n UInt32) ENGINE = MergeTree ORDER BY k` })
  await ch.insert({ table: `${db}.smoke`, values: [{ k: 'a', n: 1 }, { k: 'b', n: 2 }], format: 'JSONEachRow' })
  const r = await ch.query({ query: `SELECT k, n FROM ${db}.smoke WHERE n >= {min:UInt32} ORDER BY k`, query_params: { min: 2 }, format: 'JSONEachRow' })
  t.same(await r.json(), [{ k: 'b', n: 2 }])
})

void t.test('Redis: SET and GET', async (t) => {
  const cfg = testConfig(t)
  const redis = new Redis(cfg.state.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  t.teardown(() => { redis.disconnect() })
  const key = `${cfg.keys.prefix}:smoke`
  t.equal(await redis.set(key, 'value', 'EX', 60), 'OK')
  t.equal(await redis.get(key), 'value')
  await redis.del(key)
})
