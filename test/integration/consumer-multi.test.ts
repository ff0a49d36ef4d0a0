/**
 * Issue #4, second half: two consumer processes in one consumer group, sharing Redis (dedup
 * state, identity graph) and one ClickHouse over HTTP (the gateway, in this process).
 *
 * - One is SIGKILLed mid-stream, the other takes its partitions over after the session timeout,
 *   and every accepted event ends in ClickHouse exactly once (count() per tuple is 1 without
 *   FINAL), none missing. The kill lands at an exact point: in the gateway's hook, after the
 *   victim's third events insert executed and before the victim hears back, so the victim's last
 *   rows are in ClickHouse while their offsets are not committed, and the survivor reads those
 *   records again.
 * - A consumer that is backing off because ClickHouse fails must let the group rebalance: it
 *   leaves its batch when the heartbeat says so, instead of holding its partitions for the
 *   rebalance timeout and then writing next to their new owner.
 *
 * Each consumer names itself with its own ClickHouse user (the gateway reports it; only the token is checked)
 * and its own Kafka client id, so the test knows whose request it sees and who holds what.
 */
import t, { type Test } from 'tap'
import kafkajs, { type Admin } from 'kafkajs'
import { join } from 'node:path'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { createClickHouse } from '../../src/clickhouse/client.js'
import { startClickHouseGateway, type ExecutedStatement } from '../../tools/clickhouse-gateway/gateway.js'
import { sendPurchases, startApi } from '../helpers/api.js'
import { tempDir, testConfig, type TestContext } from '../helpers/config.js'
import { runCdp, waitFor, type CdpProcess } from '../helpers/process.js'
import { deletePrefix } from '../state/redis-helpers.js'

const { AssignerProtocol } = kafkajs

const SLICE = 200
const SESSION_TIMEOUT_MS = 6000

const CLEAR_ENV = {
  KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', KAFKA_CONSUMER_GROUP: '', KAFKA_PARTITIONS: '',
  CLICKHOUSE_URL: '', CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: '',
  REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '',
}

type Hook = (s: ExecutedStatement) => Promise<void>

interface Rig {
  cfg: Readonly<Config>
  admin: Admin
  /** the gateway's hook for this test */
  hook: { fn: Hook | undefined }
  consumer(name: string): CdpProcess
  send(from: number, n: number): Promise<Map<string, string>>
  q<T>(query: string): Promise<T[]>
  /** partitions per member client id, once the group is stable */
  assignment(): Promise<Map<string, number[]> | undefined>
  offsets(): Promise<{ high: Map<number, number>; committed: Map<number, number> }>
  allCommitted(): Promise<boolean>
  /** the end state every test wants: each accepted event once, under its event id, nothing else */
  checkExactlyOnce(t: Test, accepted: Map<string, string>): Promise<void>
}

