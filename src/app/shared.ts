/**
 * What the API and the consumer of one process share, each built once: contracts, state
 * stores, the Kafka client, the schema codec and the one batching producer every record leaves
 * through. ClickHouse opens on first use (only a process that runs the consumer needs it).
 * Each resource's close is registered on `res` where it is created.
 */
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import { Metrics } from '../observability/metrics.js'
import { loadContracts, type ContractRegistry } from '../contracts/registry.js'
import { contractChecker, type ContractChecker } from '../contracts/check.js'
import { createStateStores, type StateStores } from '../state/index.js'
import { SchemaCodec } from '../avro/codec.js'
import { BatchingProducer, createKafka, ensureTopics, kafkaError, producerOptions, type KafkaClient } from '../kafka/index.js'
import { openClickHouse, type ClickHouse } from '../clickhouse/index.js'
import type { Resources } from './resources.js'
import { createPrivacyStore, type PrivacyStore } from '../state/privacy-store.js'
import { createPseudonymizer, createSuppressionCheck, type Pseudonymizer, type SuppressionCheck } from '../privacy/index.js'

export interface Shared {
  config: Readonly<Config>
  log: Logger
  res: Resources
  contracts: ContractRegistry
  checkContract: ContractChecker
  stores: StateStores
  kafka: KafkaClient
  codec: SchemaCodec
  producer: BatchingProducer
  /** this process's Prometheus registry and the callbacks that feed it */
  metrics: Metrics
  /** the events topic's partition count as the broker reports it (keys are placed with it) */
  partitions: number
  /** opened (and migrated) on the first call; later calls get the same */
  clickhouse(): Promise<ClickHouse>
  /** erasure requests and the suppression list (docs/PRIVACY.md) */
  privacy: PrivacyStore
  suppression: SuppressionCheck
  pseudonymizer: Pseudonymizer
}

/** Fails fast, naming the dependency, when one is unreachable. */
export async function buildShared(config: Readonly<Config>, log: Logger, res: Resources): Promise<Shared> {
  const metrics = new Metrics(config)
  const contracts = loadContracts(config.contracts.dir)
  const stores = await createStateStores(config)
  res.add('state', () => stores.close())
  const privacy = createPrivacyStore(config)
  res.add('privacy-store', () => privacy.close())
  const pseudonymizer = createPseudonymizer(config.privacy)
  const kafka = createKafka(config, log)
  const { partitions } = await ensureTopics(kafka, config)
  const codec = new SchemaCodec(config.schemaRegistry)
  await codec.init(config.kafka.topic)
  const producer = new BatchingProducer(kafka, { ...producerOptions(config), onBatch: metrics.produceBatch }, log)
  await producer.connect().catch((err: unknown) => { throw kafkaError(err, `cannot connect a producer to ${config.kafka.brokers.join(',')}`) })
  res.add('producer', () => producer.close())

  let clickhouse: Promise<ClickHouse> | undefined
  const openOnce = () => (clickhouse ??= openClickHouse(config, contracts.segmentableColumns(), log).then(
    ({ clickhouse: ch }) => { res.add('clickhouse', () => ch.close()); return ch },
    (err: unknown) => { clickhouse = undefined; throw err },
  ))

  return {
    config, log, res, contracts, stores, kafka, codec, producer, partitions, metrics,
    checkContract: contractChecker(contracts, { maxStringLength: config.validation.maxStringLength }),
    clickhouse: openOnce,
    privacy, pseudonymizer, suppression: createSuppressionCheck(config, privacy, pseudonymizer),
  }
}
