/**
 * POST /v1/cdp/events        one event  -> 202 accepted | 200 duplicate | 4xx error body
 * POST /v1/cdp/events/batch  many       -> 200 {"results":[...]} in request order, each judged alone
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../config/index.js'
import { CdpError } from '../../errors.js'
import type { IngestService, ItemResult } from '../../ingest/service.js'
import { envelopeSchema } from '../../ingest/envelope.js'
import type { KeyVerifier } from '../../auth/keys.js'
import { requireKey } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'

const errorBody = {
  type: 'object',
  required: ['status', 'error_code', 'message'],
  properties: {
    status: { const: 'error' },
    error_code: { type: 'string' },
    message: { type: 'string' },
    details: {
      type: 'array',
      items: { type: 'object', properties: { pointer: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } } },
    },
  },
} as const

const accepted = { type: 'object', required: ['status', 'event_id'], properties: { status: { const: 'accepted' }, event_id: { type: 'string' } } } as const
const duplicate = { type: 'object', required: ['status', 'original_event_id'], properties: { status: { const: 'duplicate' }, original_event_id: { type: 'string' } } } as const

const errorResponses = {
  401: { description: 'API key missing, malformed, unknown, revoked or expired', ...errorBody },
  403: { description: 'API key lacks the permission, or may not send as this source', ...errorBody },
  413: { description: 'body larger than the route limit', ...errorBody },
  429: { description: 'rate limit for this key; see Retry-After', ...errorBody },
  503: { description: 'Kafka, schema registry or state store unavailable; retry with the same externalEventId after Retry-After', ...errorBody },
}

export interface EventRoutesOptions {
  config: Readonly<Config>
  ingest: IngestService
  keys: KeyVerifier
  limiter: RateLimiter
}

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, opts) => {
  const { config, ingest } = opts
  const event = envelopeSchema(config.validation)

  app.post('/v1/cdp/events', {
    preHandler: requireKey(opts.keys, 'events:write', opts.limiter),
    schema: {
      summary: 'Accept one customer event',
      body: event,
      response: {
        202: { description: 'accepted: written to the event log', ...accepted },
        200: { description: 'duplicate: this business fact was accepted before', ...duplicate },
        409: { description: 'idempotency_conflict: externalEventId already used for a different payload', ...errorBody },
        422: { description: 'validation_failed', ...errorBody },
        ...errorResponses,
      },
    },
  }, async (request, reply) => {
    const key = request.apiKey!
    const [result] = await ingest.ingest({ tenant: key.tenant, sources: key.sources }, [request.body])
    const r = result as ItemResult
    if (r.status === 'accepted') return reply.code(202).send(r)
    if (r.status === 'duplicate') return reply.code(200).send(r)
    throw new CdpError(r.error_code, r.message, r.details === undefined ? {} : { details: r.details })
  })

  app.post('/v1/cdp/events/batch', {
    preHandler: requireKey(opts.keys, 'events:batch', opts.limiter),
    bodyLimit: config.http.batchBodyLimitBytes,
    schema: {
      summary: 'Accept many customer events; each item is judged on its own',
      body: {
        type: 'object',
        required: ['items'],
        additionalProperties: false,
        properties: { items: { type: 'array', minItems: 1, maxItems: config.http.maxBatchItems, items: event } },
      },
      response: {
        200: {
          description: 'one result per item, in request order',
          type: 'object',
          properties: { results: { type: 'array', items: { anyOf: [accepted, duplicate, errorBody] } } },
        },
        400: { description: 'body is not {"items":[...]}', ...errorBody },
        422: { description: 'too many items', ...errorBody },
        ...errorResponses,
      },
    },
  }, async (request) => {
    const key = request.apiKey!
    const body = request.body as { items?: unknown } | null
    if (body === null || typeof body !== 'object' || Array.isArray(body) || !Array.isArray(body.items)) {
      throw new CdpError('validation_failed', 'body must be {"items":[...]}', { details: [{ pointer: '/items', code: 'required', message: 'items must be an array of events' }] })
    }
    const extra = Object.keys(body).filter((k) => k !== 'items')
    if (extra.length > 0) {
      throw new CdpError('validation_failed', `unknown field ${extra.join(', ')}`, { details: extra.map((k) => ({ pointer: `/${k}`, code: 'unknown_field', message: `${k} is not a known field` })) })
    }
    const items = body.items
    if (items.length === 0 || items.length > config.http.maxBatchItems) {
      throw new CdpError('validation_failed', `items must hold 1 to ${config.http.maxBatchItems} events`, { details: [{ pointer: '/items', code: items.length === 0 ? 'too_short' : 'too_long', message: `items must hold 1 to ${config.http.maxBatchItems} events, got ${items.length}` }] })
    }
    const results = await ingest.ingest({ tenant: key.tenant, sources: key.sources }, items)
    return { results }
  })
}
