/**
 * Direct producers against the real stack: records written with src/producer flow like records
 * accepted over HTTP; a repeat of a fact is stored once; a conflicting payload under an existing
 * key is dead-lettered (tuple_conflict), ClickHouse keeps the first fact, and the first fact is
 * re-asserted on the topic, so that what compaction keeps (the last record per key) still
 * replays to the first fact.
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { ensureTopics } from '../../src/kafka/admin.js'
import { SchemaCodec } from '../../src/avro/codec.js'
import { fingerprintOf, type CdpEvent } from '../../src/avro/event.js'
import { createClickHouse, closeClickHouse } from '../../src/clickhouse/client.js'
import { replay } from '../../src/cli/commands/replay.js'
import { createDirectProducer, type DirectEvent } from '../../src/producer/index.js'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { tempDir, type TestContext } from '../helpers/config.js'
import { waitFor } from '../helpers/process.js'
import { tapTopics } from '../helpers/topic.js'

interface Rec { topic: string; partition: number; offset: string; key: string; value: Buffer; headers: Record<string, string> }


/** until the consumer group has committed past every given record */
async function consumedPast(t: TestContext, cfg: Readonly<Config>, recs: { partition: number; offset: string }[]) {
  const admin = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-admin').admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  await waitFor('consumer offsets past the records', async () => {
    const [c] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
    const ok = recs.every((r) => BigInt(c?.partitions.find((p) => p.partition === r.partition)?.offset ?? '-1') > BigInt(r.offset))
    return ok ? true : undefined
  }, 30_000, 200)
}

const purchase = (externalEventId: string, amount: number, over: Partial<DirectEvent> = {}): DirectEvent => ({
  tenant: 'acme', source: 'svc.orders', externalEventId, eventType: 'purchase_completed',
  occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: 'L-1', email: ' Buyer@Example.com' },
  properties: { order_id: `o-${externalEventId}`, amount, currency: 'USD', store_id: 'store_7' },
  ...over,
})

interface EventRowOut {
  tenant: string; source: string; external_event_id: string; event_id: string; event_type: string; occurred_at: string
  email: string | null; external_user_id: string | null; profile_id: string; properties: string; p_amount: number | null; p_store_id: string | null
  schema_version: number | null
}

