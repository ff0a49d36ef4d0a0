/**
 * A BatchingProducer lane over @platformatic/kafka: one idempotent producer (acks=all, one request
 * in flight per connection), sending each batch of the lane as one `send`.
 *
 * Two things differ from kafkajs and are pinned here on purpose:
 * - Partitioning. The library's default partitioner keeps a hashed key's unsigned value
 *   (`murmur2 >>> 0`), which places about half of all keys on another partition than Java,
 *   kafkajs and librdkafka (`& 0x7fffffff`). The consumer dead-letters a record found on the wrong
 *   partition, so keys go through src/avro/partition.ts's murmur2 (the one the wire test vectors
 *   pin); the library then takes it modulo the partition count, as `partitionFor` does.
 * - Retries. An idempotent producer of this library retries forever unless told otherwise; ours
 *   retries a few times (the same producer id and sequence numbers, which the broker
 *   de-duplicates), then fails the batch so the caller's deadline holds, and the lane starts over
 *   with a new producer id.
 */
import { readFileSync } from 'node:fs'
import {
  MultipleErrors, ProtocolError, Producer, TimeoutError,
  type MessageToProduce, type ProducerOptions, type SASLOptions,
} from '@platformatic/kafka'
import type { Config } from '../../config/index.js'
import { murmur2 } from '../../avro/partition.js'
import { tlsOptions } from '../client.js'
import type { LaneSender, TopicBatch } from '../lane.js'

export interface PlatformaticSenderOptions {
  clientId: string
  brokers: string[]
  connectTimeoutMs: number
  /** how long the client waits for one broker response */
  requestTimeoutMs: number
  /** the broker-side acks=all timeout of a Produce request */
  produceTimeoutMs: number
  sasl?: SASLOptions
  tls?: ReturnType<typeof tlsOptions>
  /** tests replace the library's producer with a fake */
  create?: (options: ProducerOptions<Buffer, Buffer, Buffer, Buffer>) => PlatformaticProducerLike
}

/** the part of the library's Producer a lane uses */
export interface PlatformaticProducerLike {
  initIdempotentProducer(options: object): Promise<unknown>
  send(options: { messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] }): Promise<unknown>
  close(force?: boolean): Promise<void>
}

/** the producer settings from config (TLS files are read here, once per process) */
export function platformaticSenderOptions(config: Readonly<Config>, read?: (path: string) => string): PlatformaticSenderOptions {
  const k = config.kafka
  const out: PlatformaticSenderOptions = {
    clientId: k.clientId,
    brokers: [...k.brokers],
    connectTimeoutMs: k.connectionTimeoutMs,
    // the same as the kafkajs client's requestTimeout (src/kafka/client.ts)
    requestTimeoutMs: Math.max(k.produceTimeoutMs, 5000),
    produceTimeoutMs: k.produceTimeoutMs,
  }
  const tls = tlsOptions(k.tls, read)
  if (tls !== undefined) out.tls = tls
  if (k.sasl != null) {
    // the library names mechanisms as the Kafka protocol does (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
    out.sasl = { mechanism: k.sasl.mechanism.toUpperCase() as SASLOptions['mechanism'], username: k.sasl.username, password: k.sasl.password }
  }
  return out
}

/** keyed records: Kafka's default partitioner, before the modulo the library applies */
let roundRobin = 0
export function javaCompatiblePartition(message: { partition?: number }, key: Buffer | undefined): number {
  if (typeof message.partition === 'number') return message.partition
  // a null key (a dead letter of a record that had none) may go anywhere: spread them
  if (key === undefined || key === null) return (roundRobin = (roundRobin + 1) & 0x7fffffff)
  return murmur2(key) & 0x7fffffff
}

