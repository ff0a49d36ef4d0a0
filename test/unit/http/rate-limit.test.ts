import t from 'tap'
import { FailureLimiter, RateLimiter } from '../../../src/http/rate-limit.js'
import { MemoryRateLimitStore } from '../../../src/state/rate-limit-store.js'

void t.test('memory limiter: per-item charges, all-or-nothing across key and tenant, window reset', async (t) => {
  let now = 0
  const limiter = new RateLimiter(new MemoryRateLimitStore(() => now), { keyMax: 10, tenantMax: 15, windowMs: 60_000, prefix: 'p' })
  t.equal(await limiter.charge('k1', 'acme', 8), undefined)
  t.match(await limiter.charge('k1', 'acme', 3), { scope: 'key', limit: 10, cost: 3, retryAfter: 60 })
  t.equal(await limiter.charge('k1', 'acme', 2), undefined, 'the refused 3 were not charged')
  // tenant: 10 used; k2 may take 5 more, not 6
  t.match(await limiter.charge('k2', 'acme', 6), { scope: 'tenant', limit: 15 })
  t.equal(await limiter.charge('k2', 'acme', 5), undefined)
  t.equal(await limiter.charge('k3', 'globex', 10), undefined, 'tenants are separate')
  now = 30_000
  t.match(await limiter.charge('k1', 'acme', 1), { retryAfter: 30 })
  now = 60_000
  t.equal(await limiter.charge('k1', 'acme', 10), undefined, 'a new window')
})

void t.test('failure limiter: blocks an address after max failures until its window ends', async (t) => {
  let now = 0
  const f = new FailureLimiter(3, 10_000, () => now)
  for (let i = 0; i < 3; i++) { t.equal(f.blocked('1.2.3.4'), undefined); f.record('1.2.3.4') }
  t.equal(f.blocked('1.2.3.4'), 10)
  t.equal(f.blocked('5.6.7.8'), undefined, 'other addresses are not affected')
  now = 9_500
  t.equal(f.blocked('1.2.3.4'), 1)
  now = 10_000
  t.equal(f.blocked('1.2.3.4'), undefined)
})
