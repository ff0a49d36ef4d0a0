import t from 'tap'
import { loadConfig } from '../../src/config/index.js'
import {
  IdentityNormalizer, normalizeEmail, normalizeIdentities, normalizePhone, validateIdentity,
} from '../../src/identity/normalize.js'

const config = loadConfig({ env: {} })
const opts = config.identity

void t.test('email: trimmed and lowercased, raw kept', async (t) => {
  t.same(normalizeEmail('  John.Doe+Tag@Example.COM \n'), { ok: true, value: 'john.doe+tag@example.com' })
  const r = normalizeIdentities({ email: ' Customer@Example.com ' }, opts)
  t.same(r.identities, [{ type: 'EMAIL', value: 'customer@example.com', raw: ' Customer@Example.com ' }])
  t.same(r.errors, [])
})

void t.test('email: accepted and rejected shapes', async (t) => {
  for (const ok of ['a@b.co', 'first.last@sub.example.co.uk', "o'brien@example.ie", 'user@xn--bcher-kva.de', 'user@bücher.de', 'x_y-z@a-b.example']) {
    t.equal(normalizeEmail(ok).ok, true, ok)
  }
  for (const bad of ['john', 'john@', '@example.com', 'a@b', 'a b@example.com', 'a@@example.com', 'a@example..com',
    'a@-example.com', 'a@example-.com', '.a@example.com', 'a.@example.com', 'a..b@example.com', 'a@example.c',
    `${'x'.repeat(65)}@example.com`, `a@${'x'.repeat(250)}.com`, 'a@exa mple.com', 'a@example.com.']) {
    t.same(normalizeEmail(bad), { ok: false, code: 'invalid_email' }, JSON.stringify(bad))
  }
})

void t.test('phone: E.164 in the default region (US)', async (t) => {
  for (const raw of ['(202) 555-0123', '202.555.0123', '202 555 0123', '+1 202 555 0123', '1-202-555-0123', ' +12025550123 ', 'tel:+1-202-555-0123']) {
    t.same(normalizePhone(raw, 'US'), { ok: true, value: '+12025550123' }, raw)
  }
  t.same(normalizePhone('+1 650 253 0000 ext. 12', 'US'), { ok: true, value: '+16502530000' }, 'an extension is dropped')
})

void t.test('phone: international numbers, and national numbers of another default region', async (t) => {
  t.same(normalizePhone('+44 20 7946 0958', 'US'), { ok: true, value: '+442079460958' })
  t.same(normalizePhone('+49 30 901820', 'US'), { ok: true, value: '+4930901820' })
  t.same(normalizePhone('+33 6 12 34 56 78', 'US'), { ok: true, value: '+33612345678' })
  t.same(normalizePhone('+7 912 345-67-89', 'US'), { ok: true, value: '+79123456789' })
  t.same(normalizePhone('020 7946 0958', 'GB'), { ok: true, value: '+442079460958' })
  t.same(normalizePhone('06 12 34 56 78', 'FR'), { ok: true, value: '+33612345678' })
  t.same(normalizePhone('020 7946 0958', 'US'), { ok: false, code: 'invalid_phone' }, 'a UK national number is not a US number')
})

void t.test('phone: invalid numbers', async (t) => {
  for (const bad of ['12345', '+1 999 999 9999', 'abc', '202-555-01234', '+', '+999 123456', '555-0123']) {
    t.same(normalizePhone(bad, 'US'), { ok: false, code: 'invalid_phone' }, bad)
  }
})

void t.test('externalUserId -> EXTERNAL and deviceKey -> DEVICE: trimmed, case kept', async (t) => {
  const r = normalizeIdentities({ externalUserId: '  L-123456789 ', deviceKey: '\tABC-def-0001 ' }, opts)
  t.same(r.identities, [
    { type: 'EXTERNAL', value: 'L-123456789', raw: '  L-123456789 ' },
    { type: 'DEVICE', value: 'ABC-def-0001', raw: '\tABC-def-0001 ' },
  ])
})

