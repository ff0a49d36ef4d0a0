import t from 'tap'
import { Redis } from 'ioredis'
import { createStateStores } from '../../src/state/index.js'
import { createRedisStateStores } from '../../src/state/redis.js'
import { testConfig } from '../helpers/config.js'
import { stateContract } from './contract.js'
import { deletePrefix } from './redis-helpers.js'

// every test gets its own key prefix (testConfig); reopening is a new connection
stateContract(t, (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  return () => createStateStores(config)
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
  t.same((await redis.keys(`${config.keys.prefix}:*`)).sort(), [
    `${config.keys.prefix}:apikeys`,
    `${config.keys.prefix}:claim:["acme","pos","1"]`,
    `${config.keys.prefix}:dedup:["acme","pos","1"]`,
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
