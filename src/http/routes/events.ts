/**
 * POST /v1/cdp/events        one event  -> 202 accepted | 200 duplicate | 4xx error body
 * POST /v1/cdp/events/batch  many       -> 200 {"results":[...]} in request order, each judged alone
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { Config } from '../../config/index.js'
import { CdpError, type ErrorDetail } from '../../errors.js'
import type { IngestService, ItemResult } from '../../ingest/service.js'
import { propertiesProblems, summarize } from '../../ingest/envelope.js'
import { inexactNumberDetail } from '../../ingest/json-numbers.js'
import type { KeyVerifier } from '../../auth/keys.js'
import { chargeItems, requireKey, tenantOf } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'
import type { OpenApiSchema } from '../../contracts/json-schema.js'
import { errorBody, errorResponse, frontDoorResponses, keyResponses, requestTimeout, retryAfter, tooLarge } from '../openapi/responses.js'

/**
 * What must be refused before an item reaches the ingest core: numbers JSON.parse changed
 * (found in the raw body, so only the request knows them) and nesting deep enough to overflow
 * the stack of anything recursive later (JSON.stringify, Avro). `prefix` is the item's pointer
 * in the body ('' for a single event, '/items/3' for a batch item); details are relative to it.
 */
function preCheck(request: FastifyRequest, item: unknown, prefix: string, maxDepth: number): ErrorDetail[] {
  const details: ErrorDetail[] = []
  for (const n of request.inexactNumbers ?? []) {
    if (n.pointer === prefix || n.pointer.startsWith(`${prefix}/`)) details.push(inexactNumberDetail(n, n.pointer.slice(prefix.length)))
  }
  // the item is one level above its properties
  for (const d of propertiesProblems(item, maxDepth + 1, '')) if (d.code === 'too_deep') details.push(d)
  return details
}

const accepted = { type: 'object', required: ['status', 'event_id'], properties: { status: { type: 'string', enum: ['accepted'] }, event_id: { type: 'string' } } } as const
const duplicate = { type: 'object', required: ['status', 'original_event_id'], properties: { status: { type: 'string', enum: ['duplicate'] }, original_event_id: { type: 'string' } } } as const

/** the 503s of the ingest path besides the drain (ingest/service.ts, auth.ts) */
const unavailable = errorResponse(
  'kafka_unavailable, schema_registry_unavailable, state_store_unavailable, timeout (an identical request is still being written) ' +
  'or shutting_down; retry with the same externalEventId after Retry-After', retryAfter)

/** the items of a well-formed batch body; throws the 422 otherwise */
function batchItems(raw: unknown, maxItems: number): unknown[] {
  const body = raw as { items?: unknown } | null
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !Array.isArray(body.items)) {
    throw new CdpError('validation_failed', 'body must be {"items":[...]}', { details: [{ pointer: '/items', code: 'required', message: 'items must be an array of events' }] })
  }
  const extra = Object.keys(body).filter((k) => k !== 'items')
  if (extra.length > 0) {
    throw new CdpError('validation_failed', `unknown field ${extra.join(', ')}`, { details: extra.map((k) => ({ pointer: `/${k}`, code: 'unknown_field', message: `${k} is not a known field` })) })
  }
  const items = body.items
  if (items.length === 0 || items.length > maxItems) {
    throw new CdpError('validation_failed', `items must hold 1 to ${maxItems} events`, { details: [{ pointer: '/items', code: items.length === 0 ? 'too_short' : 'too_long', message: `items must hold 1 to ${maxItems} events, got ${items.length}` }] })
  }
  return items
}

export interface EventRoutesOptions {
  config: Readonly<Config>
  ingest: IngestService
  keys: KeyVerifier
  limiter: RateLimiter
  /** the documented event schema (openapi/events.ts): one per registered type under a discriminator */
  eventSchema: OpenApiSchema
}

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, opts) => {
  const { config, ingest } = opts
  const event = opts.eventSchema
  const maxDepth = config.validation.maxPropertiesDepth

  app.post('/v1/cdp/events', {
    onRequest: requireKey(opts.keys, 'events:write'),
    preHandler: chargeItems(opts.limiter, () => 1),
    schema: {
      summary: 'Accept one customer event',
      body: event,
      response: {
        202: { description: 'accepted: written to the event log', ...accepted },
        200: { description: 'duplicate: this business fact was accepted before', ...duplicate },
        ...frontDoorResponses,
        ...keyResponses,
        ...requestTimeout,
        409: errorResponse('idempotency_conflict: externalEventId already used for a different payload; suppressed: the event carries an identity of a person erased for this tenant (docs/PRIVACY.md)'),
        ...tooLarge(config.http.singleBodyLimitBytes),
        422: errorResponse('validation_failed: every problem of the event, one detail each (JSON pointer, code, message)'),
        429: errorResponse('rate_limited: events per key or per tenant, or failing requests per client address; wait Retry-After seconds', retryAfter),
        503: unavailable,
      },
    },
  }, async (request, reply) => {
    const key = request.apiKey!
    const refused = preCheck(request, request.body, '', maxDepth)
    if (refused.length > 0) throw new CdpError('validation_failed', summarize(refused), { details: refused })
    const [result] = await ingest.ingest({ tenant: tenantOf(key), sources: key.sources }, [request.body])
    const r = result as ItemResult
    if (r.status === 'accepted') return reply.code(202).send(r)
    if (r.status === 'duplicate') return reply.code(200).send(r)
    throw new CdpError(r.error_code, r.message, r.details === undefined ? {} : { details: r.details })
  })

  app.post('/v1/cdp/events/batch', {
    onRequest: requireKey(opts.keys, 'events:batch'),
    // the shape first (a malformed batch is not charged), then one per item whatever becomes of them
    preHandler: [async (request) => { batchItems(request.body, config.http.maxBatchItems) }, chargeItems(opts.limiter, (request) => batchItems(request.body, config.http.maxBatchItems).length)],
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
          required: ['results'],
          properties: { results: { type: 'array', items: { anyOf: [accepted, duplicate, errorBody] } } },
        },
        ...frontDoorResponses,
        ...keyResponses,
        ...requestTimeout,
        ...tooLarge(config.http.batchBodyLimitBytes),
        422: errorResponse(`validation_failed: the body is not {"items":[...]} with 1 to ${config.http.maxBatchItems} items, or has other fields (items are judged one by one in the 200 answer)`),
        429: errorResponse('rate_limited: events per key or per tenant (a batch of N costs N), or failing requests per client address; wait Retry-After seconds', retryAfter),
        503: unavailable,
      },
    },
  }, async (request) => {
    const key = request.apiKey!
    const items = batchItems(request.body, config.http.maxBatchItems)
    const results: ItemResult[] = new Array(items.length)
    const passed: number[] = []
    items.forEach((item, i) => {
      const refused = preCheck(request, item, `/items/${i}`, maxDepth)
      if (refused.length > 0) results[i] = { status: 'error', error_code: 'validation_failed', message: summarize(refused), details: refused }
      else passed.push(i)
    })
    const judged = passed.length === 0 ? [] : await ingest.ingest({ tenant: tenantOf(key), sources: key.sources }, passed.length === items.length ? items : passed.map((i) => items[i]))
    passed.forEach((i, k) => { results[i] = judged[k]! })
    return { results }
  })
}
