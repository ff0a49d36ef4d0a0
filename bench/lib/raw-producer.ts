/**
 * The raw producer of each Kafka client: idempotent, acks=all, one send in flight, no batching
 * layer, no HTTP. It is the produce ceiling every bench compares a stage against
 * (bench/kafka-clients.ts compares the two clients with it; bench/api.ts uses the chosen one).
 */
import kafkajs from 'kafkajs'
import { Producer } from '@platformatic/kafka'
import type { Config } from '../../src/config/index.js'
import type { KafkaClient } from '../../src/kafka/index.js'
import { javaCompatiblePartition, platformaticSenderOptions } from '../../src/kafka/platformatic/producer.js'

export type RawClient = 'kafkajs' | 'platformatic'

export interface RawProducer {
  /** one request: every record of `messages` to `topic`, resolved on the broker's ack */
  send(topic: string, messages: { key: Buffer; value: Buffer }[]): Promise<void>
  close(): Promise<void>
}

export async function openRawProducer(client: RawClient, kafka: KafkaClient, config: Readonly<Config>): Promise<RawProducer> {
  if (client === 'kafkajs') {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: kafkajs.Partitioners.DefaultPartitioner })
    await producer.connect()
    return {
      send: async (topic, messages) => { await producer.send({ topic, acks: -1, messages }) },
      close: () => producer.disconnect(),
    }
  }
  const o = platformaticSenderOptions(config)
  // the partitioner the lanes use: the library's default (BigInt murmur2) places keys elsewhere
  const producer = new Producer({ clientId: o.clientId, bootstrapBrokers: o.brokers, idempotent: true, acks: -1, retries: 3, partitioner: javaCompatiblePartition, autocreateTopics: false })
  await producer.initIdempotentProducer({})
  return {
    send: async (topic, messages) => { await producer.send({ messages: messages.map((m) => ({ topic, key: m.key, value: m.value })) }) },
    close: async () => { await producer.close(true) },
  }
}
