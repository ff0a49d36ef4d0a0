/**
 * /healthz: the process answers. /readyz: the dependencies a request needs answered the last
 * background probe. /metrics: the Prometheus text exposition (when the process has metrics). The probe runs every `intervalMs` whatever the traffic, so a flood of
 * /readyz costs one map read per request, never a call to Kafka, the registry or the store.
 */
import type { FastifyPluginAsync } from 'fastify'
import { errorBody, frontDoorResponses, requestTimeout } from '../openapi/responses.js'

export type ReadinessCheck = () => Promise<Record<string, boolean>>

export class ReadinessProbe {
  private last: Record<string, boolean> | undefined
  private running: Promise<Record<string, boolean>> | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly check: ReadinessCheck, private readonly intervalMs: number) {}

  /** the last result; before the first probe ends, callers share that one probe */
  async current(): Promise<Record<string, boolean>> {
    return this.last ?? await this.probe()
  }

  start(): void {
    if (this.timer !== undefined) return
    void this.probe()
    this.timer = setInterval(() => { void this.probe() }, this.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** one probe at a time: a slow dependency does not pile probes up */
  private probe(): Promise<Record<string, boolean>> {
    this.running ??= this.check()
      .catch(() => ({ probe: false }))
      .then((r) => { this.last = r; return r })
      .finally(() => { this.running = undefined })
    return this.running
  }
}

const readiness = {
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    checks: { type: 'object', description: 'dependency name -> reachable at the last probe', additionalProperties: { type: 'boolean' } },
    state: {
      type: 'object',
      description: 'the state store this process uses: backend and an opaque id (src/state/describe.ts); `cdp keys create` compares it with its own',
      properties: { backend: { type: 'string' }, id: { type: 'string' } },
    },
  },
} as const

/** the Prometheus text of this process (or of every worker, aggregated) */
export type MetricsSource = () => Promise<{ contentType: string; body: string }>

/**
 * `state`: which state store this process uses, as a backend name and an opaque id
 * (src/state/describe.ts); `cdp keys create` compares it with its own before writing a key.
 */
export const opsRoutes: FastifyPluginAsync<{ probe: ReadinessProbe; metrics?: MetricsSource; state?: { backend: string; id: string } }> = async (app, opts) => {
  app.get('/healthz', {
    schema: {
      summary: 'liveness',
      security: [],
      response: {
        200: { description: 'the process answers', type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } },
        ...frontDoorResponses,
        ...requestTimeout,
      },
    },
  }, async () => ({ status: 'ok' }))
  app.get('/readyz', {
    schema: {
      summary: 'readiness: Kafka, schema registry and state store reachable at the last background probe',
      security: [],
      response: {
        200: { description: 'every dependency answered the last probe', ...readiness },
        ...frontDoorResponses,
        ...requestTimeout,
        503: { description: 'a dependency did not answer the last probe (status not_ready), or the service is shutting down (the error body, Retry-After)', anyOf: [readiness, errorBody] },
      },
    },
  }, async (_req, reply) => {
    const checks = await opts.probe.current()
    const ready = Object.values(checks).every(Boolean)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks, ...(opts.state === undefined ? {} : { state: opts.state }) })
  })
  const metrics = opts.metrics
  if (metrics !== undefined) {
    // unauthenticated like the probes: bind the port to a private network (README "Operating")
    app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)', security: [] } }, async (_req, reply) => {
      const m = await metrics()
      return reply.header('content-type', m.contentType).send(m.body)
    })
  }
}