void t.test('direct producer: facts, repeats, conflicts, and what compaction + replay keeps', async (t) => {
  const api = await startApi(t)
  const cfg = api.config
  const db = cfg.clickhouse.database
  const codec = new SchemaCodec(cfg.schemaRegistry)
  const decode = async (v: Buffer): Promise<CdpEvent> => {
    const r = await codec.decode(v)
    if (!r.ok) throw new Error(`not a decodable record: ${r.message}`)
    return r.event
  }
  const dp = await createDirectProducer({ brokers: [...cfg.kafka.brokers], topic: cfg.kafka.topic, registryUrl: cfg.schemaRegistry.url })
  t.teardown(() => dp.close())
  const tap = await tapTopics<Rec>(t, cfg, [cfg.kafka.topic, cfg.kafka.deadLetterTopic], (r) => ({ ...r, key: r.key?.toString('utf8') ?? '', value: r.value ?? Buffer.alloc(0) }))
  const p = await startPipeline(t, cfg)
  const apiKey = await api.key('acme')
  const auth = { authorization: `Bearer ${apiKey}` }
  const eventsOf = (id: string) => p.rows<EventRowOut>(`SELECT * FROM ${db}.events WHERE external_event_id = '${id}' ORDER BY kafka_offset`)
  const recordsOf = (all: Rec[], key: string) => all.filter((r) => r.topic === cfg.kafka.topic && r.key === key)

  await t.test('a direct fact lands like an API fact', async (t) => {
    const sent = await dp.send(purchase('d-1', 42))
    t.equal(sent.key, '["acme","svc.orders","d-1"]')
    // the same fact over HTTP (another externalEventId, the API's source)
    const viaApi = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: { ...purchase('a-1', 42), tenant: undefined } })
    t.equal(viaApi.statusCode, 202)
    const rows = await p.until<EventRowOut>(`SELECT * FROM ${db}.events WHERE external_event_id IN ('d-1', 'a-1') ORDER BY external_event_id DESC`, (r) => r.length === 2)
    const [direct, http] = rows
    t.equal(direct?.event_id, sent.eventId, 'the event id the producer assigned')
    t.equal(http?.event_id, (viaApi.json() as { event_id: string }).event_id)
    t.equal(direct?.email, 'buyer@example.com', 'identities normalized by the consumer')
    t.equal(direct?.p_amount, 42, 'segmentable property in its typed column')
    t.equal(direct?.p_store_id, 'store_7')
    t.ok(direct?.profile_id)
    t.equal(direct?.profile_id, http?.profile_id, 'same identities, same profile')
    // what differs by nature: the ids, when and where each record arrived, and the contract
    // version (the API knows it; a direct producer leaves it null unless it says)
    const same = (r: EventRowOut | undefined) => ({
      ...r, external_event_id: undefined, event_id: undefined, schema_version: undefined,
      received_at: undefined, ingested_at: undefined, kafka_offset: undefined, kafka_partition: undefined,
      properties: JSON.parse(r?.properties ?? '{}') as { order_id?: string },
    })
    const d = same(direct)
    const h = same(http)
    d.properties.order_id = h.properties.order_id = 'x'
    t.same(d, h, 'the rows differ only in ids, arrival and contract version')
  })

  await t.test('the same fact twice, with two event ids, is stored once (the first)', async (t) => {
    const first = await dp.send(purchase('d-2', 10))
    const again = await dp.send(purchase('d-2', 10))
    t.not(first.eventId, again.eventId)
    t.equal(first.fingerprint, again.fingerprint)
    const recs = await tap.until('both records on the topic', (all) => { const r = recordsOf(all, first.key); return r.length === 2 ? r : undefined })
    await consumedPast(t, cfg, recs)
    const rows = await eventsOf('d-2')
    t.same(rows.map((r) => r.event_id), [first.eventId])
    const dead = await p.rows(`SELECT * FROM ${db}.dead_letters WHERE key = '${first.key}'`)
    t.same(dead, [], 'a repeat is not a dead letter')
  })

  /** a conflict under `key`: dead-lettered, first fact kept, first fact re-asserted last */
  async function checkConflict(t: Test, key: string, externalEventId: string, original: { eventId: string; fingerprint: string }, conflicting: { eventId: string }) {
    const dead = await p.until<{ reason_code: string; value_base64: string; key: string; tenant: string }>(
      `SELECT * FROM ${db}.dead_letters WHERE key = '${key}'`, (r) => r.length >= 1)
    t.equal(dead.length, 1)
    t.equal(dead[0]?.reason_code, 'tuple_conflict')
    t.equal(dead[0]?.tenant, 'acme')
    const recs = await tap.until('the re-asserted record after the conflict', (all) => { const r = recordsOf(all, key); return r.length >= 3 ? r : undefined })
    const decoded = await Promise.all(recs.map((r) => decode(r.value)))
    t.same(decoded.map((e) => e.eventId), [original.eventId, conflicting.eventId, original.eventId], 'original, conflict, original again')
    t.equal(dead[0]?.value_base64, recs[1]?.value.toString('base64'), 'the dead letter holds the conflicting bytes')
    const last = decoded[decoded.length - 1]!
    t.equal(fingerprintOf(last), original.fingerprint, 'the LAST record for the key is the first fact: compaction keeps it')
    t.same(recs[2]?.value, recs[0]?.value, 're-asserted byte for byte')
    t.equal(recs[2]?.headers['cdp-reasserted-from'], `${recs[0]?.partition}/${recs[0]?.offset}`)
    const dlq = await tap.until('the conflict on the DLQ topic', (all) => all.find((r) => r.topic === cfg.kafka.deadLetterTopic && r.key === key))
    t.equal(dlq.headers['cdp-reason-code'], 'tuple_conflict')
    t.same(dlq.value, recs[1]?.value)
    // the re-asserted record is consumed as a repeat: no second dead letter, no second row
    await consumedPast(t, cfg, recs)
    t.same((await eventsOf(externalEventId)).map((r) => r.event_id), [original.eventId], 'ClickHouse keeps the first fact only')
    t.equal((await p.rows(`SELECT * FROM ${db}.dead_letters WHERE key = '${key}'`)).length, 1, 'the re-assertion is not a conflict')
  }

  await t.test('a conflicting direct write under a direct fact', async (t) => {
    const first = await dp.send(purchase('d-3', 10))
    await p.until(`SELECT 1 FROM ${db}.events WHERE external_event_id = 'd-3'`, (r) => r.length === 1)
    const second = await dp.send(purchase('d-3', 99))
    t.not(second.fingerprint, first.fingerprint)
    await checkConflict(t, first.key, 'd-3', first, second)
    const [row] = await eventsOf('d-3')
    t.equal(row?.p_amount, 10, 'the first payload')
  })

  await t.test('a conflicting direct write under an API-accepted fact', async (t) => {
    const payload = { ...purchase('a-2', 30), source: 'brand.pos', tenant: undefined }
    const accepted = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload })
    t.equal(accepted.statusCode, 202)
    const eventId = (accepted.json() as { event_id: string }).event_id
    await p.until(`SELECT 1 FROM ${db}.events WHERE external_event_id = 'a-2'`, (r) => r.length === 1)
    const key = '["acme","brand.pos","a-2"]'
    const [original] = await tap.until('the API record', (all) => { const r = recordsOf(all, key); return r.length === 1 ? r : undefined })
    const originalFp = fingerprintOf(await decode(original!.value))
    const conflicting = await dp.send(purchase('a-2', 31, { source: 'brand.pos' }))
    t.equal(conflicting.key, key)
    await checkConflict(t, key, 'a-2', { eventId, fingerprint: originalFp }, conflicting)
    // the API still answers the original fact as a duplicate
    const retry = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload })
    t.same(retry.json(), { status: 'duplicate', original_event_id: eventId })
  })

  await t.test('compaction keeps the last record per key; rebuilding from that yields the first facts', async (t) => {
    const live = await p.rows<{ k: string; event_id: string; p_amount: number }>(
      `SELECT concat(source, '/', external_event_id) AS k, event_id, p_amount FROM ${db}.events FINAL ORDER BY k`)
    t.equal(live.length, 5)
    const all = await tap.until('every record so far', (recs) => { const r = recs.filter((x) => x.topic === cfg.kafka.topic); return r.length >= 10 ? r : undefined })
    const lastPerKey = new Map<string, Rec>()
    for (const r of all) lastPerKey.set(r.key, r)
    await p.stop()

    // What a compacted topic holds: only the last record of each key, here copied to a new topic.
    // Rebuilt with a fresh state store too (ClickHouse and state lost: the topic is all there is).
    const fresh = tempDir(t)
    const copy: Readonly<Config> = {
      ...cfg,
      kafka: { ...cfg.kafka, topic: `${cfg.kafka.topic}.compacted`, consumerGroup: `${cfg.kafka.consumerGroup}-c` },
      clickhouse: { ...cfg.clickhouse, database: `${db}_rebuilt` },
      state: { ...cfg.state, lmdbPath: join(fresh, 'state') },
      keys: { prefix: `${cfg.keys.prefix}_rebuilt` },
    }
    const kafka = createKafka(copy, createLogger({ logLevel: 'silent' }), '-test-copy')
    await ensureTopics(kafka, copy)
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    await producer.send({ topic: copy.kafka.topic, acks: -1, messages: [...lastPerKey.values()].map((r) => ({ key: r.key, value: r.value })) })
    await producer.disconnect()

    const out: string[] = []
    t.equal(await replay(copy, [], (l) => out.push(l)), 0)
    const ch = createClickHouse(copy)
    t.teardown(() => closeClickHouse(ch))
    const rs = await ch.query({ query: `SELECT concat(source, '/', external_event_id) AS k, event_id, p_amount FROM ${copy.clickhouse.database}.events ORDER BY k`, format: 'JSONEachRow' })
    const rebuilt = await rs.json<{ k: string; event_id: string; p_amount: number }>()
    t.same(rebuilt.map((r) => [r.k, r.p_amount]), live.map((r) => [r.k, r.p_amount]), 'the same facts with their first payloads')
    const liveId = (k: string) => live.find((r) => r.k === k)?.event_id
    const rebuiltId = (k: string) => rebuilt.find((r) => r.k === k)?.event_id
    t.equal(rebuiltId('svc.orders/d-3'), liveId('svc.orders/d-3'), 'conflict under a direct fact: the first event id survives')
    t.equal(rebuiltId('brand.pos/a-2'), liveId('brand.pos/a-2'), 'conflict under an API fact: the first event id survives')
    // a repeat sent with a new event id: compaction kept the later copy, which stands for the
    // fact (same payload) under its own id; a producer that reuses the event id on retry avoids it
    const kept = await decode(lastPerKey.get('["acme","svc.orders","d-2"]')!.value)
    t.equal(rebuiltId('svc.orders/d-2'), kept.eventId)
  })
})
