/**
 * Consumer-side wiring: topic -> decode/check -> dedup -> identity -> ClickHouse, plus the analyst
 * query runner (in embedded mode chDB lives in this process) and `cdp replay`.
 */
import type { Kafka, Producer } from 'kafkajs'
import type { Config } from '../config/index.js'
import { CdpError } from '../errors.js'
import type { Logger } from '../observability/logger.js'
import { createLogger } from '../observability/logger.js'
import { Resources, contractChecker } from '../runtime.js'
import type { ConsumerHooks } from '../server.js'
import { loadContracts } from '../contracts/registry.js'
import { createStateStores } from '../state/index.js'
import { createIdentityGraph } from '../identity/index.js'
import { SchemaCodec } from '../avro/codec.js'
import { keyString } from '../avro/key.js'
import { partitionFor } from '../avro/partition.js'
import { createKafka } from '../kafka/client.js'
import { ensureTopics } from '../kafka/admin.js'
import { ConsumerRunner, type ConsumerRunnerOptions } from '../kafka/consumer.js'
import { fetchRecords } from '../kafka/fetch-one.js'
import { createClickHouse, closeClickHouse, type ClickHouseClient } from '../clickhouse/client.js'
import { runMigrations } from '../clickhouse/migrations.js'
import { createWriter } from '../clickhouse/writer.js'
import { analystQueryRunner } from '../clickhouse/analyst.js'
import { quoteIdent } from '../clickhouse/sql.js'
import type { QueryRunner } from '../http/routes/query.js'
import { BatchProcessor, type DeadLetter } from './processor.js'
import { createIdentityStep } from './identity-step.js'

export interface Pipeline {
  processor: BatchProcessor
  clickhouse: ClickHouseClient
  kafka: Kafka
  query: QueryRunner
}

async function existingFacts(ch: ClickHouseClient, database: string, tuples: { tenant: string; source: string; externalEventId: string }[]): Promise<Set<string>> {
  const r = await ch.query({
    query: `SELECT tenant, source, external_event_id FROM ${quoteIdent(database)}.events
            WHERE tenant IN {tenants:Array(String)} AND external_event_id IN {ids:Array(String)}`,
    query_params: { tenants: [...new Set(tuples.map((t) => t.tenant))], ids: [...new Set(tuples.map((t) => t.externalEventId))] },
    format: 'JSONEachRow',
  })
  const rows = await r.json<{ tenant: string; source: string; external_event_id: string }>()
  return new Set(rows.map((x) => keyString({ tenant: x.tenant, source: x.source, externalEventId: x.external_event_id })))
}

function wrapCh<T>(p: Promise<T>, what: string): Promise<T> {
  return p.catch((err: unknown) => {
    if (err instanceof CdpError) throw err
    throw new CdpError('clickhouse_unavailable', `${what}: ${(err as Error).message}`, { cause: err })
  })
}

/** Builds the pipeline for one topic; `mode` replay writes facts a fresh ClickHouse lacks. */
export async function buildPipeline(config: Readonly<Config>, log: Logger, res: Resources, mode: 'live' | 'replay'): Promise<Pipeline> {
  const contracts = loadContracts(config.contracts.dir)
  const clickhouse = createClickHouse(config)
  res.add('clickhouse', () => closeClickHouse(clickhouse))
  const segmentable = contracts.segmentableColumns()
  await runMigrations(clickhouse, { database: config.clickhouse.database, segmentable, log })
  const writer = createWriter(clickhouse, { database: config.clickhouse.database })
  const stores = await createStateStores(config)
  res.add('consumer-state', () => stores.close())
  const graph = await createIdentityGraph(config)
  res.add('identity-graph', () => graph.close())
  const kafka = createKafka(config, log, mode === 'replay' ? '-replay' : '-consumer')
  const { partitions } = await ensureTopics(kafka, config)
  const codec = new SchemaCodec(config.schemaRegistry)
  await codec.init(config.kafka.topic)
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await producer.connect()
  res.add('consumer-producer', () => producer.disconnect())

  const publishDeadLetters = async (letters: DeadLetter[]) => {
    await producer.send({
      topic: config.kafka.deadLetterTopic, acks: -1,
      messages: letters.map((l) => ({
        key: l.record.key, value: l.record.value,
        headers: {
          'cdp-reason-code': l.reason, 'cdp-reason': l.message,
          'cdp-source-topic': l.record.topic, 'cdp-source-partition': String(l.record.partition), 'cdp-source-offset': l.record.offset,
        },
      })),
    }).catch((err: unknown) => { throw new CdpError('kafka_unavailable', `dead-letter topic: ${(err as Error).message}`, { cause: err }) })
  }

  const reassert = async (originals: { partition: number; offset: string }[], keys: string[]) => {
    const found = await fetchRecords(kafka, config.kafka.topic, originals)
    const messages = originals.flatMap((o, i) => {
      const rec = found.get(`${o.partition}/${o.offset}`)
      if (rec === undefined) {
        log.error({ partition: o.partition, offset: o.offset }, 'cannot re-assert a first fact: its record is no longer on the topic')
        return []
      }
      const key = Buffer.from(keys[i]!, 'utf8')
      // the partition the consumer accepts the key on, whatever the client's default partitioner
      return [{ key, partition: partitionFor(key, partitions), value: rec.value, headers: { 'cdp-reasserted-from': `${o.partition}/${o.offset}` } }]
    })
    if (messages.length > 0) await producer.send({ topic: config.kafka.topic, acks: -1, messages })
  }

  const processor = new BatchProcessor({
    config, codec, mode, log, partitions,
    checkContract: contractChecker(contracts, config),
    segmentable,
    dedup: stores.dedup,
    identity: createIdentityStep(graph, config, log),
    writer,
    existingFacts: (tuples) => wrapCh(existingFacts(clickhouse, config.clickhouse.database, tuples), 'checking existing facts'),
    publishDeadLetters,
    reassert,
  })
  const analyst = await analystQueryRunner(clickhouse, config, contracts)
  // closes before ClickHouse: kills the analyst queries in flight, so closing chDB never waits
  // on one (the HTTP route also cancels them before the listener drains)
  res.add('analyst-queries', () => analyst.cancelAll())
  const query: QueryRunner = analyst
  return { processor, clickhouse, kafka, query }
}

