/**
 * POST /v1/cdp/query: read-only SQL for analysts (`cdp query`). In embedded mode chDB belongs
 * to the running service's process, so analysts reach it through here with a query:read key.
 */
import type { FastifyPluginAsync } from 'fastify'
import { CdpError } from '../../errors.js'
import type { KeyVerifier } from '../../auth/keys.js'
import { requireKey } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'

import { QUERY_FORMATS } from '../../clickhouse/formats.js'
export { QUERY_FORMATS }
export type QueryFormat = (typeof QUERY_FORMATS)[number]
/** runs read-only SQL scoped to the caller's tenant is NOT implied: analysts see the database */
export type QueryRunner = (sql: string, format: QueryFormat) => Promise<string>

export const queryRoutes: FastifyPluginAsync<{ keys: KeyVerifier; query: QueryRunner; limiter: RateLimiter }> = async (app, opts) => {
  app.post('/v1/cdp/query', {
    preHandler: requireKey(opts.keys, 'query:read', opts.limiter),
    schema: {
      summary: 'Run read-only SQL against the ClickHouse database (analysts)',
      body: {
        type: 'object', required: ['sql'], additionalProperties: false,
        properties: { sql: { type: 'string', minLength: 1, maxLength: 100_000 }, format: { enum: [...QUERY_FORMATS] } },
      },
    },
  }, async (request, reply) => {
    const body = request.body as { sql?: unknown; format?: unknown } | null
    if (body === null || typeof body !== 'object' || typeof body.sql !== 'string' || body.sql.trim() === '') {
      throw new CdpError('validation_failed', 'body must be {"sql":"SELECT ..."}', { details: [{ pointer: '/sql', code: 'required', message: 'sql is required' }] })
    }
    const format = (body.format ?? 'JSONEachRow') as QueryFormat
    if (!QUERY_FORMATS.includes(format)) {
      throw new CdpError('validation_failed', `format must be one of ${QUERY_FORMATS.join(', ')}`, { details: [{ pointer: '/format', code: 'enum', message: 'unsupported format' }] })
    }
    const text = await opts.query(body.sql, format)
    return reply.type('text/plain; charset=utf-8').send(text)
  })
}
