/**
 * Consumer benchmark (issue #4; ceilings: issue 10 item 1). Needs the stack (`npm run stack up`).
 *   npm run bench:consumer [-- --events 50000 --rounds 3 --rate 5000 --seconds 15]
 * N records are written once to a fresh topic (as a direct producer would). Then, each round, side
 * by side (the order alternates per round; each round has its own consumer groups, LMDB state and
 * ClickHouse databases, so every round does the whole work):
 *   pipeline  the consumer (decode, contract check, dedup, identity, ClickHouse inserts) drains the
 *             topic: events/s from start until all N rows are visible; once more with one partition
 *             batch processed at a time (`consumer.groupMaxRows` 0, the consumer before
 *             src/pipeline/grouped.ts), for the comparison
 *   decode    the decode ceiling: the same runner (consumer group, fetch, per-partition batches)
 *             with a handler that only decodes
 *   insert    the ClickHouse ceiling: chDB inserting the same N events rows (writer.insertEvents,
 *             `consumer.flushMaxRows` per insert, one after another)
 * Then end-to-end latency under load, twice (with the default grouping of small partition batches,
 * and with every partition batch on its own): an API process takes HTTP single events at `rate`/s
 * while a consumer runs; per event, ingested_at - received_at (API receipt -> row written in
 * ClickHouse, an upper bound of "accepted -> queryable"), p50/p99 computed in ClickHouse, and how
 * many processor batches (each one insert per table) the consumer made.
 * Ends with `ratio consumer_vs_insert|consumer_vs_decode <median of per-round ratios>` and
 * `p99_ms e2e <value>` (plus `rate e2e_accepted <events/s>`: what the machine sustained).
 */
import autocannon from 'autocannon'
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { tmpdir, cpus, totalmem, loadavg } from 'node:os'
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
import { ConsumerRunner, consumerOptions } from '../src/kafka/index.js'
import { decodeStep } from '../src/pipeline/decode-step.js'