/** consumer runner settings from config; replay and benchmarks pass their own group */
export function consumerOptions(config: Readonly<Config>, groupId = config.kafka.consumerGroup): ConsumerRunnerOptions {
  return {
    topic: config.kafka.topic, groupId, fromBeginning: true,
    maxBatchRecords: config.consumer.flushMaxRows, partitionConcurrency: config.consumer.partitionConcurrency,
    sessionTimeoutMs: config.consumer.sessionTimeoutMs,
  }
}

export const consumerHooks: ConsumerHooks = {
  async start(config, log, res) {
    const p = await buildPipeline(config, log, res, 'live')
    const runner = new ConsumerRunner(p.kafka, consumerOptions(config), p.processor, log)
    await runner.start()
    res.add('consumer', () => runner.stop())
    log.info({ topic: config.kafka.topic, group: config.kafka.consumerGroup }, 'consumer running')
    return { query: p.query }
  },
}

/** `cdp replay`: rebuild ClickHouse from the compacted topic with a fresh consumer group. */
export async function replayCommand(config: Readonly<Config>, _args: string[], out: (line: string) => void): Promise<number> {
  const log = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel })
  const res = new Resources()
  try {
    const p = await buildPipeline(config, log, res, 'replay')
    const admin = p.kafka.admin()
    await admin.connect()
    res.add('replay-admin', () => admin.disconnect())
    const high = await admin.fetchTopicOffsets(config.kafka.topic)
    const low = await admin.fetchTopicOffsetsByTimestamp(config.kafka.topic, 0)
    const total = high.reduce((s, h) => s + Number(h.high) - Number(low.find((l) => l.partition === h.partition)?.offset ?? 0), 0)
    const groupId = `${config.kafka.consumerGroup}-replay-${Date.now()}`
    const runner = new ConsumerRunner(p.kafka, consumerOptions(config, groupId), p.processor, log)
    out(`replay: ${total} records on ${high.length} partitions of ${config.kafka.topic} into ${config.clickhouse.database} (group ${groupId})`)
    const t0 = Date.now()
    await runner.start()
    res.add('replay-consumer', () => runner.stop())
    const caughtUp = async () => {
      const committed = await admin.fetchOffsets({ groupId, topics: [config.kafka.topic] })
      const parts = committed[0]?.partitions ?? []
      return high.every((h) => Number(h.high) === 0 || Number(parts.find((c) => c.partition === h.partition)?.offset ?? -1) >= Number(h.high))
    }
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000))
      const secs = (Date.now() - t0) / 1000
      const done = runner.handled
      const rate = done / Math.max(secs, 0.001)
      const lag = Math.max(0, total - done)
      const eta = rate > 0 ? `${Math.ceil(lag / rate)} s` : '?'
      const tt = p.processor.totals
      out(`replay: ${done}/${total} records, ${rate.toFixed(0)} records/s, lag ${lag}, ETA ${eta}; written ${tt.written}, already present or repeats ${done - tt.written - tt.deadLetters}, dead letters ${tt.deadLetters}`)
      if (await caughtUp()) break
    }
    out(`replay: done in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${p.processor.totals.written} facts written`)
    await admin.deleteGroups([groupId]).catch(() => undefined)
    return 0
  } finally {
    await res.close(log)
  }
}
