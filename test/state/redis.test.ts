import t from 'tap'
import { Redis } from 'ioredis'
import { createStateStores } from '../../src/state/index.js'
import { createRedisStateStores, factSlot } from '../../src/state/redis.js'
import { redisSecurity } from '../../src/state/redis-client.js'
import { testConfig } from '../helpers/config.js'
import { stateContract } from './contract.js'
import { deletePrefix } from './redis-helpers.js'

// every test gets its own key prefix (testConfig); reopening is a new connection. The contract
// steps time by hand, so here leases are judged on the `now` it passes (claimClock caller); the
// server clock, which the service uses, has its own tests below.
stateContract(t, (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  return async () => createRedisStateStores({ url: config.state.redisUrl, prefix: config.keys.prefix, claimClock: 'caller', ...redisSecurity(config.state) })
})

/** Redis TIME in ms */
async function serverMs(redis: Redis): Promise<number> {
  const [s, us] = await redis.time()
  return Number(s) * 1000 + Math.floor(Number(us) / 1000)
}

void t.test('redis: claim leases are judged on the server clock, whatever the callers\' clocks say', async (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  // two API processes on one Redis, one clock 2 minutes behind, one 2 minutes ahead
  const behind = await createStateStores(config)
  const ahead = await createStateStores(config)
  t.teardown(() => Promise.all([behind.close(), ahead.close()]))
  const redis = new Redis(config.state.redisUrl)
  t.teardown(() => redis.quit())
  const LEASE = 30_000
  const skew = 120_000
  const keys = Array.from({ length: 50 }, (_, i) => `["acme","pos","skew-${i}"]`)
  const claim = (s: typeof behind, offset: number, k: string, eid: string) =>
    s.claims.claimMany([{ key: k, eventId: eid, fingerprint: 'f' }], Date.now() + offset, LEASE).then((o) => o[0]!)
  // every fact sent to both at the same moment
  const both = await Promise.all(keys.map((k, i) => Promise.all([claim(behind, -skew, k, `evt_b${i}`), claim(ahead, skew, k, `evt_a${i}`)])))
  const claimedTwice = both.filter(([a, b]) => a.outcome === 'claimed' && b.outcome === 'claimed').length
  t.equal(claimedTwice, 0, 'no fact claimed by both processes')
  t.ok(both.every(([a, b]) => (a.outcome === 'claimed') !== (b.outcome === 'claimed')), 'each fact claimed by exactly one')
  t.ok(both.every(([a, b]) => a.eventId === b.eventId), 'both name the same event id')

  // a caller far ahead does not take over a live claim made by a caller far behind
  const before = await serverMs(redis)
  t.same(await claim(behind, -skew, '["acme","pos","live"]', 'evt_1'), { outcome: 'claimed', eventId: 'evt_1', takeover: false })
  const after = await serverMs(redis)
  t.same(await claim(ahead, 10 * skew, '["acme","pos","live"]', 'evt_2'), { outcome: 'in_flight', eventId: 'evt_1' })
  const at = (await behind.claims.get('["acme","pos","live"]'))!.claimedAt
  t.ok(at >= before && at <= after, `the claim is stamped with the server's time (${before} <= ${at} <= ${after}), not the caller's`)
})

void t.test('redis: an abandoned claim is taken over once the lease passed on the server clock, even by a caller behind', async (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  const stores = await createStateStores(config)
  t.teardown(() => stores.close())
  const redis = new Redis(config.state.redisUrl)
  t.teardown(() => redis.quit())
  const k = '["acme","pos","abandoned"]'
  const LEASE = 20
  t.same(await stores.claims.claimMany([{ key: k, eventId: 'evt_1', fingerprint: 'f' }], Date.now(), LEASE), [{ outcome: 'claimed', eventId: 'evt_1', takeover: false }])
  const stamped = (await stores.claims.get(k))!.claimedAt
  // wait for the server's clock, not ours
  while (await serverMs(redis) <= stamped + LEASE) await new Promise((r) => setTimeout(r, 5))
  t.same(await stores.claims.claimMany([{ key: k, eventId: 'evt_2', fingerprint: 'f' }], 0, LEASE), [{ outcome: 'claimed', eventId: 'evt_1', takeover: true }],
    'a caller whose clock says 1970 still sees the lease expired')
})

void t.test('redis: every key lives under the configured prefix', async (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  const stores = await createStateStores(config)
  t.teardown(() => stores.close())
  await stores.claims.claimMany([{ key: '["acme","pos","1"]', eventId: 'evt_1', fingerprint: 'f' }], Date.now(), 1000)
  await stores.dedup.checkMany([{ key: '["acme","pos","1"]', ref: { eventId: 'evt_1', fingerprint: 'f', partition: 0, offset: '0' } }])
  await stores.keys.putKey({ id: 'k', tenant: 'acme', secretHash: 'x', permissions: [], sources: [], createdAt: '2026-01-01T00:00:00Z', expiresAt: null, revokedAt: null, label: null })
  const redis = new Redis(config.state.redisUrl)
  t.teardown(() => redis.quit())
  // a fact's claim and dedup buckets carry the same hash tag (one cluster slot)
  const slot = factSlot('["acme","pos","1"]')
  t.same((await redis.keys(`${config.keys.prefix}:*`)).sort(), [
    `${config.keys.prefix}:apikeys`,
    `${config.keys.prefix}:c${slot.suffix}`,
    `${config.keys.prefix}:d${slot.suffix}`,
  ])
})

void t.test('redis: an unreachable server fails fast with a retriable store error, ping says false', async (t) => {
  // port 1 refuses connections: the client must give up instead of queueing forever
  const stores = createRedisStateStores({ url: 'redis://127.0.0.1:1', prefix: 'unreachable', connectTimeoutMs: 500 })
  t.teardown(() => stores.close())
  t.equal(await stores.ping(), false)
  await t.rejects(stores.claims.claimMany([{ key: 'k', eventId: 'e', fingerprint: 'f' }], Date.now(), 1000), {
    code: 'state_store_unavailable', retriable: true,
  })
  await t.rejects(stores.dedup.get('k'), { code: 'state_store_unavailable' })
  await t.rejects(stores.keys.listKeys(), { code: 'state_store_unavailable' })
})

void t.test('redis: scripts are reloaded when the server forgot them', async (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  const stores = await createStateStores(config)
  t.teardown(() => stores.close())
  const k = '["acme","pos","flush"]'
  await stores.claims.claimMany([{ key: k, eventId: 'evt_1', fingerprint: 'f' }], 1000, 100)
  const redis = new Redis(config.state.redisUrl)
  t.teardown(() => redis.quit())
  await redis.script('FLUSH')
  t.same(await stores.claims.claimMany([{ key: k, eventId: 'evt_2', fingerprint: 'f' }], 1001, 100), [{ outcome: 'in_flight', eventId: 'evt_1' }])
})
