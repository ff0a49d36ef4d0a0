import { wrapForeign, type CdpError } from '../errors.js'

/**
 * What a Kafka client failure means: always `kafka_unavailable` (retriable, Retry-After 1 s).
 * Misconfiguration that retrying cannot fix is raised as its own CdpError before it gets here
 * (topic_misconfigured); a CdpError passes through unchanged.
 */
export const kafkaError = (err: unknown, what: string): CdpError =>
  wrapForeign(err, what, 'kafka_unavailable', { retryAfter: 1 })
