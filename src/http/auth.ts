/**
 * Bearer-key authentication and permission checks, and the per-item rate charge.
 *
 * Authentication runs in the route's `onRequest` hook, before Fastify reads or parses the body:
 * an unauthenticated 8 MiB batch is refused for the price of its headers. The rate charge needs
 * the item count, so it runs in `preHandler`, after parsing, and only for authenticated callers.
 * The tenant always comes from the key, never from the body. A permission counts only on its kind
 * of key (src/auth/keys.ts `grants`): an operator key (no tenant) is refused on every tenant
 * route, and a tenant key holding an operator permission from before operator keys is refused on
 * the operator routes with the command that replaces it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { CdpError } from '../errors.js'
import type { ApiKeyRecord } from '../state/types.js'
import { grants, isIn, TENANT_PERMISSIONS, type KeyVerifier, type Permission } from '../auth/keys.js'
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
 * An `onRequest` hook; the key must hold `permission` (or one of them) on its own kind of key.
 * With a limiter, the request is also charged 1 here (routes whose cost depends on the body use
 * chargeItems in preHandler instead).
 */
export function requireKey(verifier: KeyVerifier, permission: Permission | readonly Permission[], limiter?: RateLimiter) {
  const wanted: readonly Permission[] = typeof permission === 'string' ? [permission] : permission
  // the deprecation of a legacy key is logged once per key id and process, not per request
  const warned = new Set<string>()
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    let outcome
    try {
      outcome = await verifier.verify(request.headers.authorization)
    } catch (err) {
      throw new CdpError('state_store_unavailable', 'key store unavailable', { cause: err, retryAfter: 1 })
    }
    if (!outcome.ok) throw new CdpError('unauthorized', REASON_TEXT[outcome.reason])
    const key = outcome.key
    const worth = wanted.map((p) => grants(key, p))
    const legacy = wanted.filter((_, i) => worth[i] === 'legacy')
    if (legacy.length > 0) {
      if (!warned.has(key.id)) {
        warned.add(key.id)
        request.log.warn({ keyId: key.id, tenant: key.tenant, permissions: legacy }, 'refused: a tenant key holds an operator permission; replace it with an operator key')
      }
      throw new CdpError('forbidden', `this key of tenant ${JSON.stringify(key.tenant)} holds ${legacy.join(', ')}, which only an operator key (no tenant) carries now; ` +
        `create one with \`cdp keys create --operator --permission ${legacy[0]}\` and revoke this one`)
    }
    if (!worth.includes('yes')) {
      throw new CdpError('forbidden', key.tenant === null && wanted.every((p) => isIn(TENANT_PERMISSIONS, p))
        ? `an operator key (no tenant) cannot use this route: it needs a key of a tenant with ${wanted.join(' or ')}`
        : `API key lacks the ${wanted.join(' or ')} permission`)
    }
    request.apiKey = key
    request.log = request.log.child({ keyId: key.id, tenant: key.tenant })
    if (limiter !== undefined) await charge(limiter, request, 1)
  }
}

/** The tenant of a tenant route's key: requireKey let no operator key through, so null here is a bug (403, never another tenant). */
export function tenantOf(key: ApiKeyRecord): string {
  if (key.tenant === null) throw new CdpError('forbidden', 'an operator key (no tenant) cannot use a tenant route')
  return key.tenant
}

/** operator keys have no tenant: they share one rate bucket, named with a NUL, which no tenant given to `cdp keys create` on a command line can hold */
const OPERATOR_RATE_BUCKET = '\u0000operators'

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
    refused = await limiter.charge(key.id, key.tenant ?? OPERATOR_RATE_BUCKET, cost)
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
