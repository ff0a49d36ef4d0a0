/**
 * The pseudonymize steps over a real keyed hash and a fake pii list: which properties of which
 * tenant's facts are hashed (both the parsed object and the events row's JSON), what is left
 * alone, and which dead letters lose their value.
 */
import t from 'tap'
import { pseudonymizeFacts, withoutValues } from '../../../src/pipeline/pseudonymize.js'
import { createPseudonymizer } from '../../../src/privacy/index.js'
import type { DeadLetter } from '../../../src/pipeline/outcome.js'
import { event, record, unique } from '../../helpers/pipeline-fakes.js'

const pseudonymizer = createPseudonymizer({ pseudonymizeTenants: ['acme'], tenantSecrets: { acme: 'a'.repeat(32), globex: 'g'.repeat(32) } })
const piiCalls: string[] = []
/** purchase_completed flags `email_hint` and `card_last4` as pii; other event types flag nothing */
const piiProperties = (tenant: string, eventType: string): readonly string[] => {
  piiCalls.push(`${tenant}/${eventType}`)
  return eventType === 'purchase_completed' ? ['email_hint', 'card_last4', 'not_sent'] : []
}
const props = '{"amount":12.5,"email_hint":"ann@example.com","card_last4":4242}'

void t.test('a pseudonymized tenant\'s pii properties are hashed in the object and in the row\'s JSON; the rest is kept', async (t) => {
  piiCalls.length = 0
  const item = unique(5, event({ properties: props }), false)
  const [out] = pseudonymizeFacts({ pseudonymizer, piiProperties })([item])
  const hint = pseudonymizer.property('acme', 'ann@example.com')
  const card = pseudonymizer.property('acme', 4242)
  t.match(hint, /^[0-9a-f]{64}$/)
  t.not(hint, card)
  t.same(out!.properties, { amount: 12.5, email_hint: hint, card_last4: card }, 'a flagged property that was not sent is not added')
  t.same(JSON.parse(out!.event.properties), out!.properties)
  t.notMatch(out!.event.properties, /ann@example\.com|4242/)
  t.equal(out!.fingerprint, item.fingerprint, 'the fingerprint (dedup) is the raw record\'s')
  t.same(piiCalls, ['acme/purchase_completed'])
  t.same(JSON.parse(item.event.properties), { amount: 12.5, email_hint: 'ann@example.com', card_last4: 4242 }, 'the input is not mutated')
})

void t.test('left alone: other tenants (even with a secret), event types without pii, and no pseudonymizer at all', async (t) => {
  const globex = unique(5, event({ tenant: 'globex', properties: props }), false)
  const signup = unique(6, event({ eventType: 'signed_up', properties: props }), false)
  const step = pseudonymizeFacts({ pseudonymizer, piiProperties })
  const [a, b] = step([globex, signup])
  t.equal(a, globex, 'a tenant outside pseudonymizeTenants')
  t.equal(b, signup, 'nothing flagged pii')
  const items = [unique(7, event({ properties: props }), false)]
  t.equal(pseudonymizeFacts({ piiProperties })(items), items, 'no pseudonymizer')
  t.equal(pseudonymizeFacts({ pseudonymizer })(items), items, 'no pii list')
})

void t.test('dead letters of a pseudonymized tenant lose their value; others and keyless letters keep theirs', async (t) => {
  const letter = (offset: number, tenant: string | null): DeadLetter =>
    ({ record: record(offset, Buffer.from('k'), Buffer.from('raw ann@example.com')), tenant, reason: 'contract_violation', message: 'x' })
  const out = withoutValues({ pseudonymizer })([letter(1, 'acme'), letter(2, 'globex'), letter(3, null)])
  t.same(out.map((l) => l.record.value?.toString('utf8') ?? null), [null, 'raw ann@example.com', 'raw ann@example.com'])
  t.same(out.map((l) => [l.record.offset, l.reason, l.tenant]), [['1', 'contract_violation', 'acme'], ['2', 'contract_violation', 'globex'], ['3', 'contract_violation', null]])
  const same = [letter(4, 'acme')]
  t.equal(withoutValues({})(same), same, 'no pseudonymizer: letters unchanged')
})
