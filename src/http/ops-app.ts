/**
 * The HTTP face of a process without the API (`--role consumer`): /healthz, /readyz and
 * /metrics only, on their own port, so an orchestrator can probe a consumer and Prometheus can
 * scrape it. Not listening; serve.ts listens.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Logger } from '../observability/logger.js'
import { opsRoutes, ReadinessProbe, type MetricsSource, type ReadinessCheck } from './routes/ops.js'

export interface OpsAppDeps {
  readiness: ReadinessCheck
  metrics: MetricsSource
  /** how often the background readiness probe runs (http.readinessIntervalMs) */
  readinessIntervalMs: number
  logger: Logger
  observeRequest?: (route: string, method: string, status: number, seconds: number) => void
}

export async function buildOpsApp(deps: OpsAppDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.logger, logController: new LogController({ disableRequestLogging: true }) } as never) as unknown as FastifyInstance
  const probe = new ReadinessProbe(deps.readiness, deps.readinessIntervalMs)
  app.addHook('onReady', async () => { probe.start() })
  app.addHook('onClose', async () => { probe.stop() })
  const observe = deps.observeRequest
  if (observe !== undefined) {
    app.addHook('onResponse', async (request, reply) => {
      observe(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000)
    })
  }
  await app.register(opsRoutes, { probe, metrics: deps.metrics })
  return app
}
