/**
 * The consumer of a process: events topic -> decode/check -> dedup -> identity -> ClickHouse.
 * Dead letters and re-assertions leave through the shared batching producer (never a second
 * idempotent producer next to it: overlapping idempotent sends are kafkajs#1005).
 * `replay` writes the facts a fresh ClickHouse lacks (cdp replay).
 */
import { createIdentityGraph } from '../identity/index.js'
import { partitionFor } from '../avro/partition.js'
import { analystQueryRunner } from '../clickhouse/index.js'
import { CONSUMER_RETRY, ConsumerRunner, KafkaAdmin, consumerOptions, createKafka, createMemberRemover, fetchRecords, type TopicMessage } from '../kafka/index.js'
import type { ClickHouseWriter } from '../clickhouse/writer.js'
import type { Metrics } from '../observability/metrics.js'
import type { QueryRunner } from '../http/routes/query.js'
import { BatchProcessor, type DeadLetter } from '../pipeline/processor.js'
import { GroupedBatches } from '../pipeline/grouped.js'
import { createIdentityStep } from '../pipeline/identity-step.js'
import type { IdentityStep } from '../pipeline/deps.js'
import type { Shared } from './shared.js'
import { ConsumerHealth } from './consumer-health.js'
import { withTimeout, type Checks } from './readiness.js'
import { personRows } from '../clickhouse/index.js'
import { ErasureWorker } from '../privacy/index.js'

export type ConsumerMode = 'live' | 'replay'

export interface Consumer {
  processor: BatchProcessor
  runner: ConsumerRunner
  /** read-only SQL over this process's ClickHouse (POST /v1/cdp/query, tests) */
  query: QueryRunner
  /** lag per partition and the stall check (refreshed while the consumer runs) */
  health: ConsumerHealth
  /** the consumer's own /readyz checks: ClickHouse answers, the consumer is in its group, no stalled partition */
  readiness(): Promise<Checks>
  /** runs the stored erasure requests (live only: this process owns ClickHouse); started by start() */
  erasures: ErasureWorker | undefined
  /** the identity step over this process's graph (cdp state rebuild resolves through it) */
  identity: IdentityStep
  /** joins the consumer group (resolves once joined; a failed start may be called again); the
   *  runner stops when `shared.res` closes */
  start(): Promise<void>
  /** joined its group and consuming (readiness) */
  joined(): boolean
}

export interface ConsumerOptions {
  /** default config.kafka.consumerGroup; replay and benchmarks use their own */
  groupId?: string
}

