/**
 * The consumer enforces the partition against the real stack (issue 13 item 1), and re-assertion
 * does not grow the topic when a consumer reads it again (issue 13 finding 7).
 *
 * A producer with librdkafka's default partitioner for keyed records (`consistent_random`: CRC32
 * of the key modulo the partition count), written here as a kafkajs custom partitioner: the facts
 * it places where murmur2 would are stored, every other one is dead-lettered `wrong_partition`
 * naming the partition murmur2 names, stored nowhere, and can be sent again correctly.
 */
import t from 'tap'
import type { ICustomPartitioner } from 'kafkajs'
import { partitionFor } from '../../src/avro/partition.js'
import { buildRecord, type DirectEvent } from '../../src/producer/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import type { Config } from '../../src/config/index.js'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { tapTopics } from '../helpers/topic.js'
import { waitFor } from '../helpers/process.js'
import { crc32 } from '../helpers/crc32.js'

const PARTITIONS = 6


/** librdkafka's consistent_random for a keyed record */
const consistentRandom: ICustomPartitioner = () => ({ partitionMetadata, message }) => {
  const key = Buffer.isBuffer(message.key) ? message.key : Buffer.from(String(message.key))
  return crc32(key) % partitionMetadata.length
}

const purchase = (externalEventId: string, amount = 10): DirectEvent => ({
  tenant: 'acme', source: 'svc.part', externalEventId, eventType: 'purchase_completed',
  occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `U-${externalEventId}` },
  properties: { order_id: `o-${externalEventId}`, amount, currency: 'USD' },
})

void t.test('librdkafka\'s default partitioner: misplaced facts dead-lettered wrong_partition, placed ones stored', async (t) => {
  const api = await startApi(t, { kafka: { partitions: PARTITIONS } })
  const cfg = api.config
  const db = cfg.clickhouse.database
  const recs = Array.from({ length: 24 }, (_, i) => buildRecord(purchase(`p-${i}`), api.rt.codec))
  const placed = (r: { key: Buffer }) => crc32(r.key) % PARTITIONS === partitionFor(r.key, PARTITIONS)
  const good = recs.filter(placed)
  const bad = recs.filter((r) => !placed(r))
  t.ok(good.length > 0 && bad.length > 0, `${good.length} placed alike by both partitioners, ${bad.length} not`)

  const kafka = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-crc32')
  const crcProducer = kafka.producer({ createPartitioner: consistentRandom, idempotent: true, maxInFlightRequests: 1 })
  await crcProducer.connect()
  t.teardown(() => crcProducer.disconnect())
  await crcProducer.send({ topic: cfg.kafka.topic, acks: -1, messages: recs.map((r) => ({ key: r.key, value: r.value })) })

  const tap = await tapTopics(t, cfg, [cfg.kafka.topic, cfg.kafka.deadLetterTopic])
  const p = await startPipeline(t, cfg)
  const dead = await p.until<{ key: string; reason_code: string; reason: string; kafka_partition: number }>(
    `SELECT key, reason_code, reason, kafka_partition FROM ${db}.dead_letters`, (r) => r.length >= bad.length)
  t.equal(dead.length, bad.length, 'one dead letter per misplaced fact')
  for (const r of bad) {
    const row = dead.find((d) => d.key === r.key.toString('utf8'))
    const right = partitionFor(r.key, PARTITIONS)
    t.equal(row?.reason_code, 'wrong_partition', `${r.event.externalEventId}: reason`)
    t.equal(Number(row?.kafka_partition), crc32(r.key) % PARTITIONS, `${r.event.externalEventId}: where it was written`)
    t.match(row?.reason, `names partition ${right} of ${PARTITIONS}`, `${r.event.externalEventId}: the partition to use`)
  }
  const stored = await p.until<{ external_event_id: string; kafka_partition: number }>(
    `SELECT external_event_id, kafka_partition FROM ${db}.events`, (r) => r.length >= good.length)
  t.same(stored.map((s) => s.external_event_id).sort(), good.map((r) => r.event.externalEventId).sort(), 'only the placed facts are stored')
  const dlq = await tap.until('the DLQ records', (all) => { const d = all.filter((x) => x.topic === cfg.kafka.deadLetterTopic); return d.length >= bad.length ? d : undefined })
  t.ok(dlq.every((d) => d.headers['cdp-reason-code'] === 'wrong_partition'), 'DLQ header cdp-reason-code: wrong_partition')

  // nothing re-asserted from a wrong partition: the topic holds just what the producer sent
  const admin = kafka.admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const size = async () => (await admin.fetchTopicOffsets(cfg.kafka.topic)).reduce((s, h) => s + Number(h.high), 0)
  t.equal(await size(), recs.length)

  // the producer fixes its partitioner and sends again: the tuples were never taken, so they land
  const fixed = kafka.producer({ idempotent: true, maxInFlightRequests: 1 }) // kafkajs 2 default: murmur2 as Java
  await fixed.connect()
  t.teardown(() => fixed.disconnect())
  await fixed.send({ topic: cfg.kafka.topic, acks: -1, messages: bad.map((r) => ({ key: r.key, value: r.value })) })
  const all = await p.until<{ external_event_id: string; event_id: string; kafka_partition: number }>(
    `SELECT external_event_id, event_id, kafka_partition FROM ${db}.events`, (r) => r.length >= recs.length)
  t.equal(all.length, recs.length, 'every fact stored once')
  for (const r of bad) {
    const row = all.find((a) => a.external_event_id === r.event.externalEventId)
    t.equal(Number(row?.kafka_partition), partitionFor(r.key, PARTITIONS), `${r.event.externalEventId}: from its murmur2 partition`)
    t.equal(row?.event_id, r.event.eventId)
  }
})

