/**
 * Issue #4, first half: a consumer killed with SIGKILL in the middle of the stream and restarted
 * leaves every accepted event in ClickHouse exactly once (count() per tuple is 1 without FINAL)
 * and none missing.
 *
 * The API runs in this test and accepts the events; the consumer is its own process
 * (`cdp serve --role consumer`, LMDB state in its own dir) with small slices (flushMaxRows 200),
 * so each partition batch is many inserts and commits.
 *
 * - embedded chDB: the consumer holds the data dir and is killed twice once some but not all
 *   records are committed (plus a random delay, so the kill falls anywhere in a slice). chDB
 *   holds its dir for one process, so this test reads ClickHouse only while no consumer runs:
 *   after each kill, and at the end.
 * - ClickHouse over HTTP (the gateway in this process): the kill lands at exact points of the
 *   protocol, inside the gateway's hook that runs after a statement executed and before its
 *   answer is sent: once after an events insert was written (the consumer never learns it, so
 *   the rows are in ClickHouse and the offsets are not committed), once after the identities
 *   insert of a slice whose events were not written yet.
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import type { Admin } from 'kafkajs'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { createClickHouse } from '../../src/clickhouse/client.js'
import { startClickHouseGateway, type ExecutedStatement } from '../../tools/clickhouse-gateway/gateway.js'
import { sendPurchases, startApi, type TestApi } from '../helpers/api.js'
import { runCdp, waitFor, type CdpProcess } from '../helpers/process.js'
import { tempDir, type TestContext } from '../helpers/config.js'

const EVENTS = 3000
const SLICE = 200

/** the child takes its names from its config file, not from this shell's environment */
const CLEAR_ENV = {
  KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', KAFKA_CONSUMER_GROUP: '', KAFKA_PARTITIONS: '',
  CLICKHOUSE_URL: '', CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '', CLICKHOUSE_DATABASE: '', REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '',
}

async function sendEvents(api: TestApi, n: number): Promise<Map<string, string>> {
  return sendPurchases(api, await api.key('acme'), { prefix: 'crash', count: n, sharedIds: 400, currency: 'USD' })
}

/** records the group has committed (sum over partitions), and the topic's total */
async function progress(admin: Admin, cfg: Readonly<Config>): Promise<{ committed: number; total: number }> {
  const high = await admin.fetchTopicOffsets(cfg.kafka.topic)
  const [group] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
  const committed = (group?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0)
  return { committed, total: high.reduce((s, h) => s + Number(h.high), 0) }
}

interface Snapshot { rows: number; duplicateTuples: number; ids: Map<string, string>; deadLetters: number }

/** ClickHouse as the consumer left it; `clickhouse` is the consumer's own section (chDB or URL) */
async function snapshot(clickhouse: Config['clickhouse']): Promise<Snapshot> {
  const ch = createClickHouse({ clickhouse })
  try {
    const db = `\`${clickhouse.database}\``
    const q = async <T>(query: string): Promise<T[]> => (await ch.query({ query, format: 'JSONEachRow' })).json<T>()
    const rows = Number((await q<{ c: string }>(`SELECT count() AS c FROM ${db}.events`))[0]?.c)
    // no FINAL: a second copy must never have been written, not merely be merged away later
    const dups = await q<{ c: string }>(`SELECT count() AS c FROM ${db}.events GROUP BY tenant, source, external_event_id HAVING c > 1`)
    const ids = new Map((await q<{ external_event_id: string; event_id: string }>(
      `SELECT external_event_id, event_id FROM ${db}.events`)).map((r) => [r.external_event_id, r.event_id]))
    const deadLetters = Number((await q<{ c: string }>(`SELECT count() AS c FROM ${db}.dead_letters`))[0]?.c)
    return { rows, duplicateTuples: dups.length, ids, deadLetters }
  } finally {
    await ch.close()
  }
}

interface Rig {
  cfg: Readonly<Config>
  admin: Admin
  accepted: Map<string, string>
  start(): CdpProcess
  progress(): Promise<{ committed: number; total: number }>
}

/** an API that accepted EVENTS events, and a way to start a consumer on them */
async function rig(t: TestContext, clickhouse: Partial<Config['clickhouse']>): Promise<Rig> {
  const api = await startApi(t, { kafka: { partitions: 3 } })
  const cfg = api.config
  const admin = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-admin').admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const accepted = await sendEvents(api, EVENTS)
  const consumerConfig = {
    dataDir: join(cfg.dataDir, 'consumer'),
    logLevel: 'warn',
    kafka: {
      brokers: cfg.kafka.brokers, topic: cfg.kafka.topic, deadLetterTopic: cfg.kafka.deadLetterTopic,
      partitions: cfg.kafka.partitions, consumerGroup: cfg.kafka.consumerGroup,
    },
    schemaRegistry: { url: cfg.schemaRegistry.url },
    clickhouse: { chdbPath: cfg.clickhouse.chdbPath, database: cfg.clickhouse.database, ...clickhouse },
    state: { backend: 'lmdb', lmdbPath: join(cfg.dataDir, 'consumer-state') },
    keys: { prefix: cfg.keys.prefix },
    // a dead consumer's membership lapses quickly, so its restart is assigned the partitions soon
    consumer: { flushMaxRows: SLICE, sessionTimeoutMs: 6000 },
  }
  return {
    cfg, admin, accepted,
    start: () => runCdp(t, ['serve', '--role', 'consumer'], { dir: cfg.dataDir, config: consumerConfig, env: CLEAR_ENV }),
    progress: () => progress(admin, cfg),
  }
}

