/**
 * Structured logs (pino, which fastify already uses). Secrets and raw PII never reach a log:
 * the redact list covers the places they could appear (auth header, identity, properties).
 */
import { pino, type Logger as PinoLogger } from 'pino'
import type { Config } from '../config/index.js'

export type Logger = PinoLogger

export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'identity.email',
  'identity.phone',
  '*.identity.email',
  '*.identity.phone',
  'email',
  'phone',
  'secret',
  'apiKey',
  // connection secrets (Kafka SASL, Redis AUTH, ClickHouse) if a config section is ever logged
  'password',
  '*.password',
  '*.*.password',
  '*.redisPassword',
]

export function createLogger(config: Pick<Config, 'logLevel'>, name = 'cdp'): Logger {
  return pino({
    name,
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  })
}
