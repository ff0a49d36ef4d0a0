/**
 * Issue #4, second half: two consumer processes in one consumer group, sharing Redis (dedup
 * state, identity graph) and one ClickHouse over HTTP (the gateway, in this process); one of them
 * is SIGKILLed mid-stream, the other takes its partitions over after the session timeout, and
 * every accepted event ends in ClickHouse exactly once (count() per tuple is 1 without FINAL),
 * none missing.
 *
 * The kill lands at an exact point: in the gateway's hook, after the victim's third events
 * insert executed and before the victim hears back. So the victim's last rows are in ClickHouse
 * while their offsets are not committed, and the survivor re-reads those records. Each consumer
 * names itself with its own ClickHouse user (the gateway reports it, not checks it) and its own
 * Kafka client id, so the test knows whose insert it is and which partitions the victim held.
 */
import t from 'tap'
import kafkajs, { type Admin } from 'kafkajs'
import { join } from 'node:path'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { createClickHouse } from '../../src/clickhouse/client.js'
import { startClickHouseGateway, type ExecutedStatement } from '../../src/clickhouse/http-gateway.js'
import { startApi } from '../helpers/api.js'
import { tempDir, testConfig } from '../helpers/config.js'
import { runCdp, waitFor, type CdpProcess } from '../helpers/process.js'
import { deletePrefix } from '../state/redis-helpers.js'

const { AssignerProtocol } = kafkajs

const EVENTS = 4000
const SLICE = 200
const SESSION_TIMEOUT_MS = 6000

const CLEAR_ENV = {
  KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', KAFKA_CONSUMER_GROUP: '', KAFKA_PARTITIONS: '',
  CLICKHOUSE_URL: '', CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: '',
  REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '',
}

/** partitions per member client id, while the group is stable */
async function assignment(admin: Admin, groupId: string, topic: string): Promise<Map<string, number[]> | undefined> {
  const { groups } = await admin.describeGroups([groupId])
  const g = groups[0]
  if (g === undefined || g.state !== 'Stable') return undefined
  const out = new Map<string, number[]>()
  for (const m of g.members) {
    const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
    out.set(m.clientId, [...(decoded?.assignment[topic] ?? [])].sort((a, b) => a - b))
  }
  return out
}

interface KillState { committed: Map<number, number>; rows: Map<number, number> }

async function offsets(admin: Admin, cfg: Readonly<Config>): Promise<{ high: Map<number, number>; committed: Map<number, number> }> {
  const high = new Map((await admin.fetchTopicOffsets(cfg.kafka.topic)).map((h) => [h.partition, Number(h.high)]))
  const [group] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
  const committed = new Map((group?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]))
  return { high, committed }
}

