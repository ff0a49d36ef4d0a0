/**
 * POST /v1/cdp/erasures and GET /v1/cdp/erasures/{erasure_id} (docs/PRIVACY.md): a key of the
 * tenant with `privacy:erase` asks for a person to be erased and follows the request. The tenant
 * is the key's; a request of another tenant answers 404 as if it did not exist. The route only
 * parses, authorizes and answers: src/privacy takes the request (and suppresses the identity at
 * once); the process that owns ClickHouse runs it.
 */
import type { FastifyPluginAsync } from 'fastify'
import { CdpError } from '../../errors.js'
import type { KeyVerifier } from '../../auth/keys.js'
import { erasureView, type ErasureRequests } from '../../privacy/index.js'
import { requireKey, tenantOf } from '../auth.js'
import type { RateLimiter } from '../rate-limit.js'

const errorBody = {
  type: 'object', required: ['status', 'error_code', 'message'],
  properties: {
    status: { const: 'error' }, error_code: { type: 'string' }, message: { type: 'string' },
    details: { type: 'array', items: { type: 'object', properties: { pointer: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } } } },
  },
} as const

const counts = { type: 'object', additionalProperties: { type: 'integer' } } as const
const erasure = {
  type: 'object', required: ['erasure_id', 'status'],
  properties: {
    erasure_id: { type: 'string' },
    status: { enum: ['pending', 'running', 'completed', 'failed'] },
    step: { type: 'string', description: 'the step running now' },
    reason: { type: 'string', description: 'why it failed' },
    requested_at: { type: 'string' },
    finished_at: { type: 'string' },
    receipt: {
      type: 'object',
      description: 'what was removed, per store (completed only)',
      properties: {
        profileIds: { type: 'array', items: { type: 'string' } },
        clickhouse: counts,
        graph: counts,
        dedupMarkedErased: { type: 'integer' },
        claimsScrubbed: { type: 'integer' },
        tombstones: { type: 'integer' },
        suppressed: { type: 'integer' },
      },
    },
  },
} as const

const identityFields = {
  email: { type: 'string' }, phone: { type: 'string' }, externalUserId: { type: 'string' }, deviceKey: { type: 'string' },
} as const

export const erasureRoutes: FastifyPluginAsync<{ keys: KeyVerifier; erasures: ErasureRequests; limiter: RateLimiter }> = async (app, opts) => {
  app.post('/v1/cdp/erasures', {
    onRequest: requireKey(opts.keys, 'privacy:erase', opts.limiter),
    schema: {
      summary: "Erase a person of the key's tenant (needs privacy:erase)",
      description: 'The identity (exactly one of email, phone, externalUserId, deviceKey; normalized as events are) names ' +
        'the person: the whole profile it resolves to, merged profiles included. From this answer on, events carrying ' +
        'the identity are refused (409 suppressed). The erasure runs in the process that owns ClickHouse (role all or ' +
        'consumer); follow it with GET /v1/cdp/erasures/{erasure_id}. See docs/PRIVACY.md.',
      body: {
        type: 'object', required: ['identity'], additionalProperties: false,
        properties: { identity: { type: 'object', minProperties: 1, maxProperties: 1, additionalProperties: false, properties: identityFields } },
      },
      response: {
        202: { description: 'taken: runs in the background', type: 'object', properties: { erasure_id: { type: 'string' }, status: { const: 'pending' } } },
        401: { description: 'API key missing or invalid', ...errorBody },
        403: { description: 'the key lacks privacy:erase', ...errorBody },
        422: { description: 'validation_failed: not exactly one usable identity', ...errorBody },
        503: { description: 'state store unavailable; retry', ...errorBody },
      },
    },
  }, async (request, reply) => {
    const key = request.apiKey!
    const rec = await opts.erasures.request(tenantOf(key), request.body, `key:${key.id}`)
    request.log.info({ erasureId: rec.id }, 'erasure requested')
    return reply.code(202).send({ erasure_id: rec.id, status: rec.status })
  })

  app.get('/v1/cdp/erasures/:erasure_id', {
    onRequest: requireKey(opts.keys, 'privacy:erase', opts.limiter),
    schema: {
      summary: 'The status of an erasure, and its receipt once completed',
      params: { type: 'object', required: ['erasure_id'], properties: { erasure_id: { type: 'string' } } },
      response: {
        200: erasure,
        401: { description: 'API key missing or invalid', ...errorBody },
        403: { description: 'the key lacks privacy:erase', ...errorBody },
        404: { description: "no such erasure for the key's tenant", ...errorBody },
      },
    },
  }, async (request) => {
    const { erasure_id: id } = request.params as { erasure_id: string }
    const rec = await opts.erasures.get(tenantOf(request.apiKey!), id)
    if (rec === undefined) throw new CdpError('not_found', `no erasure ${id}`)
    return erasureView(rec)
  })
}
