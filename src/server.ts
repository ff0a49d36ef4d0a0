/**
 * `cdp serve`: load config, build dependencies, listen, drain on SIGTERM/SIGINT.
 * Roles: all (API + consumer, the embedded default), api, consumer.
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from './config/index.js'
import { isCdpError } from './errors.js'
import { createLogger, type Logger } from './observability/logger.js'
import { buildApp } from './http/app.js'
import { buildApiRuntime, Resources } from './runtime.js'
import type { QueryRunner } from './http/routes/query.js'

export type Role = 'all' | 'api' | 'consumer'

export interface ConsumerHooks {
  /** starts the consumer; returns the query runner when it owns ClickHouse */
  start(config: Readonly<Config>, log: Logger, res: Resources): Promise<{ query?: QueryRunner }>
}

export async function serve(config: Readonly<Config>, role: Role, consumer?: ConsumerHooks): Promise<{ app?: FastifyInstance; close: () => Promise<void> }> {
  const log = createLogger(config)
  const res = new Resources()
  let app: FastifyInstance | undefined
  try {
    let query: QueryRunner | undefined
    if (role !== 'api' && consumer !== undefined) query = (await consumer.start(config, log, res)).query
    if (role !== 'consumer') {
      const rt = await buildApiRuntime(config, log, res)
      app = await buildApp(config, { ingest: rt.ingest, keys: rt.keys, readiness: rt.readiness, logger: log, ...(query ? { query } : {}) })
      // the listener closes first so in-flight requests finish before the producer flushes
      const a = app
      res.add('http', () => a.close())
      await app.listen({ host: config.http.host, port: config.http.port })
      log.info({ host: config.http.host, port: config.http.port, role }, 'cdp ingest API listening')
    }
  } catch (err) {
    await res.close(log)
    throw err
  }
  let closing: Promise<void> | undefined
  const close = () => (closing ??= res.close(log))
  return { ...(app ? { app } : {}), close }
}

export function installSignalHandlers(close: () => Promise<void>, log: Logger): void {
  const onSignal = (sig: string) => {
    log.info({ sig }, 'draining')
    const force = setTimeout(() => process.exit(1), 15_000)
    force.unref()
    close().then(() => process.exit(0), (err: unknown) => { log.error({ err: isCdpError(err) ? err.message : String(err) }, 'drain failed'); process.exit(1) })
  }
  process.once('SIGTERM', () => onSignal('SIGTERM'))
  process.once('SIGINT', () => onSignal('SIGINT'))
}
