import t from 'tap'
import { createEnvelopeValidator, IDENTITY_REQUIRED_MESSAGE, parseOccurredAt } from '../../../src/ingest/envelope.js'
import { loadConfig } from '../../../src/config/index.js'
import { SEED_EVENT } from '../../helpers/seed.js'

const config = loadConfig({ env: {} })
const validate = createEnvelopeValidator(config)
const now = Date.parse('2026-05-20T13:00:00Z')
const seed = SEED_EVENT

void t.test('the seed example passes', async (t) => {
  const r = validate(seed, now)
  t.ok(r.ok)
  if (r.ok) t.equal(r.occurredAt, Date.parse('2026-05-20T12:45:00Z'))
})

void t.test('missing identity fields use the seed message verbatim', async (t) => {
  const r = validate({ ...seed, identity: {} }, now)
  t.notOk(r.ok)
  if (!r.ok) t.same(r.details, [{ pointer: '/identity', code: 'identity_required', message: IDENTITY_REQUIRED_MESSAGE }])
})

void t.test('every problem is listed, with pointers', async (t) => {
  const r = validate({ externalEventId: '', eventType: 'Bad Type', occurredAt: '20 May', identity: { email: 'a@b.c', twitter: 'x' }, extra: 1 }, now)
  t.notOk(r.ok)
  if (r.ok) return
  const got = r.details.map((d) => `${d.pointer} ${d.code}`).sort()
  t.same(got, [
    '/eventType pattern',
    '/externalEventId too_short',
    '/extra unknown_field',
    '/identity/twitter unknown_field',
    '/occurredAt invalid_timestamp',
    '/source required',
  ])
})

void t.test('occurredAt: offset required, calendar checked, future bounded', async (t) => {
  t.equal(parseOccurredAt('2026-05-20T12:45:00'), 'invalid_timestamp', 'no offset')
  t.equal(parseOccurredAt('2026-02-30T00:00:00Z'), 'invalid_timestamp', 'no Feb 30')
  t.equal(parseOccurredAt('2026-05-20T12:45:00.123+02:00'), Date.parse('2026-05-20T10:45:00.123Z'))
  const future = validate({ ...seed, occurredAt: '2026-05-20T14:00:00Z' }, now)
  t.notOk(future.ok)
  if (!future.ok) t.equal(future.details[0]?.code, 'in_future')
  const omitted = validate({ ...seed, occurredAt: undefined }, now)
  t.ok(omitted.ok)
  if (omitted.ok) t.equal(omitted.occurredAt, null, 'receipt time is filled in later')
})

void t.test('oversize identifiers are refused', async (t) => {
  const r = validate({ ...seed, externalEventId: 'x'.repeat(config.validation.maxIdLength + 1) }, now)
  t.notOk(r.ok)
  if (!r.ok) t.equal(r.details[0]?.code, 'too_long')
})
