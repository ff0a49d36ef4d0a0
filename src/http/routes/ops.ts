/** /healthz: the process answers. /readyz: the dependencies a request needs answer too. */
import type { FastifyPluginAsync } from 'fastify'

export type ReadinessCheck = () => Promise<Record<string, boolean>>

export const opsRoutes: FastifyPluginAsync<{ readiness: ReadinessCheck }> = async (app, opts) => {
  app.get('/healthz', { schema: { summary: 'liveness', security: [] } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { schema: { summary: 'readiness: Kafka, schema registry and state store reachable', security: [] } }, async (_req, reply) => {
    const checks = await opts.readiness()
    const ready = Object.values(checks).every(Boolean)
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks })
  })
}
