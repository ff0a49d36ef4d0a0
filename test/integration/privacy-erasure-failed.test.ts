/**
 * Issue 12: an erasure that fails. The request goes through the real API (POST, then GET
 * /v1/cdp/erasures/{id}); the erasure worker runs over the API's own privacy store and
 * suppression list, with ClickHouse's side (PersonRows) faked so its delete can fail the way a
 * server does (a mutation that errors). Shown: the request ends `failed` with a reason that
 * starts with the error's code, its identity value leaves the record, the suppression stays, the
 * worker does not pick the failed request up again, and re-submitting the same identity (the
 * documented retry, docs/PRIVACY.md) runs to `completed` and finds the person again through the
 * rows the failed run could not delete.
 */
import t from 'tap'
import { CdpError } from '../../src/errors.js'
import { ErasureWorker } from '../../src/privacy/index.js'
import { createMemoryIdentityGraph } from '../../src/identity/graph.js'
import { createMemoryStateStores } from '../../src/state/memory.js'
import { createLogger } from '../../src/observability/logger.js'
import type { ErasedTable, PersonIdentity, PersonRows } from '../../src/clickhouse/erasure.js'
import { startApi } from '../helpers/api.js'

/** ClickHouse as the erasure sees it: one person (a profile, two identities, one event) until erased */
function fakeRows() {
  let person: { profile: string; identities: PersonIdentity[]; tuple: { source: string; externalEventId: string }; eventId: string } | undefined = {
    profile: 'prof_ann', identities: [{ type: 'email', value: 'ann@example.com' }, { type: 'phone', value: '+12025550147' }],
    tuple: { source: 'brand.web', externalEventId: 'txn-1' }, eventId: 'evt_ann_1',
  }
  const state = { failDeletes: true, erases: [] as { profileIds: string[]; eventIds: string[] }[] }
  const names = (ids: PersonIdentity[]) => person !== undefined && ids.some((i) => person!.identities.some((p) => p.type === i.type && p.value === i.value))
  const rows: PersonRows = {
    profilesOf: async (tenant, ids) => (tenant === 'acme' && names(ids) ? [person!.profile] : []),
    identitiesOf: async (tenant, profiles) => (tenant === 'acme' && person !== undefined && profiles.includes(person.profile) ? person.identities : []),
    factsOf: async (tenant, profiles) => (tenant === 'acme' && person !== undefined && profiles.includes(person.profile)
      ? { tuples: [person.tuple], eventIds: [person.eventId] } : { tuples: [], eventIds: [] }),
    deadLetters: async () => [],
    async erase(_tenant, what) {
      state.erases.push({ profileIds: what.profileIds, eventIds: what.eventIds })
      // what a server answers when the mutation cannot run (classified as in src/clickhouse)
      if (state.failDeletes) throw new CdpError('clickhouse_unavailable', 'ALTER TABLE events DELETE: Code: 241. Memory limit exceeded')
      const removed = person === undefined ? 0 : 1
      person = undefined
      const counts: Record<ErasedTable, number> = { events: removed, identities: removed * 2, profile_merges: 0, profile_aliases: 0, dead_letters: 0 }
      return counts
    },
  }
  return { rows, state }
}

void t.test('a ClickHouse delete that errors ends the erasure failed with its code; re-submitting completes it', async (t) => {
  const api = await startApi(t)
  const dpo = { authorization: `Bearer ${await api.key('acme', ['privacy:erase'])}` }
  const writer = { authorization: `Bearer ${await api.key('acme', ['events:write'])}` }
  const erase = async () => {
    const r = await api.app.inject({ method: 'POST', url: '/v1/cdp/erasures', headers: dpo, payload: { identity: { email: ' Ann@Example.com ' } } })
    t.equal(r.statusCode, 202, r.body)
    return (r.json() as { erasure_id: string }).erasure_id
  }
  const status = async (id: string) => {
    const r = await api.app.inject({ method: 'GET', url: `/v1/cdp/erasures/${id}`, headers: dpo })
    t.equal(r.statusCode, 200, r.body)
    return r.json() as Record<string, unknown>
  }

  const ch = fakeRows()
  const tombstones: string[][] = []
  const stores = createMemoryStateStores()
  t.teardown(() => stores.close())
  const worker = new ErasureWorker({
    config: api.config, store: api.rt.privacy, suppression: api.rt.suppression, pseudonymizer: api.rt.pseudonymizer,
    graph: createMemoryIdentityGraph({ maxProfilesPerDevice: 3 }), dedup: stores.dedup, rows: ch.rows,
    identityOfValue: async () => undefined, tombstones: async (keys) => { tombstones.push(keys.map((k) => k.toString('utf8'))) },
    log: createLogger({ logLevel: 'silent' }),
  }, { pollMs: 60_000, staleMs: 60_000 })

  const first = await erase()
  t.match(await status(first), { erasure_id: first, status: 'pending' })
  const ended = await worker.runOnce()
  t.equal(ended?.id, first)

  const failed = await status(first)
  t.match(failed, { erasure_id: first, status: 'failed', reason: /^clickhouse_unavailable: ALTER TABLE events DELETE/, finished_at: String })
  t.notOk('receipt' in failed, 'no receipt for a failed erasure')
  t.notOk('step' in failed, 'no step once it ended')
  t.same(ch.state.erases, [{ profileIds: ['prof_ann'], eventIds: ['evt_ann_1'] }], 'it failed at the ClickHouse delete')
  t.equal(tombstones.length, 1, 'the steps before the delete ran (topic tombstones)')
  const stored = await api.rt.privacy.getErasure(first)
  t.equal(stored?.identity.value, undefined, 'the identity value left the failed record')
  t.match(stored?.identity, { type: 'EMAIL', hash: /^[0-9a-f]{64}$/ })

  // the suppression outlives the failure: their events are still refused
  const refused = await api.app.inject({
    method: 'POST', url: '/v1/cdp/events', headers: writer,
    payload: {
      source: 'brand.web', externalEventId: 'txn-2', eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
      identity: { phone: '+1 202-555-0147' }, properties: { order_id: 'o-2', amount: 1, currency: 'EUR' },
    },
  })
  t.equal(refused.statusCode, 409, refused.body)
  t.match(refused.json(), { error_code: 'suppressed' }, 'every identity found was suppressed before the delete failed')

  t.equal(await worker.runOnce(), undefined, 'a failed request is not taken again by itself')

  // the retry: the same identity again, once ClickHouse deletes
  ch.state.failDeletes = false
  const second = await erase()
  t.not(second, first)
  await worker.runOnce()
  t.match(await status(second), {
    status: 'completed',
    receipt: { profileIds: ['prof_ann'], clickhouse: { events: 1, identities: 2 }, tombstones: 1 },
  })
  t.match(await status(first), { status: 'failed' }, 'the failed request keeps its verdict')
  t.same(ch.state.erases.at(-1), { profileIds: ['prof_ann'], eventIds: ['evt_ann_1'] },
    'the re-run found the person again through the rows the failed run could not delete')
})
