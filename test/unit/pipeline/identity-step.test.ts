/**
 * The identity step over a fake identity graph that records what it was asked and answers what
 * the test says: what the graph is given (normalized identities, hashed for a pseudonymized
 * tenant), how its answer becomes ClickHouse rows, what is counted and logged, and that a graph
 * outage propagates.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { CdpError } from '../../../src/errors.js'
import { createIdentityStep, type IdentityObserver } from '../../../src/pipeline/identity-step.js'
import { createLogger } from '../../../src/observability/logger.js'
import { createPseudonymizer } from '../../../src/privacy/index.js'
import type { IdentityGraph, ResolveInput, ResolveResult } from '../../../src/identity/graph.js'
import { config, event } from '../../helpers/pipeline-fakes.js'

const silent = createLogger({ logLevel: 'silent' })
const nothing: ResolveResult = { profileId: 'prof_1', merges: [], blocked: [], newIdentities: [], aliases: [] }

/** a graph whose resolveMany answers `answer(inputs)` and records its calls */
function fakeGraph(answer: (items: ResolveInput[]) => ResolveResult[] = (items) => items.map(() => nothing)) {
  const resolved: ResolveInput[][] = []
  const forgotten: { tenant: string; eventId: string }[][] = []
  const unused = async (): Promise<never> => { throw new Error('not used by the identity step') }
  const graph: IdentityGraph = {
    async resolveMany(items) { resolved.push(structuredClone(items)); return answer(items) },
    async forget(events) { forgotten.push(events) },
    resolve: unused, canonical: unused, canonicalMany: unused, lookup: unused, profilesOf: unused, erase: unused, ping: unused, close: unused,
  }
  return { graph, resolved, forgotten }
}

const ann = event({ eventId: 'evt_ann', identity: { externalUserId: ' L-1 ', email: ' Ann@Example.COM ', phone: null, deviceKey: null } })

void t.test('the graph gets normalized identities, one call per batch, under the event\'s tenant and id', async (t) => {
  const g = fakeGraph()
  const other = event({ eventId: 'evt_2', tenant: 'globex', identity: { externalUserId: null, email: null, phone: null, deviceKey: 'dev-9' } })
  const r = await createIdentityStep(g.graph, config, silent).resolveMany([ann, other])
  t.same(g.resolved, [[
    { tenant: 'acme', event: { eventId: 'evt_ann' }, identities: [
      { type: 'EXTERNAL', value: 'L-1', raw: ' L-1 ' }, { type: 'EMAIL', value: 'ann@example.com', raw: ' Ann@Example.COM ' },
    ] },
    { tenant: 'globex', event: { eventId: 'evt_2' }, identities: [{ type: 'DEVICE', value: 'dev-9', raw: 'dev-9' }] },
  ]])
  t.match(r, [
    { profileId: 'prof_1', email: 'ann@example.com', externalUserId: 'L-1', phone: null, deviceKey: null },
    { profileId: 'prof_1', email: null, deviceKey: 'dev-9' },
  ], 'the events row carries the normalized values')
})

void t.test('the graph\'s answer becomes identities, merges and alias rows; no usable identity is profile \'\'', async (t) => {
  const at = Date.parse('2026-05-20T12:45:00Z')
  const g = fakeGraph((items) => [
    {
      profileId: 'prof_a',
      newIdentities: [
        { tenant: 'acme', identity: items[0]!.identities[1]!, profileId: 'prof_a', eventId: 'evt_ann', at },
        { tenant: 'acme', identity: items[0]!.identities[0]!, profileId: 'prof_a', eventId: 'evt_ann', at },
      ],
      merges: [{ tenant: 'acme', fromProfileId: 'prof_b', toProfileId: 'prof_a', reason: 'linked_by_email', eventId: 'evt_ann', at }],
      aliases: [{ tenant: 'acme', profileId: 'prof_b', canonicalId: 'prof_a', at }],
      blocked: [],
    },
    { ...nothing, profileId: null },
  ])
  const merges: string[] = []
  const observer: IdentityObserver = { merge: (r) => merges.push(r), blocked: () => t.fail('nothing was blocked') }
  const nobody = event({ eventId: 'evt_0', identity: { externalUserId: null, email: null, phone: null, deviceKey: null } })
  const [r, none] = await createIdentityStep(g.graph, config, silent, observer).resolveMany([ann, nobody])
  t.same(r!.identities, [
    { tenant: 'acme', identity_type: 'email', identity_value: 'ann@example.com', raw_value: ' Ann@Example.COM ', profile_id: 'prof_a', first_event_id: 'evt_ann', linked_at: '2026-05-20T12:45:00.000Z' },
    { tenant: 'acme', identity_type: 'external', identity_value: 'L-1', raw_value: ' L-1 ', profile_id: 'prof_a', first_event_id: 'evt_ann', linked_at: '2026-05-20T12:45:00.000Z' },
  ])
  t.same(r!.merges, [{ tenant: 'acme', from_profile_id: 'prof_b', to_profile_id: 'prof_a', reason: 'linked_by_email', event_id: 'evt_ann', merged_at: '2026-05-20T12:45:00.000Z' }])
  t.same(r!.aliases, [{ tenant: 'acme', profile_id: 'prof_b', canonical_id: 'prof_a', version: at, updated_at: '2026-05-20T12:45:00.000Z' }])
  t.same(merges, ['linked_by_email'], 'each merge counted once with its reason')
  t.match(none, { profileId: '', identities: [], merges: [], aliases: [] })
})

