/**
 * Redis facts stored in the layout before compact records (one hash per fact under the JSON
 * tuple) still count after the change: dedup is permanent and production stores hold such facts.
 * The old records are written here the way the old code wrote them (the same hashes and fields),
 * then the current stores are opened on them. (LMDB keeps its layout: see docs/SCALING.md.)
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { createStateStores } from '../../src/state/index.js'
import { openEnv } from '../../src/state/lmdb-env.js'
import { createRedisStateStores, factSlot } from '../../src/state/redis.js'
import { redisSecurity } from '../../src/state/redis-client.js'
import type { ClaimRecord } from '../../src/state/rules.js'
import type { FactRef, StateStores } from '../../src/state/types.js'
import { testConfig } from '../helpers/config.js'
import { deletePrefix } from './redis-helpers.js'

const NOW = 1_790_000_000_000
const LEASE = 30_000
// as the API makes them (src/avro/event.ts): these take the compact encodings when rewritten
const OLD_ID = 'evt_01k9zx3q4m8r2t6v0w5y7z9a1b'
const FP = 'fNHvzbeuFpeDUyFm3GcVwGCvkYLkBq4N'
const committed = '["acme","pos","order-1"]'
const pending = '["acme","pos","order-2"]'
const erasedKey = '["acme","pos","order-3"]'

interface OldRecords {
  claims: [string, ClaimRecord][]
  facts: [string, FactRef][]
}

const OLD: OldRecords = {
  claims: [
    [committed, { state: 'committed', eventId: OLD_ID, fingerprint: FP, claimedAt: NOW - 86_400_000 }],
    [pending, { state: 'pending', eventId: 'evt_pending', fingerprint: 'fp-2', claimedAt: NOW - 1000 }],
  ],
  facts: [
    [committed, { eventId: OLD_ID, fingerprint: FP, partition: 3, offset: '1234567' }],
    [erasedKey, { eventId: 'evt_gone', fingerprint: 'fp-3', partition: 1, offset: '9', erased: true }],
  ],
}

/** what every backend must answer about the old records */
async function oldRecordsCount(t: Test, stores: StateStores): Promise<void> {
  // the client's retry of a fact accepted before the change: duplicate, with its ORIGINAL id
  t.same(await stores.claims.claimMany([{ key: committed, eventId: 'evt_01k9zzzzzzzzzzzzzzzzzzzzzz', fingerprint: FP }], NOW, LEASE),
    [{ outcome: 'duplicate', eventId: OLD_ID }], 'a retry of an old fact is a duplicate of its original event id')
  t.same(await stores.claims.claimMany([{ key: committed, eventId: 'evt_x', fingerprint: 'other' }], NOW, LEASE),
    [{ outcome: 'conflict', eventId: OLD_ID }], 'another payload under an old tuple is a conflict')
  t.same(await stores.claims.get(committed), { state: 'committed', eventId: OLD_ID, claimedAt: NOW - 86_400_000 })
  // the consumer meeting the old fact again (a replay, a producer retry)
  t.same(await stores.dedup.checkMany([{ key: committed, ref: { eventId: 'evt_y', fingerprint: FP, partition: 3, offset: '2000000' } }]),
    [{ outcome: 'repeat', original: { eventId: OLD_ID, fingerprint: FP, partition: 3, offset: '1234567' } }])
  t.same(await stores.dedup.checkMany([{ key: committed, ref: { eventId: OLD_ID, fingerprint: FP, partition: 3, offset: '1234567' } }]),
    [{ outcome: 'first', redelivered: true }], 'the very record that won, re-delivered')
  t.same(await stores.dedup.checkMany([{ key: erasedKey, ref: { eventId: 'evt_z', fingerprint: 'fp-3', partition: 1, offset: '10' } }]),
    [{ outcome: 'erased', original: { eventId: 'evt_gone', fingerprint: 'fp-3', partition: 1, offset: '9', erased: true } }])
  t.same(await stores.dedup.get(committed), { eventId: OLD_ID, fingerprint: FP, partition: 3, offset: '1234567' })

  // an old pending claim: its holder commits it, and it stays found
  t.same(await stores.claims.claimMany([{ key: pending, eventId: 'evt_other', fingerprint: 'fp-2' }], NOW, LEASE),
    [{ outcome: 'in_flight', eventId: 'evt_pending' }])
  await stores.claims.commitMany([{ key: pending, eventId: 'evt_pending' }])
  t.same(await stores.claims.claimMany([{ key: pending, eventId: 'evt_other', fingerprint: 'fp-2' }], NOW, LEASE),
    [{ outcome: 'duplicate', eventId: 'evt_pending' }], 'committed in place')

  // erasure marks an old fact too
  t.equal(await stores.dedup.markErased([committed]), 1)
  t.same((await stores.dedup.get(committed))?.erased, true)

  // a new fact next to them takes the new layout and behaves the same
  const fresh = '["acme","pos","new-1"]'
  t.same(await stores.claims.claimMany([{ key: fresh, eventId: 'evt_01k9zx3q4m8r2t6v0w5y7z9a1c', fingerprint: FP }], NOW, LEASE),
    [{ outcome: 'claimed', eventId: 'evt_01k9zx3q4m8r2t6v0w5y7z9a1c', takeover: false }])
}

void t.test('redis: facts of the per-fact hash layout are still found, and changed in place', async (t) => {
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  const redis = new Redis(config.state.redisUrl)
  t.teardown(() => redis.quit())
  const p = config.keys.prefix
  // the old scripts' layout: <prefix>:claim:<key> s/e/f/t and <prefix>:dedup:<key> e/f/p/o(/x)
  for (const [k, v] of OLD.claims) {
    await redis.hset(`${p}:claim:${k}`, 's', v.state === 'committed' ? 'c' : 'p', 'e', v.eventId, 'f', v.fingerprint, 't', String(v.claimedAt))
  }
  for (const [k, v] of OLD.facts) {
    await redis.hset(`${p}:dedup:${k}`, 'e', v.eventId, 'f', v.fingerprint, 'p', String(v.partition), 'o', v.offset, ...(v.erased === true ? ['x', '1'] : []))
  }
  const stores = createRedisStateStores({ url: config.state.redisUrl, prefix: p, claimClock: 'caller', ...redisSecurity(config.state) })
  t.teardown(() => stores.close())
  await oldRecordsCount(t, stores)
  t.equal(await redis.hget(`${p}:claim:${pending}`, 's'), 'c', 'the old pending claim was committed in its own hash')
  t.equal(await redis.hexists(`${p}:c${factSlot(pending).suffix}`, factSlot(pending).field), 0, 'and no second record was made for it')
})

void t.test('redis: without the old-layout lookup (a Cluster store never had it) old hashes are not read', async (t) => {
  // shows the lookup above is what finds them: the same old record, the lookup off
  const config = testConfig(t, { state: { backend: 'redis' } })
  t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
  const redis = new Redis(config.state.redisUrl)
  t.teardown(() => redis.quit())
  await redis.hset(`${config.keys.prefix}:claim:${committed}`, 's', 'c', 'e', OLD_ID, 'f', FP, 't', String(NOW))
  const stores = createRedisStateStores({ url: config.state.redisUrl, prefix: config.keys.prefix, claimClock: 'caller', legacyLayout: false, ...redisSecurity(config.state) })
  t.teardown(() => stores.close())
  t.same(await stores.claims.claimMany([{ key: committed, eventId: 'evt_new', fingerprint: FP }], NOW, LEASE),
    [{ outcome: 'claimed', eventId: 'evt_new', takeover: false }])
})
