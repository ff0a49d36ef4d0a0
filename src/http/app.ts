/**
 * buildApp() assembles the HTTP API from its dependencies and never listens; server.ts does.
 * Tests use app.inject() against the same instance the service runs.
 *
 * The front door, in the order a request meets it: socket and header timeouts (Node's HTTP
 * server), the drain check (503 shutting_down), the per-address limit on failing requests,
 * the route's key check (before the body is read), body parsing (JSON, with a scan for numbers a
 * double cannot hold), the per-item rate charge, then the handler.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { Config } from '../config/index.js'
import { CdpError } from '../errors.js'
import type { Logger } from '../observability/logger.js'
import { REDACT_PATHS } from '../observability/logger.js'
import type { IngestService } from '../ingest/service.js'
import type { KeyVerifier } from '../auth/keys.js'
import { findInexactNumbers, type InexactNumber } from '../ingest/json-numbers.js'
import { createRateLimitStore, type RateLimitStore } from '../state/rate-limit-store.js'
import { describeStateStore } from '../state/describe.js'
import { installErrorHandling } from './errors.js'
import { installContentEncoding } from './content-encoding.js'
import { FailureLimiter, RateLimiter } from './rate-limit.js'
import { eventRoutes } from './routes/events.js'
import { importRoutes } from './routes/import.js'
import { opsRoutes, ReadinessProbe, type MetricsSource, type ReadinessCheck } from './routes/ops.js'
import { queryRoutes, type QueryRunner } from './routes/query.js'
import { statusRoutes, type EventStatusLookup } from './routes/status.js'
import { deadLetterRoutes, type DeadLetterOps } from './routes/dead-letters.js'
import type { ContractRegistry } from '../contracts/registry.js'
import { eventSchemas } from './openapi/events.js'
import { frontDoorResponses, requestTimeout } from './openapi/responses.js'
import { erasureRoutes } from './routes/erasures.js'
import type { ErasureRequests } from '../privacy/index.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** number tokens of the JSON body that JSON.parse changed (see ingest/json-numbers.ts) */
    inexactNumbers?: InexactNumber[]
  }
}

export interface AppDeps {
  ingest: IngestService
  keys: KeyVerifier
  readiness: ReadinessCheck
  query?: QueryRunner
  /** GET /v1/cdp/events/{source}/{externalEventId} */
  status?: EventStatusLookup
  /** the operator's dead-letter routes (cdp dlq) */
  deadLetters?: DeadLetterOps
  /** POST/GET /v1/cdp/erasures (docs/PRIVACY.md); absent: the routes are not registered */
  erasures?: ErasureRequests
  logger?: Logger
  /**
   * where rate-limit counters live; default: Redis (its own client, closed with the app) when
   * config.state.backend is redis, else LMDB under <state.lmdbPath>/rate-limit (shared by workers)
   */
  rateLimitStore?: RateLimitStore
  /** the event contracts, for the OpenAPI document (one schema per event type); without: the generic envelope */
  contracts?: ContractRegistry
  /** GET /metrics answers with this */
  metrics?: MetricsSource
  /** each answered request: route template (`unmatched` for 404s), method, status, seconds */
  observeRequest?: (route: string, method: string, status: number, seconds: number) => void
}

/** statuses that count against the client address: bad keys, malformed requests, scanning */
const FAILING_STATUSES = new Set([400, 401, 403, 404, 413, 415])

