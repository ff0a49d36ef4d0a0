/**
 * Direct-producer kit: how an internal service writes facts straight to the events topic so the
 * consumer treats them exactly like facts accepted over HTTP (docs/DIRECT-PRODUCERS.md).
 *
 *   key    UTF-8 JSON array [tenant, source, externalEventId]       (src/avro/key.ts)
 *   value  Confluent wire format: 0, schema id (4 bytes BE), Avro     (<topic>-value subject)
 *   send   idempotent producer, acks=-1, concurrent calls batched     (src/kafka/producer.ts)
 *
 * What this kit does not do: check contracts, identities or duplicates. The consumer does that
 * for every record, whoever wrote it, and dead-letters what fails; a record this kit sends is
 * not "pre-validated" and nothing downstream trusts it more.
 *
 * The schema id is looked up, never registered: a direct producer must not evolve the value
 * schema (that is the service's release, under the subject's compatibility rule). The id is the
 * one this registry holds for the schema text in avro/cdp-event.avsc; ids differ per registry,
 * so none is ever hard-coded.
 */
import { SchemaType } from '@kafkajs/confluent-schema-registry'
import { loadConfig, type Config } from '../config/index.js'
import { CdpError } from '../errors.js'
import { SchemaCodec, registryError, valueSchemaText, valueSubject } from '../avro/codec.js'
import { keyString } from '../avro/key.js'
import { BatchingProducer, createKafka, kafkaError, producerOptions, readTopicSettings, type OutboundMessage, type Ticket } from '../kafka/index.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { buildRecord, wireEncoder, type BuildOptions, type DirectEvent, type ValueEncoder } from './record.js'

export * from './record.js'

/** Anything that sends records in order and tells when Kafka acknowledged them (BatchingProducer). */
export interface RecordSender {
  send(messages: OutboundMessage[]): Ticket
}

export interface SentFact {
  eventId: string
  /** the dedup key, as the state stores and the dead_letters table show it */
  key: string
  fingerprint: string
}

export class DirectProducer {
  constructor(
    private readonly sender: RecordSender,
    private readonly encoder: ValueEncoder,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {}

  /** the registry id the values are written under */
  get schemaId(): number {
    return this.encoder.schemaId
  }

  /**
   * Resolves when Kafka acknowledged the record (acks=-1). A rejection (CdpError
   * kafka_unavailable) means the outcome may be unknown: send the same fact again, with the same
   * externalEventId and payload; the consumer stores it once.
   */
  async send(event: DirectEvent, opts: BuildOptions = {}): Promise<SentFact> {
    const [r] = await this.sendBuilt([event], () => opts)
    return r as SentFact
  }

  /** One ticket for all: in order, one partition batch per partition, acknowledged together. */
  async sendMany(events: DirectEvent[], opts: Omit<BuildOptions, 'eventId'> = {}): Promise<SentFact[]> {
    const now = opts.now ?? Date.now()
    return this.sendBuilt(events, () => ({ now }))
  }

  private async sendBuilt(events: DirectEvent[], optsOf: (i: number) => BuildOptions): Promise<SentFact[]> {
    if (events.length === 0) return []
    // build everything first: one bad input refuses the call before anything is sent
    const built = events.map((e, i) => buildRecord(e, this.encoder, optsOf(i)))
    await this.sender.send(built.map((b) => ({ key: b.key, value: b.value }))).done
    return built.map((b) => ({ eventId: b.event.eventId, key: keyString(b.event), fingerprint: b.fingerprint }))
  }

  /** sends what is queued, then disconnects what this producer created */
  async close(): Promise<void> {
    await this.onClose()
  }
}

/** A direct producer over what a service already has: a batching producer and an encoder (a SchemaCodec after init()). */
export function directProducerOver(sender: RecordSender, encoder: ValueEncoder): DirectProducer {
  return new DirectProducer(sender, encoder)
}

/** The id this registry holds for avro/cdp-event.avsc under `<topic>-value`. */
export async function lookupValueSchemaId(codec: SchemaCodec, topic: string): Promise<number> {
  const subject = valueSubject(topic)
  try {
    return await codec.registry.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema: valueSchemaText() })
  } catch (err) {
    const e = err as { status?: number; name?: string; message?: string }
    if (e.status === 404 || e.name === 'ConfluentSchemaRegistryError') {
      throw new CdpError('contract_incompatible',
        `the value schema of this build is not registered under ${subject}: start the service once (it registers it), ` +
        'or update this producer to the schema the service uses', { cause: err })
    }
    throw registryError(err, `looking up the schema id under ${subject}`)
  }
}

export interface DirectProducerOptions {
  brokers: string[]
  topic: string
  /** Confluent-compatible base URL, e.g. http://127.0.0.1:18081/apis/ccompat/v7 */
  registryUrl: string
  clientId?: string
  /** micro-batching: how long concurrent sends are collected (default 2 ms) */
  lingerMs?: number
  batchMaxMessages?: number
  /** how long Kafka may take to acknowledge one batch (default 5000 ms) */
  timeoutMs?: number
  logger?: Logger
}

/**
 * Connects a direct producer: checks the topic exists and is compacted, looks up the value
 * schema id, connects an idempotent producer. Close it when done.
 */
export async function createDirectProducer(opts: DirectProducerOptions): Promise<DirectProducer> {
  // the service's own config schema checks the options; an empty env keeps the caller's process
  // environment out of it (this is a library call, the caller already chose its settings)
  const config: Readonly<Config> = loadConfig({
    env: {},
    overrides: {
      kafka: {
        brokers: opts.brokers, topic: opts.topic,
        // the kit is for services that already run kafkajs: it keeps that client for its lanes
        client: 'kafkajs',
        ...(opts.clientId === undefined ? { clientId: 'cdp-direct-producer' } : { clientId: opts.clientId }),
        ...(opts.lingerMs === undefined ? {} : { lingerMs: opts.lingerMs }),
        ...(opts.batchMaxMessages === undefined ? {} : { batchMaxMessages: opts.batchMaxMessages }),
        ...(opts.timeoutMs === undefined ? {} : { produceTimeoutMs: opts.timeoutMs }),
      },
      schemaRegistry: { url: opts.registryUrl },
    },
  })
  // failures reach the caller as rejected sends, so the default logger only shows errors
  const log = opts.logger ?? createLogger({ logLevel: 'error' }, 'cdp-direct-producer')
  const kafka = createKafka(config, log)

  let settings: Awaited<ReturnType<typeof readTopicSettings>>
  try {
    settings = await readTopicSettings(kafka, config.kafka.topic)
  } catch (err) {
    throw kafkaError(err, `cannot read topic ${config.kafka.topic} on ${config.kafka.brokers.join(',')}`)
  }
  // writing facts to a topic that deletes by time would lose them for replays
  if ((settings.configs['cleanup.policy'] ?? '') !== 'compact') {
    throw new CdpError('topic_misconfigured',
      `topic ${config.kafka.topic} has cleanup.policy ${String(settings.configs['cleanup.policy'])}, expected compact: is this the CDP events topic?`)
  }

  const codec = new SchemaCodec(config.schemaRegistry)
  const schemaId = await lookupValueSchemaId(codec, config.kafka.topic)
  const producer = new BatchingProducer(kafka, producerOptions(config), log)
  await producer.connect().catch((err: unknown) => { throw kafkaError(err, `cannot connect a producer to ${config.kafka.brokers.join(',')}`) })
  return new DirectProducer(producer, wireEncoder(codec.readerType, schemaId), () => producer.close())
}
