/**
 * `cdp dlq` against the real stack: direct records with a property the contract lacks are
 * dead-lettered `contract_violation`; a dry run changes nothing; after the contract gains the
 * property (a service restarted over a contracts dir with it), `cdp dlq redrive` re-submits each
 * once, on its murmur2 partition, and each is stored once; a second redrive finds nothing.
 */
import t from 'tap'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Config } from '../../src/config/index.js'
import { buildRecord, createDirectProducer, type DirectEvent } from '../../src/producer/index.js'
import { createKafka } from '../../src/kafka/client.js'
import { createLogger } from '../../src/observability/logger.js'
import { KafkaAdmin } from '../../src/kafka/index.js'
import { partitionFor } from '../../src/avro/partition.js'
import { dlq } from '../../src/cli/commands/dlq.js'
import { tempDir, testConfig } from '../helpers/config.js'
import { startService, type TestService } from '../helpers/service.js'
import { waitFor } from '../helpers/process.js'

const order = (externalEventId: string, extra: Record<string, unknown> = {}): DirectEvent => ({
  tenant: 'acme', source: 'svc.orders', externalEventId, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `U-${externalEventId}` }, properties: { order_id: `o-${externalEventId}`, amount: 5, currency: 'EUR', ...extra },
})

async function rows<T>(svc: TestService, sql: string): Promise<T[]> {
  const text = await svc.consumer.query({ sql, format: 'JSONEachRow', principal: { tenant: null, permissions: ['query:all', 'pii:read'] } })
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T)
}

async function cli(t: { comment: (s: string) => void }, svc: TestService, cfg: Readonly<Config>, args: string[]): Promise<{ code: number; lines: string[] }> {
  if (svc.app.server.address() === null) await svc.app.listen({ host: '127.0.0.1', port: 0 })
  const port = (svc.app.server.address() as AddressInfo).port
  const apiKey = await svc.key(null, ['dlq:manage'])
  const lines: string[] = []
  const code = await dlq({ ...cfg, client: { url: `http://127.0.0.1:${port}`, apiKey } }, args, (l) => { lines.push(l) })
  t.comment(lines.join('\n'))
  return { code, lines }
}

