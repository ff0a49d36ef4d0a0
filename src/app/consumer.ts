/**
 * The consumer of a process: events topic -> decode/check -> dedup -> identity -> ClickHouse.
 * Dead letters and re-assertions leave through the shared batching producer (never a second
 * idempotent producer next to it: overlapping idempotent sends are kafkajs#1005).
 * `replay` writes the facts a fresh ClickHouse lacks (cdp replay).
 */
import { createIdentityGraph } from '../identity/index.js'
import { partitionFor } from '../avro/partition.js'
import { analystQueryRunner } from '../clickhouse/index.js'
import { CONSUMER_RETRY, ConsumerRunner, consumerOptions, createKafka, createMemberRemover, fetchRecords, type TopicMessage } from '../kafka/index.js'
import type { QueryRunner } from '../http/routes/query.js'
import { BatchProcessor, type DeadLetter } from '../pipeline/processor.js'
import { createIdentityStep } from '../pipeline/identity-step.js'
import type { IdentityStep } from '../pipeline/deps.js'
import type { Shared } from './shared.js'

export type ConsumerMode = 'live' | 'replay'

export interface Consumer {
  processor: BatchProcessor
  runner: ConsumerRunner
  /** read-only SQL over this process's ClickHouse (POST /v1/cdp/query, tests) */
  query: QueryRunner
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

  const identity = createIdentityStep(graph, config, log)
  const processor = new BatchProcessor({
    config, codec: shared.codec, mode, log, partitions: shared.partitions,
    checkContract: shared.checkContract,
    segmentable: shared.contracts.segmentableColumns(),
    dedup: shared.stores.dedup,
    identity,
    writer: clickhouse.writer,
    existingFacts: (tuples) => clickhouse.existingFacts(tuples),
    publishDeadLetters,
    reassert,
  })
  const analyst = await analystQueryRunner(clickhouse.client, config, shared.contracts)
  // registered after ClickHouse, so it closes before it: kills the analyst queries in flight and
  // closing chDB never waits on one (the HTTP route also cancels them before the listener drains)
  res.add('analyst-queries', () => analyst.cancelAll())
  // a client of its own: the consumer retries without limit (CONSUMER_RETRY), the API's
  // producer keeps its short retries and its callers' deadlines
  const consumerKafka = createKafka(config, log, '', { retry: { ...CONSUMER_RETRY } })
  const members = createMemberRemover(config)
  res.add('member-remover', () => members.close())
  const runner = new ConsumerRunner(consumerKafka, { ...consumerOptions(config, opts.groupId), removeMember: members.remove }, processor, log)
  let registered = false
  let started: Promise<void> | undefined
  return {
    processor, runner, query: analyst, identity,
    start: () => {
      if (!registered) { registered = true; res.add('consumer', () => runner.stop()) }
      started ??= runner.start().catch((err: unknown) => { started = undefined; throw err })
      return started
    },
    joined: () => runner.joined,
  }
}
