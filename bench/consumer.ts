/**
 * Consumer benchmark (issue #4). Needs the stack (`npm run stack up`).
 *   npm run bench:consumer [-- --events 200000 --rate 3000 --seconds 15]
 * In one run, side by side:
 *   1. throughput: N records already on a fresh topic (written like a direct producer would), then
 *      the consumer pipeline (decode, contract check, dedup, identity resolution, ClickHouse insert)
 *      drains them: events/s from start until all are visible in ClickHouse
 *   2. the ceiling: chDB inserting the same rows directly (writer.insertEvents, 5000-row batches)
 *   3. end-to-end latency under load: an API process takes HTTP events at a fixed rate while the
 *      consumer runs; per event, ingested_at - received_at (receipt by the API -> row written in
 *      ClickHouse; an upper bound of "HTTP accepted -> visible"), p50/p99 computed in ClickHouse
 */
import autocannon from 'autocannon'
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadConfig } from '../src/config/index.js'
import { createLogger } from '../src/observability/logger.js'
import { Resources } from '../src/app/resources.js'
import { buildShared } from '../src/app/shared.js'
import { buildConsumer } from '../src/app/consumer.js'
import { SchemaCodec } from '../src/avro/codec.js'
import { encodeKey } from '../src/avro/key.js'
import { newEventId, type CdpEvent } from '../src/avro/event.js'
import { createWriter } from '../src/clickhouse/writer.js'
import { runMigrations } from '../src/clickhouse/migrations.js'
import type { EventRow } from '../src/clickhouse/rows.js'

const { values } = parseArgs({ options: {
  events: { type: 'string', default: '200000' }, rate: { type: 'string', default: '3000' }, seconds: { type: 'string', default: '15' },
} })
const N = Number(values.events)
const RATE = Number(values.rate)
const SECONDS = Number(values.seconds)
const run = randomBytes(4).toString('hex')
const dir = mkdtempSync(join(tmpdir(), 'cdp-bench-consumer-'))
const config = loadConfig({ overrides: {
  dataDir: dir, logLevel: 'silent',
  kafka: { topic: `cdp.benchc.${run}`, deadLetterTopic: `cdp.benchc.${run}.dlq`, consumerGroup: `benchc-${run}` },
  clickhouse: { chdbPath: join(dir, 'chdb'), database: `bench_${run}` },
  state: { lmdbPath: join(dir, 'state') },
  keys: { prefix: `benchc_${run}` },
} })
const log = createLogger({ logLevel: 'silent' })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function fact(i: number): CdpEvent {
  const user = i % 50_000
  return {
    eventId: newEventId(), tenant: 'bench', source: 'brand.pos', externalEventId: `x-${run}-${i}`, eventType: 'purchase_completed',
    occurredAt: Date.now() - 60_000, occurredAtDefaulted: false, receivedAt: Date.now(),
    identity: { externalUserId: `L-${user}`, email: `user${user}@example.com`, phone: null, deviceKey: i % 3 === 0 ? `dev-${user}` : null },
    properties: JSON.stringify({ order_id: `order_${i}`, amount: 10 + (i % 100), currency: 'USD', store_id: `store_${i % 40}` }),
    contractVersion: 1,
  }
}

async function count(q: (sql: string) => Promise<string>, sql: string): Promise<number> {
  return Number((await q(sql)).trim() || '0')
}

