/**
 * Structured logs (pino, which fastify already uses). Secrets and raw PII never reach a log:
 * the redact list covers the places they could appear (auth header, identity, properties).
 * At a terminal the lines are pretty-printed for people; otherwise (files, collectors, pipes)
 * one JSON object per line.
 */
import { pino, type Logger as PinoLogger } from 'pino'
import pretty from 'pino-pretty'
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

export function createLogger(config: Pick<Config, 'logLevel'>, name = 'cdp', opts: { pretty?: boolean } = {}): Logger {
  const options = { name, level: config.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }
  // a stream in this thread (not pino's worker transport): lines are written before the process exits
  if (opts.pretty ?? process.stdout.isTTY) return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }))
  return pino(options)
}
