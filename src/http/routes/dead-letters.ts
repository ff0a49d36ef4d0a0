/**
 * Operator routes over dead letters (permission dlq:manage, every tenant): `cdp dlq list` and
 * `cdp dlq redrive` call these, because in embedded mode chDB and the batching producer belong to
 * the running service. They need a process that reads ClickHouse (role all, or CLICKHOUSE_URL).
 *
 *   GET  /v1/cdp/dead-letters?reason=&tenant=&since=&limit=   newest first, with counts by reason
 *   POST /v1/cdp/dead-letters/redrive {reason, tenant?, since?, dry_run?, limit?, redrive_id?}
 *        re-submits up to `limit` (default 500) dead letters; the CLI calls again until remaining is 0
 */
import type { FastifyPluginAsync } from 'fastify'
import { CdpError, type ErrorDetail } from '../../errors.js'
import type { KeyVerifier } from '../../auth/keys.js'
import type { DeadLetterEntry, DeadLetterFilter, ReasonCount } from '../../clickhouse/dead-letters.js'
import type { RedriveRequest, RedriveResult } from '../../pipeline/redrive.js'
import { requireKey } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'

export interface DeadLetterOps {
  list(filter: DeadLetterFilter, limit: number): Promise<{ rows: DeadLetterEntry[]; counts: ReasonCount[] }>
  redrive(req: RedriveRequest): Promise<RedriveResult>
}

const errorBody = {
  type: 'object', required: ['status', 'error_code', 'message'],
  properties: { status: { const: 'error' }, error_code: { type: 'string' }, message: { type: 'string' }, details: { type: 'array', items: { type: 'object' } } },
} as const
const errors = {
  401: { description: 'API key missing, malformed, unknown, revoked or expired', ...errorBody },
  403: { description: 'API key lacks the dlq:manage permission', ...errorBody },
  422: { description: 'a parameter is not valid', ...errorBody },
  503: { description: 'ClickHouse, Kafka or the state store unavailable, or this process cannot read ClickHouse', ...errorBody },
}
const NAME = /^[A-Za-z0-9_.:-]{1,128}$/

function filterOf(q: Record<string, unknown>, details: ErrorDetail[]): DeadLetterFilter {
  const f: DeadLetterFilter = {}
  for (const name of ['reason', 'tenant'] as const) {
    const v = q[name]
    if (v === undefined) continue
    if (typeof v !== 'string' || !NAME.test(v)) details.push({ pointer: `/${name}`, code: 'invalid', message: `${name} must be a name of at most 128 characters` })
    else f[name] = v
  }
  if (q.since !== undefined) {
    if (typeof q.since !== 'string' || Number.isNaN(Date.parse(q.since))) details.push({ pointer: '/since', code: 'invalid', message: 'since must be an ISO 8601 time' })
    else f.since = new Date(Date.parse(q.since)).toISOString()
  }
  return f
}

function limitOf(v: unknown, dflt: number, max: number, details: ErrorDetail[]): number {
  if (v === undefined) return dflt
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN
  if (!Number.isInteger(n) || n < 1 || n > max) { details.push({ pointer: '/limit', code: 'invalid', message: `limit must be an integer from 1 to ${max}` }); return dflt }
  return n
}

