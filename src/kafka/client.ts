/**
 * The only place (with the other files of src/kafka) that imports kafkajs, so the client can be
 * swapped (for example for @confluentinc/kafka-javascript's KafkaJS-compatible API) if the
 * benchmarks ask for it.
 */
import kafkajs, { type Kafka as KafkaJs, type LogEntry } from 'kafkajs'

// kafkajs is CommonJS: Node's ESM loader exposes its runtime values on the default export only
const { Kafka, logLevel: KafkaLogLevel } = kafkajs
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'

/**
 * A connection factory to the cluster. Outside src/kafka it is opaque: hand it to this folder's
 * functions (BatchingProducer, ConsumerRunner, KafkaAdmin, ensureTopics, fetchRecords).
 */
export type KafkaClient = KafkaJs

/**
 * kafkajs warns whenever an idempotent producer has bounded retries. Ours are bounded on purpose:
 * callers own the deadline (503 + Retry-After, consumer backoff), and a batch that fails resets
 * its producer (a new producer id, so no stale sequence numbers), which is what keeps the
 * guarantee. The warning is replaced by one line per process that says so.
 */
const BOUNDED_RETRIES_WARNING = 'Limiting retries for the idempotent producer may invalidate EoS guarantees'
let boundedRetriesExplained = false

export function createKafka(config: Readonly<Config>, log: Logger, clientIdSuffix = ''): KafkaClient {
  return new Kafka({
    clientId: config.kafka.clientId + clientIdSuffix,
    brokers: [...config.kafka.brokers],
    connectionTimeout: config.kafka.connectionTimeoutMs,
    requestTimeout: Math.max(config.kafka.produceTimeoutMs, 5000),
    // short, bounded retries: callers own the overall deadline (503 + Retry-After, consumer backoff)
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: KafkaLogLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...extra } = entry.log
      if (message === BOUNDED_RETRIES_WARNING) {
        if (!boundedRetriesExplained) {
          boundedRetriesExplained = true
          log.info('kafka producers retry a bounded number of times on purpose: a failed batch resets its producer, and callers own the deadline')
        }
        return
      }
      const fields = { kafka: entry.namespace, broker: extra.broker as unknown, error: extra.error as unknown }
      if (entry.level <= KafkaLogLevel.ERROR) log.error(fields, message)
      else log.warn(fields, message)
    },
  })
}
