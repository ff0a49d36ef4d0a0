/**
 * Rate limits of the HTTP API.
 *
 * - RateLimiter: events per API key and per tenant, charged per item (a batch of 500 costs 500),
 *   fixed windows. The counters live in a RateLimitStore shared by every API process: Redis when
 *   the state backend is Redis (every process and instance); else an LMDB environment of its own
 *   under state.lmdbPath (every process of the machine, so `serve --workers N` has one budget,
 *   not N). src/state/rate-limit-store.ts.
 * - FailureLimiter: failing requests (bad key, malformed body, unknown route) per client address,
 *   in process memory on purpose: a flood of bad requests must not cost a Redis round trip each.
 *
 * A request is charged only when every bucket has room for all of it, so a refused request
 * costs nothing and cannot drain the tenant's budget for its other keys.
 */
import type { RateLimitStore } from '../state/rate-limit-store.js'

export interface RateLimits {
  /** items per key per window */
  keyMax: number
  /** items per tenant per window, all its keys together */
  tenantMax: number
  windowMs: number
  /** namespace of the Redis keys (config.keys.prefix) */
  prefix: string
}

export type Refusal = { retryAfter: number; scope: 'key' | 'tenant'; limit: number; cost: number }

export class RateLimiter {
  constructor(private readonly store: RateLimitStore, private readonly limits: RateLimits) {}

  /**
   * undefined when allowed. Both buckets of a key share the tenant's hash tag, so the script's
   * keys live in one Redis Cluster slot.
   */
  async charge(keyId: string, tenant: string, cost: number): Promise<Refusal | undefined> {
    const { prefix, keyMax, tenantMax, windowMs } = this.limits
    const tag = `${prefix}:rl:{${tenant}}`
    const buckets = [{ id: `${tag}:key:${keyId}`, limit: keyMax }, { id: `${tag}:tenant`, limit: tenantMax }]
    const r = await this.store.charge(buckets, cost, windowMs)
    if (r.ok) return undefined
    return { retryAfter: Math.max(1, Math.ceil(r.retryAfterMs / 1000)), scope: r.bucket === 0 ? 'key' : 'tenant', limit: buckets[r.bucket]!.limit, cost }
  }

  close(): Promise<void> { return this.store.close() }
}

/** Failing requests per client address, fixed window, in process memory. */
export class FailureLimiter {
  private readonly counts = new Map<string, { n: number; resetAt: number }>()

  constructor(private readonly max: number, private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  /** seconds until the address may try again, or undefined */
  blocked(addr: string): number | undefined {
    const c = this.counts.get(addr)
    const t = this.now()
    if (c === undefined || c.resetAt <= t || c.n < this.max) return undefined
    return Math.max(1, Math.ceil((c.resetAt - t) / 1000))
  }

  record(addr: string): void {
    const t = this.now()
    if (this.counts.size > 50_000) {
      for (const [k, v] of this.counts) if (v.resetAt <= t) this.counts.delete(k)
      // still full: a spread-out flood; forgetting is safer than growing without bound
      if (this.counts.size > 50_000) this.counts.clear()
    }
    const c = this.counts.get(addr)
    if (c === undefined || c.resetAt <= t) this.counts.set(addr, { n: 1, resetAt: t + this.windowMs })
    else c.n++
  }
}
