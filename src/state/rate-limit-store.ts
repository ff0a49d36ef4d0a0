/**
 * Where the HTTP API's rate-limit counters live (src/http/rate-limit.ts decides what to charge),
 * always somewhere every API process using the same state draws from one budget:
 * - Redis when the state backend is Redis (every process and instance);
 * - LMDB otherwise, an environment of its own under <state.lmdbPath>/rate-limit
 *   (rate-limit-store-lmdb.ts; every process of one machine, `serve --workers N` included).
 * Memory is for tests. Atomic check-and-charge over several buckets.
 */
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import type { Config } from '../config/index.js'
import { RedisScript, closeRedisClient, createRedisClient, redisSecurity } from './redis-client.js'
import { openLmdbRateLimitStore } from './rate-limit-store-lmdb.js'
import { chargeWindows, type Bucket, type ChargeResult, type Counter, type RateLimitStore } from './rate-limit-types.js'

export type { Bucket, ChargeResult, RateLimitStore } from './rate-limit-types.js'

/** one process's counters: tests, and code that needs no sharing */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly counts = new Map<string, Counter>()

  constructor(private readonly now: () => number = Date.now) {}

  charge(buckets: Bucket[], cost: number, windowMs: number): Promise<ChargeResult> {
    const t = this.now()
    if (this.counts.size > 100_000) {
      for (const [k, v] of this.counts) if (v[1] <= t) this.counts.delete(k)
    }
    const r = chargeWindows(buckets, buckets.map((b) => this.counts.get(b.id)), cost, windowMs, t)
    if (!r.ok) return Promise.resolve(r)
    for (const [i, b] of buckets.entries()) this.counts.set(b.id, r.next[i]!)
    return Promise.resolve({ ok: true })
  }

  close(): Promise<void> { return Promise.resolve() }
}

// KEYS: the buckets; ARGV: cost, windowMs, then one limit per key. Check all, then charge all, in
// one script so concurrent API processes cannot both take the last room. PEXPIRE starts the window
// on the first charge (and repairs a key that somehow lost its TTL).
const CHARGE = new RedisScript('rate limit charge', `
local cost = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', k) or '0')
  if used + cost > tonumber(ARGV[i + 2]) then
    local ttl = redis.call('PTTL', k)
    if ttl < 0 then ttl = window end
    return {i, ttl}
  end
end
for _, k in ipairs(KEYS) do
  redis.call('INCRBY', k, cost)
  if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, window) end
end
return {0, 0}
`)

export class RedisRateLimitStore implements RateLimitStore {
  constructor(private readonly client: Redis, private readonly closeClient: () => Promise<void> = () => Promise.resolve()) {}

  async charge(buckets: Bucket[], cost: number, windowMs: number): Promise<ChargeResult> {
    const r = await CHARGE.run(this.client, buckets.map((b) => b.id), [cost, windowMs, ...buckets.map((b) => b.limit)]) as [number, number]
    return r[0] === 0 ? { ok: true } : { ok: false, bucket: r[0] - 1, retryAfterMs: r[1] }
  }

  close(): Promise<void> { return this.closeClient() }
}

/**
 * Redis (its own client, closed with the store) when the state backend is Redis; else LMDB, also
 * for a single process (about 3 to 9 µs a charge, docs/BENCHMARKS.md), so the limits mean the
 * same whatever the number of workers.
 */
export function createRateLimitStore(config: Readonly<Pick<Config, 'state'>>): RateLimitStore {
  if (config.state.backend !== 'redis') return openLmdbRateLimitStore(join(config.state.lmdbPath, 'rate-limit'))
  const client = createRedisClient(config.state.redisUrl, redisSecurity(config.state))
  return new RedisRateLimitStore(client, () => closeRedisClient(client))
}
