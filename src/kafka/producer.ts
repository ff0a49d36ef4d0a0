/**
 * Micro-batching producer.
 *
 * The lanes run over kafkajs or @platformatic/kafka (`kafka.client`; measured side by side in
 * bench/kafka-clients.ts); everything above the lane (queue, batching, tickets) is shared.
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
import type { LaneSender, TopicBatch, TopicMessage } from './lane.js'
import { PlatformaticSender, platformaticFailure, platformaticSenderOptions, type PlatformaticSenderOptions } from './platformatic/producer.js'

// kafkajs is CommonJS: Node's ESM loader exposes its runtime values on the default export only
const { Partitioners } = kafkajs
import type { Logger } from '../observability/logger.js'

export type { LaneSender, TopicBatch, TopicMessage } from './lane.js'

export interface OutboundMessage {
  key: Buffer
  value: Buffer
  /** Kafka record headers (dead-letter reasons, re-assertion provenance) */
  headers?: Record<string, string>
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
  /** set: the lanes use @platformatic/kafka with these settings; unset: kafkajs over `kafka` */
  platformatic?: PlatformaticSenderOptions
  /** called after each produce request with its record count, duration and result (metrics) */
  onBatch?: (records: number, seconds: number, ok: boolean) => void
}

/** producer settings from config: the service and the direct-producer kit use the same */
export function producerOptions(config: Readonly<Config>): BatchingProducerOptions {
  return {
    topic: config.kafka.topic,
    lingerMs: config.kafka.lingerMs,
    batchMaxMessages: config.kafka.batchMaxMessages,
    timeoutMs: config.kafka.produceTimeoutMs,
    lanes: config.kafka.producerLanes,
    ...(config.kafka.client === 'platformatic' ? { platformatic: platformaticSenderOptions(config) } : {}),
  }
}

/** kafkajs: `sendBatch` carries every topic of the batch in one Produce request */
class KafkajsSender implements LaneSender {
  private readonly producer: Producer

  constructor(kafka: KafkaClient) {
    // the partitioner named explicitly: keys map to partitions like the Java client's (murmur2),
    // which direct producers in other languages rely on; naming it also ends kafkajs's v2 notice
    this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner })
  }

  connect(): Promise<void> { return this.producer.connect() }

  async send(batch: TopicBatch[], timeoutMs: number): Promise<void> {
    await this.producer.sendBatch({ acks: -1, timeout: timeoutMs, topicMessages: batch as TopicMessages[] })
  }

  close(): Promise<void> { return this.producer.disconnect() }
}

/** one idempotent producer with at most one batch in flight */
class Lane {
  sender: LaneSender | undefined
  connecting: Promise<LaneSender> | undefined
  busy: Promise<void> | undefined

  constructor(private readonly create: () => LaneSender) {}

  get(): Promise<LaneSender> {
    if (this.sender !== undefined) return Promise.resolve(this.sender)
    this.connecting ??= (async () => {
      const s = this.create()
      try {
        await s.connect()
      } catch (err) {
        this.connecting = undefined
        await s.close().catch(() => undefined)
        throw err
      }
      this.sender = s
      this.connecting = undefined
      return s
    })()
    return this.connecting
  }

  /** after a failed idempotent send the sequence numbers may be out of step with the broker; a
   *  fresh producer (new producer id) is the safe way to continue */
  async reset(): Promise<void> {
    const s = this.sender
    this.sender = undefined
    if (s !== undefined) await s.close().catch(() => undefined)
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
    const platformatic = opts.platformatic
    const create = platformatic === undefined ? () => new KafkajsSender(kafka) : () => new PlatformaticSender(platformatic)
    this.lanes = Array.from({ length: Math.max(1, opts.lanes ?? 1) }, () => new Lane(create))
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
    const started = performance.now()
    const records = batch.reduce((n, p) => n + p.messages.length, 0)
    const report = (ok: boolean) => this.opts.onBatch?.(records, (performance.now() - started) / 1000, ok)
    let sender: LaneSender
    try {
      sender = await lane.get()
    } catch (err) {
      // no connection: nothing was handed to Kafka, the callers may release what they hold
      report(false)
      const cdp = notSent(kafkaError(err, 'cannot connect a producer to Kafka'))
      for (const p of batch) p.reject(cdp)
      this.log.warn({ err: (err as Error).message }, 'kafka producer cannot connect; batch not sent')
      return
    }
    try {
      // one request for all topics of the batch; each topic's records keep their queue order
      const byTopic = new Map<string, TopicBatch>()
      for (const p of batch) {
        let t = byTopic.get(p.topic)
        if (t === undefined) { t = { topic: p.topic, messages: [] }; byTopic.set(p.topic, t) }
        t.messages.push(...p.messages)
      }
      await sender.send([...byTopic.values()], this.opts.timeoutMs)
      report(true)
      for (const p of batch) p.resolve()
    } catch (err) {
      report(false)
      const cdp = kafkaError(err, this.opts.platformatic === undefined ? 'Kafka did not acknowledge the records' : platformaticFailure(err))
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
