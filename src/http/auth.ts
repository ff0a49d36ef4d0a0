/**
 * Bearer-key authentication and permission checks, as a preHandler per route.
 * The tenant always comes from the key, never from the body.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { CdpError } from '../errors.js'
import type { ApiKeyRecord } from '../state/types.js'
import type { KeyVerifier, Permission } from '../auth/keys.js'
import type { RateLimiter } from './rate-limit.js'

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: ApiKeyRecord
  }
}

const REASON_TEXT = {
  missing: 'missing Authorization: Bearer <api_key> header',
  malformed: 'malformed API key',
  unknown: 'invalid API key',
  revoked: 'API key has been revoked',
  expired: 'API key has expired',
} as const

export function requireKey(verifier: KeyVerifier, permission: Permission, limiter?: RateLimiter) {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    let outcome
    try {
      outcome = await verifier.verify(request.headers.authorization)
    } catch (err) {
      throw new CdpError('state_store_unavailable', 'key store unavailable', { cause: err, retryAfter: 1 })
    }
    if (!outcome.ok) throw new CdpError('unauthorized', REASON_TEXT[outcome.reason])
    if (!outcome.key.permissions.includes(permission)) {
      throw new CdpError('forbidden', `API key lacks the ${permission} permission`)
    }
    request.apiKey = outcome.key
    request.log = request.log.child({ keyId: outcome.key.id, tenant: outcome.key.tenant })
    if (limiter !== undefined) {
      const wait = limiter.take(outcome.key.id)
      if (wait !== undefined) throw new CdpError('rate_limited', 'rate limit exceeded for this API key', { retryAfter: wait })
    }
  }
}