const toHeaders = (headers: Record<string, string>): Map<Buffer, Buffer> => {
  const out = new Map<Buffer, Buffer>()
  for (const [k, v] of Object.entries(headers)) out.set(Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8'))
  return out
}

export class PlatformaticSender implements LaneSender {
  private readonly producer: PlatformaticProducerLike

  constructor(opts: PlatformaticSenderOptions) {
    const options: ProducerOptions<Buffer, Buffer, Buffer, Buffer> = {
      clientId: opts.clientId,
      bootstrapBrokers: opts.brokers,
      idempotent: true,
      acks: -1,
      autocreateTopics: false,
      partitioner: javaCompatiblePartition,
      connectTimeout: opts.connectTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      timeout: opts.produceTimeoutMs,
      // short, bounded retries like the kafkajs client's: callers own the overall deadline
      retries: 3,
      retryDelay: (_client, _op, attempt) => Math.min(1000, 100 * 2 ** Math.max(0, attempt - 1)),
      ...(opts.sasl === undefined ? {} : { sasl: opts.sasl }),
      ...(opts.tls === undefined ? {} : { tls: opts.tls }),
    }
    this.producer = opts.create !== undefined ? opts.create(options) : new Producer(options)
  }

  /** obtains the producer id, which also proves the cluster is reachable */
  async connect(): Promise<void> {
    await this.producer.initIdempotentProducer({})
  }

  async send(batch: TopicBatch[], _timeoutMs: number): Promise<void> {
    // the Produce timeout was fixed at construction (the library takes it per producer)
    const messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[] = []
    for (const { topic, messages: records } of batch) {
      for (const m of records) {
        const out: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = { topic }
        if (m.key !== null) out.key = m.key
        if (m.value !== null) out.value = m.value
        if (m.headers !== undefined) out.headers = toHeaders(m.headers)
        if (m.partition !== undefined) out.partition = m.partition
        messages.push(out)
      }
    }
    await this.producer.send({ messages })
  }

  close(): Promise<void> {
    return this.producer.close(true)
  }
}

/** the library's errors, flattened (a MultipleErrors holds one error per try) */
function leaves(err: unknown, out: unknown[] = [], depth = 0): unknown[] {
  if (depth <= 8 && (err instanceof MultipleErrors || err instanceof AggregateError)) {
    for (const e of (err as AggregateError).errors) leaves(e, out, depth + 1)
  } else {
    out.push(err)
  }
  return out
}

/** broker answers that mean the records may be in the log although the request failed */
const MAYBE_WRITTEN = new Set(['REQUEST_TIMED_OUT', 'NOT_ENOUGH_REPLICAS_AFTER_APPEND'])
/** socket errors that happen before a byte of the request left */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])

const codeOf = (e: unknown): unknown => (e as { code?: unknown } | null)?.code

/** one try's error: could the records have reached the log? */
function tryMayHaveWritten(e: unknown): boolean {
  if (e instanceof TimeoutError) return true
  if (e instanceof ProtocolError) return MAYBE_WRITTEN.has(String((e as { apiId?: unknown }).apiId))
  const code = codeOf(e)
  // the library refused the input, or the producer was closed: raised before anything is sent
  if (code === 'PLT_KFK_USER' || (e as { closed?: unknown }).closed === true) return false
  if (code === 'PLT_KFK_NETWORK') {
    const cause = (e as { cause?: unknown }).cause
    const causeCode = codeOf(cause)
    return !(typeof causeCode === 'string' && NEVER_CONNECTED.has(causeCode))
  }
  return true
}

/**
 * Whether a failed send may still have been written. Every try of the batch is considered (the
 * library retries): one try that timed out or lost its connection after writing leaves the
 * outcome unknown; a broker refusal or a connection never made means nothing was written. Either
 * way the records' code is kafka_unavailable (retriable: the consumer's first-fact-wins keeps a
 * retried duplicate out of ClickHouse), and the message says which.
 */
export function platformaticOutcome(err: unknown): 'not_written' | 'unknown' {
  return leaves(err).some(tryMayHaveWritten) ? 'unknown' : 'not_written'
}

/** the message of a failed batch's CdpError */
export function platformaticFailure(err: unknown): string {
  return platformaticOutcome(err) === 'unknown'
    ? 'Kafka did not acknowledge the records (they may have been written)'
    : 'Kafka did not accept the records (nothing was written)'
}
