/**
 * Micro-batching producer.
 *
 * kafkajs sends each `send()` as its own request and its idempotent producer can lose or reorder
 * messages when sends overlap (kafkajs#1005, #598). So concurrent callers enqueue here; a batch
 * is cut after `lingerMs` or `batchMaxMessages`, and each idempotent producer ("lane") has at most
 * one batch in flight, acks=all. A caller's promise settles when Kafka acknowledged (or
 * refused) its records.
 *
 * A caller that gives up (its deadline passed) can cancel records still waiting in the queue.
 * Records already handed to Kafka cannot be taken back: their outcome arrives later through the
 * ticket's promise, and the caller's bookkeeping (the idempotency claim) waits for it.
 */
import kafkajs, { type Producer, type TopicMessages } from 'kafkajs'
import { CdpError } from '../errors.js'
import type { Config } from '../config/index.js'
import type { KafkaClient } from './client.js'
import { kafkaError } from './errors.js'

// kafkajs is CommonJS: Node's ESM loader exposes its runtime values on the default export only
const { Partitioners } = kafkajs
import type { Logger } from '../observability/logger.js'

export interface OutboundMessage {
  key: Buffer
  value: Buffer
  /** Kafka record headers (dead-letter reasons, re-assertion provenance) */
  headers?: Record<string, string>
}

/** a record for any topic: a dead letter keeps the original's key and value, which may be null */
export interface TopicMessage {
  key: Buffer | null
  value: Buffer | null
  headers?: Record<string, string>
  /** set by callers that must not depend on the client's default partitioner (re-assertions) */
  partition?: number
}

/**
 * Rejections that prove the records never reached Kafka (cancelled while queued, producer closed,
 * no connection to hand them over on). Any other rejection leaves the outcome unknown: the
 * request may have been written and the records appended although no ack came back.
 */
const NOT_SENT = new WeakSet<object>()
function notSent<E extends object>(err: E): E { NOT_SENT.add(err); return err }
/** true when a Ticket's rejection proves its records were never handed to Kafka */
export function wasNotSent(err: unknown): boolean {
  return typeof err === 'object' && err !== null && NOT_SENT.has(err)
}

export interface Ticket {
  /** settles when Kafka acknowledged (resolve) or refused (reject) these records; `wasNotSent(err)`
   *  tells a rejection that proves nothing was written from one whose outcome is unknown */
  readonly done: Promise<void>
  /** drop the records if they have not been handed to Kafka yet; true when dropped */
  cancel(): boolean
}

interface Pending {
  topic: string
  messages: TopicMessage[]
  state: 'queued' | 'sent' | 'cancelled'
  resolve: () => void
  reject: (err: unknown) => void
}

export interface BatchingProducerOptions {
  /** where `send(messages)` goes; `send(topic, messages)` names another topic */
  topic: string
  lingerMs: number
  batchMaxMessages: number
  /** kafka request timeout for one batch */
  timeoutMs: number
  /**
   * Independent idempotent producers ("lanes"), each with at most one batch in flight. One lane
   * is the kafkajs-safe minimum; a second lets the next batch leave while the first waits for
   * its acks, which halves the queueing delay of single-event requests. Records of one request
   * always travel in one batch, so per-tuple order is never split across lanes.
   */
  lanes?: number
}

/** producer settings from config: the service and the direct-producer kit use the same */
export function producerOptions(config: Readonly<Config>): BatchingProducerOptions {
  return {
    topic: config.kafka.topic,
    lingerMs: config.kafka.lingerMs,
    batchMaxMessages: config.kafka.batchMaxMessages,
    timeoutMs: config.kafka.produceTimeoutMs,
    lanes: config.kafka.producerLanes,
  }
}

/** one idempotent kafkajs producer with at most one batch in flight */
class Lane {
  producer: Producer | undefined
  connecting: Promise<Producer> | undefined
  busy: Promise<void> | undefined

  constructor(private readonly kafka: KafkaClient) {}

  get(): Promise<Producer> {
    if (this.producer !== undefined) return Promise.resolve(this.producer)
    this.connecting ??= (async () => {
      // the partitioner named explicitly: keys map to partitions like the Java client's (murmur2),
      // which direct producers in other languages rely on; naming it also ends kafkajs's v2 notice
      const p = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
      try {
        await p.connect()
      } catch (err) {
        this.connecting = undefined
        throw err
      }
      this.producer = p
      this.connecting = undefined
      return p
    })()
    return this.connecting
  }

  /** after a failed idempotent send the sequence numbers may be out of step with the broker; a
   *  fresh producer (new producer id) is the safe way to continue */
  async reset(): Promise<void> {
    const p = this.producer
    this.producer = undefined
    if (p !== undefined) await p.disconnect().catch(() => undefined)
  }
}