export const deadLetterRoutes: FastifyPluginAsync<{ keys: KeyVerifier; limiter: RateLimiter; deadLetters: DeadLetterOps }> = async (app, opts) => {
  const auth = requireKey(opts.keys, 'dlq:manage', opts.limiter)
  app.get('/v1/cdp/dead-letters', {
    onRequest: auth,
    schema: {
      summary: 'List dead letters of every tenant, newest first, with counts by reason (operator key: dlq:manage)',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { reason: { type: 'string' }, tenant: { type: 'string' }, since: { type: 'string', format: 'date-time' }, limit: { type: 'integer', minimum: 1, maximum: 10000 } },
      },
      response: {
        200: {
          type: 'object', required: ['dead_letters', 'counts'],
          properties: {
            dead_letters: {
              type: 'array', items: {
                type: 'object', properties: {
                  tenant: { type: 'string', nullable: true }, reason_code: { type: 'string' }, reason: { type: 'string' }, topic: { type: 'string' },
                  kafka_partition: { type: 'integer' }, kafka_offset: { type: 'string' }, key: { type: 'string' },
                  dead_lettered_at: { type: 'string' }, redriven_at: { type: 'string', nullable: true }, redrive_id: { type: 'string', nullable: true },
                },
              },
            },
            counts: { type: 'array', items: { type: 'object', properties: { reason_code: { type: 'string' }, total: { type: 'integer' }, pending: { type: 'integer', description: 'not redriven yet' } } } },
          },
        },
        ...errors,
      },
    },
  }, async (request) => {
    const q = (request.query ?? {}) as Record<string, unknown>
    const details: ErrorDetail[] = []
    const extra = Object.keys(q).filter((k) => !['reason', 'tenant', 'since', 'limit'].includes(k))
    for (const k of extra) details.push({ pointer: `/${k}`, code: 'unknown_field', message: `${k} is not a known parameter` })
    const filter = filterOf(q, details)
    const limit = limitOf(q.limit, 100, 10_000, details)
    if (details.length > 0) throw new CdpError('validation_failed', 'invalid query parameters', { details })
    const { rows, counts } = await opts.deadLetters.list(filter, limit)
    return { dead_letters: rows, counts }
  })

  app.post('/v1/cdp/dead-letters/redrive', {
    onRequest: auth,
    schema: {
      summary: 'Re-submit dead letters of one reason to the events topic, each at most once (operator key: dlq:manage)',
      description: 'Up to `limit` dead letters per call, oldest first; call again (with the returned redrive_id) until ' +
        'remaining is 0. dry_run counts without re-submitting. bad_key and tuple_conflict are refused (400).',
      body: {
        type: 'object', required: ['reason'], additionalProperties: false,
        properties: {
          reason: { type: 'string' }, tenant: { type: 'string' }, since: { type: 'string', format: 'date-time' },
          dry_run: { type: 'boolean' }, limit: { type: 'integer', minimum: 1, maximum: 5000 }, redrive_id: { type: 'string' },
        },
      },
      response: {
        200: {
          type: 'object', required: ['redrive_id', 'dry_run', 'matched', 'redriven', 'remaining'],
          properties: { redrive_id: { type: 'string' }, dry_run: { type: 'boolean' }, matched: { type: 'integer' }, redriven: { type: 'integer' }, remaining: { type: 'integer' } },
        },
        400: { description: 'this reason cannot be redriven', ...errorBody },
        ...errors,
      },
    },
  }, async (request) => {
    const body = request.body as Record<string, unknown> | null
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new CdpError('validation_failed', 'body must be {"reason":"..."}')
    const details: ErrorDetail[] = []
    const extra = Object.keys(body).filter((k) => !['reason', 'tenant', 'since', 'dry_run', 'limit', 'redrive_id'].includes(k))
    for (const k of extra) details.push({ pointer: `/${k}`, code: 'unknown_field', message: `${k} is not a known field` })
    if (typeof body.reason !== 'string') details.push({ pointer: '/reason', code: 'required', message: 'reason is required' })
    const filter = filterOf(body, details)
    const limit = limitOf(body.limit, 500, 5000, details)
    if (body.dry_run !== undefined && typeof body.dry_run !== 'boolean') details.push({ pointer: '/dry_run', code: 'invalid', message: 'dry_run must be a boolean' })
    if (body.redrive_id !== undefined && (typeof body.redrive_id !== 'string' || !NAME.test(body.redrive_id))) details.push({ pointer: '/redrive_id', code: 'invalid', message: 'redrive_id must be an id returned by an earlier call' })
    if (details.length > 0 || filter.reason === undefined) throw new CdpError('validation_failed', 'invalid redrive request', { details })
    return opts.deadLetters.redrive({
      ...filter, reason: filter.reason, limit, dryRun: body.dry_run === true,
      ...(typeof body.redrive_id === 'string' ? { redriveId: body.redrive_id } : {}),
    })
  })
}
