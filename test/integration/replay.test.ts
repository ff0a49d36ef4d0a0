/**
 * `cdp replay` rebuilds ClickHouse from the compacted topic: run in-process into a NEW database
 * after the live pipeline wrote (and stopped: chDB's data dir belongs to one process), it yields
 * the same facts under the same event ids; a second run changes nothing; it reports progress.
 * The topic holds the awkward cases on purpose: an HTTP retry, a direct repeat under a new event
 * id, a conflict with its re-asserted first fact, and a record that is not Avro.
 */
import t from 'tap'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { createClickHouse, closeClickHouse } from '../../src/clickhouse/client.js'
import { replay } from '../../src/cli/commands/replay.js'
import { createDirectProducer, type DirectEvent } from '../../src/producer/index.js'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { waitFor } from '../helpers/process.js'

interface Fact { k: string; event_id: string; amount: number }
interface Totals { events: number; events_final: number; dead_letters: number; dead_letters_final: number; max_per_tuple: number }

const purchase = (externalEventId: string, amount: number): DirectEvent => ({
  tenant: 'acme', source: 'svc.orders', externalEventId, eventType: 'purchase_completed',
  occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `U-${externalEventId}`, email: 'r@example.com' },
  properties: { order_id: `o-${externalEventId}`, amount, currency: 'EUR' },
})

/** reads one database of the (stopped) pipeline's chDB */
async function readDb(cfg: Readonly<Config>, database: string): Promise<{ facts: Fact[]; totals: Totals }> {
  const ch = createClickHouse(cfg)
  try {
    const q = async <T>(query: string) => (await ch.query({ query, format: 'JSONEachRow' })).json<T>()
    const facts = (await q<Fact>(`SELECT concat(source, '/', external_event_id) AS k, event_id, p_amount AS amount FROM ${database}.events FINAL ORDER BY k`))
    const [totals] = await q<Totals>(`SELECT
        (SELECT count() FROM ${database}.events) AS events,
        (SELECT count() FROM ${database}.events FINAL) AS events_final,
        (SELECT count() FROM ${database}.dead_letters) AS dead_letters,
        (SELECT count() FROM ${database}.dead_letters FINAL) AS dead_letters_final,
        (SELECT max(c) FROM (SELECT count() AS c FROM ${database}.events GROUP BY tenant, source, external_event_id)) AS max_per_tuple`)
    const n = (v: unknown) => Number(v)
    return { facts: facts.map((f) => ({ ...f, amount: n(f.amount) })), totals: { events: n(totals?.events), events_final: n(totals?.events_final), dead_letters: n(totals?.dead_letters), dead_letters_final: n(totals?.dead_letters_final), max_per_tuple: n(totals?.max_per_tuple) } }
  } finally {
    await closeClickHouse(ch)
  }
}

void t.test('cdp replay into a new database: same facts, same event ids; twice changes nothing; progress printed', async (t) => {
  const api = await startApi(t)
  const cfg = api.config
  const db = cfg.clickhouse.database
  const log = createLogger({ logLevel: 'silent' })
  const dp = await createDirectProducer({ brokers: [...cfg.kafka.brokers], topic: cfg.kafka.topic, registryUrl: cfg.schemaRegistry.url, logger: log })
  t.teardown(() => dp.close())
  const p = await startPipeline(t, cfg)

  // over HTTP: three facts, one of them retried
  const key = await api.key('acme')
  const auth = { authorization: `Bearer ${key}` }
  for (const id of ['h-1', 'h-2', 'h-3', 'h-1']) {
    const { tenant: _t, ...body } = { ...purchase(id, 5), source: 'brand.web' }
    const r = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: body })
    t.ok(r.statusCode === 202 || r.statusCode === 200, `${id}: ${r.statusCode}`)
  }
  // directly: two facts, a repeat under a new event id, a conflict, and bytes that are not Avro
  await dp.sendMany([purchase('d-1', 1), purchase('d-2', 2)])
  await dp.send(purchase('d-1', 1))
  await p.until(`SELECT 1 FROM ${db}.events WHERE external_event_id = 'd-2'`, (r) => r.length === 1)
  await dp.send(purchase('d-2', 200))
  const kafka = createKafka(cfg, log, '-test-raw')
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  await producer.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: JSON.stringify(['acme', 'svc.orders', 'x-1']), value: 'not avro' }] })
  await producer.disconnect()

  // the live pipeline has consumed everything, the re-asserted first fact of d-2 included
  await p.until(`SELECT 1 FROM ${db}.dead_letters`, (r) => r.length === 2)
  const admin = kafka.admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const offsets = await waitFor('the re-asserted record and the consumer caught up', async () => {
    const high = await admin.fetchTopicOffsets(cfg.kafka.topic)
    const total = high.reduce((s, h) => s + Number(h.high), 0)
    // 3 over HTTP (the retry is answered, not produced) + 4 direct + 1 raw + the re-assertion
    if (total < 9) return undefined
    const [c] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
    return high.every((h) => Number(h.high) === 0 || c?.partitions.find((x) => x.partition === h.partition)?.offset === h.high) ? total : undefined
  })
  await p.stop()
  const dlqSize = async () => (await admin.fetchTopicOffsets(cfg.kafka.deadLetterTopic)).reduce((s, h) => s + Number(h.high), 0)
  t.equal(await dlqSize(), 2, 'the live consumer published both dead letters')
  const live = await readDb(cfg, db)
  t.equal(live.facts.length, 5, 'h-1..3, d-1, d-2')
  t.equal(live.facts.find((f) => f.k === 'svc.orders/d-2')?.amount, 2, 'the first payload of d-2')
  t.equal(live.totals.max_per_tuple, 1)

  const replayCfg: Readonly<Config> = { ...cfg, clickhouse: { ...cfg.clickhouse, database: `${db}_replay` } }
  const out1: string[] = []
  t.equal(await replay(replayCfg, [], (l) => out1.push(l)), 0)
  const first = await readDb(cfg, replayCfg.clickhouse.database)
  t.same(first.facts, live.facts, 'same facts, same event ids, same payloads')
  t.same(first.totals, { ...live.totals }, 'same counts, dead letters included; one row per tuple without FINAL')

  const out2: string[] = []
  t.equal(await replay(replayCfg, [], (l) => out2.push(l)), 0)
  const second = await readDb(cfg, replayCfg.clickhouse.database)
  t.same(second, first, 'a second replay changes nothing')
  t.equal(await dlqSize(), 2, 'replays rebuild ClickHouse only: nothing published to the DLQ topic again')
  const topicSize = (await admin.fetchTopicOffsets(cfg.kafka.topic)).reduce((s, h) => s + Number(h.high), 0)
  t.equal(topicSize, offsets, 'two replays over a conflict re-assert nothing: the topic did not grow (issue 13)')

  t.match(out1[0], new RegExp(`^replay: ${offsets} records on 3 partitions of ${cfg.kafka.topic.replace(/\./g, '\\.')} into ${replayCfg.clickhouse.database} \\(group .+\\)$`))
  t.ok(out1.some((l) => /^replay: \d+\/\d+ records, \d+ records\/s, lag \d+, ETA \S+ s?;? ?.*written \d+/.test(l)), 'progress lines: done/total, rate, lag, ETA')
  t.match(out1.at(-1), /^replay: done in [\d.]+ s; 5 facts written$/)
  t.match(out2.at(-1), /^replay: done in [\d.]+ s; 0 facts written$/, 'the second run writes nothing')
})
