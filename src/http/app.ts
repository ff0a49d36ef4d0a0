/**
 * buildApp() assembles the HTTP API from its dependencies and never listens; server.ts does.
 * Tests use app.inject() against the same instance the service runs.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { Config } from '../config/index.js'
import type { Logger } from '../observability/logger.js'
import { REDACT_PATHS } from '../observability/logger.js'
import type { IngestService } from '../ingest/service.js'
import type { KeyVerifier } from '../auth/keys.js'
import { installErrorHandling } from './errors.js'
import { installContentEncoding } from './content-encoding.js'
import { RateLimiter } from './rate-limit.js'
import { eventRoutes } from './routes/events.js'
import { opsRoutes, type ReadinessCheck } from './routes/ops.js'
import { queryRoutes, type QueryRunner } from './routes/query.js'

export interface AppDeps {
  ingest: IngestService
  keys: KeyVerifier
  readiness: ReadinessCheck
  query?: QueryRunner
  logger?: Logger
}

export async function buildApp(config: Readonly<Config>, deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    logger: deps.logger === undefined ? { level: config.logLevel, redact: REDACT_PATHS } : undefined,
    bodyLimit: config.http.singleBodyLimitBytes,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    // one log line per request costs more than the request itself at 10k/s; debug turns them on
    logController: new LogController({ disableRequestLogging: config.logLevel !== 'debug' && config.logLevel !== 'trace' }),
    // the event routes validate bodies themselves (one validator for single events and batch
    // items, every problem listed); route schemas still describe them for OpenAPI
    ajv: { customOptions: { strict: false } },
  } as never) as unknown as FastifyInstance
  app.setValidatorCompiler(() => (data: unknown) => ({ value: data }))
  // events are JSON; anything else is 415 rather than a confusing 422
  app.removeContentTypeParser('text/plain')
  installErrorHandling(app)
  installContentEncoding(app, config.http.singleBodyLimitBytes)
  app.addHook('onSend', async (request, reply) => { void reply.header('x-request-id', request.id) })

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'ResultFly CDP event ingestion', version: '1.0.0', description: 'Server-to-server customer events. See README.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'CDP API key (rfcdp_...)' } } },
      security: [{ bearer: [] }],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  const limiter = new RateLimiter(config.http.rateLimitMax, config.http.rateLimitWindowMs)
  await app.register(eventRoutes, { config, ingest: deps.ingest, keys: deps.keys, limiter })
  await app.register(opsRoutes, { readiness: deps.readiness })
  if (deps.query !== undefined) await app.register(queryRoutes, { keys: deps.keys, query: deps.query, limiter })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  return app
}
