/**
 * GET /v1/cdp/events/{source}/{externalEventId}: what became of one event, for its sender
 * (permission events:read). The tenant is the key's; the lookup itself lives in
 * src/pipeline/event-status.ts. A source holding '/' is sent URL-encoded (%2F).
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../config/index.js'
import { CdpError, type ErrorDetail } from '../../errors.js'
import type { KeyVerifier } from '../../auth/keys.js'
import { EVENT_STATUSES, type EventStatus } from '../../pipeline/event-status.js'
import { requireKey, tenantOf } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'

/** the status of a tuple of the caller's tenant */
export type EventStatusLookup = (tenant: string, source: string, externalEventId: string) => Promise<EventStatus>

const SOURCE = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/
const CONTROL = /[\u0000-\u001f\u007f]/

const errorBody = {
  type: 'object', required: ['status', 'error_code', 'message'],
  properties: { status: { const: 'error' }, error_code: { type: 'string' }, message: { type: 'string' }, details: { type: 'array', items: { type: 'object' } } },
} as const
const time = { type: 'string', format: 'date-time', nullable: true } as const

export const statusRoutes: FastifyPluginAsync<{ config: Readonly<Config>; keys: KeyVerifier; limiter: RateLimiter; status: EventStatusLookup }> = async (app, opts) => {
  const maxId = opts.config.validation.maxIdLength
  app.get('/v1/cdp/events/:source/:externalEventId', {
    onRequest: requireKey(opts.keys, 'events:read', opts.limiter),
    schema: {
      summary: 'What became of one event of the key\'s tenant',
      description: 'stored: in ClickHouse (stored_at is when the consumer wrote it). dead_lettered: the consumer refused the ' +
        'record (reason_code says why; see README "Dead letters"). accepted: written to the event log, not yet stored. ' +
        'unknown: no such event for this tenant (another tenant\'s events are never revealed). A process running ' +
        '`--role api` over embedded chDB cannot read ClickHouse and answers only accepted or unknown. ' +
        'URL-encode both path segments (a source may hold "/").',
      params: {
        type: 'object', required: ['source', 'externalEventId'],
        properties: {
          source: { type: 'string', minLength: 1, maxLength: maxId, pattern: SOURCE.source },
          externalEventId: { type: 'string', minLength: 1, maxLength: maxId },
        },
      },
      response: {
        200: {
          description: 'the event\'s status',
          type: 'object', required: ['status', 'event_id', 'received_at', 'stored_at', 'reason_code'],
          properties: {
            status: { type: 'string', enum: [...EVENT_STATUSES] },
            event_id: { type: 'string', nullable: true },
            received_at: time,
            stored_at: time,
            reason_code: { type: 'string', nullable: true },
          },
        },
        401: { description: 'API key missing, malformed, unknown, revoked or expired', ...errorBody },
        403: { description: 'API key lacks the events:read permission', ...errorBody },
        422: { description: 'source or externalEventId is not a valid value', ...errorBody },
        429: { description: 'rate limit; see Retry-After', ...errorBody },
        503: { description: 'state store or ClickHouse unavailable; retry after Retry-After', ...errorBody },
      },
    },
  }, async (request) => {
    const { source, externalEventId } = request.params as { source: string; externalEventId: string }
    const details: ErrorDetail[] = []
    if (source.length > maxId || !SOURCE.test(source)) details.push({ pointer: '/source', code: 'pattern', message: `source must match ${SOURCE.source} and hold at most ${maxId} characters` })
    if (externalEventId.length > maxId || CONTROL.test(externalEventId)) details.push({ pointer: '/externalEventId', code: 'invalid', message: `externalEventId must hold 1 to ${maxId} characters without control characters` })
    if (details.length > 0) throw new CdpError('validation_failed', 'invalid path parameters', { details })
    return opts.status(tenantOf(request.apiKey!), source, externalEventId)
  })
}
