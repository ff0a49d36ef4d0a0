import t from 'tap'
import { createClickHouse } from '../../src/clickhouse/client.js'
import { createWriter, dedupToken } from '../../src/clickhouse/writer.js'
import type { DeadLetterRow } from '../../src/clickhouse/rows.js'
import { count, eventRow, harness, rows } from './fixtures/harness.js'

void t.test('dedupToken names table, topic, partition and offset range', async (t) => {
  t.equal(dedupToken('cdp.events.v1', 3, 100n, 199n, 'events'), 'cdp:events:cdp.events.v1:3:100-199')
  t.equal(dedupToken('cdp.events.v1', 3, 100, 199, 'events'), dedupToken('cdp.events.v1', 3, '100', '199', 'events'))
  t.not(dedupToken('cdp.events.v1', 3, 100, 199, 'events'), dedupToken('cdp.events.v1', 3, 100, 199, 'identities'))
  t.not(dedupToken('cdp.events.v1', 3, 100, 199, 'events'), dedupToken('cdp.events.v1', 4, 100, 199, 'events'))
})

void t.test('events round-trip: timestamps, bigint offsets, typed columns, select with query_params', async (t) => {
  const h = await harness(t, 'chdb', {
    segmentable: [{ column: 'p_plan', clickhouseType: 'LowCardinality(Nullable(String))' }, { column: 'p_amount', clickhouseType: 'Nullable(Float64)' }],
  })
  await h.writer.insertEvents([
    eventRow({ external_event_id: 'a', kafka_offset: 2n ** 40n, typed_properties: { p_plan: 'gold', p_amount: 42.5 } }),
    eventRow({ external_event_id: 'b', tenant: 'other', occurred_at: '2024-05-01T14:00:00.5+02:00' }),
  ], { dedupToken: 'rt-1' })
  const got = await rows<Record<string, unknown>>(h.client,
    `SELECT external_event_id, occurred_at, received_at, kafka_offset, p_plan, p_amount, email, device_key, ingested_at > now64(3) - 60 AS fresh
     FROM \`${h.database}\`.events WHERE tenant = {tenant:String} AND external_event_id IN {ids:Array(String)}`,
    { tenant: 'acme', ids: ['a', 'b'] })
  t.equal(got.length, 1, 'the tenant filter is bound')
  t.match(got[0], {
    external_event_id: 'a', occurred_at: '2024-05-01 12:00:00.123', received_at: '2024-05-01 12:00:01.456',
    p_plan: 'gold', p_amount: 42.5, email: 'jane@example.com', device_key: null, fresh: 1,
  })
  t.equal(String(got[0]?.kafka_offset), String(2n ** 40n))
  const [other] = await rows<{ occurred_at: string; p_plan: string | null }>(h.client,
    `SELECT occurred_at, p_plan FROM \`${h.database}\`.events WHERE tenant = 'other'`)
  t.same(other, { occurred_at: '2024-05-01 12:00:00.500', p_plan: null }, 'offset converted to UTC; absent typed column is NULL')
})

void t.test('a token does not stick: later inserts without one, or with another, still land', async (t) => {
  // chdb/connection would SET the token on its session for good; the client keeps it per call
  const h = await harness(t, 'chdb')
  const events = `\`${h.database}\`.events`
  await h.writer.insertEvents([eventRow({ external_event_id: 'x1' })], { dedupToken: 'sticky' })
  await h.writer.insertEvents([eventRow({ external_event_id: 'x2' })])
  await h.writer.insertEvents([eventRow({ external_event_id: 'x3' })], { dedupToken: 'sticky-2' })
  await h.writer.insertEvents([eventRow({ external_event_id: 'x4' })])
  t.equal(await count(h.client, `SELECT count() AS c FROM ${events}`), 4)
  const [setting] = await rows<{ value: string }>(h.client, "SELECT value FROM system.settings WHERE name = 'insert_deduplication_token'")
  t.equal(setting?.value, '', 'the long-lived session has no token')
})

void t.test('concurrent batches and concurrent re-sends', async (t) => {
  const h = await harness(t, 'chdb')
  const batches = Array.from({ length: 8 }, (_, p) => ({
    token: dedupToken('cdp.events.v1', p, 0, 99, 'events'),
    rows: Array.from({ length: 100 }, (_, i) => eventRow({ kafka_partition: p, kafka_offset: i })),
  }))
  await Promise.all([...batches, ...batches].map((b) => h.writer.insertEvents(b.rows, { dedupToken: b.token })))
  t.equal(await count(h.client, `SELECT count() AS c FROM \`${h.database}\`.events`), 800)
})