async function rig(t: TestContext): Promise<Rig> {
  const hook: { fn: Hook | undefined } = { fn: undefined }
  const gw = await startClickHouseGateway({ path: join(tempDir(t), 'chdb'), port: 0, onExecuted: (s) => hook.fn?.(s) })
  t.teardown(() => gw.close())
  const cfg = testConfig(t, { kafka: { partitions: 4 }, state: { backend: 'redis' }, clickhouse: { url: gw.url, password: gw.token } })
  t.teardown(() => deletePrefix(cfg.state.redisUrl, cfg.keys.prefix))
  const api = await startApi(t, {}, cfg)
  const key = await api.key('acme')
  const admin = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-admin').admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const ch = createClickHouse({ clickhouse: { ...cfg.clickhouse, url: gw.url, password: gw.token } })
  t.teardown(() => ch.close())
  const db = `\`${cfg.clickhouse.database}\``
  const q = async <T>(query: string): Promise<T[]> => (await ch.query({ query, format: 'JSONEachRow' })).json<T>()

  const offsets = async () => {
    const high = new Map((await admin.fetchTopicOffsets(cfg.kafka.topic)).map((h) => [h.partition, Number(h.high)]))
    const [group] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
    const committed = new Map((group?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]))
    return { high, committed }
  }

  return {
    cfg, admin, hook, q, offsets,
    consumer: (name) => runCdp(t, ['serve', '--role', 'consumer'], {
      dir: cfg.dataDir,
      env: CLEAR_ENV,
      config: {
        dataDir: join(cfg.dataDir, name),
        logLevel: 'warn',
        kafka: {
          brokers: cfg.kafka.brokers, topic: cfg.kafka.topic, deadLetterTopic: cfg.kafka.deadLetterTopic,
          // a process has one Kafka client (src/app/shared.ts): group members show this id as it is
          partitions: cfg.kafka.partitions, consumerGroup: cfg.kafka.consumerGroup, clientId: `cdp-${name}`,
        },
        schemaRegistry: { url: cfg.schemaRegistry.url },
        clickhouse: { url: gw.url, username: name, password: gw.token, database: cfg.clickhouse.database },
        state: { backend: 'redis', redisUrl: cfg.state.redisUrl },
        keys: { prefix: cfg.keys.prefix },
        consumer: { flushMaxRows: SLICE, sessionTimeoutMs: SESSION_TIMEOUT_MS },
      },
    }),
    send: (from, n) => sendPurchases(api, key, { prefix: 'multi', from, count: n, sharedIds: 500, currency: 'EUR' }),
    assignment: async () => {
      const { groups } = await admin.describeGroups([cfg.kafka.consumerGroup])
      const g = groups[0]
      if (g === undefined || g.state !== 'Stable') return undefined
      const out = new Map<string, number[]>()
      for (const m of g.members) {
        const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        out.set(m.clientId, [...(decoded?.assignment[cfg.kafka.topic] ?? [])].sort((a, b) => a - b))
      }
      return out
    },
    allCommitted: async () => {
      const o = await offsets()
      return [...o.high].every(([p, h]) => o.committed.get(p) === h)
    },
    checkExactlyOnce: async (t, accepted) => {
      const dups = await q<{ c: string }>(`SELECT count() AS c FROM ${db}.events GROUP BY tenant, source, external_event_id HAVING c > 1`)
      t.same(dups, [], 'count() per tuple is 1 without FINAL')
      const rows = await q<{ external_event_id: string; event_id: string }>(`SELECT external_event_id, event_id FROM ${db}.events`)
      t.equal(rows.length, accepted.size, 'one row per accepted event')
      const stored = new Map(rows.map((r) => [r.external_event_id, r.event_id]))
      t.same([...accepted].filter(([id, eventId]) => stored.get(id) !== eventId), [], 'every accepted event under the event id the API answered')
      t.equal(Number((await q<{ c: string }>(`SELECT count() AS c FROM ${db}.dead_letters`))[0]?.c), 0, 'nothing dead-lettered')
    },
  }
}

const alive = (...ps: CdpProcess[]) => {
  for (const p of ps) if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`a consumer exited:\n${p.output()}`)
}

