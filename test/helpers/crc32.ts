/**
 * CRC-32 (IEEE) of bytes: librdkafka's default `consistent_random` partitioner places a keyed
 * record on crc32(key) % partitions. The tests use it to play a producer that does not use
 * Kafka's murmur2, which the consumer must refuse (wrong_partition).
 */
export function crc32(buf: Uint8Array): number {
  let c = ~0
  for (const b of buf) {
    c ^= b
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1))
  }
  return ~c >>> 0
}