void t.test('a batch re-sent after a restart is still dropped (the crash-before-commit case)', async (t) => {
  const h = await harness(t, 'chdb')
  const ch = { clickhouse: { ...h.config.clickhouse, url: undefined } }
  const batch = [eventRow({ kafka_offset: 500 }), eventRow({ kafka_offset: 501 })]
  const token = dedupToken('cdp.events.v1', 1, 500, 501, 'events')
  // close() lets the insert in flight finish: the consumer's shutdown path
  const inflight = h.writer.insertEvents(batch, { dedupToken: token })
  await h.client.close()
  t.same(await inflight, { rows: 2 })

  const reopened = createClickHouse(ch)
  t.teardown(() => reopened.close())
  await createWriter(reopened, { database: h.database }).insertEvents(batch, { dedupToken: token })
  t.equal(await count(reopened, `SELECT count() AS c FROM \`${h.database}\`.events`), 2, 'one copy: the token log is on disk')
})

void t.test('events_resolved: one row per fact (the first), with the canonical profile after merges', async (t) => {
  const h = await harness(t, 'chdb')
  const db = `\`${h.database}\``
  const fact = eventRow({ external_event_id: 'e-1', profile_id: 'p_old', kafka_offset: 10 })
  const other = eventRow({ external_event_id: 'e-2', profile_id: 'p_other', kafka_offset: 11 })
  await h.writer.insertEvents([fact, other], { dedupToken: 'b1' })
  // a later copy of e-1 slipped past every other guard (different batch, different token)
  await h.writer.insertEvents([{ ...fact, kafka_offset: 20, event_type: 'late_copy' }], { dedupToken: 'b2' })
  t.equal(await count(h.client, `SELECT count() AS c FROM ${db}.events`), 3, 'both copies stored')

  const resolved = async (): Promise<Record<string, unknown>[]> => rows(h.client,
    `SELECT external_event_id, event_type, toString(kafka_offset) AS off, profile_id, ingest_profile_id
     FROM ${db}.events_resolved WHERE tenant = {tenant:String} ORDER BY external_event_id`, { tenant: 'acme' })
  t.same(await resolved(), [
    { external_event_id: 'e-1', event_type: 'order_completed', off: '10', profile_id: 'p_old', ingest_profile_id: 'p_old' },
    { external_event_id: 'e-2', event_type: 'order_completed', off: '11', profile_id: 'p_other', ingest_profile_id: 'p_other' },
  ], 'first fact wins; no merge yet')

  await h.writer.insertMerges([{
    tenant: 'acme', from_profile_id: 'p_old', to_profile_id: 'p_mid', reason: 'shared_email', event_id: 'ev-9', merged_at: new Date(Date.UTC(2024, 4, 2)),
  }], { dedupToken: 'm1' })
  t.match(await resolved(), [{ external_event_id: 'e-1', profile_id: 'p_mid', ingest_profile_id: 'p_old' }, { profile_id: 'p_other' }],
    'a merge row alone re-points the profile')

  // p_mid merges on into p_new: the identity step re-points every id that pointed at p_mid
  const mergedAt = new Date(Date.UTC(2024, 4, 3))
  await h.writer.insertMerges([{
    tenant: 'acme', from_profile_id: 'p_mid', to_profile_id: 'p_new', reason: 'shared_phone', event_id: 'ev-10', merged_at: mergedAt,
  }], { dedupToken: 'm2' })
  await h.writer.insertProfileAliases([{ tenant: 'acme', profile_id: 'p_old', canonical_id: 'p_new', version: mergedAt.getTime(), updated_at: mergedAt }], { dedupToken: 'a2' })
  t.match(await resolved(), [{ external_event_id: 'e-1', profile_id: 'p_new', ingest_profile_id: 'p_old' }, { profile_id: 'p_other' }])
  t.same(await rows(h.client, `SELECT profile_id, canonical_id FROM ${db}.profile_canonical WHERE tenant = 'acme' ORDER BY profile_id`), [
    { profile_id: 'p_mid', canonical_id: 'p_new' }, { profile_id: 'p_old', canonical_id: 'p_new' },
  ], 'any old id maps to the current one')
  t.equal(await count(h.client, `SELECT count() AS c FROM ${db}.profile_merges`), 2, 'every merge recorded')
  t.equal(await count(h.client, `SELECT count() AS c FROM ${db}.events_resolved`), 2, 'still one row per fact')
})

