/**
 * The partition a fact's key belongs on: Kafka's default partitioner for keyed records
 * (Java's BuiltInPartitioner, kafkajs 2.x's DefaultPartitioner, librdkafka's `murmur2_random`).
 *
 * Every copy of a fact (retries, repeats, the consumer's re-assertions) must sit on one partition:
 * that is what lets one consumer decide "first fact wins" for a tuple and what lets compaction keep
 * the right last record. Producers in other languages check themselves against
 * docs/wire/test-vectors.json, which this function generates and the unit tests pin.
 */

const SEED = 0x9747b28c
const M = 0x5bd1e995

/**
 * MurmurHash2, 32-bit, as Kafka's Utils.murmur2: little-endian 4-byte blocks, seed 0x9747b28c.
 * Math.imul keeps every product in signed 32-bit arithmetic, which is what Java's int overflow does.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length
  let h = (SEED ^ length) | 0
  const whole = length - (length % 4)
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M) ^ k
  }
  // the tail: the Java code's switch falls through from 3 to 1
  const rest = length % 4
  if (rest >= 3) h ^= data[whole + 2]! << 16
  if (rest >= 2) h ^= data[whole + 1]! << 8
  if (rest >= 1) h = Math.imul(h ^ data[whole]!, M)
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}

/**
 * The partition Kafka's default partitioner picks for these key bytes: the hash made positive by
 * clearing the sign bit (Utils.toPositive, not Math.abs) modulo the partition count.
 */
export function partitionFor(keyBytes: Uint8Array, numPartitions: number): number {
  if (!Number.isInteger(numPartitions) || numPartitions < 1) throw new RangeError(`partition count must be a positive integer, got ${numPartitions}`)
  return (murmur2(keyBytes) & 0x7fffffff) % numPartitions
}
