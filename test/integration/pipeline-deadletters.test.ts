/**
 * Every dead-letter reason against the real stack. Bad records and good neighbours are written in
 * one produce request to a one-partition topic before the consumer starts, so they reach it as
 * one partition batch. Each bad record must land in ClickHouse `dead_letters` with its reason code
 * and its original bytes, and on the DLQ topic with the `cdp-reason-code` header; the good
 * neighbours must land in `events`; the partition must move on (offsets committed to the end).
 */
import t from 'tap'
import { buildRecord, type DirectEvent } from '../../src/producer/index.js'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { tapTopics } from '../helpers/topic.js'
import { waitFor } from '../helpers/process.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'

interface Rec { topic: string; partition: number; offset: string; key: Buffer | null; value: Buffer | null; headers: Record<string, string> }


const purchase = (externalEventId: string, over: Partial<DirectEvent> = {}): DirectEvent => ({
  tenant: 'acme', source: 'svc.dl', externalEventId, eventType: 'purchase_completed',
  occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `U-${externalEventId}` },
  properties: { order_id: `o-${externalEventId}`, amount: 10, currency: 'USD' },
  ...over,
})

const tupleKey = (id: string) => Buffer.from(JSON.stringify(['acme', 'svc.dl', id]))

interface Case { name: string; reason: string | null; key: Buffer | null; value: Buffer | null }

