/**
 * The behaviour every StateStores implementation must have. lmdb.test.ts, redis.test.ts and
 * memory.test.ts run this same suite; a rule lives here once, not per backend.
 */
import type { Test } from 'tap'
import type { ApiKeyRecord, ClaimOutcome, ClaimRequest, FactRef, StateStores } from '../../src/state/types.js'

/** opens the stores of ONE isolated storage (a dir, a key prefix); a second call reopens the same data */
export type StoreOpener = () => Promise<StateStores>

const LEASE = 30_000
const T0 = 1_760_000_000_000

function req(key: string, eventId: string, fingerprint = 'fp-1'): ClaimRequest {
  return { key, eventId, fingerprint }
}

function ref(eventId: string, fingerprint: string, partition: number, offset: string): FactRef {
  return { eventId, fingerprint, partition, offset }
}

function apiKey(id: string, over: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id, tenant: 'acme', secretHash: 'ab'.repeat(32), permissions: ['events:write'], sources: [],
    createdAt: '2026-01-01T00:00:00.000Z', expiresAt: null, revokedAt: null, label: null, ...over,
  }
}

export function stateContract(t: Test, makeStores: (t: Test) => StoreOpener): void {
  async function open(t: Test): Promise<{ stores: StateStores; reopen: () => Promise<StateStores> }> {
    const opener = makeStores(t)
    const stores = await opener()
    t.teardown(() => stores.close())
    const reopen = async (): Promise<StateStores> => {
      const s = await opener()
      t.teardown(() => s.close())
      return s
    }
    return { stores, reopen }
  }
  const key = (name: string): string => JSON.stringify(['acme', 'brand.pos', name])

  void t.test('claims: a new tuple is claimed under the requested event id', async (t) => {
    const { stores } = await open(t)
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_1')], T0, LEASE), [{ outcome: 'claimed', eventId: 'evt_1', takeover: false }])
    t.same(await stores.claims.claimMany([], T0, LEASE), [])
  })

  void t.test('claims: pending + same fingerprint + live lease -> in_flight with the original id', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('a'), 'evt_1')], T0, LEASE)
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_2')], T0 + LEASE, LEASE), [{ outcome: 'in_flight', eventId: 'evt_1' }],
      'claimedAt + leaseMs == now is not expired yet')
  })

  void t.test('claims: the holder asking again (a resent request) still owns its pending claim', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('a'), 'evt_1')], T0, LEASE)
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_1')], T0 + 1, LEASE), [{ outcome: 'claimed', eventId: 'evt_1', takeover: false }])
    await stores.claims.commitMany([{ key: key('a'), eventId: 'evt_1' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_1')], T0 + 2, LEASE), [{ outcome: 'duplicate', eventId: 'evt_1' }])
  })

  void t.test('claims: committed + same fingerprint -> duplicate with the original id, forever', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('a'), 'evt_1')], T0, LEASE)
    await stores.claims.commitMany([{ key: key('a'), eventId: 'evt_1' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_2')], T0 + 1, LEASE), [{ outcome: 'duplicate', eventId: 'evt_1' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_3')], T0 + 365 * 24 * 3600_000, LEASE), [{ outcome: 'duplicate', eventId: 'evt_1' }],
      'a committed claim never expires')
  })

  void t.test('claims: different fingerprint -> conflict with the existing id, pending or committed', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('p'), 'evt_p'), req(key('c'), 'evt_c')], T0, LEASE)
    await stores.claims.commitMany([{ key: key('c'), eventId: 'evt_c' }])
    t.same(await stores.claims.claimMany([req(key('p'), 'evt_x', 'fp-2'), req(key('c'), 'evt_y', 'fp-2')], T0 + 1, LEASE), [
      { outcome: 'conflict', eventId: 'evt_p' },
      { outcome: 'conflict', eventId: 'evt_c' },
    ])
    t.same(await stores.claims.claimMany([req(key('p'), 'evt_z', 'fp-2')], T0 + 10 * LEASE, LEASE), [{ outcome: 'conflict', eventId: 'evt_p' }],
      'an expired lease is not taken over by a different payload')
  })

  void t.test('claims: an expired pending claim is taken over under the SAME event id', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('a'), 'evt_1')], T0, LEASE)
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_2')], T0 + LEASE + 1, LEASE), [{ outcome: 'claimed', eventId: 'evt_1', takeover: true }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_3')], T0 + LEASE + 2, LEASE), [{ outcome: 'in_flight', eventId: 'evt_1' }],
      'the takeover renewed the lease')
    await stores.claims.commitMany([{ key: key('a'), eventId: 'evt_1' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_4')], T0 + LEASE + 3, LEASE), [{ outcome: 'duplicate', eventId: 'evt_1' }])
  })

  void t.test('claims: items of one call are decided in order, a later one sees an earlier one', async (t) => {
    const { stores } = await open(t)
    const out = await stores.claims.claimMany([
      req(key('a'), 'evt_1'),
      req(key('b'), 'evt_2'),
      req(key('a'), 'evt_3'),
      req(key('a'), 'evt_4', 'fp-2'),
    ], T0, LEASE)
    t.same(out, [
      { outcome: 'claimed', eventId: 'evt_1', takeover: false },
      { outcome: 'claimed', eventId: 'evt_2', takeover: false },
      { outcome: 'in_flight', eventId: 'evt_1' },
      { outcome: 'conflict', eventId: 'evt_1' },
    ])
  })

  void t.test('claims: commit and release change only the claim holding the event id', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('a'), 'evt_1')], T0, LEASE)
    await stores.claims.commitMany([{ key: key('a'), eventId: 'evt_other' }])
    await stores.claims.releaseMany([{ key: key('a'), eventId: 'evt_other' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_2')], T0 + 1, LEASE), [{ outcome: 'in_flight', eventId: 'evt_1' }],
      'a stranger neither committed nor released it')

    await stores.claims.releaseMany([{ key: key('a'), eventId: 'evt_1' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_3', 'fp-2')], T0 + 2, LEASE), [{ outcome: 'claimed', eventId: 'evt_3', takeover: false }],
      'after the owner released it, a retry (even a corrected payload) claims afresh')

    await stores.claims.commitMany([{ key: key('a'), eventId: 'evt_3' }])
    await stores.claims.releaseMany([{ key: key('a'), eventId: 'evt_3' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_4', 'fp-2')], T0 + 3, LEASE), [{ outcome: 'duplicate', eventId: 'evt_3' }],
      'a committed claim cannot be released')

    await stores.claims.commitMany([{ key: key('missing'), eventId: 'evt_x' }])
    await stores.claims.releaseMany([{ key: key('missing'), eventId: 'evt_x' }])
    t.same(await stores.claims.claimMany([req(key('missing'), 'evt_5')], T0 + 4, LEASE), [{ outcome: 'claimed', eventId: 'evt_5', takeover: false }],
      'commit/release of an unknown tuple create nothing')
  })

  void t.test('claims: get reads a claim without changing it (pending, committed, absent)', async (t) => {
    const { stores, reopen } = await open(t)
    t.equal(await stores.claims.get(key('g')), undefined, 'no claim yet')
    await stores.claims.claimMany([req(key('g'), 'evt_g')], T0, LEASE)
    t.same(await stores.claims.get(key('g')), { state: 'pending', eventId: 'evt_g', claimedAt: T0 })
    await stores.claims.commitMany([{ key: key('g'), eventId: 'evt_g' }])
    t.same(await (await reopen()).claims.get(key('g')), { state: 'committed', eventId: 'evt_g', claimedAt: T0 }, 'durable')
    t.same(await stores.claims.claimMany([req(key('g'), 'evt_h')], T0 + 1, LEASE), [{ outcome: 'duplicate', eventId: 'evt_g' }], 'get took nothing')
  })

  void t.test('claims: abandon keeps the event id and lets the next request take over at once', async (t) => {
    const { stores } = await open(t)
    await stores.claims.claimMany([req(key('a'), 'evt_1'), req(key('b'), 'evt_2')], T0, LEASE)
    await stores.claims.commitMany([{ key: key('b'), eventId: 'evt_2' }])
    await stores.claims.abandonMany([{ key: key('a'), eventId: 'evt_other' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_3')], T0 + 1, LEASE), [{ outcome: 'in_flight', eventId: 'evt_1' }],
      'a stranger cannot abandon it')
    await stores.claims.abandonMany([{ key: key('a'), eventId: 'evt_1' }, { key: key('b'), eventId: 'evt_2' }, { key: key('missing'), eventId: 'evt_x' }])
    t.same(await stores.claims.claimMany([req(key('a'), 'evt_4'), req(key('a'), 'evt_5')], T0 + 2, LEASE), [
      { outcome: 'claimed', eventId: 'evt_1', takeover: true },
      { outcome: 'in_flight', eventId: 'evt_1' },
    ], 'well within the lease, the next request takes over under the original id, and holds it again')
    t.same(await stores.claims.claimMany([req(key('b'), 'evt_6'), req(key('missing'), 'evt_7')], T0 + 3, LEASE), [
      { outcome: 'duplicate', eventId: 'evt_2' },
      { outcome: 'claimed', eventId: 'evt_7', takeover: false },
    ], 'a committed claim stays committed; an unknown tuple is not created')
  })

  void t.test('claims: 100 concurrent calls for one tuple -> exactly one claimed', async (t) => {
    const { stores } = await open(t)
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      stores.claims.claimMany([req(key('hot'), `evt_${i}`)], T0, LEASE)))
    const flat: ClaimOutcome[] = results.flat()
    const claimed = flat.filter((o) => o.outcome === 'claimed')
    t.equal(claimed.length, 1)
    const winner = claimed[0]?.eventId
    t.ok(flat.every((o) => o.outcome === 'claimed' || (o.outcome === 'in_flight' && o.eventId === winner)), 'all others wait for the winner')
  })

  void t.test('claims: long and non-ASCII keys', async (t) => {
    const { stores } = await open(t)
    const long = key('x'.repeat(3000))
    const other = key('x'.repeat(2999) + 'y')
    const uni = key('заказ-№1 🧾')
    t.same(await stores.claims.claimMany([req(long, 'evt_1'), req(other, 'evt_2'), req(uni, 'evt_3')], T0, LEASE), [
      { outcome: 'claimed', eventId: 'evt_1', takeover: false },
      { outcome: 'claimed', eventId: 'evt_2', takeover: false },
      { outcome: 'claimed', eventId: 'evt_3', takeover: false },
    ])
    t.same(await stores.claims.claimMany([req(long, 'evt_4'), req(uni, 'evt_5')], T0 + 1, LEASE), [
      { outcome: 'in_flight', eventId: 'evt_1' },
      { outcome: 'in_flight', eventId: 'evt_3' },
    ])
  })

  void t.test('dedup: first fact wins; repeat, conflict and re-delivery', async (t) => {
    const { stores } = await open(t)
    const first = ref('evt_1', 'fp-1', 2, '100')
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: first }]), [{ outcome: 'first', redelivered: false }])
    t.same(await stores.dedup.get(key('a')), first)
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: first }]), [{ outcome: 'first', redelivered: true }],
      'the very same record again (crash before the insert) is still first')
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: ref('evt_9', 'fp-1', 2, '100') }]), [{ outcome: 'first', redelivered: true }],
      're-delivery is recognised by its position')
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: ref('evt_2', 'fp-1', 0, '7') }]), [{ outcome: 'repeat', original: first }])
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: ref('evt_3', 'fp-1', 2, '101') }]), [{ outcome: 'repeat', original: first }],
      'same partition, other offset: a repeat')
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: ref('evt_4', 'fp-2', 1, '5') }]), [{ outcome: 'conflict', original: first }])
    t.same(await stores.dedup.get(key('a')), first, 'the original stays')
    t.equal(await stores.dedup.get(key('nothing')), undefined)
    t.same(await stores.dedup.checkMany([]), [])
  })

  void t.test('dedup: items of one call are decided in order', async (t) => {
    const { stores } = await open(t)
    const a = ref('evt_1', 'fp-1', 0, '1')
    const out = await stores.dedup.checkMany([
      { key: key('a'), ref: a },
      { key: key('a'), ref: ref('evt_2', 'fp-1', 0, '2') },
      { key: key('b'), ref: ref('evt_3', 'fp-1', 0, '3') },
      { key: key('a'), ref: ref('evt_4', 'fp-9', 0, '4') },
      { key: key('a'), ref: a },
    ])
    t.same(out, [
      { outcome: 'first', redelivered: false },
      { outcome: 'repeat', original: a },
      { outcome: 'first', redelivered: false },
      { outcome: 'conflict', original: a },
      { outcome: 'first', redelivered: true },
    ])
  })

  void t.test('dedup: large offsets keep their digits', async (t) => {
    const { stores } = await open(t)
    const big = ref('evt_1', 'fp-1', 11, '9007199254740993123')
    await stores.dedup.checkMany([{ key: key('a'), ref: big }])
    t.same(await stores.dedup.get(key('a')), big)
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: ref('evt_2', 'fp-1', 11, '9007199254740993124') }]), [{ outcome: 'repeat', original: big }])
  })

  void t.test('dedup: re-assertions are remembered per key, and leave the fact as it was', async (t) => {
    const { stores } = await open(t)
    const first = ref('evt_1', 'fp-1', 2, '100')
    await stores.dedup.checkMany([{ key: key('a'), ref: first }, { key: key('b'), ref: ref('evt_2', 'fp-1', 2, '3') }])
    t.same(await stores.dedup.reassertedAfter([key('a'), key('b'), key('nothing')]), [undefined, undefined, undefined])
    await stores.dedup.markReasserted([{ key: key('a'), after: '104' }])
    await stores.dedup.markReasserted([{ key: key('a'), after: '9007199254740993123' }])
    t.same(await stores.dedup.reassertedAfter([key('a'), key('b')]), ['9007199254740993123', undefined], 'the last mark, every digit')
    t.same(await stores.dedup.get(key('a')), first)
    t.same(await stores.dedup.checkMany([{ key: key('a'), ref: ref('evt_4', 'fp-2', 2, '200') }]), [{ outcome: 'conflict', original: first }])
  })

  void t.test('dedup: an erased fact stays erased, and keeps what dedup needs', async (t) => {
    const { stores } = await open(t)
    const first = ref('evt_1', 'fp-1', 2, '100')
    await stores.dedup.checkMany([{ key: key('a'), ref: first }, { key: key('b'), ref: ref('evt_2', 'fp-2', 2, '101') }])
    t.equal(await stores.dedup.markErased([key('a'), key('never-seen')]), 1, 'only stored facts are marked')
    const erased = { ...first, erased: true }
    t.same(await stores.dedup.get(key('a')), erased)
    t.equal(await stores.dedup.get(key('never-seen')), undefined, 'no record is made up for an unknown key')
    t.same(await stores.dedup.checkMany([
      { key: key('a'), ref: first },
      { key: key('a'), ref: ref('evt_3', 'fp-1', 2, '300') },
      { key: key('a'), ref: ref('evt_4', 'fp-9', 2, '301') },
      { key: key('b'), ref: ref('evt_5', 'fp-2', 2, '302') },
    ]), [
      { outcome: 'erased', original: erased },
      { outcome: 'erased', original: erased },
      { outcome: 'erased', original: erased },
      { outcome: 'repeat', original: ref('evt_2', 'fp-2', 2, '101') },
    ], 'the very record, a repeat and a conflict are all erased; the other tuple is untouched')
    t.equal(await stores.dedup.markErased([key('a')]), 1, 'marking twice is harmless')
    t.same(await stores.dedup.get(key('a')), erased)
  })

  void t.test('keys: put, get, list, overwrite', async (t) => {
    const { stores } = await open(t)
    t.same(await stores.keys.listKeys(), [])
    t.equal(await stores.keys.getKey('k1'), undefined)
    const k1 = apiKey('k1', { sources: ['brand.pos'], label: 'POS' })
    const k2 = apiKey('k2', { tenant: 'globex', expiresAt: '2027-01-01T00:00:00.000Z' })
    await stores.keys.putKey(k2)
    await stores.keys.putKey(k1)
    t.same(await stores.keys.getKey('k1'), k1)
    t.same((await stores.keys.listKeys()).sort((a, b) => a.id.localeCompare(b.id)), [k1, k2])
    const revoked = { ...k1, revokedAt: '2026-02-01T00:00:00.000Z' }
    await stores.keys.putKey(revoked)
    t.same(await stores.keys.getKey('k1'), revoked)
    t.equal((await stores.keys.listKeys()).length, 2)
  })

  void t.test('keys: an operator key (tenant null) round-trips as null, also across a reopen', async (t) => {
    const { stores, reopen } = await open(t)
    const op = apiKey('op1', { tenant: null, permissions: ['query:all', 'pii:read'], label: 'ops' })
    await stores.keys.putKey(op)
    await stores.keys.putKey(apiKey('k1'))
    const got = await stores.keys.getKey('op1')
    t.equal(got?.tenant, null, 'tenant is null, not undefined, "" or "null"')
    t.strictSame(got, op)
    t.strictSame((await stores.keys.listKeys()).find((k) => k.id === 'op1'), op, 'listed as stored')
    t.equal((await stores.keys.getKey('k1'))?.tenant, 'acme', 'a tenant key beside it keeps its tenant')
    await stores.close()
    const again = await reopen()
    t.strictSame(await again.keys.getKey('op1'), op, 'the same after close and reopen')
  })

  void t.test('everything survives close and reopen', async (t) => {
    const { stores, reopen } = await open(t)
    await stores.claims.claimMany([req(key('pending'), 'evt_p'), req(key('done'), 'evt_d')], T0, LEASE)
    await stores.claims.commitMany([{ key: key('done'), eventId: 'evt_d' }])
    const fact = ref('evt_f', 'fp-1', 3, '42')
    await stores.dedup.checkMany([{ key: key('fact'), ref: fact }])
    await stores.keys.putKey(apiKey('k1'))
    t.equal(await stores.ping(), true)
    await stores.close()
    t.equal(await stores.ping(), false, 'a closed store does not answer')
    await t.rejects(stores.claims.claimMany([req(key('x'), 'evt_x')], T0, LEASE), { code: 'state_store_unavailable' },
      'a closed store fails with the retriable store code')

    const again = await reopen()
    t.equal(await again.ping(), true)
    t.same(await again.claims.claimMany([req(key('pending'), 'evt_1'), req(key('done'), 'evt_2')], T0 + 1, LEASE), [
      { outcome: 'in_flight', eventId: 'evt_p' },
      { outcome: 'duplicate', eventId: 'evt_d' },
    ])
    t.same(await again.dedup.get(key('fact')), fact)
    t.same(await again.keys.getKey('k1'), apiKey('k1'))
  })

  void t.test('close is idempotent', async (t) => {
    const { stores } = await open(t)
    await stores.close()
    await stores.close()
    t.pass()
  })
}
