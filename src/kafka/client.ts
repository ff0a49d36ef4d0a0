/**
 * The only place (with the other files of src/kafka) that imports kafkajs, so the client can be
 * swapped (for example for @confluentinc/kafka-javascript's KafkaJS-compatible API) if the
 * benchmarks ask for it.
 */
import { readFileSync } from 'node:fs'
import kafkajs, { type Kafka as KafkaJs, type KafkaConfig, type LogEntry } from 'kafkajs'

// kafkajs is CommonJS: Node's ESM loader exposes its runtime values on the default export only
const { Kafka, logLevel: KafkaLogLevel } = kafkajs
import type { Config, TlsConfig } from '../config/index.js'
import type { Logger } from '../observability/logger.js'

/** PEM files -> node:tls options; `true` (system CAs) when TLS is on without files */
export function tlsOptions(tls: Readonly<TlsConfig>, read: (path: string) => string = (p) => readFileSync(p, 'utf8')) {
  if (!tls.enabled) return undefined
  const opts: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean } = { rejectUnauthorized: tls.rejectUnauthorized }
  if (tls.caFile != null) opts.ca = read(tls.caFile)
  if (tls.certFile != null) opts.cert = read(tls.certFile)
  if (tls.keyFile != null) opts.key = read(tls.keyFile)
  return opts
}

/** the SASL and TLS part of the kafkajs client config (config was validated at load) */
export function kafkaSecurity(kafka: Readonly<Config['kafka']>, read?: (path: string) => string): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  const out: Pick<KafkaConfig, 'ssl' | 'sasl'> = {}
  const ssl = tlsOptions(kafka.tls, read)
  if (ssl !== undefined) out.ssl = ssl
  const sasl = kafka.sasl
  if (sasl != null) {
    // kafkajs types each mechanism separately; the three share { username, password }
    out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as KafkaConfig['sasl']
  }
  return out
}
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

export interface KafkaClientOptions {
  /** every request's retries (default: 3 short ones; callers own the deadline). The consumer's
   *  client retries without limit, see CONSUMER_RETRY in consumer.ts */
  retry?: KafkaConfig['retry']
}

export function createKafka(config: Readonly<Config>, log: Logger, clientIdSuffix = '', opts: KafkaClientOptions = {}): KafkaClient {
  return new Kafka({
    clientId: config.kafka.clientId + clientIdSuffix,
    brokers: [...config.kafka.brokers],
    ...kafkaSecurity(config.kafka),
    connectionTimeout: config.kafka.connectionTimeoutMs,
    requestTimeout: Math.max(config.kafka.produceTimeoutMs, 5000),
    // short, bounded retries: callers own the overall deadline (503 + Retry-After, consumer backoff)
    retry: opts.retry ?? { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
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