const { values } = parseArgs({ options: {
  events: { type: 'string', default: '50000' }, rate: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '15' },
  rounds: { type: 'string', default: '3' },
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

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }

/** a config of its own for one phase of one round: group, state, database, key prefix */
const phaseConfig = (tag: string, groupMaxRows?: number) => loadConfig({ overrides: {
  dataDir: dir, logLevel: 'silent', ...(groupMaxRows === undefined ? {} : { consumer: { groupMaxRows } }),
  kafka: { topic: `cdp.benchc.${run}`, deadLetterTopic: `cdp.benchc.${run}.dlq`, consumerGroup: `benchc-${run}-${tag}` },
  clickhouse: { chdbPath: join(dir, 'chdb'), database: `bench_${run}_${tag}` },
  state: { lmdbPath: join(dir, `state-${tag}`) },
  keys: { prefix: `benchc_${run}_${tag}` },
} })

/** the consumer drains the topic; `grouped` false: one partition batch at a time (before grouped.ts) */
async function pipeline(tag: string, grouped = true): Promise<{ rate: number; timings: Record<string, number>; batches: number }> {
  const cfg = phaseConfig(tag, grouped ? undefined : 0)
  const res = new Resources()
  try {
    const shared = await buildShared(cfg, log, res)
    const p = await buildConsumer(shared, 'live')
    const ch = await shared.clickhouse()
    const q = async (sql: string) => (await ch.client.query({ query: sql, format: 'TabSeparated' })).text()
    const t0 = Date.now()
    await p.start()
    while (await count(q, `SELECT count() FROM ${cfg.clickhouse.database}.events`) < N) await sleep(100)
    const rate = N / ((Date.now() - t0) / 1000)
    await p.runner.stop()
    return { rate, timings: { ...p.processor.timings }, batches: p.processor.batches }
  } finally { await res.close() }
}

async function decodeOnly(tag: string): Promise<number> {
  const cfg = phaseConfig(tag)
  const res = new Resources()
  try {
    const shared = await buildShared(cfg, log, res)
    const step = decodeStep({ codec: shared.codec, partitions: shared.partitions })
    let decoded = 0
    let done: () => void = () => undefined
    const all = new Promise<void>((r) => { done = r })
    const runner = new ConsumerRunner(shared.kafka, consumerOptions(cfg), {
      process: async (records) => {
        for (const r of records) if ((await step(r)).kind === 'ok') decoded++
        if (decoded >= N) done()
        return records.length
      },
    }, log)
    const t0 = Date.now()
    await runner.start()
    await all
    const rate = N / ((Date.now() - t0) / 1000)
    await runner.stop()
    return rate
  } finally { await res.close() }
}

async function insertOnly(tag: string, rows: EventRow[]): Promise<number> {
  const cfg = phaseConfig(tag)
  const res = new Resources()
  try {
    const shared = await buildShared(cfg, log, res)
    const ch = await shared.clickhouse()
    const db = `${cfg.clickhouse.database}_ceiling`
    await runMigrations(ch.client, { database: db })
    const writer = createWriter(ch.client, { database: db })
    const step = cfg.consumer.flushMaxRows
    const t0 = Date.now()
    for (let i = 0; i < rows.length; i += step) await writer.insertEvents(rows.slice(i, i + step), { dedupToken: `bench:${tag}:${i}` })
    return rows.length / ((Date.now() - t0) / 1000)
  } finally { await res.close() }
}

/**
 * BENCH_CPU_PROF=dir: a CPU profile of this process during one phase only (the first round's
 * pipeline), so the profile shows the consumer's work and not the ceilings' or the set-up's
 */
async function profiled<T>(name: string | undefined, fn: () => Promise<T>): Promise<T> {
  const dirOut = process.env.BENCH_CPU_PROF
  if (dirOut === undefined || name === undefined) return fn()
  const session = new Session()
  session.connect()
  const post = (method: string) => new Promise<unknown>((resolve, reject) => session.post(method, (err, r) => (err ? reject(err) : resolve(r))))
  await post('Profiler.enable')
  await post('Profiler.start')
  try {
    return await fn()
  } finally {
    const { profile } = await post('Profiler.stop') as { profile: unknown }
    mkdirSync(dirOut, { recursive: true })
    writeFileSync(join(dirOut, `${name}.cpuprofile`), JSON.stringify(profile))
    session.disconnect()
  }
}

interface E2e { accepted: number; p50: string; p99: string; stored: string; batches: number }

/** single events over HTTP at RATE/s into a separate API process while a consumer runs */
async function e2e(tag: string, groupMaxRows: number | undefined): Promise<E2e> {
  const e2eTopicRun = `${run}${tag}`
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./api.ts', import.meta.url)), '--serve', e2eTopicRun], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const { port, key } = await new Promise<{ port: number; key: string }>((resolve) => lines.once('line', (l) => resolve(JSON.parse(l) as { port: number; key: string })))
  const res2 = new Resources()
  const cfg2 = loadConfig({ overrides: {
    dataDir: dir, logLevel: 'silent',
    kafka: { topic: `cdp.bench.${e2eTopicRun}`, deadLetterTopic: `cdp.bench.${e2eTopicRun}.dlq`, consumerGroup: `benche-${run}-${tag}` },
    clickhouse: { chdbPath: join(dir, 'chdb'), database: `bench_${run}_e2e_${tag}` },
    state: { lmdbPath: join(dir, `state-e2e-${tag}`) },
    keys: { prefix: `benche_${run}_${tag}` },
    ...(groupMaxRows === undefined ? {} : { consumer: { groupMaxRows } }),
  } })
  try {
    const shared2 = await buildShared(cfg2, log, res2)
    const p2 = await buildConsumer(shared2, 'live')
    await p2.start()
    let n = 0
    const load = await autocannon({
      url: `http://127.0.0.1:${port}`, connections: 64, duration: SECONDS, overallRate: RATE,
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
    return { accepted, p50: lat[0]!, p99: lat[1]!, stored: lat[2]!, batches: p2.processor.batches }
  } finally {
    child.stdin.end()
    await new Promise((r) => child.once('exit', r))
    await res2.close()
  }
}

async function main() {
  const load0 = loadavg()
  const rounds = Number(values.rounds)
  // 1. fill the topic once
  const res0 = new Resources()
  const shared0 = await buildShared(phaseConfig('fill'), log, res0)
  const codec = new SchemaCodec(config.schemaRegistry)
  await codec.init(config.kafka.topic)
  const producer = shared0.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  process.stderr.write(`writing ${N} records to ${config.kafka.topic}\n`)
  const facts: CdpEvent[] = []
  for (let i = 0; i < N; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, N - i) }, (_, j) => fact(i + j))
    facts.push(...batch)
    await producer.send({ topic: config.kafka.topic, acks: -1, messages: batch.map((e) => ({ key: encodeKey(e), value: codec.encode(e) })) })
  }
  await producer.disconnect()
  await res0.close()
  const rows: EventRow[] = facts.map((e, i) => ({
    tenant: e.tenant, source: e.source, external_event_id: e.externalEventId, event_id: e.eventId, event_type: e.eventType,
    occurred_at: new Date(e.occurredAt).toISOString(), received_at: new Date(e.receivedAt).toISOString(), profile_id: 'p',
    email: e.identity.email, phone: null, external_user_id: e.identity.externalUserId, device_key: e.identity.deviceKey,
    properties: e.properties, schema_version: 1, kafka_partition: 0, kafka_offset: i,
  }))

  // 2. rounds: pipeline, decode ceiling, insert ceiling
  const out = { pipeline: [] as number[], ungrouped: [] as number[], batches: [] as number[], ungroupedBatches: [] as number[], decode: [] as number[], insert: [] as number[], timings: [] as Record<string, number>[] }
  for (let r = 0; r < rounds; r++) {
    const phases: [string, () => Promise<void>][] = [
      ['pipeline', async () => {
        const x = await profiled(r === 0 ? 'consumer-pipeline' : undefined, () => pipeline(`p${r}`))
        out.pipeline.push(x.rate)
        out.timings.push(x.timings)
        out.batches.push(x.batches)
      }],
      ['pipeline, one partition batch at a time', async () => {
        const x = await pipeline(`s${r}`, false)
        out.ungrouped.push(x.rate)
        out.ungroupedBatches.push(x.batches)
      }],
      ['decode', async () => { out.decode.push(await decodeOnly(`d${r}`)) }],
      ['insert', async () => { out.insert.push(await insertOnly(`i${r}`, rows)) }],
    ]
    if (r % 2 === 1) phases.reverse()
    for (const [name, phase] of phases) {
      process.stderr.write(`round ${r + 1}: ${name}\n`)
      await phase()
    }
    process.stderr.write(`round ${r + 1}: pipeline ${out.pipeline[r]!.toFixed(0)}, one partition at a time ${out.ungrouped[r]!.toFixed(0)} (processor batches ${out.batches[r]} vs ${out.ungroupedBatches[r]}), decode ${out.decode[r]!.toFixed(0)}, insert ${out.insert[r]!.toFixed(0)} events/s\n`)
  }

  // 3. end-to-end latency under load through a separate API process: with the default grouping and
  // with every partition batch on its own, one after the other (the order alternates with the run)
  const e2eRuns: [string, number | undefined][] = [['grouped', undefined], ['one partition at a time', 0]]
  if (Number.parseInt(run, 16) % 2 === 1) e2eRuns.reverse()
  const e2eOut = new Map<string, E2e>()
  for (const [name, groupMaxRows] of e2eRuns) {
    process.stderr.write(`end to end (${name}): ${RATE} events/s over HTTP for ${SECONDS} s\n`)
    e2eOut.set(name, await e2e(groupMaxRows === undefined ? 'g' : 'u', groupMaxRows))
  }
  const e2eG = e2eOut.get('grouped')!
  const e2eU = e2eOut.get('one partition at a time')!
  const load1 = loadavg()

  const ratios = {
    consumer_vs_insert: median(out.pipeline.map((x, i) => x / out.insert[i]!)),
    consumer_vs_decode: median(out.pipeline.map((x, i) => x / out.decode[i]!)),
    consumer_vs_ungrouped: median(out.pipeline.map((x, i) => x / out.ungrouped[i]!)),
  }
  const steps = Object.keys(out.timings[0] ?? {})
  const share = (k: string) => median(out.timings.map((t) => t[k]! / Object.values(t).reduce((a, b) => a + b, 0)))
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  console.log(`\nmachine: ${machine}; Kafka, registry on the same machine; embedded chDB; LMDB state; load average (1/5/15 min) at start ${load0.map((x) => x.toFixed(1)).join(' ')}, at end ${load1.map((x) => x.toFixed(1)).join(' ')}`)
  console.log(`${rounds} rounds, ${N} records each, medians; partitionConcurrency ${config.consumer.partitionConcurrency}, flushMaxRows ${config.consumer.flushMaxRows}`)
  console.log('| measure | events/s (median) | per round | ÷ ceiling (per-round median) |')
  console.log('|---|---:|---|---:|')
  console.log(`| consumer pipeline: topic -> ClickHouse | ${median(out.pipeline).toFixed(0)} | ${out.pipeline.map((x) => x.toFixed(0)).join(', ')} | ${ratios.consumer_vs_insert.toFixed(2)} of insert, ${ratios.consumer_vs_decode.toFixed(2)} of decode |`)
  console.log(`| consumer pipeline, one partition batch at a time (groupMaxRows 0) | ${median(out.ungrouped).toFixed(0)} | ${out.ungrouped.map((x) => x.toFixed(0)).join(', ')} | ${median(out.ungrouped.map((x, i) => x / out.insert[i]!)).toFixed(2)} of insert |`)
  console.log(`| ceiling: consumer group + decode only | ${median(out.decode).toFixed(0)} | ${out.decode.map((x) => x.toFixed(0)).join(', ')} | 1.00 |`)
  console.log(`| ceiling: chDB insertEvents of the same rows, ${config.consumer.flushMaxRows}/insert | ${median(out.insert).toFixed(0)} | ${out.insert.map((x) => x.toFixed(0)).join(', ')} | 1.00 |`)
  console.log(`\nprocessor batches per round (each one insert per table): grouped (groupMaxRows ${config.consumer.groupMaxRows}) ${median(out.batches)}, one partition at a time ${median(out.ungroupedBatches)}`)
  console.log(`consumer time by step (median share over rounds): ${steps.map((k) => `${k} ${(100 * share(k)).toFixed(0)}%`).join(', ')}`)
  for (const [name, x] of [['grouped', e2eG], ['one partition at a time', e2eU]] as const) {
    console.log(`end to end (${name}): ${RATE} events/s offered for ${SECONDS} s over 64 connections, ${x.accepted} accepted (${(x.accepted / SECONDS).toFixed(0)}/s), ${x.stored} in ClickHouse: p50 ${x.p50} ms, p99 ${x.p99} ms; ${x.batches} processor batches (each one insert per table), ${(x.accepted / Math.max(1, x.batches)).toFixed(1)} events per batch`)
  }
  console.log('')
  for (const [k, v] of Object.entries(ratios)) console.log(`ratio ${k} ${v.toFixed(3)}`)
  console.log(`rate e2e_accepted ${(e2eG.accepted / SECONDS).toFixed(0)}`)
  console.log(`p99_ms e2e ${e2eG.p99}`)
  console.log(`p99_ms e2e_ungrouped ${e2eU.p99}`)
  console.log(`ratio e2e_batches_grouped_vs_ungrouped ${(e2eG.batches / Math.max(1, e2eU.batches)).toFixed(3)}`)
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
