/**
 * The suppress step over fakes: which records are refused, what their dead letter keeps, when a
 * tombstone follows, and that an erased tuple is skipped rather than dead-lettered.
 */
import t from 'tap'
import { suppressStep } from '../../../src/pipeline/suppress-step.js'
import { createMemoryStateStores } from '../../../src/state/memory.js'
import { event, keyOf, valid } from '../../helpers/pipeline-fakes.js'
import type { IdentityInput } from '../../../src/identity/normalize.js'

/** suppresses the email ann@example.com in tenant acme */
const suppression = {
  async suppressed(tenant: string, ids: readonly (IdentityInput | null | undefined)[]) {
    return ids.map((i) => tenant === 'acme' && typeof i?.email === 'string' && i.email.trim().toLowerCase() === 'ann@example.com')
  },
}
const ann = (id: string, tenant = 'acme') => event({ tenant, externalEventId: id, eventId: `evt_${id}`, identity: { email: 'Ann@Example.com', externalUserId: null, phone: null, deviceKey: null } })
const bob = (id: string) => event({ externalEventId: id, eventId: `evt_${id}`, identity: { email: 'bob@example.com', externalUserId: null, phone: null, deviceKey: null } })

void t.test('live: suppressed records leave without their value, a tombstone only where no fact is stored; others pass', async (t) => {
  const stores = createMemoryStateStores()
  const stored = ann('s-1')
  await stores.dedup.checkMany([{ key: keyOf(stored).text, ref: { eventId: 'evt_other', fingerprint: 'x', partition: 0, offset: '0' } }])
  const erased = ann('e-1')
  await stores.dedup.checkMany([{ key: keyOf(erased).text, ref: { eventId: 'evt_e-1', fingerprint: 'fp', partition: 0, offset: '1' } }])
  await stores.dedup.markErased([keyOf(erased).text])
  const step = suppressStep({ suppression, dedup: stores.dedup, mode: 'live' })
  const r = await step([valid(10, ann('n-1')), valid(11, bob('b-1')), valid(12, stored), valid(13, erased), valid(14, ann('g-1', 'globex'))])
  t.same(r.outcomes.map((o) => o.kind), ['dead_letter', 'ok', 'dead_letter', 'skip', 'ok'])
  const letter = r.outcomes[0]
  t.match(letter, { kind: 'dead_letter', letter: { reason: 'suppressed', tenant: 'acme', record: { value: null, offset: '10' } } })
  t.match(r.outcomes[3], { kind: 'skip', why: 'erased' })
  t.same(r.tombstones, [keyOf(ann('n-1')).text], "no tombstone under someone else's stored fact, none for an erased tuple (it has one)")

  const replay = await suppressStep({ suppression, dedup: stores.dedup, mode: 'replay' })([valid(10, ann('n-1'))])
  t.same(replay.tombstones, [], 'a replay writes nothing to the topic')
  t.same((await suppressStep({ dedup: stores.dedup, mode: 'live' })([valid(10, ann('n-1'))])).outcomes.map((o) => o.kind), ['ok'], 'no suppression list: everything passes')
})
