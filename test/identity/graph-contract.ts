/**
 * The identity graph rules (src/identity/graph.ts), run against every store: LMDB, Redis and the
 * in-memory reference. Each test (and each property run) uses its own tenant, so runs that share
 * one store cannot see each other.
 */
import type { Test } from 'tap'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import {
  createMemoryIdentityGraph, profileIdFor,
  type GraphOptions, type IdentityGraph, type ResolveInput, type ResolveResult,
} from '../../src/identity/graph.js'
import type { IdentityType, NormalizedIdentity } from '../../src/identity/normalize.js'

/** opens a graph on ONE isolated storage; calling it again reopens the same data */
export type GraphOpener = () => Promise<IdentityGraph>
export type GraphFactory = (t: Test, opts: GraphOptions & { replayTtlMs?: number }) => GraphOpener

const T0 = 1_760_000_000_000

const id = (type: IdentityType, value: string): NormalizedIdentity => ({ type, value, raw: value })
const email = (v: string) => id('EMAIL', `${v}@example.com`)
const phone = (v: string) => id('PHONE', v)
const ext = (v: string) => id('EXTERNAL', v)
const device = (v: string) => id('DEVICE', v)

function tenantName(): string {
  return `tenant-${randomBytes(4).toString('hex')}`
}

/** aliases come from a Redis set: compare them as a set */
function comparable(r: ResolveResult): ResolveResult {
  return { ...r, aliases: [...r.aliases].sort((a, b) => a.profileId.localeCompare(b.profileId)) }
}

