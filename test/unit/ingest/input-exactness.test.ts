/**
 * Input that must not be accepted (issue 7 item 6, issue 8 finding 5): control characters and
 * unpaired surrogates in identifiers, nesting beyond the limit, timestamps and numbers the store
 * would change.
 */
import t from 'tap'
import { createEnvelopeValidator, IDENTITY_REQUIRED_MESSAGE, propertiesProblems } from '../../../src/ingest/envelope.js'
import { findInexactNumbers, inexactNumber } from '../../../src/ingest/json-numbers.js'
import { loadConfig } from '../../../src/config/index.js'
import { SEED_EVENT } from '../../helpers/seed.js'

const config = loadConfig({ env: {} })
const validate = createEnvelopeValidator(config)
const now = Date.parse('2026-05-20T13:00:00Z')
const seed = SEED_EVENT
const problems = (body: unknown) => {
  const r = validate(body, now)
  return r.ok ? [] : r.details.map((d) => `${d.pointer} ${d.code}`)
}

void t.test('identifiers with NUL, control characters or a lone surrogate are refused, naming the field', async (t) => {
  t.same(problems({ ...seed, externalEventId: 'txn_\ud800' }), ['/externalEventId invalid_characters'])
  t.same(problems({ ...seed, externalEventId: 'txn_\udc00x' }), ['/externalEventId invalid_characters'])
  t.same(problems({ ...seed, externalEventId: 'a\u0000b' }), ['/externalEventId invalid_characters'])
  t.same(problems({ ...seed, externalEventId: 'a\u0085b' }), ['/externalEventId invalid_characters'], 'C1 control')
  t.same(problems({ ...seed, identity: { externalUserId: 'L-1\n' } }), ['/identity/externalUserId invalid_characters'])
  t.same(problems({ ...seed, identity: { email: 'a@b.c', deviceKey: 'd\ud83d' } }), ['/identity/deviceKey invalid_characters'])
  // source and eventType are refused by their patterns already; one detail per field
  t.same(problems({ ...seed, source: 'brand.pos\u0000' }), ['/source pattern'])
  t.same(problems({ ...seed, eventType: 'purchase\u0001' }), ['/eventType pattern'])
  t.same(problems({ ...seed, externalEventId: 'emoji 😀 ok' }), [], 'a paired surrogate is fine')
})

void t.test('no identity at all gets the seed message', async (t) => {
  const { identity: _drop, ...noIdentity } = seed
  const r = validate(noIdentity, now)
  t.notOk(r.ok)
  if (!r.ok) t.same(r.details, [{ pointer: '/identity', code: 'identity_required', message: IDENTITY_REQUIRED_MESSAGE }])
})

void t.test('properties nested deeper than the limit are refused, at any depth without overflowing', async (t) => {
  const nest = (n: number): unknown => { let v: unknown = 1; for (let i = 0; i < n; i++) v = { a: v }; return v }
  // properties itself is level 1: 31 objects under it make 32 levels, the limit
  t.same(problems({ ...seed, properties: { ...seed.properties, deep: nest(31) } }), [])
  t.same(problems({ ...seed, properties: { ...seed.properties, deep: nest(32) } }), [`/properties/deep${'/a'.repeat(31)} too_deep`])
  const deepArrays = JSON.parse('['.repeat(200_000) + ']'.repeat(200_000)) as unknown
  t.match(propertiesProblems({ x: deepArrays }, 32), [{ code: 'too_deep' }])
  t.match(propertiesProblems({ ['k\ud800']: 1 }, 32), [{ code: 'invalid_characters', pointer: '/properties' }])
  t.match(propertiesProblems({ note: 'x\udfff' }, 32), [{ code: 'invalid_characters', pointer: '/properties/note' }])
})

void t.test('occurredAt the store cannot hold exactly is refused', async (t) => {
  t.same(problems({ ...seed, occurredAt: '0000-01-01T00:00:00Z' }), ['/occurredAt out_of_range'])
  t.same(problems({ ...seed, occurredAt: '1899-12-31T23:59:59.999Z' }), ['/occurredAt out_of_range'])
  t.same(problems({ ...seed, occurredAt: '1900-01-01T00:00:00Z' }), [])
  t.same(problems({ ...seed, occurredAt: '1900-01-01T00:30:00+01:00' }), ['/occurredAt out_of_range'], 'the offset counts')
  t.same(problems({ ...seed, occurredAt: '2026-05-20T12:45:00.1234Z' }), ['/occurredAt too_precise'])
  t.same(problems({ ...seed, occurredAt: '2026-05-20T12:45:00.123000000Z' }), [], 'trailing zeros are exact')
  t.same(problems({ ...seed, occurredAt: '2026-05-20T12:45:00.12Z' }), [])
})

void t.test('number tokens a double changes are found with their pointers', async (t) => {
  t.equal(inexactNumber('1e400') !== undefined, true)
  t.equal(inexactNumber('-1e400') !== undefined, true)
  t.equal(inexactNumber('1e-400') !== undefined, true)
  t.equal(inexactNumber('0e-400'), undefined, 'zero is zero')
  t.equal(inexactNumber('0.000e5'), undefined)
  t.equal(inexactNumber('9007199254740993') !== undefined, true)
  t.equal(inexactNumber('9007199254740992'), undefined, '2^53 is exact')
  t.equal(inexactNumber('18014398509481984'), undefined, '2^54 is exact')
  t.equal(inexactNumber('1e300'), undefined)
  t.equal(inexactNumber('0.1'), undefined, 'ordinary decimals are the usual binary approximation')
  t.same(findInexactNumbers('{"a":1,"b":[1,2,{"c/d":1e400}],"e":"1e400 9007199254740993","f~":9007199254740993,"g":1e-400}'), [
    { pointer: '/b/2/c~1d', token: '1e400', reason: inexactNumber('1e400') },
    { pointer: '/f~0', token: '9007199254740993', reason: inexactNumber('9007199254740993') },
    { pointer: '/g', token: '1e-400', reason: inexactNumber('1e-400') },
  ])
  t.same(findInexactNumbers('{"phone":"+12025550123456789","n":12}'), [], 'digits inside strings are not numbers')
  t.same(findInexactNumbers('{"items":[{"x":"\\"","y":1e999},{"z":[]}]}').map((n) => n.pointer), ['/items/0/y'], 'escaped quotes')
})