async function main() {
  const res = new Resources()
  const shared = await buildShared(config, log, res)
  const p = await buildConsumer(shared, 'live')
  const ch = await shared.clickhouse()
  const q = async (sql: string) => (await ch.client.query({ query: sql, format: 'TabSeparated' })).text()
  const db = config.clickhouse.database

  // 1. fill the topic
  const codec = new SchemaCodec(config.schemaRegistry)
  await codec.init(config.kafka.topic)
  const producer = shared.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  process.stderr.write(`writing ${N} records to ${config.kafka.topic}\n`)
  const sample: CdpEvent[] = []
  for (let i = 0; i < N; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, N - i) }, (_, j) => fact(i + j))
    if (sample.length < 50_000) sample.push(...batch)
    await producer.send({ topic: config.kafka.topic, acks: -1, messages: batch.map((e) => ({ key: encodeKey(e), value: codec.encode(e) })) })
  }
  await producer.disconnect()

  // 2. drain with the pipeline
  process.stderr.write('consuming\n')
  const runner = p.runner
  const t0 = Date.now()
  await p.start()
  while (await count(q, `SELECT count() FROM ${db}.events`) < N) await sleep(200)
  const consumerRate = N / ((Date.now() - t0) / 1000)
  await runner.stop()
  const tm = p.processor.timings
  const tmTotal = Object.values(tm).reduce((a, b) => a + b, 0)
  const where = Object.entries(tm).map(([k, v]) => `${k} ${(100 * v / tmTotal).toFixed(0)}%`).join(', ')

  // 3. ceiling: the same rows straight into chDB (another database, same engine and settings)
  const ceilingDb = `${db}_ceiling`
  await runMigrations(ch.client, { database: ceilingDb })
  const writer = createWriter(ch.client, { database: ceilingDb })
  const rows: EventRow[] = sample.map((e, i) => ({
    tenant: e.tenant, source: e.source, external_event_id: e.externalEventId, event_id: e.eventId, event_type: e.eventType,
    occurred_at: new Date(e.occurredAt).toISOString(), received_at: new Date(e.receivedAt).toISOString(), profile_id: 'p',
    email: e.identity.email, phone: null, external_user_id: e.identity.externalUserId, device_key: e.identity.deviceKey,
    properties: e.properties, schema_version: 1, kafka_partition: 0, kafka_offset: i,
  }))
  const t1 = Date.now()
  for (let i = 0; i < rows.length; i += 5000) await writer.insertEvents(rows.slice(i, i + 5000))
  const ceilingRate = rows.length / ((Date.now() - t1) / 1000)

  // 4. end-to-end latency under load through a separate API process
  process.stderr.write(`end to end: ${RATE} events/s over HTTP for ${SECONDS} s\n`)
  const e2eTopicRun = `${run}e`
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./api.ts', import.meta.url)), '--serve', e2eTopicRun], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const { port, key } = await new Promise<{ port: number; key: string }>((resolve) => lines.once('line', (l) => resolve(JSON.parse(l) as { port: number; key: string })))
  await res.close()
  const res2 = new Resources()
  const cfg2 = loadConfig({ overrides: {
    dataDir: dir, logLevel: 'silent',
    kafka: { topic: `cdp.bench.${e2eTopicRun}`, deadLetterTopic: `cdp.bench.${e2eTopicRun}.dlq`, consumerGroup: `benche-${run}` },
    clickhouse: { chdbPath: join(dir, 'chdb'), database: `bench_${run}_e2e` },
    state: { lmdbPath: join(dir, 'state2') },
    keys: { prefix: `benche_${run}` },
  } })
  const shared2 = await buildShared(cfg2, log, res2)
  const p2 = await buildConsumer(shared2, 'live')
  await p2.start()
  let n = 0
  const load = await autocannon({
    url: `http://127.0.0.1:${port}`, connections: 32, duration: SECONDS, overallRate: RATE,
    requests: [{ method: 'POST', path: '/v1/cdp/events', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: JSON.stringify({ source: 'brand.pos', externalEventId: `e-${n}`, eventType: 'purchase_completed',
        identity: { email: `user${n++ % 5000}@example.com` }, properties: { order_id: 'o', amount: 1, currency: 'USD' } }) }) }],
  })
  const accepted = load['2xx']
  const ch2 = await shared2.clickhouse()
  const q2 = async (sql: string) => (await ch2.client.query({ query: sql, format: 'TabSeparated' })).text()
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline && await count(q2, `SELECT count() FROM ${cfg2.clickhouse.database}.events`) < accepted) await sleep(200)
  const lat = (await q2(`SELECT quantileExact(0.5)(d), quantileExact(0.99)(d), count() FROM (SELECT toUnixTimestamp64Milli(ingested_at) - toUnixTimestamp64Milli(received_at) AS d FROM ${cfg2.clickhouse.database}.events)`)).trim().split('\t')
  child.stdin.end()
  await new Promise((r) => child.once('exit', r))
  await res2.close()

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  console.log(`\nmachine: ${machine}; Kafka, registry on the same machine; embedded chDB; LMDB state`)
  console.log('| measure | result |')
  console.log('|---|---|')
  console.log(`| consumer: ${N} records topic -> ClickHouse (decode, contract, dedup, identity, insert) | ${consumerRate.toFixed(0)} events/s |`)
  console.log(`| ceiling: chDB insertEvents of the same rows, 5000/batch | ${ceilingRate.toFixed(0)} rows/s |`)
  console.log(`| consumer ÷ ceiling | ${(consumerRate / ceilingRate).toFixed(2)} |`)
  console.log(`| consumer time by step (summed over batches) | ${where} |`)
  console.log(`| end to end at ${RATE} events/s offered for ${SECONDS} s (${accepted} accepted, ${lat[2]} in ClickHouse) | p50 ${lat[0]} ms, p99 ${lat[1]} ms |`)
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
