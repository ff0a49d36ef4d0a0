/**
 * The only place (with the other files of src/kafka) that imports kafkajs, so the client can be
 * swapped (for example for @confluentinc/kafka-javascript's KafkaJS-compatible API) if the
 * benchmarks ask for it.
 */
import kafkajs, { type Kafka as KafkaClient, type LogEntry } from 'kafkajs'

// kafkajs is CommonJS: Node's ESM loader exposes its runtime values on the default export only
const { Kafka, logLevel: KafkaLogLevel } = kafkajs
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'

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
      const fields = { kafka: entry.namespace, broker: extra.broker as unknown, error: extra.error as unknown }
      log[kafkaLogLevel(entry.level, message, extra.error)](fields, message)
    },
  })
}

/**
 * Group membership churn is how consumer groups work (a member joins, leaves, restarts): kafkajs
 * logs it as warnings and errors (`The group is rebalancing`, a heartbeat answered
 * REBALANCE_IN_PROGRESS, a coordinator that forgot a restarted member, a stale generation), which would page someone
 * for every deploy. Those are info; everything else keeps kafkajs's level.
 */
const MEMBERSHIP = /rebalanc|re-?joining|rejoin is needed|not aware of this member|needs to have a valid member id|group generation id is not valid/i

export function kafkaLogLevel(level: number, message: string, error: unknown): 'error' | 'warn' | 'info' {
  if (MEMBERSHIP.test(message) || (typeof error === 'string' && MEMBERSHIP.test(error))) return 'info'
  return level <= KafkaLogLevel.ERROR ? 'error' : 'warn'
}
