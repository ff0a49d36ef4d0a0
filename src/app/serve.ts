/**
 * `cdp serve`: build what the role needs over one shared set of resources, listen, and drain on
 * SIGTERM/SIGINT. Roles: all (API + consumer in one process, the embedded default), api, consumer.
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/index.js'
import { isCdpError } from '../errors.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { Resources } from './resources.js'
import { buildShared } from './shared.js'
import { buildApi } from './api.js'
import { buildConsumer } from './consumer.js'
import { buildOpsApp } from '../http/ops-app.js'
import { isClusterWorker, workerMetrics } from './cluster.js'
import { combineChecks, dependencyChecks } from './readiness.js'

export const ROLES = ['all', 'api', 'consumer'] as const
export type Role = (typeof ROLES)[number]

export interface Running {
  app?: FastifyInstance
  /** role consumer: /healthz, /readyz and /metrics on consumer.httpPort */
  opsApp?: FastifyInstance
  /** drains and closes everything; safe to call twice */
  close(): Promise<void>
}

export async function serve(config: Readonly<Config>, role: Role, log: Logger = createLogger(config)): Promise<Running> {
  const res = new Resources()
  let app: FastifyInstance | undefined
  let opsApp: FastifyInstance | undefined
  try {
    const shared = await buildShared(config, log, res)
    // the consumer owns ClickHouse; with role all the API's query route runs over the same
    const consumer = role === 'api' ? undefined : await buildConsumer(shared, 'live')
    if (consumer !== undefined) {
      await consumer.start()
      log.info({ topic: config.kafka.topic, group: config.kafka.consumerGroup }, 'consumer running')
    }
    if (consumer !== undefined && role === 'consumer') {
      opsApp = await buildOpsApp({
        readiness: combineChecks(dependencyChecks(shared), consumer.readiness), metrics: () => shared.metrics.text(),
        readinessIntervalMs: config.http.readinessIntervalMs, logger: log, observeRequest: shared.metrics.request,
      })
      res.add('ops-http', () => opsApp!.close())
      await opsApp.listen({ host: config.http.host, port: config.consumer.httpPort })
      log.info({ host: config.http.host, port: config.consumer.httpPort }, 'consumer health and metrics listening')
    }
    if (role !== 'consumer') {
      // a cluster worker's /metrics answers for every worker (cluster.ts)
      const metrics = isClusterWorker() ? { metrics: workerMetrics(shared.metrics.registry) } : {}
      app = (await buildApi(shared, consumer === undefined ? metrics : { ...metrics, query: consumer.query, readiness: consumer.readiness, ownsClickHouse: true })).app
      await app.listen({ host: config.http.host, port: config.http.port })
      log.info({ host: config.http.host, port: config.http.port, role }, 'cdp ingest API listening')
    }
  } catch (err) {
    await res.close(log)
    throw err
  }
  let closing: Promise<void> | undefined
  return { ...(app ? { app } : {}), ...(opsApp ? { opsApp } : {}), close: () => (closing ??= res.close(log)) }
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
