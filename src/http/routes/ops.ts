/**
 * /healthz: the process answers. /readyz: the dependencies a request needs answered the last
 * background probe. The probe runs every `intervalMs` whatever the traffic, so a flood of
 * /readyz costs one map read per request, never a call to Kafka, the registry or the store.
 */
import type { FastifyPluginAsync } from 'fastify'

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

/**
 * `state`: which state store this process uses, as a backend name and an opaque id
 * (src/state/describe.ts); `cdp keys create` compares it with its own before writing a key.
 */
export const opsRoutes: FastifyPluginAsync<{ probe: ReadinessProbe; state?: { backend: string; id: string } }> = async (app, opts) => {
  app.get('/healthz', { schema: { summary: 'liveness', security: [] } }, async () => ({ status: 'ok' }))
  app.get('/readyz', {
    schema: { summary: 'readiness: Kafka, schema registry and state store reachable at the last background probe', security: [] },
  }, async (_req, reply) => {
    const checks = await opts.probe.current()
    const ready = Object.values(checks).every(Boolean)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks, ...(opts.state === undefined ? {} : { state: opts.state }) })
  })
}