export function graphContract(t: Test, factory: GraphFactory): void {
  async function open(t: Test, maxProfilesPerDevice = 3, replayTtlMs?: number): Promise<{ graph: IdentityGraph; reopen: GraphOpener }> {
    const opener = factory(t, { maxProfilesPerDevice, replayTtlMs })
    const graph = await opener()
    t.teardown(() => graph.close())
    return {
      graph,
      reopen: async () => {
        const g = await opener()
        t.teardown(() => g.close())
        return g
      },
    }
  }

  void t.test('a first event creates a profile with a deterministic id and links its identities', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const r = await graph.resolve(tenant, [phone('+12025550123'), email('ann')], { eventId: 'e1' }, T0)
    // EXTERNAL < EMAIL < PHONE < DEVICE: the email names the profile
    const pid = profileIdFor(tenant, email('ann'))
    t.match(pid, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    t.same(r, {
      profileId: pid,
      merges: [],
      blocked: [],
      newIdentities: [
        { tenant, identity: email('ann'), profileId: pid, eventId: 'e1', at: T0 },
        { tenant, identity: phone('+12025550123'), profileId: pid, eventId: 'e1', at: T0 },
      ],
      aliases: [],
    })
    t.equal(await graph.lookup(tenant, phone('+12025550123')), pid)
    t.equal(await graph.lookup(tenant, email('nobody')), undefined)

    const again = await graph.resolve(tenant, [email('ann'), device('d1')], { eventId: 'e2' }, T0 + 1)
    t.equal(again.profileId, pid, 'a known identity resolves to its profile')
    t.same(again.newIdentities.map((l) => l.identity.value), ['d1'], 'only the new device is new')
    t.same(again.merges, [])
  })

  void t.test('no usable identity -> no profile; duplicates within an event count once', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    t.same(await graph.resolve(tenant, [], { eventId: 'e0' }, T0), { profileId: null, merges: [], blocked: [], newIdentities: [], aliases: [] })
    const r = await graph.resolve(tenant, [email('a'), { ...email('a'), raw: ' A@example.com' }], { eventId: 'e1' }, T0)
    t.equal(r.newIdentities.length, 1)
    t.equal(r.newIdentities[0]?.identity.raw, 'a@example.com', 'the first raw value is kept')
  })

  void t.test('an event linking two profiles merges them into the one created first', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const b = await graph.resolve(tenant, [email('b')], { eventId: 'e1' }, T0)
    const a = await graph.resolve(tenant, [email('a')], { eventId: 'e2' }, T0 + 10)
    const r = await graph.resolve(tenant, [email('a'), email('b'), phone('+12025550123')], { eventId: 'e3' }, T0 + 20)
    t.equal(r.profileId, b.profileId, 'the older profile survives whatever the ids')
    t.same(r.merges, [{ tenant, fromProfileId: a.profileId, toProfileId: b.profileId, reason: 'linked_by_email', eventId: 'e3', at: T0 + 20 }])
    t.same(r.aliases, [{ tenant, profileId: a.profileId, canonicalId: b.profileId, at: T0 + 20 }])
    t.same(r.newIdentities.map((l) => [l.identity.value, l.profileId]), [['+12025550123', b.profileId]])
    t.equal(await graph.canonical(tenant, a.profileId as string), b.profileId)
    t.equal(await graph.canonical(tenant, b.profileId as string), b.profileId)
    t.equal(await graph.lookup(tenant, email('a')), b.profileId)
    t.same(await graph.canonicalMany(tenant, [a.profileId as string, 'never-seen']), [b.profileId, 'never-seen'])
  })

  void t.test('same creation time: the smaller profile id survives', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const [x, y] = await graph.resolveMany([
      { tenant, identities: [email('x')], event: { eventId: 'e1' } },
      { tenant, identities: [email('y')], event: { eventId: 'e2' } },
    ], T0)
    const ids = [x?.profileId, y?.profileId] as string[]
    const r = await graph.resolve(tenant, [email('y'), email('x')], { eventId: 'e3' }, T0 + 1)
    t.equal(r.profileId, ids.sort()[0])
  })

  void t.test('merges chain: every older id maps to the current one in one step', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const [c, b, a] = await graph.resolveMany([
      { tenant, identities: [email('c')], event: { eventId: 'e1' } },
      { tenant, identities: [email('b')], event: { eventId: 'e2' } },
      { tenant, identities: [email('a')], event: { eventId: 'e3' } },
    ], T0).then((rs) => rs.map((r) => r.profileId as string)) as [string, string, string]
    const ab = await graph.resolve(tenant, [email('a'), email('b')], { eventId: 'e4' }, T0 + 2)
    // all three were created at T0: the smallest id of the pair survives
    const abWinner = [a, b].sort()[0] as string
    const abLoser = abWinner === a ? b : a
    t.equal(ab.profileId, abWinner)
    const r = await graph.resolve(tenant, [email('b'), phone('+12025550199'), email('c')], { eventId: 'e5' }, T0 + 3)
    const winner = [abWinner, c].sort()[0] as string
    t.equal(r.profileId, winner)
    if (winner === c) {
      t.same(r.merges.map((m) => [m.fromProfileId, m.toProfileId]), [[abWinner, c]])
      t.same(comparable(r).aliases.map((x) => x.profileId), [abWinner, abLoser].sort(), 'ids merged before move along')
    } else {
      t.same(r.merges.map((m) => [m.fromProfileId, m.toProfileId]), [[c, abWinner]])
    }
    for (const p of [a, b, c]) t.equal(await graph.canonical(tenant, p), winner)
    for (const e of ['a', 'b', 'c']) t.equal(await graph.lookup(tenant, email(e)), winner)
  })

  void t.test('tenants never share profiles', async (t) => {
    const { graph } = await open(t)
    const t1 = tenantName()
    const t2 = tenantName()
    const r1 = await graph.resolve(t1, [email('same')], { eventId: 'e1' }, T0)
    const r2 = await graph.resolve(t2, [email('same')], { eventId: 'e1' }, T0)
    t.not(r1.profileId, r2.profileId)
    t.equal(r2.newIdentities.length, 1)
    t.equal(await graph.lookup(t1, email('same')), r1.profileId)
  })

  void t.test('limit: profiles with different EXTERNAL ids are never merged', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const p1 = (await graph.resolve(tenant, [ext('u1'), email('e1')], { eventId: 'e1' }, T0)).profileId
    const p2 = (await graph.resolve(tenant, [ext('u2'), email('e2')], { eventId: 'e2' }, T0 + 1)).profileId

    const r = await graph.resolve(tenant, [email('e2'), email('e1')], { eventId: 'e3' }, T0 + 2)
    t.equal(r.profileId, p1, 'anchor: the first identity (in type/value order) that carries an EXTERNAL id')
    t.same(r.merges, [])
    t.same(r.blocked, [{ identity: email('e2'), reason: 'conflicting_external_id', profileId: p2 }])

    const own = await graph.resolve(tenant, [email('e1'), ext('u2'), phone('+12025550100')], { eventId: 'e4' }, T0 + 3)
    t.equal(own.profileId, p2, "the event's own externalUserId wins over its email's profile")
    t.same(own.blocked, [{ identity: email('e1'), reason: 'conflicting_external_id', profileId: p1 }])
    t.same(own.newIdentities.map((l) => [l.identity.value, l.profileId]), [['+12025550100', p2]], 'the new phone goes with the event')

    const fresh = await graph.resolve(tenant, [ext('u3'), email('e1')], { eventId: 'e5' }, T0 + 4)
    t.equal(fresh.profileId, profileIdFor(tenant, ext('u3')), 'a new EXTERNAL id gets its own profile')
    t.same(fresh.blocked, [{ identity: email('e1'), reason: 'conflicting_external_id', profileId: p1 }])

    const two = await graph.resolve(tenant, [ext('u5'), ext('u4')], { eventId: 'e6' }, T0 + 5)
    t.equal(two.profileId, profileIdFor(tenant, ext('u4')))
    t.same(two.blocked, [{ identity: ext('u5'), reason: 'conflicting_external_id', profileId: null }], 'one event cannot carry two EXTERNAL ids')
    t.equal(await graph.lookup(tenant, ext('u5')), undefined, 'the blocked identity was not linked')

    t.equal(await graph.lookup(tenant, email('e1')), p1)
    t.equal(await graph.lookup(tenant, email('e2')), p2)
    t.equal(await graph.canonical(tenant, p2 as string), p2, 'nothing was merged')
  })

  void t.test('limit: an anonymous profile merges into one with an EXTERNAL id, which it then carries', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const anon = (await graph.resolve(tenant, [device('d1'), email('a')], { eventId: 'e1' }, T0)).profileId
    const known = await graph.resolve(tenant, [ext('u1'), email('a')], { eventId: 'e2' }, T0 + 1)
    t.equal(known.profileId, anon, 'no EXTERNAL id yet: no conflict, the identity joins the profile')
    const other = await graph.resolve(tenant, [ext('u2'), device('d1')], { eventId: 'e3' }, T0 + 2)
    t.same(other.blocked.map((b) => [b.identity.value, b.reason]), [['d1', 'conflicting_external_id']], 'the profile now holds u1')
  })

  void t.test('limit: a device linked to maxProfilesPerDevice profiles stops linking', async (t) => {
    const { graph } = await open(t, 2)
    const tenant = tenantName()
    const pa = (await graph.resolve(tenant, [email('a')], { eventId: 'e1' }, T0)).profileId
    const pb = (await graph.resolve(tenant, [email('b')], { eventId: 'e2' }, T0 + 1)).profileId
    const pc = (await graph.resolve(tenant, [email('c')], { eventId: 'e3' }, T0 + 2)).profileId
    const first = await graph.resolve(tenant, [device('kiosk'), email('a')], { eventId: 'e4' }, T0 + 3)
    t.equal(first.profileId, pa)
    const second = await graph.resolve(tenant, [device('kiosk'), email('b')], { eventId: 'e5' }, T0 + 4)
    t.equal(second.profileId, pa, 'the second profile is still merged (count 1 < 2)')
    t.same(second.merges.map((m) => [m.fromProfileId, m.reason]), [[pb, 'linked_by_email']])

    const third = await graph.resolve(tenant, [device('kiosk'), email('c')], { eventId: 'e6' }, T0 + 5)
    t.equal(third.profileId, pc, 'the event goes to the other identity')
    t.same(third.merges, [], 'the saturated device merges nothing')
    t.same(third.blocked, [{ identity: device('kiosk'), reason: 'shared_device', profileId: pa }])

    const newcomer = await graph.resolve(tenant, [device('kiosk'), email('z')], { eventId: 'e7' }, T0 + 6)
    t.equal(newcomer.profileId, profileIdFor(tenant, email('z')), 'a new identity is not linked through a shared device')
    t.same(newcomer.blocked.map((b) => b.reason), ['shared_device'])

    const alone = await graph.resolve(tenant, [device('kiosk')], { eventId: 'e8' }, T0 + 7)
    t.equal(alone.profileId, pa, "a device-only event goes to the device's own profile")
    t.same(alone.blocked, [], 'nothing was stopped')

    const home = await graph.resolve(tenant, [device('kiosk'), email('b')], { eventId: 'e9' }, T0 + 8)
    t.same([home.profileId, home.blocked], [pa, []], 'identities already in its profile are no stop')
    t.equal(await graph.canonical(tenant, pc as string), pc)
  })

  void t.test('limit: maxProfilesPerDevice = 1 never merges through a device', async (t) => {
    const { graph } = await open(t, 1)
    const tenant = tenantName()
    const p1 = (await graph.resolve(tenant, [device('d'), email('a')], { eventId: 'e1' }, T0)).profileId
    const p2 = (await graph.resolve(tenant, [email('b')], { eventId: 'e2' }, T0 + 1)).profileId
    const r = await graph.resolve(tenant, [device('d'), email('b')], { eventId: 'e3' }, T0 + 2)
    t.same([r.profileId, r.merges, r.blocked], [p2, [], [{ identity: device('d'), reason: 'shared_device', profileId: p1 }]])
  })

  void t.test('resolveMany decides in order: a later event sees an earlier one', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    const items: ResolveInput[] = [
      { tenant, identities: [email('a')], event: { eventId: 'e1' } },
      { tenant, identities: [email('b')], event: { eventId: 'e2' } },
      { tenant, identities: [email('a'), email('b')], event: { eventId: 'e3' } },
      { tenant, identities: [email('b')], event: { eventId: 'e4' } },
    ]
    const [r1, r2, r3, r4] = await graph.resolveMany(items, T0)
    t.equal(r3?.merges.length, 1)
    t.equal(r4?.profileId, r3?.profileId)
    t.ok([r1?.profileId, r2?.profileId].includes(r3?.profileId))
    t.same(await graph.resolveMany([], T0), [])
  })

  void t.test('a replayed event reports the same result without changing the graph, until forgotten', async (t) => {
    const { graph } = await open(t)
    const tenant = tenantName()
    await graph.resolveMany([
      { tenant, identities: [email('a')], event: { eventId: 'e1' } },
      { tenant, identities: [email('b')], event: { eventId: 'e2' } },
    ], T0)
    const batch: ResolveInput[] = [
      { tenant, identities: [email('a'), email('b'), device('d')], event: { eventId: 'e3' } },
      { tenant, identities: [email('c')], event: { eventId: 'e4' } },
      { tenant, identities: [email('c'), email('a')], event: { eventId: 'e5' } },
    ]
    const first = await graph.resolveMany(batch, T0 + 10)
    const replay = await graph.resolveMany(batch, T0 + 99)
    t.same(replay.map(comparable), first.map(comparable), 'a crash between resolve and the insert loses no rows')
    t.ok(first[0]?.merges.length === 1 && first[2]?.merges.length === 1)

    await graph.forget(batch.map((b) => ({ tenant, eventId: b.event.eventId })))
    const after = await graph.resolveMany(batch, T0 + 100)
    t.same(after.map((r) => [r.merges, r.newIdentities]), [[[], []], [[], []], [[], []]], 'forgotten: recomputed, nothing new')
    t.same(after.map((r) => r.profileId), [first[2]?.profileId, first[2]?.profileId, first[2]?.profileId])
    await graph.forget([])
  })

  void t.test('erasure: profilesOf finds the merged person; erase forgets it and nobody else', async (t) => {
    const { graph, reopen } = await open(t)
    const tenant = tenantName()
    const other = tenantName()
    const a = (await graph.resolve(tenant, [email('ann'), device('d1')], { eventId: 'e1' }, T0)).profileId as string
    const b = (await graph.resolve(tenant, [phone('+12025550123')], { eventId: 'e2' }, T0 + 1)).profileId as string
    // e3 links the two: one person, two profile ids; kept results for e3 hold her identities
    const merged = await graph.resolve(tenant, [email('ann'), phone('+12025550123')], { eventId: 'e3' }, T0 + 2)
    t.equal(merged.profileId, a)
    const bob = (await graph.resolve(tenant, [email('bob')], { eventId: 'e4' }, T0 + 3)).profileId as string
    const elsewhere = (await graph.resolve(other, [email('ann')], { eventId: 'e1' }, T0)).profileId as string

    t.same(await graph.profilesOf(tenant, [email('ann')]), [a, b].sort(), 'the canonical profile and the id merged into it')
    t.same(await graph.profilesOf(tenant, [phone('+12025550123'), email('ann')]), [a, b].sort(), 'any of her identities names the same person')
    t.same(await graph.profilesOf(tenant, [email('nobody')]), [])

    const what = {
      profileIds: [a, b], eventIds: ['e1', 'e2', 'e3'],
      identities: [email('ann'), phone('+12025550123'), device('d1'), email('bob')],
    }
    t.same(await graph.erase(tenant, what), { identities: 3, profiles: 2, keptResults: 3 }, "bob's email is listed but is not hers: kept")
    for (const i of [email('ann'), phone('+12025550123'), device('d1')]) t.equal(await graph.lookup(tenant, i), undefined, `${i.value} forgotten`)
    t.same(await graph.profilesOf(tenant, [email('ann')]), [])
    t.equal(await graph.lookup(tenant, email('bob')), bob, 'another person of the tenant is untouched')
    t.equal(await graph.lookup(other, email('ann')), elsewhere, 'the same email in another tenant is untouched')
    t.same(await graph.erase(tenant, what), { identities: 0, profiles: 0, keptResults: 0 }, 'erasing again removes nothing')

    const again = await graph.resolve(tenant, [email('ann')], { eventId: 'e3' }, T0 + 10)
    t.equal(again.newIdentities.length, 1, 'the kept result of e3 is gone: resolving it again starts from nothing')
    t.equal(await (await reopen()).lookup(tenant, email('bob')), bob, 'reopened: the rest is still there')
  })

  void t.test('a kept result expires after replayTtlMs even when nobody calls forget', async (t) => {
    const { graph } = await open(t, 3, 1)
    const tenant = tenantName()
    await graph.resolve(tenant, [email('a')], { eventId: 'e1' }, T0)
    await graph.resolve(tenant, [email('b')], { eventId: 'e2' }, T0)
    const batch = { tenant, identities: [email('a'), email('b')], event: { eventId: 'e3' } }
    t.equal((await graph.resolveMany([batch], T0 + 1))[0]?.merges.length, 1)
    await new Promise((resolve) => setTimeout(resolve, 20))
    // the LMDB store sweeps expired results at the start of a write; Redis expires the key
    await graph.resolve(tenant, [email('c')], { eventId: 'e4' }, T0 + 2)
    t.same((await graph.resolveMany([batch], T0 + 3))[0]?.merges, [], 'expired: recomputed')
  })

  void t.test('the graph survives close and reopen', async (t) => {
    const { graph, reopen } = await open(t)
    const tenant = tenantName()
    const a = await graph.resolve(tenant, [email('a'), ext('u1')], { eventId: 'e1' }, T0)
    const b = await graph.resolve(tenant, [email('b')], { eventId: 'e2' }, T0 + 1)
    await graph.resolve(tenant, [email('a'), email('b')], { eventId: 'e3' }, T0 + 2)
    t.equal(await graph.ping(), true)
    await graph.close()
    t.equal(await graph.ping(), false)
    await t.rejects(graph.resolve(tenant, [email('a')], { eventId: 'x' }, T0), { code: 'state_store_unavailable' })
    const again = await reopen()
    t.equal(await again.canonical(tenant, b.profileId as string), a.profileId)
    const r = await again.resolve(tenant, [email('b'), ext('u2')], { eventId: 'e4' }, T0 + 3)
    t.same(r.blocked.map((x) => x.reason), ['conflicting_external_id'], 'EXTERNAL ids survive too')
  })

  void t.test('property: without limits, the grouping is the connected components, in any order', async (t) => {
    const { graph } = await open(t, 1_000_000)
    const universe = [
      ...['e0', 'e1', 'e2', 'e3', 'e4'].map(email),
      ...['+12025550100', '+12025550101', '+12025550102'].map(phone),
      ...['d0', 'd1', 'd2'].map(device),
    ]
    const eventArb = fc.uniqueArray(fc.integer({ min: 0, max: universe.length - 1 }), { minLength: 1, maxLength: 3 })
    const scenario = fc.record({
      events: fc.array(eventArb, { minLength: 1, maxLength: 12 }),
      // which components get an EXTERNAL id (at most one each), and which of their events carry it
      extPicks: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
      orders: fc.array(fc.array(fc.double({ noNaN: true }), { minLength: 12, maxLength: 12 }), { minLength: 2, maxLength: 3 }),
      batched: fc.boolean(),
    })
    let runs = 0
    await fc.assert(fc.asyncProperty(scenario, async ({ events, extPicks, orders, batched }) => {
      const base = events.map((ix) => ix.map((i) => universe[i] as NormalizedIdentity))
      const comp = components(base)
      // give some components one EXTERNAL id, carried by some of their events
      const extOf = new Map<number, NormalizedIdentity>()
      const withExt = base.map((ids, i) => {
        const c = comp.componentOfEvent[i] as number
        if (!extPicks[c % extPicks.length]) return ids
        if (!extOf.has(c)) extOf.set(c, ext(`u${c}`))
        return extPicks[i] ? [...ids, extOf.get(c) as NormalizedIdentity] : ids
      })
      const expected = groupsOf(withExt)
      for (const order of orders) {
        const perm = withExt.map((ids, i) => ({ ids, key: order[i] ?? 0, i })).sort((x, y) => x.key - y.key || x.i - y.i)
        const tenant = `prop-${++runs}-${randomBytes(3).toString('hex')}`
        const items = perm.map((p, n) => ({ tenant, identities: p.ids, event: { eventId: `ev${p.i}-${n}` } }))
        if (batched) await graph.resolveMany(items, T0)
        else for (const [n, item] of items.entries()) await graph.resolveMany([item], T0 + n)
        const seen = [...new Map(withExt.flat().map((i) => [`${i.type}:${i.value}`, i])).values()]
        const profiles = await Promise.all(seen.map((i) => graph.lookup(tenant, i)))
        const byProfile = new Map<string, string[]>()
        seen.forEach((i, n) => {
          const p = profiles[n] as string
          byProfile.set(p, [...(byProfile.get(p) ?? []), `${i.type}:${i.value}`])
        })
        const actual = normalizeGroups([...byProfile.values()])
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          throw new Error(`grouping ${JSON.stringify(actual)} != components ${JSON.stringify(expected)}`)
        }
      }
    }), { numRuns: 60 })
    t.pass(`${runs} orderings grouped as the connected components`)
  })

  void t.test('differential: the store answers exactly like the in-memory reference, limits included', async (t) => {
    const { graph } = await open(t, 2)
    const universe = [
      ...['u0', 'u1', 'u2'].map(ext),
      ...['e0', 'e1', 'e2', 'e3'].map(email),
      ...['+12025550100', '+12025550101'].map(phone),
      ...['d0', 'd1'].map(device),
    ]
    const eventArb = fc.uniqueArray(fc.integer({ min: 0, max: universe.length - 1 }), { minLength: 0, maxLength: 4 })
    await fc.assert(fc.asyncProperty(fc.array(fc.array(eventArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }), async (batches) => {
      const reference = createMemoryIdentityGraph({ maxProfilesPerDevice: 2 })
      const tenant = `diff-${randomBytes(4).toString('hex')}`
      let n = 0
      for (const [b, batch] of batches.entries()) {
        const items = batch.map((ix) => ({ tenant, identities: ix.map((i) => universe[i] as NormalizedIdentity), event: { eventId: `ev${n++}` } }))
        const want = await reference.resolveMany(items, T0 + b)
        const got = await graph.resolveMany(items, T0 + b)
        if (JSON.stringify(got.map(comparable)) !== JSON.stringify(want.map(comparable))) {
          throw new Error(`batch ${b}: ${JSON.stringify(got)} != reference ${JSON.stringify(want)}`)
        }
      }
    }), { numRuns: 60 })
    t.pass('same results as the reference')
  })
}