void t.test('every dead-letter reason: row with the original bytes, DLQ record with the reason header; neighbours land', async (t) => {
  const api = await startApi(t, { kafka: { partitions: 1 } })
  const cfg = api.config
  const db = cfg.clickhouse.database
  const codec = api.rt.codec // registered under this test's topic
  const rec = (e: DirectEvent) => buildRecord(e, codec)
  const withHeader = (id: number, body: Buffer) => {
    const h = Buffer.alloc(5)
    h.writeUInt32BE(id, 1)
    return Buffer.concat([h, body])
  }
  const g1 = rec(purchase('g-1'))
  const g2 = rec(purchase('g-2'))
  const body = rec(purchase('us-1')).value.subarray(5)

  const cases: Case[] = [
    { name: 'good neighbour before', reason: null, ...g1 },
    { name: 'key not JSON', reason: 'bad_key', key: Buffer.from('acme|svc.dl|bk-1'), value: rec(purchase('bk-1')).value },
    { name: 'key JSON but not canonical bytes', reason: 'bad_key', key: Buffer.from('[ "acme", "svc.dl", "bk-3" ]'), value: rec(purchase('bk-3')).value },
    { name: 'value is JSON text', reason: 'not_avro', key: tupleKey('na-1'), value: Buffer.from(JSON.stringify(purchase('na-1'))) },
    { name: 'schema id the registry does not have', reason: 'unknown_schema', key: tupleKey('us-1'), value: withHeader(0x7ffffff0, body) },
    { name: 'current schema id, garbage body', reason: 'bad_avro', key: tupleKey('ba-1'), value: withHeader(codec.schemaId, Buffer.from('this is not avro')) },
    { name: 'key of another tuple', reason: 'key_mismatch', key: tupleKey('km-1-other'), value: rec(purchase('km-1')).value },
    { name: 'unregistered eventType', reason: 'contract_violation', key: tupleKey('cv-1'), value: rec(purchase('cv-1', { eventType: 'no_such_event', properties: {} })).value },
    { name: 'required property missing', reason: 'contract_violation', key: tupleKey('cv-2'), value: rec(purchase('cv-2', { properties: { amount: 1, currency: 'USD' } })).value },
    // buildRecord refuses this one, so it is encoded by hand
    { name: 'properties not an object', reason: 'contract_violation', key: tupleKey('cv-3'), value: codec.encode({ ...rec(purchase('cv-3')).event, properties: '[]' }) },
    { name: 'invalid email (the API answers 422)', reason: 'contract_violation', key: tupleKey('cv-4'), value: rec(purchase('cv-4', { identity: { email: 'not-an-email' } })).value },
    { name: 'no identity', reason: 'no_identity', key: tupleKey('ni-1'), value: rec(purchase('ni-1', { identity: {} })).value },
    { name: 'good neighbour between', reason: null, ...g2 },
    { name: 'other payload under g-1', reason: 'tuple_conflict', key: g1.key, value: rec(purchase('g-1', { properties: { order_id: 'o-g-1', amount: 11, currency: 'USD' } })).value },
    // a null value is a tombstone (issue 12): skipped, never dead-lettered; under a live fact nobody
    // erased, the fact is still re-asserted after it (see the end of this test)
    { name: 'tombstone under g-2', reason: 'skipped', key: g2.key, value: null },
    { name: 'good neighbour after', reason: null, ...rec(purchase('g-3')) },
  ]
  // one produce request, one partition: the consumer gets them as one batch. (A record without
  // a key cannot be a case: a compacted topic's broker refuses it with INVALID_RECORD.)
  const kafka = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-raw')
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  t.teardown(() => producer.disconnect())
  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: cases.map((c) => ({ key: c.key, value: c.value })) })

  const tap = await tapTopics(t, cfg, [cfg.kafka.topic, cfg.kafka.deadLetterTopic])
  const onTopic = await tap.until('the records on the topic', (all) => { const r = all.filter((x) => x.topic === cfg.kafka.topic); return r.length >= cases.length ? r : undefined })
  t.same(onTopic.slice(0, cases.length).map((r) => r.offset), cases.map((_, i) => String(i)), 'in one partition, in order')

  const p = await startPipeline(t, cfg)
  const bad = cases.filter((c) => c.reason !== null && c.reason !== 'skipped')
  const dead = await p.until<{ reason_code: string; reason: string; key: string; value_base64: string; kafka_partition: number; kafka_offset: string; tenant: string | null }>(
    `SELECT * FROM ${db}.dead_letters ORDER BY kafka_offset`, (r) => r.length >= bad.length)
  t.equal(dead.length, bad.length, 'one dead letter per bad record')
  for (const c of bad) {
    const offset = String(cases.indexOf(c))
    const row = dead.find((d) => String(d.kafka_offset) === offset)
    t.equal(row?.reason_code, c.reason, `${c.name}: reason_code`)
    t.equal(row?.value_base64, c.value?.toString('base64') ?? '', `${c.name}: the original value bytes`)
    t.equal(row?.key, c.key?.toString('utf8') ?? '', `${c.name}: the original key`)
    t.ok(row?.reason, `${c.name}: a reason text`)
  }
  t.equal(dead.find((d) => d.reason_code === 'bad_key' && d.key.startsWith('acme|'))?.tenant, null, 'an unreadable key: no tenant')
  t.equal(dead.find((d) => d.reason_code === 'no_identity')?.tenant, 'acme')

  const events = await p.until<{ external_event_id: string; event_id: string; p_amount: number; kafka_offset: string }>(
    `SELECT external_event_id, event_id, p_amount, kafka_offset FROM ${db}.events ORDER BY kafka_offset`, (r) => r.length >= 3)
  t.same(events.map((e) => [e.external_event_id, String(e.kafka_offset)]), [['g-1', '0'], ['g-2', '12'], ['g-3', '15']], 'the good neighbours land, the bad records do not')
  t.equal(events[0]?.event_id, g1.event.eventId)
  t.equal(events[0]?.p_amount, 10, 'g-1 keeps its first payload')

  const dlq = await tap.until('every dead letter on the DLQ topic', (all) => { const r = all.filter((x) => x.topic === cfg.kafka.deadLetterTopic); return r.length >= bad.length ? r : undefined })
  t.equal(dlq.length, bad.length)
  for (const c of bad) {
    const offset = String(cases.indexOf(c))
    const d = dlq.find((x) => x.headers['cdp-source-offset'] === offset)
    t.equal(d?.headers['cdp-reason-code'], c.reason, `${c.name}: DLQ header cdp-reason-code`)
    t.same(d?.value ?? null, c.value, `${c.name}: DLQ value bytes`)
    t.same(d?.key ?? null, c.key, `${c.name}: DLQ key bytes`)
    t.equal(d?.headers['cdp-source-topic'], cfg.kafka.topic)
  }

  // the conflict and the tombstone would be what compaction keeps for g-1 and g-2: the first
  // facts are written again after them
  const last = await tap.until('the first facts re-asserted', (all) => {
    const ev = all.filter((x) => x.topic === cfg.kafka.topic)
    const lastOf = (k: Buffer) => ev.filter((x) => x.key?.equals(k)).at(-1)
    const [a, b] = [lastOf(g1.key), lastOf(g2.key)]
    return a !== undefined && b !== undefined && Number(a.offset) >= cases.length && Number(b.offset) >= cases.length ? [a, b] : undefined
  })
  t.same(last[0]?.value, g1.value, 'the last record under g-1 is the first fact')
  t.same(last[1]?.value, g2.value, 'the last record under g-2 is the first fact (not the tombstone)')

  // never blocks the partition: offsets are committed past everything, and later records land
  const late = rec(purchase('g-4'))
  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: late.key, value: late.value }] })
  const rows = await p.until<{ event_id: string }>(`SELECT event_id FROM ${db}.events WHERE external_event_id = 'g-4'`, (r) => r.length === 1)
  t.equal(rows[0]?.event_id, late.event.eventId)
  const admin = kafka.admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const [high] = await admin.fetchTopicOffsets(cfg.kafka.topic)
  await waitFor('offsets committed to the end of the partition', async () => {
    const [c] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
    return c?.partitions[0]?.offset === high?.high ? true : undefined
  })
  const again = await p.rows(`SELECT count() AS n FROM ${db}.dead_letters`)
  t.same(again, [{ n: String(bad.length) }], 're-asserted first facts are repeats, not new dead letters')
})