export class BatchingProducer {
  private readonly lanes: Lane[]
  private queue: Pending[] = []
  private queuedMessages = 0
  private timer: NodeJS.Timeout | undefined
  private closed = false
  /** batches sent, for metrics and benchmarks */
  batches = 0

  constructor(kafka: KafkaClient, private readonly opts: BatchingProducerOptions, private readonly log: Logger) {
    this.lanes = Array.from({ length: Math.max(1, opts.lanes ?? 1) }, () => new Lane(kafka))
  }

  async connect(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.get()))
  }

  /**
   * Queue records for the default topic, or for `topic` (dead letters, re-assertions): every
   * record of the service leaves through this one producer, so no two idempotent sends overlap.
   * Records of one call travel in one request, in order.
   */
  send(messages: OutboundMessage[]): Ticket
  send(topic: string, messages: TopicMessage[]): Ticket
  send(topicOrMessages: string | OutboundMessage[], maybeMessages?: TopicMessage[]): Ticket {
    const topic = typeof topicOrMessages === 'string' ? topicOrMessages : this.opts.topic
    const messages: TopicMessage[] = typeof topicOrMessages === 'string' ? maybeMessages ?? [] : topicOrMessages
    if (this.closed) {
      return { done: Promise.reject(notSent(new CdpError('kafka_unavailable', 'producer is shutting down', { retryAfter: 1 }))), cancel: () => false }
    }
    let entry!: Pending
    const done = new Promise<void>((resolve, reject) => {
      entry = { topic, messages, state: 'queued', resolve, reject }
    })
    this.queue.push(entry)
    this.queuedMessages += messages.length
    this.schedule()
    return {
      done,
      cancel: () => {
        if (entry.state !== 'queued') return false
        entry.state = 'cancelled'
        this.queuedMessages -= entry.messages.length
        entry.reject(notSent(new CdpError('timeout', 'cancelled before it was sent')))
        return true
      },
    }
  }

  private freeLane(): Lane | undefined {
    return this.lanes.find((l) => l.busy === undefined)
  }

  private schedule(): void {
    if (this.freeLane() === undefined) return // a lane picks the queue up when its batch ends
    if (this.queuedMessages >= this.opts.batchMaxMessages || this.opts.lingerMs === 0) {
      this.flushNow()
      return
    }
    this.timer ??= setTimeout(() => { this.timer = undefined; this.flushNow() }, this.opts.lingerMs)
  }

  private flushNow(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined }
    const lane = this.freeLane()
    if (lane === undefined) return
    const batch: Pending[] = []
    let count = 0
    while (this.queue.length > 0) {
      const next = this.queue[0]!
      if (next.state === 'cancelled') { this.queue.shift(); continue }
      if (count > 0 && count + next.messages.length > this.opts.batchMaxMessages) break
      this.queue.shift()
      next.state = 'sent'
      this.queuedMessages -= next.messages.length
      count += next.messages.length
      batch.push(next)
    }
    if (batch.length === 0) return
    lane.busy = this.sendBatch(lane, batch).finally(() => {
      lane.busy = undefined
      if (this.queue.length > 0) this.schedule()
    })
  }

  private async sendBatch(lane: Lane, batch: Pending[]): Promise<void> {
    this.batches++
    let producer: Producer
    try {
      producer = await lane.get()
    } catch (err) {
      // no connection: nothing was handed to Kafka, the callers may release what they hold
      const cdp = notSent(kafkaError(err, 'cannot connect a producer to Kafka'))
      for (const p of batch) p.reject(cdp)
      this.log.warn({ err: (err as Error).message }, 'kafka producer cannot connect; batch not sent')
      return
    }
    try {
      // one request for all topics of the batch; each topic's records keep their queue order
      const byTopic = new Map<string, TopicMessages>()
      for (const p of batch) {
        let t = byTopic.get(p.topic)
        if (t === undefined) { t = { topic: p.topic, messages: [] }; byTopic.set(p.topic, t) }
        t.messages.push(...p.messages)
      }
      await producer.sendBatch({ acks: -1, timeout: this.opts.timeoutMs, topicMessages: [...byTopic.values()] })
      for (const p of batch) p.resolve()
    } catch (err) {
      const cdp = kafkaError(err, 'Kafka did not acknowledge the records')
      for (const p of batch) p.reject(cdp)
      await lane.reset()
      this.log.warn({ err: (err as Error).message }, 'kafka batch failed; producer reset')
    }
  }

  /** Send what is queued, wait for it, then disconnect. */
  async close(): Promise<void> {
    this.closed = true
    for (;;) {
      this.flushNow()
      const busy = this.lanes.map((l) => l.busy).filter((b): b is Promise<void> => b !== undefined)
      if (busy.length === 0 && this.queue.every((p) => p.state === 'cancelled')) break
      await Promise.all(busy)
    }
    await Promise.all(this.lanes.map((l) => l.reset()))
  }
}
