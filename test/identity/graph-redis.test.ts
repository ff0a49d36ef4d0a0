import t from 'tap'
import { createIdentityGraph } from '../../src/identity/index.js'
import { createRedisIdentityGraph } from '../../src/identity/graph-redis.js'
import { testConfig } from '../helpers/config.js'
import { deletePrefix } from '../state/redis-helpers.js'
import { graphContract } from './graph-contract.js'

// each test: its own key prefix; reopening is a new connection
graphContract(t, (t, opts) => {
  const config = testConfig(t, { state: { backend: 'redis' }, identity: { maxProfilesPerDevice: opts.maxProfilesPerDevice } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  return () => createIdentityGraph(config, { replayTtlMs: opts.replayTtlMs })
})

void t.test('redis graph: concurrent resolves from separate connections stay consistent', async (t) => {
  // two "consumer processes" race to link the same people; one script per call keeps the graph whole
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  const graphs = await Promise.all([createIdentityGraph(config), createIdentityGraph(config)])
  for (const g of graphs) t.teardown(() => g.close())
  const tenant = 'race'
  const email = (n: number) => ({ type: 'EMAIL' as const, value: `p${n}@example.com`, raw: `p${n}@example.com` })
  // a chain p0-p1, p1-p2, ... split between the two connections: the end state must be one profile
  await Promise.all(Array.from({ length: 40 }, (_, i) =>
    (graphs[i % 2] as (typeof graphs)[number]).resolve(tenant, [email(i), email(i + 1)], { eventId: `e${i}` }, 1000 + i)))
  const profiles = new Set(await Promise.all(Array.from({ length: 41 }, (_, i) => graphs[0]?.lookup(tenant, email(i)))))
  t.equal(profiles.size, 1)
})

void t.test('redis graph: an unreachable server fails fast with the store code', async (t) => {
  const graph = createRedisIdentityGraph({ url: 'redis://127.0.0.1:1', prefix: 'unreachable', maxProfilesPerDevice: 3, connectTimeoutMs: 500 })
  t.teardown(() => graph.close())
  t.equal(await graph.ping(), false)
  await t.rejects(graph.resolve('t', [{ type: 'EMAIL', value: 'a@b.co', raw: 'a@b.co' }], { eventId: 'e' }, 1), { code: 'state_store_unavailable', retriable: true })
})
