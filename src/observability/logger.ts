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

/**
 * Lines are written synchronously, in this thread (not pino's worker transport, not sonic-boom's
 * asynchronous mode), so a line is out when the call returns. The last lines before an exit need
 * that: pino's default stdout stream hands each line to an asynchronous fs.write, and its flush
 * callback (minLength 0) answers at once without waiting for that write, so the shutdown
 * deadline's line, logged just before SIGKILL (serve.ts), was lost in 4 to 18 of 40 runs on a pipe.
 * At info level the service logs a few lines per minute (request logging is off), so writing
 * synchronously costs nothing measurable.
 */
export function createLogger(config: Pick<Config, 'logLevel'>, name = 'cdp', opts: { pretty?: boolean } = {}): Logger {
  const options = { name, level: config.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }
  if (opts.pretty ?? process.stdout.isTTY) return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }))
  return pino(options, pino.destination({ dest: 1, sync: true }))
}
