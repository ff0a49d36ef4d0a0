/**
 * Identity resolution end to end (HTTP -> Kafka -> consumer -> ClickHouse), asserted on the
 * tables analysts read: events, events_resolved, identities, profile_merges, profile_canonical.
 * Each rule gets its own tenant (the graph is per tenant). Events whose order matters are sent
 * one at a time, each waited for in ClickHouse: they may sit on different partitions.
 */
import t from 'tap'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'

interface Identity { externalUserId?: string; email?: string; phone?: string; deviceKey?: string }
interface EventOut { external_event_id: string; event_id: string; profile_id: string; ingest_profile_id: string; email: string | null; phone: string | null; external_user_id: string | null; device_key: string | null }
interface MergeOut { from_profile_id: string; to_profile_id: string; reason: string; event_id: string }
interface IdentityOut { identity_type: string; identity_value: string; raw_value: string | null; profile_id: string; first_event_id: string }

void t.test('identity resolution end to end', async (t) => {
  const api = await startApi(t, { identity: { maxProfilesPerDevice: 2 } })
  const db = api.config.clickhouse.database
  const p = await startPipeline(t, api.config)
  const keys = new Map<string, string>()
  // each event happens a minute after the previous one: "older profile" means the same whether
  // the graph orders profiles by receipt or by occurredAt
  let minute = 0

  /** one event over HTTP, then waits until the consumer wrote it; returns its event id */
  async function send(tenant: string, externalEventId: string, identity: Identity): Promise<string> {
    let key = keys.get(tenant)
    if (key === undefined) { key = await api.key(tenant); keys.set(tenant, key) }
    const r = await api.app.inject({
      method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` },
      payload: { source: 'web', externalEventId, eventType: 'product_viewed', occurredAt: new Date(Date.parse('2026-05-20T12:00:00Z') + 60_000 * minute++).toISOString(), identity, properties: { product_id: 'sku-1' } },
    })
    t.equal(r.statusCode, 202, `${tenant}/${externalEventId} accepted`)
    const eventId = (r.json() as { event_id: string }).event_id
    await p.until(`SELECT 1 FROM ${db}.events WHERE tenant = '${tenant}' AND external_event_id = '${externalEventId}'`, (rows) => rows.length === 1)
    return eventId
  }
  const events = async (tenant: string) => {
    const rows = await p.rows<EventOut>(`SELECT external_event_id, event_id, profile_id, ingest_profile_id, email, phone, external_user_id, device_key FROM ${db}.events_resolved WHERE tenant = '${tenant}' ORDER BY external_event_id`)
    return new Map(rows.map((r) => [r.external_event_id, r]))
  }
  const merges = (tenant: string) => p.rows<MergeOut>(`SELECT from_profile_id, to_profile_id, reason, event_id FROM ${db}.profile_merges WHERE tenant = '${tenant}' ORDER BY merged_at`)
  const identities = (tenant: string) => p.rows<IdentityOut>(`SELECT identity_type, identity_value, raw_value, profile_id, first_event_id FROM ${db}.identities FINAL WHERE tenant = '${tenant}' ORDER BY identity_type, identity_value`)

  await t.test('two profiles sharing an email are merged by the event that links them', async (t) => {
    await send('idm', 'e1', { externalUserId: 'U-1' })
    await send('idm', 'e2', { email: 'Ann@Example.com' })
    const before = await events('idm')
    const [p1, p2] = [before.get('e1')?.profile_id, before.get('e2')?.profile_id]
    t.ok(p1 && p2 && p1 !== p2, 'two profiles before the linking event')
    const e3 = await send('idm', 'e3', { externalUserId: 'U-1', email: ' ann@example.com' })

    const m = await p.until<MergeOut>(`SELECT from_profile_id, to_profile_id, reason, event_id FROM ${db}.profile_merges WHERE tenant = 'idm'`, (r) => r.length >= 1)
    t.same(m, [{ from_profile_id: p2, to_profile_id: p1, reason: 'linked_by_email', event_id: e3 }], 'one merge, the younger profile into the older, caused by e3')
    const after = await events('idm')
    t.same([...after.values()].map((e) => e.profile_id), [p1, p1, p1], 'events_resolved: one canonical profile for all three events')
    t.equal(after.get('e2')?.ingest_profile_id, p2, 'the id resolved at ingest is kept')
    const canonical = await p.rows(`SELECT profile_id, canonical_id FROM ${db}.profile_canonical WHERE tenant = 'idm'`)
    t.same(canonical, [{ profile_id: p2, canonical_id: p1 }], 'the old id maps to the current one')
    const ids = await identities('idm')
    t.same(ids.map((i) => [i.identity_type, i.identity_value, i.raw_value]), [['email', 'ann@example.com', 'Ann@Example.com'], ['external', 'U-1', null]], 'normalized, with the raw value when it differed')
  })

  await t.test('two different externalUserIds sharing an email are not merged', async (t) => {
    const f1 = await send('idx', 'f1', { externalUserId: 'U-A', email: 'shared@example.com' })
    await send('idx', 'f2', { externalUserId: 'U-B', email: 'shared@example.com' })
    const ev = await events('idx')
    const [pa, pb] = [ev.get('f1')?.profile_id, ev.get('f2')?.profile_id]
    t.ok(pa && pb, 'both attributed')
    t.not(pa, pb, 'two profiles')
    t.same(await merges('idx'), [], 'no merge recorded')
    const ids = await identities('idx')
    t.same(ids.map((i) => [i.identity_type, i.identity_value, i.profile_id]), [
      ['email', 'shared@example.com', pa], ['external', 'U-A', pa], ['external', 'U-B', pb],
    ], 'the email stays with the first externalUserId')
    t.equal(ids.find((i) => i.identity_type === 'email')?.first_event_id, f1)
  })

  await t.test(`a device shared by maxProfilesPerDevice (${api.config.identity.maxProfilesPerDevice}) profiles stops linking`, async (t) => {
    await send('idd', 'h1', { email: 'a1@example.com' })
    await send('idd', 'h2', { email: 'a2@example.com' })
    await send('idd', 'h3', { email: 'a3@example.com' })
    const base = await events('idd')
    const [p1, p2, p3] = ['h1', 'h2', 'h3'].map((k) => base.get(k)?.profile_id)
    t.equal(new Set([p1, p2, p3]).size, 3)
    await send('idd', 'h4', { email: 'a1@example.com', deviceKey: 'dev-1' }) // the device joins a1's profile
    const h5 = await send('idd', 'h5', { email: 'a2@example.com', deviceKey: 'dev-1' }) // 2nd profile: merged, device now at the limit
    await p.until(`SELECT 1 FROM ${db}.profile_merges WHERE tenant = 'idd'`, (r) => r.length === 1)
    await send('idd', 'h6', { email: 'a3@example.com', deviceKey: 'dev-1' }) // 3rd profile: not merged
    await send('idd', 'h7', { email: 'a4@example.com', deviceKey: 'dev-1' }) // a new email is not linked through the device

    const m = await merges('idd')
    t.same(m.map((x) => [x.from_profile_id, x.to_profile_id, x.event_id]), [[p2, p1, h5]], 'exactly one merge: before the device reached the limit')
    const ev = await events('idd')
    t.same(['h1', 'h2', 'h4', 'h5'].map((k) => ev.get(k)?.profile_id), [p1, p1, p1, p1])
    t.equal(ev.get('h6')?.profile_id, p3, 'a3 keeps its own profile')
    t.not(ev.get('h7')?.profile_id, p1, 'a4 is not put on the device\'s profile')
    t.not(ev.get('h7')?.profile_id, p3)
    const a4 = (await identities('idd')).find((i) => i.identity_value === 'a4@example.com')
    t.equal(a4?.profile_id, ev.get('h7')?.profile_id, 'a4 got a profile of its own')
    t.equal((await identities('idd')).filter((i) => i.identity_type === 'device').length, 1, 'the device is linked once')
  })

  await t.test('junk identity values are not linked', async (t) => {
    await send('idj', 'j1', { externalUserId: 'null', email: 'test@test.com', phone: '+1 (415) 555-0132' })
    await send('idj', 'j2', { externalUserId: ' NULL ', email: 'TEST@test.com', deviceKey: 'dev-j2' })
    const ev = await events('idj')
    const j1 = ev.get('j1')
    t.equal(j1?.phone, '+14155550132')
    t.equal(j1?.email, null, 'junk email not stored as an identity of the event')
    t.equal(j1?.external_user_id, null, 'junk externalUserId not stored either')
    t.not(j1?.profile_id, ev.get('j2')?.profile_id, 'sharing junk values does not merge')
    t.same(await merges('idj'), [])
    const ids = await identities('idj')
    t.same(ids.map((i) => [i.identity_type, i.identity_value]), [['device', 'dev-j2'], ['phone', '+14155550132']], 'only the real identities are linked')
  })
})