void t.test('identities and merges take tokens too', async (t) => {
  const h = await harness(t, 'chdb')
  const db = `\`${h.database}\``
  const identity = {
    tenant: 'acme', identity_type: 'email', identity_value: 'jane@example.com', raw_value: ' Jane@Example.com ',
    profile_id: 'p1', first_event_id: 'ev-1', linked_at: new Date(),
  }
  await h.writer.insertIdentities([identity], { dedupToken: dedupToken('t', 0, 1, 1, 'identities') })
  await h.writer.insertIdentities([identity], { dedupToken: dedupToken('t', 0, 1, 1, 'identities') })
  t.equal(await count(h.client, `SELECT count() AS c FROM ${db}.identities`), 1)
  const merge = { tenant: 'acme', from_profile_id: 'p2', to_profile_id: 'p1', reason: 'shared_email', event_id: 'ev-2', merged_at: new Date() }
  await h.writer.insertMerges([merge], { dedupToken: dedupToken('t', 0, 2, 2, 'profile_merges') })
  await h.writer.insertMerges([merge], { dedupToken: dedupToken('t', 0, 2, 2, 'profile_merges') })
  t.equal(await count(h.client, `SELECT count() AS c FROM ${db}.profile_merges`), 1)
  t.same(await h.writer.insertMerges([]), { rows: 0 }, 'an empty batch is a no-op')
})

void t.test('dead letters round-trip, including a record without a tenant', async (t) => {
  const h = await harness(t, 'chdb')
  const value = Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0xff, 0x0a])
  const letters: DeadLetterRow[] = [
    {
      tenant: null, reason_code: 'not_avro', reason: 'magic byte 0x7b is not 0x00', topic: 'cdp.events.v1',
      kafka_partition: 2, kafka_offset: 77, key: '', value_base64: value.toString('base64'), received_at: new Date(Date.UTC(2024, 4, 1)),
    },
    {
      tenant: 'acme', reason_code: 'contract_violation', reason: '/properties/amount: must be number', topic: 'cdp.events.v1',
      kafka_partition: 2, kafka_offset: 78, key: '["acme","brand.pos","txn_1"]', value_base64: Buffer.from('{}').toString('base64'), received_at: '2024-05-01T00:00:01Z',
    },
  ]
  const token = dedupToken('cdp.events.v1', 2, 77, 78, 'dead_letters')
  await h.writer.insertDeadLetters(letters, { dedupToken: token })
  await h.writer.insertDeadLetters(letters, { dedupToken: token })
  const got = await rows<Record<string, unknown>>(h.client,
    `SELECT tenant, reason_code, reason, topic, kafka_partition, toString(kafka_offset) AS off, key, value_base64, received_at
     FROM \`${h.database}\`.dead_letters ORDER BY kafka_offset`)
  t.equal(got.length, 2, 'once despite the re-send')
  t.match(got[0], { tenant: null, reason_code: 'not_avro', kafka_partition: 2, off: '77', key: '', received_at: '2024-05-01 00:00:00.000' })
  t.same(Buffer.from(String(got[0]?.value_base64), 'base64'), value, 'bytes survive')
  t.match(got[1], { tenant: 'acme', reason_code: 'contract_violation', key: '["acme","brand.pos","txn_1"]', received_at: '2024-05-01 00:00:01.000' })
})

void t.test('a typed property without its column fails loudly, and not as retriable', async (t) => {
  const h = await harness(t, 'chdb')
  const err = await h.writer.insertEvents([eventRow({ typed_properties: { p_missing: 'x' } })], { dedupToken: 'bad' })
    .then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof Error, 'rejected')
  t.not((err as { code?: string }).code, 'clickhouse_unavailable')
  t.equal(await count(h.client, `SELECT count() AS c FROM \`${h.database}\`.events`), 0)
  const collide = await h.writer.insertEvents([eventRow({ typed_properties: { email: 'x' } })]).then(() => undefined, (e: unknown) => e)
  t.match(collide, { message: /collides/ })
})
