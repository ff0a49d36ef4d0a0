/**
 * Bearer-key authentication and permission checks, and the per-item rate charge.
 *
 * Authentication runs in the route's `onRequest` hook, before Fastify reads or parses the body:
 * an unauthenticated 8 MiB batch is refused for the price of its headers. The rate charge needs
 * the item count, so it runs in `preHandler`, after parsing, and only for authenticated callers.
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

/**
 * An `onRequest` hook. With a limiter, the request is also charged 1 here (routes whose cost
 * depends on the body use chargeItems in preHandler instead).
 */
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
    if (limiter !== undefined) await charge(limiter, request, 1)
  }
}

/** A `preHandler` hook charging the authenticated key and its tenant `cost(request)` items. */
export function chargeItems(limiter: RateLimiter, cost: (request: FastifyRequest) => number) {
  return async function chargeRate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    await charge(limiter, request, Math.max(1, cost(request)))
  }
}

/** Charges the authenticated caller `cost` items inside a handler (the import route charges chunk by chunk). */
export function chargeKey(limiter: RateLimiter, request: FastifyRequest, cost: number): Promise<void> {
  return charge(limiter, request, cost)
}

async function charge(limiter: RateLimiter, request: FastifyRequest, cost: number): Promise<void> {
  const key = request.apiKey
  if (key === undefined) throw new CdpError('unauthorized', REASON_TEXT.missing)
  let refused
  try {
    refused = await limiter.charge(key.id, key.tenant, cost)
  } catch (err) {
    // the limit is a protection, not a correctness rule: a shared counter that cannot be reached
    // lets the request through (the state store it also needs answers for itself)
    request.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'rate limit store unavailable; request not counted')
    return
  }
  if (refused === undefined) return
  const whose = refused.scope === 'key' ? 'this API key' : 'this tenant'
  const message = refused.cost > refused.limit
    ? `this request holds ${refused.cost} events, more than the limit of ${refused.limit} per window for ${whose}; send smaller batches`
    : `rate limit exceeded for ${whose} (${refused.limit} events per window)`
  throw new CdpError('rate_limited', message, { retryAfter: refused.retryAfter })
}
