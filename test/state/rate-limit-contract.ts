/**
 * The behaviour every RateLimitStore must have (src/state/rate-limit-store.ts). The memory, LMDB
 * and Redis stores run this same suite (rate-limit-store.test.ts); a rule lives here once.
 */
import type { Test } from 'tap'
import type { Bucket, ChargeResult, RateLimitStore } from '../../src/state/rate-limit-store.js'

export interface RateLimitFixture {
  /** opens a store on ONE isolated storage; a second call reopens the same storage */
  open: () => RateLimitStore
  /** moves the store's clock on by ms (a fake clock), or waits that long (a server's clock) */
  advance: (ms: number) => Promise<void>
  /** the window the tests use: long enough for a few calls, short enough to wait for on a real clock */
  windowMs: number
  /** whether two stores from `open` share the counters (false for process memory) */
  shared: boolean
  /** prefix of the bucket ids (a shared Redis: unique per test) */
  ns: string
}

export function rateLimitContract(t: Test, fixture: (t: Test) => RateLimitFixture): void {
  let ns = ''
  const key = (id: string, limit: number): Bucket => ({ id: `${ns}:rl:{acme}:key:${id}`, limit })
  const tenant = (limit: number): Bucket => ({ id: `${ns}:rl:{acme}:tenant`, limit })
  function open(t: Test): { store: RateLimitStore; f: RateLimitFixture } {
    const f = fixture(t)
    ns = f.ns
    const store = f.open()
    t.teardown(() => store.close())
    return { store, f }
  }
  const refused = (r: ChargeResult, bucket: number, windowMs: number, t: Test, what: string): void => {
    t.equal(r.ok, false, what)
    if (r.ok) return
    t.equal(r.bucket, bucket, `${what}: bucket ${bucket} refused`)
    t.ok(r.retryAfterMs > 0 && r.retryAfterMs <= windowMs, `${what}: retry within the window (${r.retryAfterMs} ms)`)
  }

  void t.test('charges per item until the limit, then refuses', async (t) => {
    const { store, f } = open(t)
    const b = [key('k1', 10)]
    t.same(await store.charge(b, 6, f.windowMs), { ok: true })
    t.same(await store.charge(b, 4, f.windowMs), { ok: true }, 'exactly the limit fits')
    refused(await store.charge(b, 1, f.windowMs), 0, f.windowMs, t, 'one more')
  })

  void t.test('all or nothing: a refusal by one bucket charges none, and a refused request costs nothing', async (t) => {
    const { store, f } = open(t)
    t.same(await store.charge([key('k1', 10), tenant(15)], 8, f.windowMs), { ok: true })
    refused(await store.charge([key('k1', 10), tenant(15)], 3, f.windowMs), 0, f.windowMs, t, 'the key bucket')
    refused(await store.charge([key('k2', 10), tenant(15)], 8, f.windowMs), 1, f.windowMs, t, 'the tenant bucket')
    // neither refusal charged anything: k2 is still empty, the tenant still has 7
    t.same(await store.charge([key('k2', 10), tenant(15)], 7, f.windowMs), { ok: true })
    refused(await store.charge([key('k2', 10), tenant(15)], 1, f.windowMs), 1, f.windowMs, t, 'the tenant is now full')
    t.same(await store.charge([key('k1', 10)], 2, f.windowMs), { ok: true }, 'k1 has its 2 left')
  })

  void t.test('a cost above the limit is refused even on an empty bucket', async (t) => {
    const { store, f } = open(t)
    refused(await store.charge([key('k1', 5)], 6, f.windowMs), 0, f.windowMs, t, 'too big')
    t.same(await store.charge([key('k1', 5)], 5, f.windowMs), { ok: true })
  })

  void t.test('buckets are separate', async (t) => {
    const { store, f } = open(t)
    t.same(await store.charge([key('k1', 3)], 3, f.windowMs), { ok: true })
    t.same(await store.charge([key('k2', 3)], 3, f.windowMs), { ok: true })
    t.same(await store.charge([{ id: `${ns}:rl:{globex}:tenant`, limit: 3 }], 3, f.windowMs), { ok: true })
  })

  void t.test('the window starts at the first charge and ends windowMs later', async (t) => {
    const { store, f } = open(t)
    const b = [key('k1', 4)]
    t.same(await store.charge(b, 4, f.windowMs), { ok: true })
    await f.advance(f.windowMs / 2)
    const half = await store.charge(b, 1, f.windowMs)
    refused(half, 0, f.windowMs, t, 'halfway')
    if (!half.ok) t.ok(half.retryAfterMs <= f.windowMs / 2, `retry counts down (${half.retryAfterMs} ms)`)
    await f.advance(f.windowMs / 2 + 1)
    t.same(await store.charge(b, 4, f.windowMs), { ok: true }, 'a new window has the whole budget')
    refused(await store.charge(b, 1, f.windowMs), 0, f.windowMs, t, 'and counts again')
  })

  void t.test('concurrent charges never exceed the limit', async (t) => {
    const { store, f } = open(t)
    const all = await Promise.all(Array.from({ length: 60 }, () => store.charge([key('k1', 1000), tenant(25)], 1, f.windowMs)))
    t.equal(all.filter((r) => r.ok).length, 25, '25 of 60 fit')
  })

  void t.test('two stores on the same storage draw from one budget', async (t) => {
    const f = fixture(t)
    ns = f.ns
    if (!f.shared) { t.pass('process memory is per store'); return }
    const a = f.open()
    const b = f.open()
    t.teardown(async () => { await a.close(); await b.close() })
    const both = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).charge([key('k1', 30)], 1, f.windowMs)))
    t.equal(both.filter((r) => r.ok).length, 30, '30 of 40 across both')
    refused(await a.charge([key('k1', 30)], 1, f.windowMs), 0, f.windowMs, t, 'a sees b\'s charges')
    t.same(await b.charge([key('k2', 30)], 30, f.windowMs), { ok: true })
    refused(await a.charge([key('k2', 30)], 1, f.windowMs), 0, f.windowMs, t, 'and b sees a\'s')
  })
}