void t.test('two consumers share Redis and one ClickHouse; one is SIGKILLed mid-stream; every event lands exactly once', async (t) => {
  const EVENTS = 4000
  const r = await rig(t)
  const victim = r.consumer('victim')
  const survivor = r.consumer('survivor')
  const both = await waitFor('both consumers holding partitions', async () => {
    alive(victim, survivor)
    const a = await r.assignment()
    return a !== undefined && a.size === 2 && [...a.values()].every((ps) => ps.length > 0) ? a : undefined
  }, 90_000, 250)
  const victimPartitions = both.get('cdp-victim') ?? []
  t.equal(victimPartitions.length, 2, `the victim holds two of the four partitions (${victimPartitions.join(', ')})`)

  // after the victim's third events insert executed: kill it before it hears back, then record
  // what it left, before the survivor can take anything over (that waits for the session timeout)
  let inserts = 0
  let atKill: Promise<{ committed: Map<number, number>; rows: Map<number, number> }> | undefined
  r.hook.fn = async (s) => {
    if (s.user !== 'victim' || s.kind !== 'INSERT' || !s.sql.includes('.events FORMAT') || ++inserts !== 3) return
    victim.kill('SIGKILL')
    await victim.exited
    atKill = (async () => ({
      committed: (await r.offsets()).committed,
      rows: new Map((await r.q<{ p: number; c: string }>(
        `SELECT kafka_partition AS p, count() AS c FROM \`${r.cfg.clickhouse.database}\`.events GROUP BY p`)).map((x) => [Number(x.p), Number(x.c)])),
    }))()
    await atKill.catch(() => undefined)
  }
  const accepted = await r.send(0, EVENTS)
  t.equal(accepted.size, EVENTS, 'the API accepted every event')

  const k = await waitFor('the victim killed after its third events insert', async () => atKill, 120_000, 100)
  t.equal(victim.child.signalCode, 'SIGKILL', 'killed by the test, in the gateway\'s hook')
  const ahead = victimPartitions.filter((p) => (k.rows.get(p) ?? 0) > (k.committed.get(p) ?? 0))
  // (both, when the victim had both partitions' inserts in flight: it consumes partitions concurrently)
  t.ok(ahead.length >= 1, `a victim partition has rows in ClickHouse beyond its committed offset (${ahead.join(', ')})`)
  const high = (await r.offsets()).high
  const left = victimPartitions.reduce((s, p) => s + (high.get(p) ?? 0) - (k.committed.get(p) ?? 0), 0)
  t.ok(left > SLICE, `the victim died mid-stream: ${left} of its records not committed`)

  await waitFor('the survivor committing every record', async () => {
    alive(survivor)
    return (await r.allCommitted()) ? true : undefined
  }, 120_000, 250)
  const after = await waitFor('the group settled', () => r.assignment(), 30_000)
  t.same([...after.entries()], [['cdp-survivor', [0, 1, 2, 3]]], 'the survivor took over the victim\'s partitions')
  await r.checkExactlyOnce(t, accepted)

  survivor.kill('SIGTERM')
  t.equal(await survivor.exited, 0, 'the survivor drains and exits cleanly on SIGTERM')
})

void t.test('a consumer backing off while ClickHouse fails lets the group rebalance, then nothing is written twice', async (t) => {
  const EVENTS = 1000
  const r = await rig(t)
  // ClickHouse fails every insert of consumer "a" into identities (the first write of each batch),
  // with an error the consumer treats as "unavailable": it backs off and retries, not committing
  let failing = true
  let failures = 0
  r.hook.fn = async (s) => {
    if (!failing || s.user !== 'a' || s.kind !== 'INSERT' || !s.sql.includes('.identities FORMAT')) return
    failures++
    throw new Error('Code: 202. DB::Exception: Too many simultaneous queries (a test outage). (TOO_MANY_SIMULTANEOUS_QUERIES)')
  }
  const a = r.consumer('a')
  await waitFor('consumer a holding every partition', async () => {
    alive(a)
    const s = await r.assignment()
    return s?.get('cdp-a')?.length === 4 ? true : undefined
  }, 90_000, 250)
  const accepted = await r.send(0, EVENTS)
  await waitFor('consumer a backing off', async () => (failures >= 2 ? true : undefined), 60_000)

  const b = r.consumer('b')
  // a rejoins at its next heartbeat; without that the group would wait out the rebalance timeout (60 s)
  const split = await waitFor('both consumers holding partitions', async () => {
    alive(a, b)
    const s = await r.assignment()
    return s !== undefined && s.size === 2 && [...s.values()].every((ps) => ps.length > 0) ? s : undefined
  }, 30_000, 250)
  t.same([...split.values()].map((ps) => ps.length), [2, 2], 'the partitions are split while a still cannot write')

  failing = false
  await waitFor('every record committed', async () => {
    alive(a, b)
    return (await r.allCommitted()) ? true : undefined
  }, 120_000, 250)
  await r.checkExactlyOnce(t, accepted)
  for (const p of [a, b]) {
    p.kill('SIGTERM')
    t.equal(await p.exited, 0, 'drains and exits cleanly on SIGTERM')
  }
})
