import t from 'tap'
import { batchToken, writeStep } from '../../../src/pipeline/write-step.js'
import type { Resolved } from '../../../src/pipeline/resolve-step.js'
import { resolveStep } from '../../../src/pipeline/resolve-step.js'
import { event, fakeIdentity, fakeWriter, record, unique, type Call } from '../../helpers/pipeline-fakes.js'

const identityRow = (value: string) => ({ tenant: 'acme', identity_type: 'email', identity_value: value, raw_value: null, profile_id: 'p', first_event_id: 'e', linked_at: 'x' })
const mergeRow = { tenant: 'acme', from_profile_id: 'p2', to_profile_id: 'p1', reason: 'shared', event_id: 'evt_b', merged_at: 'x' }
const aliasRow = { tenant: 'acme', profile_id: 'p2', canonical_id: 'p1', version: 1, updated_at: 'x' }

const a = event({ externalEventId: 'a', eventId: 'evt_a', properties: '{"amount":5,"note":"n"}' })
const b = event({ externalEventId: 'b', eventId: 'evt_b' })
/** the batch: offsets 10..14, the facts at 11 and 12 (the others were dead letters or repeats) */
const records = [10, 11, 12, 13, 14].map((o) => record(o, null, null, 2))

async function resolved(calls: Call[], extra: Parameters<typeof fakeIdentity>[1] = {}): Promise<Resolved[]> {
  const items = [{ ...unique(11, a, false), record: records[1]! }, { ...unique(12, b, false), record: records[2]! }]
  return resolveStep({ identity: fakeIdentity(calls, extra) })(items)
}

void t.test('identities, merges and aliases before events; graph forgets after events; tokens from the batch\'s offset range', async (t) => {
  const calls: Call[] = []
  const items = await resolved(calls, { evt_a: { identities: [identityRow('x@y.z')] }, evt_b: { identities: [identityRow('q@y.z')], merges: [mergeRow], aliases: [aliasRow] } })
  const n = await writeStep({ writer: fakeWriter(calls), identity: fakeIdentity(calls), segmentable: [] })(items, batchToken('live', records))
  t.equal(n, 2)
  t.same(calls.map((c) => c.call), ['resolve', 'identities', 'profile_merges', 'profile_aliases', 'events', 'forget'])
  t.same(calls.slice(1, 5).map((c) => c.token), [
    'cdp:live:identities:cdp.unit:2:10-14', 'cdp:live:profile_merges:cdp.unit:2:10-14',
    'cdp:live:profile_aliases:cdp.unit:2:10-14', 'cdp:live:events:cdp.unit:2:10-14',
  ])
  t.same(calls[1]!.rows, [identityRow('x@y.z'), identityRow('q@y.z')])
  t.same(calls[5]!.args, ['evt_a', 'evt_b'])
})

void t.test('the events row: the fact, its profile, its offset and the typed columns of segmentable properties', async (t) => {
  const calls: Call[] = []
  const items = await resolved(calls)
  await writeStep({ writer: fakeWriter(calls), identity: fakeIdentity(calls), segmentable: [{ property: 'amount', column: 'p_amount' }, { property: 'missing', column: 'p_missing' }] })(items, batchToken('live', records))
  const events = calls.find((c) => c.call === 'events')!.rows!
  t.match(events[0], {
    tenant: 'acme', source: 'brand.pos', external_event_id: 'a', event_id: 'evt_a', event_type: 'purchase_completed',
    occurred_at: '2026-05-20T12:45:00.000Z', received_at: '2026-05-20T12:45:01.000Z', profile_id: 'prof_evt_a', external_user_id: 'L-1',
    properties: '{"amount":5,"note":"n"}', schema_version: 1, kafka_partition: 2, kafka_offset: '11',
  })
  t.same((events[0] as { typed_properties: unknown }).typed_properties, { p_amount: 5 })
  t.same((events[1] as { typed_properties: unknown }).typed_properties, { p_amount: 12.5 })
})

void t.test('nothing to write: no insert, no forget', async (t) => {
  const calls: Call[] = []
  t.equal(await writeStep({ writer: fakeWriter(calls), identity: fakeIdentity(calls), segmentable: [] })([], batchToken('live', records)), 0)
  t.same(calls, [])
})

void t.test('a replay\'s tokens differ from the live ones for the same offsets', async (t) => {
  t.equal(batchToken('replay', records)('events'), 'cdp:replay:events:cdp.unit:2:10-14')
  t.not(batchToken('replay', records)('events'), batchToken('live', records)('events'))
})

void t.test('a batch of several partitions names every partition range in its token', async (t) => {
  const other = [20, 21].map((o) => record(o, null, null, 0))
  t.equal(batchToken('live', [...records, ...other])('events'), 'cdp:live:events:cdp.unit:2:10-14+0:20-21')
  // the same partition ranges grouped in another order are another block: never the same token
  t.not(batchToken('live', [...other, ...records])('events'), batchToken('live', [...records, ...other])('events'))
  // one partition keeps the token it had before grouping (tokens already in ClickHouse stay valid)
  t.equal(batchToken('live', records)('events'), 'cdp:live:events:cdp.unit:2:10-14')
})

void t.test('a failed insert throws before the graph forgets anything', async (t) => {
  const calls: Call[] = []
  const items = await resolved(calls)
  const writer = { ...fakeWriter(calls), insertEvents: async () => { throw Object.assign(new Error('down'), { code: 'clickhouse_unavailable' }) } }
  await t.rejects(writeStep({ writer, identity: fakeIdentity(calls), segmentable: [] })(items, batchToken('live', records)), { code: 'clickhouse_unavailable' })
  t.notOk(calls.some((c) => c.call === 'forget'))
})