void t.test('the seed example normalizes to two identities', async (t) => {
  const r = normalizeIdentities({ externalUserId: 'L-123456789', email: 'customer@example.com' }, opts)
  t.same(r.identities.map((i) => [i.type, i.value]), [['EXTERNAL', 'L-123456789'], ['EMAIL', 'customer@example.com']])
  t.same(r.dropped, [])
  t.same(r.errors, [])
})

void t.test('junk values are dropped with a reason, case-insensitively, not rejected', async (t) => {
  const r = normalizeIdentities({ externalUserId: 'NULL', email: ' Test@Test.COM ', phone: '0', deviceKey: 'Unknown' }, opts)
  t.same(r.identities, [])
  t.same(r.errors, [])
  t.same(r.dropped, [
    { field: 'externalUserId', type: 'EXTERNAL', raw: 'NULL', reason: 'blocked_value' },
    { field: 'email', type: 'EMAIL', raw: ' Test@Test.COM ', reason: 'blocked_value' },
    { field: 'phone', type: 'PHONE', raw: '0', reason: 'blocked_value' },
    { field: 'deviceKey', type: 'DEVICE', raw: 'Unknown', reason: 'blocked_value' },
  ])
  t.same(normalizeIdentities({ email: 'N/A', deviceKey: '   ' }, opts).dropped.map((d) => d.reason), ['blocked_value', 'empty'])
})

void t.test('blocked values are compared after normalization too', async (t) => {
  const n = new IdentityNormalizer({ defaultRegion: 'US', blockedValues: ['+12025550123', 'Guest', 'NoReply@Example.com'] })
  t.same(n.normalize({ phone: '(202) 555-0123' }).dropped.map((d) => d.reason), ['blocked_value'], 'the E.164 form is blocked')
  t.same(n.normalize({ externalUserId: 'GUEST' }).dropped.map((d) => d.reason), ['blocked_value'])
  t.same(n.normalize({ email: ' noreply@EXAMPLE.com' }).dropped.map((d) => d.reason), ['blocked_value'])
  t.same(n.normalize({ phone: '(202) 555-0124' }).identities.map((i) => i.value), ['+12025550124'])
})

void t.test('validateIdentity: value-shape errors with pointers; junk and absent fields are not errors', async (t) => {
  t.same(validateIdentity({ email: 'not-an-email', phone: '123', externalUserId: 'u1' }, opts), [
    { pointer: '/identity/email', code: 'invalid_email', message: 'identity.email is not a valid email address' },
    { pointer: '/identity/phone', code: 'invalid_phone', message: 'identity.phone is not a valid phone number (E.164, or national format of the default region)' },
  ])
  t.same(validateIdentity({ email: 'x@y' }, opts, '/items/3/identity').map((d) => d.pointer), ['/items/3/identity/email'])
  t.same(validateIdentity({ email: 'n/a', phone: 'null' }, opts), [])
  t.same(validateIdentity({}, opts), [], 'presence is the envelope schema\'s check')
  t.same(validateIdentity({ email: 42, phone: null } as never, opts), [], 'types are the envelope schema\'s check')
  t.same(validateIdentity(null, opts), [])
})

void t.test('the phone cache gives the same answers and stays bounded', async (t) => {
  const n = new IdentityNormalizer({ defaultRegion: 'US', blockedValues: [] })
  for (let round = 0; round < 2; round++) {
    t.same(n.normalize({ phone: '(202) 555-0123' }).identities.map((i) => i.value), ['+12025550123'])
    t.same(n.normalize({ phone: '12345' }).errors.map((e) => e.code), ['invalid_phone'])
  }
  for (let i = 0; i < IdentityNormalizer.PHONE_CACHE_SIZE + 10; i++) n.normalize({ phone: `+1 202 555 ${String(i).padStart(4, '0')}` })
  t.same(n.normalize({ phone: '(202) 555-0123' }).identities.map((i) => i.value), ['+12025550123'])
})
