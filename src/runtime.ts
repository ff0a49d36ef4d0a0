/**
 * Builds the service's dependencies from config, each with its close path, in one place:
 * state stores, contracts, schema codec, Kafka producer, ingest core, ClickHouse, consumer.
 * server.ts and the CLI call this; tests build the same graph with their own config.
 */
import type { Config } from './config/index.js'
import { CdpError } from './errors.js'
import type { Logger } from './observability/logger.js'
import { createStateStores } from './state/index.js'
import type { StateStores } from './state/types.js'
import { loadContracts, type ContractRegistry } from './contracts/registry.js'
import { validateProperties } from './contracts/validate.js'
import { validateIdentity } from './identity/normalize.js'
import { SchemaCodec } from './avro/codec.js'
import { createKafka } from './kafka/client.js'
import { ensureTopics } from './kafka/admin.js'
import { BatchingProducer } from './kafka/producer.js'
import { IngestService } from './ingest/service.js'
import { KeyVerifier } from './auth/keys.js'
import type { Kafka } from 'kafkajs'

export interface Closer { name: string; close: () => Promise<void> }

export class Resources {
  private closers: Closer[] = []
  add(name: string, close: () => Promise<void>): void { this.closers.push({ name, close }) }
  /** closes in reverse order of creation; every closer runs even when one fails */
  async close(log?: Logger): Promise<void> {
    for (const c of this.closers.reverse()) {
      try { await c.close() } catch (err) { log?.warn({ err: (err as Error).message, resource: c.name }, 'close failed') }
    }
    this.closers = []
  }
}

export interface ApiRuntime {
  stores: StateStores
  contracts: ContractRegistry
  codec: SchemaCodec
  kafka: Kafka
  producer: BatchingProducer
  ingest: IngestService
  keys: KeyVerifier
  readiness: () => Promise<Record<string, boolean>>
}

export function contractChecker(contracts: ContractRegistry, config: Readonly<Config>) {
  return (tenant: string, eventType: string, properties: unknown) => {
    const contract = contracts.get(tenant, eventType)
    if (contract === undefined) {
      return { ok: false as const, details: [{ pointer: '/eventType', code: 'unregistered_event_type', message: `eventType ${JSON.stringify(eventType)} is not registered in the CDP contract` }] }
    }
    const details = validateProperties(contract, properties, { maxStringLength: config.validation.maxStringLength })
    return details.length === 0 ? { ok: true as const, version: contract.version } : { ok: false as const, details }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | false> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<false>((r) => { timer = setTimeout(() => r(false), ms) })])
  } finally { clearTimeout(timer) }
}

/** Everything the HTTP API needs. Fails fast, naming the dependency, when one is unreachable. */
export async function buildApiRuntime(config: Readonly<Config>, log: Logger, res: Resources): Promise<ApiRuntime> {
  const contracts = loadContracts(config.contracts.dir)
  const stores = await createStateStores(config)
  res.add('state', () => stores.close())
  const kafka = createKafka(config, log)
  await ensureTopics(kafka, config)
  const codec = new SchemaCodec(config.schemaRegistry)
  await codec.init(config.kafka.topic)
  const producer = new BatchingProducer(kafka, {
    topic: config.kafka.topic,
    lingerMs: config.kafka.lingerMs,
    batchMaxMessages: config.kafka.batchMaxMessages,
    timeoutMs: config.kafka.produceTimeoutMs,
    lanes: config.kafka.producerLanes,
  }, log)
  await producer.connect().catch((err: unknown) => {
    throw new CdpError('kafka_unavailable', `cannot connect a producer to ${config.kafka.brokers.join(',')}`, { cause: err })
  })
  res.add('producer', () => producer.close())
  const ingest = new IngestService({
    config,
    checkContract: contractChecker(contracts, config),
    checkIdentity: (identity) => validateIdentity(identity, config.identity),
    claims: stores.claims,
    encode: (e) => codec.encode(e),
    send: (m) => producer.send(m),
  })
  const keys = new KeyVerifier(stores.keys)
  const admin = kafka.admin()
  let adminConnected = false
  res.add('kafka-admin', () => admin.disconnect())
  const readiness = async () => {
    const kafkaOk = (async () => {
      try {
        if (!adminConnected) { await admin.connect(); adminConnected = true }
        await admin.fetchTopicMetadata({ topics: [config.kafka.topic] })
        return true
      } catch { adminConnected = false; await admin.disconnect().catch(() => undefined); return false }
    })()
    const registryOk = (async () => {
      try { await codec.registry.getLatestSchemaId(`${config.kafka.topic}-value`); return true } catch { return false }
    })()
    const [k, r, s] = await Promise.all([
      withTimeout(kafkaOk, 2000), withTimeout(registryOk, 2000), withTimeout(stores.ping(), 2000),
    ])
    return { kafka: k === true, schemaRegistry: r === true, stateStore: s === true }
  }
  return { stores, contracts, codec, kafka, producer, ingest, keys, readiness }
}