export async function buildApp(config: Readonly<Config>, deps: AppDeps): Promise<FastifyInstance> {
  const h = config.http
  const app = Fastify({
    loggerInstance: deps.logger,
    logger: deps.logger === undefined ? { level: config.logLevel, redact: REDACT_PATHS } : undefined,
    bodyLimit: h.singleBodyLimitBytes,
    // a path parameter may hold a whole externalEventId, percent-encoded (up to 9 characters per
    // UTF-16 unit); Fastify's default (100) would answer 414 to ids the API accepts
    routerOptions: { maxParamLength: Math.max(100, config.validation.maxIdLength * 9) },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    // slow clients: a whole request must arrive within requestTimeout, its headers within
    // headersTimeout (checked every connectionsCheckingInterval), an idle keep-alive socket is
    // closed after keepAliveTimeout and any socket idle for connectionTimeout
    requestTimeout: h.requestTimeoutMs,
    connectionTimeout: h.connectionTimeoutMs,
    keepAliveTimeout: h.keepAliveTimeoutMs,
    http: { headersTimeout: h.headersTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(h.headersTimeoutMs / 4))) },
    // during the drain we answer ourselves, in the API's error format with Retry-After
    return503OnClosing: false,
    // one log line per request costs more than the request itself at 10k/s; debug turns them on
    logController: new LogController({ disableRequestLogging: config.logLevel !== 'debug' && config.logLevel !== 'trace' }),
    // the event routes validate bodies themselves (one validator for single events and batch
    // items, every problem listed); route schemas still describe them for OpenAPI
    ajv: { customOptions: { strict: false } },
  } as never) as unknown as FastifyInstance
  app.setValidatorCompiler(() => (data: unknown) => ({ value: data }))
  // events are JSON; anything else is 415 rather than a confusing 422
  app.removeContentTypeParser('text/plain')
  // Fastify's own JSON parser (prototype poisoning refused), plus the raw-text scan for numbers
  // JSON.parse would silently turn into Infinity, 0 or a neighbouring integer
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    void parseJson(request, body as string, (err: Error | null, value?: unknown) => {
      if (err !== null) { done(err, undefined); return }
      const inexact = findInexactNumbers(body as string)
      if (inexact.length > 0) request.inexactNumbers = inexact
      done(null, value)
    })
  })
  installErrorHandling(app)

  let draining = false
  app.addHook('preClose', async () => { draining = true })
  const failures = new FailureLimiter(h.failureLimitMax, h.failureLimitWindowMs)
  app.addHook('onRequest', async (request) => {
    if (draining) throw new CdpError('shutting_down', 'the service is shutting down; retry with the same externalEventId', { retryAfter: 1 })
    const wait = failures.blocked(request.ip)
    if (wait !== undefined) throw new CdpError('rate_limited', 'too many failing requests from this address', { retryAfter: wait })
  })
  const observeRequest = deps.observeRequest
  app.addHook('onResponse', async (request, reply) => {
    if (FAILING_STATUSES.has(reply.statusCode)) failures.record(request.ip)
    // the route template keeps the label bounded; a URL would put ids and scanners' paths in it
    observeRequest?.(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000)
  })
  // gzip bodies are inflated in preParsing, after onRequest has authenticated the caller
  installContentEncoding(app, config.http.singleBodyLimitBytes)
  app.addHook('onSend', async (request, reply) => { void reply.header('x-request-id', request.id) })

  const events = eventSchemas(config, deps.contracts)
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'ResultFly CDP event ingestion', version: '1.0.0', description: 'Server-to-server customer events. See README.md.' },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'CDP API key (rfcdp_...)' } },
        schemas: events.components as never,
      },
      security: [{ bearer: [] }],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  const store = deps.rateLimitStore ?? createRateLimitStore(config)
  const limiter = new RateLimiter(store, { keyMax: h.rateLimitMax, tenantMax: h.tenantRateLimitMax, windowMs: h.rateLimitWindowMs, prefix: config.keys.prefix })
  app.addHook('onClose', async () => { await limiter.close() })
  const probe = new ReadinessProbe(deps.readiness, h.readinessIntervalMs)
  app.addHook('onReady', async () => { probe.start() })
  app.addHook('onClose', async () => { probe.stop() })

  await app.register(eventRoutes, { config, ingest: deps.ingest, keys: deps.keys, limiter, eventSchema: events.event })
  await app.register(importRoutes, { config, ingest: deps.ingest, keys: deps.keys, limiter })
  const state = describeStateStore(config)
  await app.register(opsRoutes, { probe, state: { backend: state.backend, id: state.id }, ...(deps.metrics ? { metrics: deps.metrics } : {}) })
  if (deps.query !== undefined) await app.register(queryRoutes, { keys: deps.keys, query: deps.query, limiter, bodyLimitBytes: h.singleBodyLimitBytes })
  if (deps.status !== undefined) await app.register(statusRoutes, { config, keys: deps.keys, limiter, status: deps.status })
  if (deps.erasures !== undefined) await app.register(erasureRoutes, { keys: deps.keys, erasures: deps.erasures, limiter })
  if (deps.deadLetters !== undefined) await app.register(deadLetterRoutes, { keys: deps.keys, limiter, deadLetters: deps.deadLetters })
  app.get('/openapi.json', {
    schema: {
      summary: 'this OpenAPI 3.0.3 document',
      security: [],
      response: { 200: { description: 'the document', type: 'object', additionalProperties: true }, ...frontDoorResponses, ...requestTimeout },
    },
  }, async () => app.swagger())
  return app
}
