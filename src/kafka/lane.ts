/** What the batching producer (producer.ts) and each library's lane (kafkajs, platformatic/) share. */

/** a record for any topic: a dead letter keeps the original's key and value, which may be null */
export interface TopicMessage {
  key: Buffer | null
  value: Buffer | null
  headers?: Record<string, string>
  /** set by callers that must not depend on the client's default partitioner (re-assertions) */
  partition?: number
}

/** the records of one batch for one topic, in queue order */
export interface TopicBatch {
  topic: string
  messages: TopicMessage[]
}

/**
 * What a lane needs from a Kafka library: one idempotent producer (acks=all) that sends one
 * batch at a time. `connect` obtains the producer id, so a start-up against an unreachable
 * cluster fails there; `close` is also how a lane starts over after a failed batch.
 */
export interface LaneSender {
  connect(): Promise<void>
  send(batch: TopicBatch[], timeoutMs: number): Promise<void>
  close(): Promise<void>
}