void t.test('two consumers share Redis and one ClickHouse; one is SIGKILLed mid-stream; every event lands exactly once', async (t) => {
  let victimRule: { user: string; nth: number; proc: CdpProcess } | undefined
  let victimInserts = 0
  let atKill: Promise<KillState> | undefined
  const onExecuted = async (s: ExecutedStatement): Promise<void> => {
    if (victimRule === undefined || s.user !== victimRule.user || s.kind !== 'INSERT' || !s.sql.includes('.events FORMAT')) return
    if (++victimInserts < victimRule.nth) return
    const victim = victimRule.proc
    victimRule = undefined
    victim.kill('SIGKILL')
    await victim.exited
    // before the survivor can take anything over (that waits for the session timeout)
    atKill = killState()
    await atKill.catch(() => undefined)
  }
  const gw = await startClickHouseGateway({ path: join(tempDir(t), 'chdb'), port: 0, onExecuted })
  t.teardown(() => gw.close())

  const cfg = testConfig(t, { kafka: { partitions: 4 }, state: { backend: 'redis' }, clickhouse: { url: gw.url } })
  t.teardown(() => deletePrefix(cfg.state.redisUrl, cfg.keys.prefix))
  const api = await startApi(t, {}, cfg)
  const key = await api.key('acme')
  const admin = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-admin').admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())

  const consumer = (name: string): CdpProcess => runCdp(t, ['serve', '--role', 'consumer'], {
    dir: cfg.dataDir,
    env: CLEAR_ENV,
    config: {
      dataDir: join(cfg.dataDir, name),
      logLevel: 'warn',
      kafka: {
        brokers: cfg.kafka.brokers, topic: cfg.kafka.topic, deadLetterTopic: cfg.kafka.deadLetterTopic,
        partitions: cfg.kafka.partitions, consumerGroup: cfg.kafka.consumerGroup, clientId: `cdp-${name}`,
      },
      schemaRegistry: { url: cfg.schemaRegistry.url },
      clickhouse: { url: gw.url, username: name, database: cfg.clickhouse.database },
      state: { backend: 'redis', redisUrl: cfg.state.redisUrl },
      keys: { prefix: cfg.keys.prefix },
      consumer: { flushMaxRows: SLICE, sessionTimeoutMs: SESSION_TIMEOUT_MS },
    },
  })
  const ch = createClickHouse({ clickhouse: { ...cfg.clickhouse, url: gw.url } })
  t.teardown(() => ch.close())
  const db = `\`${cfg.clickhouse.database}\``
  const q = async <T>(query: string): Promise<T[]> => (await ch.query({ query, format: 'JSONEachRow' })).json<T>()
  const killState = async (): Promise<KillState> => ({
    committed: (await offsets(admin, cfg)).committed,
    rows: new Map((await q<{ p: number; c: string }>(`SELECT kafka_partition AS p, count() AS c FROM ${db}.events GROUP BY p`))
      .map((r) => [Number(r.p), Number(r.c)])),
  })

  const victim = consumer('victim')
  const survivor = consumer('survivor')
  const both = await waitFor('both consumers holding partitions', async () => {
    for (const p of [victim, survivor]) if (p.child.exitCode !== null) throw new Error(`a consumer exited:\n${p.output()}`)
    const a = await assignment(admin, cfg.kafka.consumerGroup, cfg.kafka.topic)
    return a !== undefined && a.size === 2 && [...a.values()].every((ps) => ps.length > 0) ? a : undefined
  }, 90_000, 250)
  const victimPartitions = both.get('cdp-victim-consumer') ?? []
  t.equal(victimPartitions.length, 2, `the victim holds two of the four partitions (${victimPartitions.join(', ')})`)

  victimRule = { user: 'victim', nth: 3, proc: victim }
  const accepted = new Map<string, string>()
  for (let from = 0; from < EVENTS; from += 500) {
    const items = Array.from({ length: 500 }, (_, k) => {
      const i = from + k
      return {
        source: 'brand.pos', externalEventId: `multi-${i}`, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
        identity: { email: `shopper${i}@example.com`, ...(i % 3 === 0 ? { externalUserId: `L-${i % 500}` } : {}) },
        properties: { order_id: `order-${i}`, amount: (i % 97) + 0.5, currency: 'EUR' },
      }
    })
    const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: { authorization: `Bearer ${key}` }, payload: { items } })
    t.equal(res.statusCode, 200)
    for (const [k, r] of (res.json() as { results: { status: string; event_id: string }[] }).results.entries()) {
      if (r.status === 'accepted') accepted.set(`multi-${from + k}`, r.event_id)
    }
  }
  t.equal(accepted.size, EVENTS, 'the API accepted every event')

  const k = await waitFor('the victim killed after its third events insert', async () => atKill, 120_000, 100)
  t.equal(victim.child.signalCode, 'SIGKILL', 'killed by the test, in the gateway\'s hook')
  // what the victim left: its last slice's rows written and their offsets not committed, records to go
  const ahead = victimPartitions.filter((p) => (k.rows.get(p) ?? 0) > (k.committed.get(p) ?? 0))
  t.equal(ahead.length, 1, `a victim partition has rows in ClickHouse beyond its committed offset (${ahead.join(', ')})`)
  const high = (await offsets(admin, cfg)).high
  const left = victimPartitions.reduce((s, p) => s + (high.get(p) ?? 0) - (k.committed.get(p) ?? 0), 0)
  t.ok(left > SLICE, `the victim died mid-stream: ${left} of its records not committed`)

  await waitFor('the survivor committing every record', async () => {
    if (survivor.child.exitCode !== null) throw new Error(`the survivor exited:\n${survivor.output()}`)
    const o = await offsets(admin, cfg)
    return [...o.high].every(([p, h]) => o.committed.get(p) === h) ? true : undefined
  }, 120_000, 250)
  const after = await waitFor('the group settled', () => assignment(admin, cfg.kafka.consumerGroup, cfg.kafka.topic), 30_000)
  t.same([...after.entries()], [['cdp-survivor-consumer', [0, 1, 2, 3]]], 'the survivor took over the victim\'s partitions')

  const dups = await q<{ c: string }>(`SELECT count() AS c FROM ${db}.events GROUP BY tenant, source, external_event_id HAVING c > 1`)
  t.same(dups, [], 'count() per tuple is 1 without FINAL')
  const rows = await q<{ external_event_id: string; event_id: string }>(`SELECT external_event_id, event_id FROM ${db}.events`)
  t.equal(rows.length, EVENTS, 'one row per accepted event')
  const stored = new Map(rows.map((r) => [r.external_event_id, r.event_id]))
  t.same([...accepted].filter(([id, eventId]) => stored.get(id) !== eventId), [], 'every accepted event under the event id the API answered')
  t.equal(Number((await q<{ c: string }>(`SELECT count() AS c FROM ${db}.dead_letters`))[0]?.c), 0, 'nothing dead-lettered')

  survivor.kill('SIGTERM')
  t.equal(await survivor.exited, 0, 'the survivor drains and exits cleanly on SIGTERM')
})