/** runs a consumer until everything is committed, stops it with SIGTERM, then checks ClickHouse */
async function finish(t: Test, r: Rig, read: () => Promise<Snapshot>): Promise<void> {
  const consumer = r.start()
  await waitFor('the restarted consumer committing every record', async () => {
    if (consumer.child.exitCode !== null) throw new Error(`consumer exited early:\n${consumer.output()}`)
    return (await r.progress()).committed === EVENTS ? true : undefined
  }, 120_000, 250)
  consumer.kill('SIGTERM')
  t.equal(await consumer.exited, 0, 'the consumer drains and exits cleanly on SIGTERM')
  const end = await read()
  t.equal(end.duplicateTuples, 0, 'count() per tuple is 1 without FINAL')
  t.equal(end.rows, EVENTS, 'one row per accepted event')
  t.equal(end.deadLetters, 0, 'nothing dead-lettered')
  const wrong = [...r.accepted].filter(([id, eventId]) => end.ids.get(id) !== eventId)
  t.same(wrong, [], 'every accepted event is in ClickHouse under the event id the API answered')
  t.equal(end.ids.size, r.accepted.size, 'and nothing else')
}

void t.test('embedded chDB: a consumer SIGKILLed mid-stream twice and restarted writes every event exactly once', async (t) => {
  const r = await rig(t, {})
  t.equal(r.accepted.size, EVENTS, 'the API accepted every event')
  const chdb = { ...r.cfg.clickhouse, url: undefined }
  let last = 0
  for (const threshold of [0.1, 0.5]) {
    const consumer = r.start()
    const before = (await r.progress()).committed
    await waitFor(`the consumer committing past ${threshold * 100}%`, async () => {
      if (consumer.child.exitCode !== null) throw new Error(`consumer exited early:\n${consumer.output()}`)
      const p = await r.progress()
      return p.committed > before && p.committed >= threshold * EVENTS ? true : undefined
    }, 120_000, 20)
    // anywhere in the next slice or two: its inserts, between them, or before the commit
    await new Promise((done) => setTimeout(done, Math.floor(Math.random() * 80)))
    consumer.kill('SIGKILL')
    await consumer.exited
    const { committed, total } = await r.progress()
    t.equal(total, EVENTS, 'the topic holds one record per accepted event')
    t.ok(committed < EVENTS && committed >= last, `killed mid-stream: ${committed} of ${EVENTS} records committed`)
    last = committed
    const s = await snapshot(chdb)
    t.equal(s.duplicateTuples, 0, 'no tuple twice after the kill either')
    t.ok(s.rows >= committed, 'every committed record is in ClickHouse')
    t.comment(`killed at ${committed}/${EVENTS} committed with ${s.rows} rows in ClickHouse (${s.rows - committed} ahead of the commit)`)
  }
  await finish(t, r, () => snapshot(chdb))
})

void t.test('ClickHouse over HTTP: SIGKILL after an insert executed and before the consumer heard back', async (t) => {
  let rule: { table: string; nth: number; victim: CdpProcess } | undefined
  let seen = 0
  const onExecuted = async (s: ExecutedStatement): Promise<void> => {
    if (rule === undefined || s.kind !== 'INSERT' || !s.sql.includes(`.${rule.table} FORMAT`)) return
    if (++seen < rule.nth) return
    const victim = rule.victim
    rule = undefined
    victim.kill('SIGKILL')
    await victim.exited
  }
  const dir = tempDir(t)
  const gw = await startClickHouseGateway({ path: join(dir, 'chdb'), port: 0, onExecuted })
  t.teardown(() => gw.close())
  const r = await rig(t, { url: gw.url, password: gw.token })
  const server = { ...r.cfg.clickhouse, url: gw.url, password: gw.token }

  // 1. the third events insert is written, then the consumer dies before its answer
  const a = r.start()
  seen = 0
  rule = { table: 'events', nth: 3, victim: a }
  await waitFor('the kill after an events insert', async () => {
    if (a.child.exitCode !== null || a.child.signalCode !== null) return true
    return undefined
  }, 120_000, 100)
  if (!t.equal(a.child.signalCode, 'SIGKILL', 'killed by the test, in the gateway\'s hook')) t.comment(a.output())
  const afterInsert = await r.progress()
  const s1 = await snapshot(server)
  t.ok(s1.rows > afterInsert.committed, `the kill left rows ahead of the commit: ${s1.rows} rows, ${afterInsert.committed} committed`)
  t.ok(afterInsert.committed < EVENTS, 'with work left')
  t.equal(s1.duplicateTuples, 0, 'no tuple twice after the kill')

  // 2. the restart dies after writing a slice's identities, before that slice's events
  const b = r.start()
  seen = 0
  rule = { table: 'identities', nth: 2, victim: b }
  await waitFor('the kill after an identities insert', async () => {
    if (b.child.exitCode !== null || b.child.signalCode !== null) return true
    return undefined
  }, 120_000, 100)
  if (!t.equal(b.child.signalCode, 'SIGKILL', 'killed by the test, in the gateway\'s hook')) t.comment(b.output())
  const afterIdentities = await r.progress()
  t.ok(afterIdentities.committed < EVENTS, `killed mid-stream: ${afterIdentities.committed} of ${EVENTS} committed`)
  t.equal((await snapshot(server)).duplicateTuples, 0, 'no tuple twice after the kill')

  await finish(t, r, () => snapshot(server))
})