export async function buildConsumer(shared: Shared, mode: ConsumerMode, opts: ConsumerOptions = {}): Promise<Consumer> {
  const { config, log, res, producer } = shared
  const clickhouse = await shared.clickhouse()
  const { metrics } = shared
  const graph = await createIdentityGraph(config)
  res.add('identity-graph', () => graph.close())

  const publishDeadLetters = async (letters: DeadLetter[]) => {
    await producer.send(config.kafka.deadLetterTopic, letters.map((l): TopicMessage => ({
      key: l.record.key, value: l.record.value,
      headers: {
        'cdp-reason-code': l.reason, 'cdp-reason': l.message,
        'cdp-source-topic': l.record.topic, 'cdp-source-partition': String(l.record.partition), 'cdp-source-offset': l.record.offset,
      },
    }))).done
  }

  const reassert = async (originals: { partition: number; offset: string }[], keys: string[]) => {
    const found = await fetchRecords(shared.kafka, config.kafka.topic, originals)
    const messages = originals.flatMap((o, i): TopicMessage[] => {
      const rec = found.get(`${o.partition}/${o.offset}`)
      if (rec === undefined) {
        log.error({ partition: o.partition, offset: o.offset }, 'cannot re-assert a first fact: its record is no longer on the topic')
        return []
      }
      const key = Buffer.from(keys[i]!, 'utf8')
      // the partition the consumer accepts the key on, whatever the client's default partitioner
      return [{ key, partition: partitionFor(key, shared.partitions), value: rec.value, headers: { 'cdp-reasserted-from': `${o.partition}/${o.offset}` } }]
    })
    if (messages.length > 0) await producer.send(config.kafka.topic, messages).done
  }

  // erasures and suppressed records: a null value under the key, on the partition the consumer
  // accepts the key on, through the one batching producer
  const tombstone = async (keys: string[]) => {
    if (keys.length === 0) return
    await producer.send(config.kafka.topic, keys.map((k): TopicMessage => {
      const key = Buffer.from(k, 'utf8')
      return { key, value: null, partition: partitionFor(key, shared.partitions), headers: { 'cdp-tombstone': 'erasure' } }
    })).done
  }
  const piiOf = new Map<string, readonly string[]>()
  const piiProperties = (tenant: string, eventType: string): readonly string[] => {
    const k = `${tenant}\u0000${eventType}`
    let names = piiOf.get(k)
    if (names === undefined) {
      const c = shared.contracts.get(tenant, eventType)
      names = c === undefined ? [] : Object.entries(c.properties).filter(([, p]) => p.pii).map(([n]) => n)
      piiOf.set(k, names)
    }
    return names
  }

  const identity = createIdentityStep(graph, config, log, { merge: metrics.merge, blocked: metrics.blockedMerge }, shared.pseudonymizer)
  const processor = new BatchProcessor({
    config, codec: shared.codec, mode, log, partitions: shared.partitions,
    checkContract: shared.checkContract,
    segmentable: shared.contracts.segmentableColumns(),
    dedup: shared.stores.dedup,
    identity,
    writer: meteredWriter(clickhouse.writer, metrics),
    observe: (o) => metrics.consumed(o.records, o.skipped, o.deadLetters),
    suppression: shared.suppression, pseudonymizer: shared.pseudonymizer, piiProperties, tombstone,
    existingFacts: (tuples) => clickhouse.existingFacts(tuples),
    publishDeadLetters,
    reassert,
  })
  const analyst = await analystQueryRunner(clickhouse.client, config, shared.contracts)
  // registered after ClickHouse, so it closes before it: kills the analyst queries in flight and
  // closing chDB never waits on one (the HTTP route also cancels them before the listener drains)
  res.add('analyst-queries', () => analyst.cancelAll())
  const groupId = opts.groupId ?? config.kafka.consumerGroup
  let health: ConsumerHealth | undefined
  // a client of its own: the consumer retries without limit (CONSUMER_RETRY), the API's
  // producer keeps its short retries and its callers' deadlines
  const consumerKafka = createKafka(config, log, '', { retry: { ...CONSUMER_RETRY } })
  const members = createMemberRemover(config)
  res.add('member-remover', () => members.close())
  const runner = new ConsumerRunner(consumerKafka, {
    ...consumerOptions(config, groupId),
    removeMember: members.remove,
    onCommit: (partition, next) => { metrics.committed(); health?.committed(partition, next) },
  }, groupBatches(mode, config) ? new GroupedBatches(processor, config.consumer.groupMaxRows) : processor, log)
  const admin = new KafkaAdmin(shared.kafka)
  res.add('consumer-offsets', () => admin.close())
  health = new ConsumerHealth({
    offsets: async () => {
      const [topic, committed] = await Promise.all([admin.topicOffsets(config.kafka.topic), admin.groupOffsets(groupId, config.kafka.topic)])
      return { end: new Map(topic.map((p) => [p.partition, p.high])), start: new Map(topic.map((p) => [p.partition, p.low])), committed }
    },
    assignment: () => runner.assignment,
    setLag: (lag) => metrics.setLag(lag),
    setStalled: (s) => metrics.setStalled(s),
    stallAfterMs: config.consumer.stallAfterMs,
    intervalMs: config.consumer.lagIntervalMs,
    onError: (err) => log.debug({ err: (err as Error).message }, 'cannot read consumer offsets for the lag gauge'),
  })
  const h = health
  const readiness = async (): Promise<Checks> => {
    const ping = await withTimeout(clickhouse.ping(), 2000)
    // consumer: a kafkajs consumer is in the group (false while the runner rejoins after a crash)
    return { clickhouse: ping !== false && ping.ok, consumer: runner.healthy, consumerProgress: h.stalledPartitions().length === 0 }
  }
  const erasures = mode === 'replay' ? undefined : new ErasureWorker({
    config, store: shared.privacy, graph, dedup: shared.stores.dedup, rows: personRows(clickhouse.client, clickhouse.database),
    suppression: shared.suppression, pseudonymizer: shared.pseudonymizer, log,
    identityOfValue: async (value) => { const r = await shared.codec.decode(value); return r.ok ? r.event.identity : undefined },
    tombstones: (keys) => tombstone(keys.map((k) => k.toString('utf8'))),
  }, { pollMs: config.privacy.erasurePollMs, staleMs: config.privacy.erasureStaleMs })
  let registered = false
  let started: Promise<void> | undefined
  return {
    processor, runner, query: analyst, identity, health: h, readiness, erasures,
    start: () => {
      if (!registered) {
        registered = true
        res.add('consumer', () => runner.stop())
        // registered after the runner: stops refreshing before the runner and the admin close
        res.add('consumer-health', () => h.stop())
        // registered after the consumer: stops first, so a run in progress ends before ClickHouse closes
        if (erasures !== undefined) res.add('erasures', () => erasures.stop())
        metrics.consumerStarted()
      }
      started ??= runner.start().then(() => { h.start(); erasures?.start() }, (err: unknown) => { started = undefined; throw err })
      return started
    },
    joined: () => runner.joined,
  }
}

/**
 * Small partition batches are grouped (src/pipeline/grouped.ts) in the live consumer only. A replay
 * keeps one partition batch per insert: a second replay must write nothing, which takes the same
 * dedup tokens as the first, and a group's token depends on what arrived together. (Readers use
 * FINAL, so even a repeated side-table or dead-letter row would not show; replays promise more.)
 */
function groupBatches(mode: ConsumerMode, config: Shared['config']): boolean {
  return mode === 'live' && config.consumer.groupMaxRows > 0
}

/** the writer, timed per table; events rows also feed the written count and end-to-end latency */
function meteredWriter(w: ClickHouseWriter, metrics: Metrics): ClickHouseWriter {
  const timed = <R extends { length: number }, T>(table: string, insert: (rows: R, o: T) => Promise<{ rows: number }>, after?: (rows: R) => void) =>
    async (rows: R, o: T) => {
      const t0 = performance.now()
      const out = await insert(rows, o)
      metrics.inserted(table, rows.length, (performance.now() - t0) / 1000)
      after?.(rows)
      return out
    }
  return {
    insertEvents: timed('events', (r, o) => w.insertEvents(r, o), (rows) =>
      metrics.eventsStored(rows.map((r) => ({ tenant: r.tenant, receivedAtMs: Date.parse(String(r.received_at)) })))),
    insertIdentities: timed('identities', (r, o) => w.insertIdentities(r, o)),
    insertMerges: timed('profile_merges', (r, o) => w.insertMerges(r, o)),
    insertProfileAliases: timed('profile_aliases', (r, o) => w.insertProfileAliases(r, o)),
    insertDeadLetters: timed('dead_letters', (r, o) => w.insertDeadLetters(r, o)),
  }
}
