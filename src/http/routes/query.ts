/**
 * POST /v1/cdp/query: guarded, tenant-scoped, bounded SQL for analysts (`cdp query`). In
 * embedded mode chDB belongs to the running service's process, so analysts reach it through
 * here. The runner (src/clickhouse/analyst.ts) decides what the key may read; this route passes
 * it the key's tenant (null for an operator key) and permissions, and cancels the query when the
 * client goes away.
 */
import type { FastifyPluginAsync } from 'fastify'
import { CdpError } from '../../errors.js'
import type { KeyVerifier } from '../../auth/keys.js'
import type { AnalystQuery } from '../../clickhouse/analyst.js'
import { QUERY_FORMATS, type QueryFormat } from '../../clickhouse/formats.js'
import { requireKey } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'
import { errorResponse, frontDoorResponses, keyResponses, requestTimeout, retryAfter, tooLarge } from '../openapi/responses.js'

/** in code points, as the schema's maxLength counts */
const MAX_SQL = 100_000

function codePointsOver(s: string, max: number): boolean {
  if (s.length <= max) return false
  let n = 0
  for (const _ of s) if (++n > max) return true
  return false
}

export { QUERY_FORMATS }
export type { QueryFormat }
/** the analyst runner (analyst.ts); `cancelAll` when it can cancel its queries in ClickHouse */
export type QueryRunner = AnalystQuery & { cancelAll?: () => Promise<void> }

export const queryRoutes: FastifyPluginAsync<{ keys: KeyVerifier; query: QueryRunner; limiter: RateLimiter; bodyLimitBytes: number }> = async (app, opts) => {
  // app.close() waits for requests in flight: cancel the analyst queries first, so a long query
  // cannot hold up the drain (preClose runs before the server waits for its requests)
  const cancelAll = opts.query.cancelAll
  if (cancelAll !== undefined) app.addHook('preClose', async () => { await cancelAll() })

  app.post('/v1/cdp/query', {
    // query:read on a key of a tenant, query:all on an operator key (no tenant); checked before the body is read
    onRequest: requireKey(opts.keys, ['query:read', 'query:all'], opts.limiter),
    schema: {
      summary: "Run read-only SQL over the key's tenant (an operator key with query:all: every tenant; PII hashed without pii:read)",
      description: 'One SELECT (or DESCRIBE / SHOW TABLES) checked by ClickHouse\'s own parser and analyzer, then run ' +
        'with limits the caller cannot lift (execution time, rows read, result rows and bytes, memory). Every table ' +
        'is filtered to the key\'s tenant (additional_table_filters) for a key of a tenant with query:read; only an ' +
        'operator key (no tenant) with query:all, created by `cdp keys create --operator`, reads across tenants. ' +
        'Without pii:read, identity values and contract properties flagged pii come back as HMAC-SHA256 hex (joins ' +
        'and counts still work). 400 bad_request: refused by the guard or a limit was reached (the message says ' +
        'which). 403 forbidden: the key holds neither permission on its kind of key (a key of a tenant that holds ' +
        'query:all from before operator keys is refused, with the command that replaces it). 429 rate_limited: the ' +
        'tenant already has query.maxConcurrentPerTenant queries in flight, or the service runs ' +
        'query.maxConcurrentTotal queries and its queue (query.maxQueued) is full or the wait passed ' +
        'query.maxQueueWaitMs (Retry-After). 503: the service is shutting down. A client that disconnects, also ' +
        'while its query waits, cancels it in ClickHouse. See docs/SECURITY.md.',
      body: {
        type: 'object', required: ['sql'], additionalProperties: false,
        properties: {
          sql: { type: 'string', minLength: 1, maxLength: MAX_SQL, pattern: '\\S', description: `At most ${MAX_SQL} characters, and the JSON body at most ${opts.bodyLimitBytes} bytes.` },
          format: { type: 'string', enum: [...QUERY_FORMATS], default: 'JSONEachRow' },
        },
      },
      response: {
        200: { description: 'the result in the requested format', content: { 'text/plain': { schema: { type: 'string' } } } },
        ...frontDoorResponses,
        400: errorResponse('bad_request: malformed request (invalid JSON, an empty or NUL body, corrupt gzip), or the SQL was refused by the guard or hit a limit (the message says which)'),
        ...keyResponses,
        ...requestTimeout,
        ...tooLarge(opts.bodyLimitBytes),
        422: errorResponse('validation_failed: the body is not {"sql":"...","format":"..."} (sql missing, blank or too long, unknown format)'),
        429: errorResponse('rate_limited: the key\'s request rate, the tenant\'s concurrent queries, the service\'s queue of analyst queries (full, or no place within query.maxQueueWaitMs), or failing requests per client address; wait Retry-After seconds', retryAfter),
        503: errorResponse('clickhouse_unavailable, timeout or shutting_down; retry after Retry-After', retryAfter),
      },
    },
  }, async (request, reply) => {
    const body = request.body as { sql?: unknown; format?: unknown } | null
    if (body === null || typeof body !== 'object' || typeof body.sql !== 'string' || body.sql.trim() === '') {
      throw new CdpError('validation_failed', 'body must be {"sql":"SELECT ..."}', { details: [{ pointer: '/sql', code: 'required', message: 'sql is required' }] })
    }
    if (codePointsOver(body.sql, MAX_SQL)) {
      throw new CdpError('validation_failed', `sql is longer than ${MAX_SQL} characters`, { details: [{ pointer: '/sql', code: 'maxLength', message: 'too long' }] })
    }
    const extra = Object.keys(body).filter((k) => k !== 'sql' && k !== 'format')
    if (extra.length > 0) {
      throw new CdpError('validation_failed', `unknown field ${extra.join(', ')}`, { details: extra.map((k) => ({ pointer: `/${k}`, code: 'unknown_field', message: `${k} is not a known field` })) })
    }
    // absent means the default; null is not a format
    const format = (body.format === undefined ? 'JSONEachRow' : body.format) as QueryFormat
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
