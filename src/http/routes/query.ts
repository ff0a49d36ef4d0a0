/**
 * POST /v1/cdp/query: guarded, tenant-scoped, bounded SQL for analysts (`cdp query`). In
 * embedded mode chDB belongs to the running service's process, so analysts reach it through
 * here. The runner (src/clickhouse/analyst.ts) decides what the key may read; this route passes
 * it the key's tenant and permissions, and cancels the query when the client goes away.
 */
import type { FastifyPluginAsync } from 'fastify'
import { CdpError } from '../../errors.js'
import type { KeyVerifier } from '../../auth/keys.js'
import type { AnalystQuery } from '../../clickhouse/analyst.js'
import { QUERY_FORMATS, type QueryFormat } from '../../clickhouse/formats.js'
import { requireKey } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'

export { QUERY_FORMATS }
export type { QueryFormat }
/** the analyst runner (analyst.ts); `cancelAll` when it can cancel its queries in ClickHouse */
export type QueryRunner = AnalystQuery & { cancelAll?: () => Promise<void> }

export const queryRoutes: FastifyPluginAsync<{ keys: KeyVerifier; query: QueryRunner; limiter: RateLimiter }> = async (app, opts) => {
  // app.close() waits for requests in flight: cancel the analyst queries first, so a long query
  // cannot hold up the drain (preClose runs before the server waits for its requests)
  const cancelAll = opts.query.cancelAll
  if (cancelAll !== undefined) app.addHook('preClose', async () => { await cancelAll() })

  app.post('/v1/cdp/query', {
    // an operator key (query:all) holds query:read as well; the key is checked before the body is read
    onRequest: requireKey(opts.keys, 'query:read', opts.limiter),
    schema: {
      summary: "Run read-only SQL over the key's tenant (query:all: every tenant; PII hashed without pii:read)",
      description: 'One SELECT (or DESCRIBE / SHOW TABLES) checked by ClickHouse\'s own parser and analyzer, then run ' +
        'with limits the caller cannot lift (execution time, rows read, result rows and bytes, memory). Every table ' +
        'is filtered to the key\'s tenant (additional_table_filters); only an operator key with query:all, created ' +
        'by the CLI, reads across tenants. Without pii:read, identity values and contract properties flagged pii ' +
        'come back as HMAC-SHA256 hex (joins and counts still work). 400 bad_request: refused by the guard or a ' +
        'limit was reached (the message says which). 429 rate_limited: the tenant already has ' +
        'query.maxConcurrentPerTenant queries running (Retry-After). 503: the service is shutting down. A client ' +
        'that disconnects cancels its query in ClickHouse. See docs/SECURITY.md.',
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
    if (body.sql.length > 100_000) {
      throw new CdpError('validation_failed', 'sql is longer than 100000 characters', { details: [{ pointer: '/sql', code: 'maxLength', message: 'too long' }] })
    }
    const format = (body.format ?? 'JSONEachRow') as QueryFormat
    if (!QUERY_FORMATS.includes(format)) {
      throw new CdpError('validation_failed', `format must be one of ${QUERY_FORMATS.join(', ')}`, { details: [{ pointer: '/format', code: 'enum', message: 'unsupported format' }] })
    }
    const key = request.apiKey
    if (key === undefined) throw new CdpError('unauthorized', 'missing API key')
    // the client leaving (or its socket closing) cancels the query in ClickHouse
    const abort = new AbortController()
    const onClose = (): void => { if (!reply.raw.writableEnded) abort.abort() }
    reply.raw.on('close', onClose)
    try {
      const text = await opts.query({ sql: body.sql, format, principal: { tenant: key.tenant, permissions: key.permissions }, signal: abort.signal })
      return await reply.type('text/plain; charset=utf-8').send(text)
    } finally {
      reply.raw.off('close', onClose)
    }
  })
}