void t.test('raw_value is null where the raw value equals the normalized one', async (t) => {
  const plain = event({ eventId: 'evt_p', identity: { externalUserId: 'L-7', email: null, phone: null, deviceKey: null } })
  const g = fakeGraph((items) => [{ ...nothing, newIdentities: [{ tenant: 'acme', identity: items[0]!.identities[0]!, profileId: 'prof_1', eventId: 'evt_p', at: 0 }] }])
  const [r] = await createIdentityStep(g.graph, config, silent).resolveMany([plain])
  t.equal(r!.identities[0]!.raw_value, null)
})

void t.test('a blocked merge is counted and logged with its reason, never with the identity\'s value', async (t) => {
  const lines: string[] = []
  const log = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString('utf8')); cb() } }))
  const g = fakeGraph((items) => [{
    ...nothing, blocked: [{ identity: items[0]!.identities[1]!, reason: 'conflicting_external_id', profileId: 'prof_other' }],
  }])
  const blocked: string[] = []
  await createIdentityStep(g.graph, config, log, { merge: () => t.fail('no merge'), blocked: (r) => blocked.push(r) }).resolveMany([ann])
  t.same(blocked, ['conflicting_external_id'])
  t.equal(lines.length, 1)
  t.match(JSON.parse(lines[0]!), { msg: 'identity merge stopped by a limit', eventId: 'evt_ann', blocked: [{ type: 'EMAIL', reason: 'conflicting_external_id', profileId: 'prof_other' }] })
  t.notMatch(lines[0]!, /ann@example\.com/i, 'no raw or normalized email in the log')
})

void t.test('a pseudonymized tenant: the graph and the rows see only keyed hashes; other tenants are untouched', async (t) => {
  const secret = 's'.repeat(32)
  const pseudonymizer = createPseudonymizer({ pseudonymizeTenants: ['acme'], tenantSecrets: { acme: secret } })
  const g = fakeGraph((items) => items.map((i) => ({ ...nothing, newIdentities: i.identities.map((identity) => ({ tenant: i.tenant, identity, profileId: 'prof_1', eventId: i.event.eventId, at: 0 })) })))
  const globexAnn = { ...ann, eventId: 'evt_g', tenant: 'globex' }
  const [hashed, plain] = await createIdentityStep(g.graph, config, silent, undefined, pseudonymizer).resolveMany([ann, globexAnn])
  const email = pseudonymizer.identity('acme', 'EMAIL', 'ann@example.com')
  t.match(email, /^[0-9a-f]{64}$/)
  t.same(g.resolved[0]![0]!.identities.find((i) => i.type === 'EMAIL'), { type: 'EMAIL', value: email, raw: email }, 'the raw value is replaced too')
  t.equal(hashed!.email, email)
  t.same(hashed!.identities.map((r) => r.raw_value), [null, null], 'no raw value in the identities rows')
  t.notMatch(JSON.stringify([g.resolved[0]![0], hashed]), /ann@example|Ann@Example|L-1/, 'no raw or normalized value anywhere')
  t.equal(plain!.email, 'ann@example.com')
  t.same(g.resolved[0]![1]!.identities.find((i) => i.type === 'EMAIL'), { type: 'EMAIL', value: 'ann@example.com', raw: ' Ann@Example.COM ' })
})

void t.test('forget hands the graph each event\'s tenant and id', async (t) => {
  const g = fakeGraph()
  await createIdentityStep(g.graph, config, silent).forget([ann, event({ eventId: 'evt_2', tenant: 'globex' })])
  t.same(g.forgotten, [[{ tenant: 'acme', eventId: 'evt_ann' }, { tenant: 'globex', eventId: 'evt_2' }]])
})

void t.test('a graph outage propagates as the retriable CdpError it is', async (t) => {
  const outage = new CdpError('state_store_unavailable', 'graph store closed')
  const g = fakeGraph(() => { throw outage })
  await t.rejects(createIdentityStep(g.graph, config, silent).resolveMany([ann]), { code: 'state_store_unavailable', retriable: true })
})
