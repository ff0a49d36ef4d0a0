/**
 * The batching producer over each Kafka library, against the real broker: keys land on the
 * partition Kafka's default partitioner picks (src/avro/partition.ts, which the consumer checks
 * and dead-letters against), explicit partitions are kept, headers and null values arrive, and
 * per-partition order follows send order.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { testConfig } from '../helpers/config.js'
import { tapTopics } from '../helpers/topic.js'
import { BatchingProducer, createKafka, ensureTopics, producerOptions } from '../../src/kafka/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { partitionFor } from '../../src/avro/partition.js'

for (const client of ['kafkajs', 'platformatic'] as const) {
  void t.test(`${client}: murmur2 partitions, explicit partitions, headers, order per partition`, async (t) => {
    // 7 partitions: the unsigned hash (x >>> 0) and Java's (x & 0x7fffffff) differ modulo 7;
    // one lane, so order across sends is defined (two lanes may overtake each other by design)
    const cfg = testConfig(t, { kafka: { client, partitions: 7, lingerMs: 1, batchMaxMessages: 50, producerLanes: 1 } })
    const log = createLogger({ logLevel: 'silent' })
    const kafka = createKafka(cfg, log, '-test-clients')
    await ensureTopics(kafka, cfg)
    const producer = new BatchingProducer(kafka, producerOptions(cfg), log)
    await producer.connect()
    t.teardown(() => producer.close())

    const keys = Array.from({ length: 120 }, () => randomBytes(1 + Math.floor(Math.random() * 40)))
    // several sends per key group so one partition receives records from many batches
    const tickets = []
    for (let i = 0; i < keys.length; i += 10) {
      tickets.push(producer.send(keys.slice(i, i + 10).map((key, j) => ({ key, value: Buffer.from(String(i + j)), headers: { seq: String(i + j) } }))))
    }
    tickets.push(producer.send(cfg.kafka.topic, [{ key: Buffer.from('pinned'), value: null, partition: 5, headers: { why: 'explicit' } }]))
    tickets.push(producer.send(cfg.kafka.deadLetterTopic, [{ key: null, value: Buffer.from('no key') }]))
    await Promise.all(tickets.map((x) => x.done))

    const tap = await tapTopics(t, cfg, [cfg.kafka.topic, cfg.kafka.deadLetterTopic])
    const all = await tap.until('every record', (seen) => (seen.length >= keys.length + 2 ? seen : undefined))
    const events = all.filter((r) => r.topic === cfg.kafka.topic && r.headers.seq !== undefined)
    t.equal(events.length, keys.length)
    const misplaced = events.filter((r) => r.partition !== partitionFor(r.key!, 7))
    t.equal(misplaced.length, 0, 'every keyed record on partitionFor(key)')
    const pinned = all.find((r) => r.key?.toString() === 'pinned')
    t.equal(pinned?.partition, 5, 'explicit partition kept')
    t.equal(pinned?.value, null, 'a null value stays null')
    t.equal(pinned?.headers.why, 'explicit', 'headers arrive')
    const dead = all.find((r) => r.topic === cfg.kafka.deadLetterTopic)
    t.equal(dead?.key, null, 'a null key stays null')
    t.equal(dead?.value?.toString(), 'no key')
    for (let p = 0; p < 7; p++) {
      const seqs = events.filter((r) => r.partition === p).sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset))).map((r) => Number(r.headers.seq))
      t.same(seqs, [...seqs].sort((a, b) => a - b), `partition ${p}: offsets follow send order`)
    }
  })
}