void t.test('re-assertion is idempotent: a fresh consumer group over the same topic and store adds no record', async (t) => {
  const api = await startApi(t, { kafka: { partitions: 1 } })
  const cfg = api.config
  const db = cfg.clickhouse.database
  const first = buildRecord(purchase('c-1', 10), api.rt.codec)
  const other = buildRecord(purchase('c-1', 99), api.rt.codec)
  const kafka = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-raw')
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  t.teardown(() => producer.disconnect())
  const admin = kafka.admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const high = async () => Number((await admin.fetchTopicOffsets(cfg.kafka.topic))[0]?.high)
  const caughtUp = (c: Readonly<Config>, end: number) => waitFor(`group ${c.kafka.consumerGroup} at ${end}`, async () => {
    const [g] = await admin.fetchOffsets({ groupId: c.kafka.consumerGroup, topics: [c.kafka.topic] })
    // a re-assertion is produced before the offset of its batch is committed: once the group is
    // past `end`, any re-assertion is on the topic
    return Number(g?.partitions[0]?.offset) >= end ? true : undefined
  })

  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: first.key, value: first.value }, { key: other.key, value: other.value }] })
  const p1 = await startPipeline(t, cfg)
  await p1.until(`SELECT 1 FROM ${db}.dead_letters WHERE reason_code = 'tuple_conflict'`, (r) => r.length === 1)
  // the conflict at 1 is followed by the first fact again at 2, which p1 reads as a repeat
  const afterLive = await waitFor('the re-assertion', async () => ((await high()) === 3 ? 3 : undefined))
  await caughtUp(cfg, afterLive)
  await p1.stop()

  for (const pass of [2, 3]) {
    // one record per slice: the conflict and the re-assertion after it are never in one batch, so
    // only the store's memory of the re-assertion can tell that the topic already ends with the fact
    const again: Readonly<Config> = {
      ...cfg, kafka: { ...cfg.kafka, consumerGroup: `${cfg.kafka.consumerGroup}-pass${pass}` }, consumer: { ...cfg.consumer, flushMaxRows: 1 },
    }
    const p = await startPipeline(t, again)
    await caughtUp(again, afterLive)
    await p.stop()
    t.equal(await high(), afterLive, `pass ${pass} with a fresh group: the topic did not grow`)
  }
})
