/**
 * Partition step: a fact is only taken from the partition Kafka's default partitioner (murmur2 of
 * the key bytes, src/avro/partition.ts) names for the topic's partition count.
 *
 * Why enforce it: one partition per key is what makes one consumer the judge of "first fact wins"
 * for a tuple, and what lets compaction keep the right last record. A record on another partition
 * (librdkafka's default `consistent_random` is CRC32, not murmur2) would be judged by another
 * consumer, in another order, and a later record under its key could never replace it.
 *
 * Why dead-letter rather than forward to the right partition: a forwarded copy would land after
 * records produced later on the right partition, so "first" would depend on when the consumer got
 * round to forwarding; the wrong record would stay on its partition for good (compaction keeps the
 * last record per key per partition) and need forwarding again, idempotently, on every replay; and
 * the producer would never learn that its partitioner is wrong. Dead-lettered, the producer sees
 * `wrong_partition` with the partition to use, fixes its partitioner and sends again; the tuple is
 * still free (the dedup store never saw it), so the resent fact is stored as the first.
 */
import type { FactKey } from '../avro/key.js'
import { partitionFor } from '../avro/partition.js'
import type { InboundRecord } from '../kafka/consumer.js'
import type { ProcessorDeps } from './deps.js'
import { deadLetter, ok, type Outcome } from './outcome.js'

export function partitionStep(deps: Pick<ProcessorDeps, 'partitions'>): (record: InboundRecord, key: FactKey) => Outcome<FactKey> {
  return (record, key) => {
    const expected = partitionFor(key.bytes, deps.partitions)
    if (record.partition === expected) return ok(key)
    return deadLetter({
      record, key, tenant: key.tenant, reason: 'wrong_partition',
      message: `record is on partition ${record.partition}, but murmur2 of its key names partition ${expected} of ${deps.partitions}: `
        + 'produce with the default (murmur2) partitioner (librdkafka: partitioner=murmur2_random)',
    })
  }
}