/** union-find over "appeared in the same event" */
function components(events: NormalizedIdentity[][]): { componentOfEvent: number[] } {
  const parent = new Map<string, string>()
  const find = (x: string): string => {
    let r = x
    while (parent.get(r) !== r) r = parent.get(r) as string
    parent.set(x, r)
    return r
  }
  const key = (i: NormalizedIdentity) => `${i.type}:${i.value}`
  for (const ev of events) for (const i of ev) if (!parent.has(key(i))) parent.set(key(i), key(i))
  for (const ev of events) for (const i of ev.slice(1)) parent.set(find(key(i)), find(key(ev[0] as NormalizedIdentity)))
  const roots = new Map<string, number>()
  const componentOfEvent = events.map((ev) => {
    const r = find(key(ev[0] as NormalizedIdentity))
    if (!roots.has(r)) roots.set(r, roots.size)
    return roots.get(r) as number
  })
  return { componentOfEvent }
}

function groupsOf(events: NormalizedIdentity[][]): string[][] {
  const parent = new Map<string, string>()
  const find = (x: string): string => {
    while (parent.get(x) !== x) x = parent.get(x) as string
    return x
  }
  const key = (i: NormalizedIdentity) => `${i.type}:${i.value}`
  for (const ev of events) for (const i of ev) if (!parent.has(key(i))) parent.set(key(i), key(i))
  for (const ev of events) for (const i of ev.slice(1)) parent.set(find(key(i)), find(key(ev[0] as NormalizedIdentity)))
  const groups = new Map<string, string[]>()
  for (const k of parent.keys()) groups.set(find(k), [...(groups.get(find(k)) ?? []), k])
  return normalizeGroups([...groups.values()])
}

function normalizeGroups(groups: string[][]): string[][] {
  return groups.map((g) => [...g].sort()).sort((a, b) => (a[0] as string).localeCompare(b[0] as string))
}