void t.test('contract_violation dead letters: dry run changes nothing; redrive after the fix stores each once; a second redrive finds nothing', async (t) => {
  const contracts = join(tempDir(t), 'contracts')
  cpSync('config/contracts', contracts, { recursive: true })
  const cfg = testConfig(t, { contracts: { dir: contracts } })
  const db = cfg.clickhouse.database
  const log = createLogger({ logLevel: 'silent' })

  let svc = await startService(t, cfg)
  const admin = new KafkaAdmin(svc.shared.kafka)
  t.teardown(() => admin.close())
  const topicEnd = async () => (await admin.topicOffsets(cfg.kafka.topic)).reduce((s, p) => s + p.high, 0n)
  const dp = await createDirectProducer({ brokers: [...cfg.kafka.brokers], topic: cfg.kafka.topic, registryUrl: cfg.schemaRegistry.url, logger: log })
  t.teardown(() => dp.close())
  const ids = ['rd-1', 'rd-2', 'rd-3']
  const sent = await dp.sendMany([...ids.map((id) => order(id, { gift_wrap: true })), order('ok-1')])

  await waitFor('three dead letters', async () => {
    const r = await rows<{ n: string }>(svc, `SELECT uniqExact(kafka_partition, kafka_offset) AS n FROM ${db}.dead_letters WHERE reason_code = 'contract_violation'`)
    return Number(r[0]?.n) === 3 ? true : undefined
  })
  await waitFor('the good neighbour stored', async () => (await rows(svc, `SELECT 1 FROM ${db}.events WHERE external_event_id = 'ok-1'`)).length === 1 ? true : undefined)

  const endBefore = await topicEnd()
  const dry = await cli(t, svc, cfg, ['redrive', '--reason', 'contract_violation', '--dry-run'])
  t.equal(dry.code, 0)
  t.match(dry.lines.join('\n'), /3 dead letter\(s\) with reason contract_violation to redrive \(dry run/)
  t.equal(await topicEnd(), endBefore, 'a dry run sends nothing')
  const listed = await cli(t, svc, cfg, ['list', '--reason', 'contract_violation'])
  t.match(listed.lines[1], /^contract_violation\s+3\s+3$/, 'counts by reason: 3 total, 3 pending')
  t.equal(listed.lines.filter((l) => l.includes('contract_violation') && l.includes('pending')).length, 3, 'one line per dead letter')
  const refused = await cli(t, svc, cfg, ['redrive', '--reason', 'tuple_conflict'])
  t.equal(refused.code, 1, 'tuple_conflict cannot be redriven')
  t.match(refused.lines.join('\n'), /cannot be redriven/)

  // the cause is fixed: the contract gains the property, and the service restarts with it
  await svc.stop()
  const file = join(contracts, 'purchase_completed.json')
  const contract = JSON.parse(readFileSync(file, 'utf8')) as { version: number; properties: Record<string, unknown> }
  contract.version += 1
  contract.properties.gift_wrap = { type: 'boolean', description: 'Wrapped as a gift.' }
  writeFileSync(file, JSON.stringify(contract, null, 2))
  svc = await startService(t, cfg)

  const run1 = await cli(t, svc, cfg, ['redrive', '--reason', 'contract_violation', '--tenant', 'acme', '--chunk', '2'])
  t.equal(run1.code, 0)
  t.ok(run1.lines.some((l) => / 2\/3 re-submitted$/.test(l)) && run1.lines.some((l) => / 3\/3 re-submitted$/.test(l)), 'progress per chunk')
  const stored = await waitFor('the redriven facts stored', async () => {
    const r = await rows<{ external_event_id: string; event_id: string; kafka_partition: number; n: string }>(svc,
      `SELECT external_event_id, any(event_id) AS event_id, any(kafka_partition) AS kafka_partition, count() AS n FROM ${db}.events
       WHERE external_event_id LIKE 'rd-%' GROUP BY external_event_id ORDER BY external_event_id`)
    return r.length === 3 ? r : undefined
  })
  t.same(stored.map((r) => [r.external_event_id, Number(r.n)]), ids.map((id) => [id, 1]), 'each stored once')
  t.same(stored.map((r) => r.event_id), sent.slice(0, 3).map((s) => s.eventId), 'under the event ids they were sent with')
  t.same(stored.map((r) => Number(r.kafka_partition)), sent.slice(0, 3).map((s) => partitionFor(Buffer.from(s.key), cfg.kafka.partitions)), 'on the murmur2 partition of the key')

  const endAfter = await topicEnd()
  const run2 = await cli(t, svc, cfg, ['redrive', '--reason', 'contract_violation'])
  t.equal(run2.code, 0)
  t.match(run2.lines.join('\n'), /0 dead letter\(s\) with reason contract_violation to redrive/, 'the second run finds nothing')
  t.equal(await topicEnd(), endAfter, 'and sends nothing')
  const after = await cli(t, svc, cfg, ['list'])
  t.match(after.lines[1], /^contract_violation\s+3\s+0$/, 'all three recorded as redriven')
  t.equal(Number((await rows<{ n: string }>(svc, `SELECT uniqExact(kafka_partition, kafka_offset) AS n FROM ${db}.dead_letters`))[0]?.n), 3, 'no new dead letter')
})

void t.test('a wrong_partition dead letter redriven onto its murmur2 partition; failing there for another cause, it is dead-lettered again with the new reason', async (t) => {
  const cfg = testConfig(t)
  const svc = await startService(t, cfg)
  const reader = await svc.key('acme', ['events:read'])
  const status = async () => (await svc.app.inject({ method: 'GET', url: '/v1/cdp/events/svc.orders/wp-1', headers: { authorization: `Bearer ${reader}` } })).json() as { status: string; reason_code: string | null }
  // a producer with the wrong partitioner, and a property the contract lacks
  const rec = buildRecord(order('wp-1', { gift_note: 'for you' }), svc.shared.codec)
  const right = partitionFor(rec.key, cfg.kafka.partitions)
  const producer = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-raw').producer()
  await producer.connect()
  t.teardown(() => producer.disconnect())
  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: rec.key, value: rec.value, partition: (right + 1) % cfg.kafka.partitions }] })
  await waitFor('wrong_partition', async () => ((await status()).reason_code === 'wrong_partition' ? true : undefined))

  const run = await cli(t, svc, cfg, ['redrive', '--reason', 'wrong_partition'])
  t.equal(run.code, 0)
  t.ok(run.lines.some((l) => / 1\/1 re-submitted$/.test(l)))
  const again = await waitFor('dead-lettered again', async () => { const s = await status(); return s.reason_code === 'contract_violation' ? s : undefined })
  t.equal(again.status, 'dead_lettered', 'judged on its right partition now, and refused for the contract')
  const listed = await cli(t, svc, cfg, ['list'])
  t.ok(listed.lines.some((l) => /^wrong_partition\s+1\s+0$/.test(l)), 'the original: redriven')
  t.ok(listed.lines.some((l) => /^contract_violation\s+1\s+1$/.test(l)), 'the new dead letter: pending, under its new reason')
})
