import t from 'tap'
import type { CdpEvent } from '../../../src/avro/event.js'
import { fingerprintOf } from '../../../src/avro/event.js'
import type { Decoded } from '../../../src/pipeline/decode-step.js'
import type { ProcessorDeps } from '../../../src/pipeline/deps.js'
import { validateStep } from '../../../src/pipeline/validate-step.js'
import { config, event, keyOf, recordOf } from '../../helpers/pipeline-fakes.js'

const pass: ProcessorDeps['checkContract'] = () => ({ ok: true, version: 1 })

function decoded(e: CdpEvent, key = keyOf(e)): Decoded {
  return { record: recordOf(3, e), key, event: e }
}

void t.test('a key naming another tuple than the value: key_mismatch with the key\'s tenant', async (t) => {
  const e = event()
  for (const other of [{ ...e, tenant: 'globex' }, { ...e, source: 'web' }, { ...e, externalEventId: 'txn_2' }]) {
    const out = validateStep({ checkContract: pass, config })(decoded(e, keyOf(other)))
    t.match(out, { kind: 'dead_letter', letter: { reason: 'key_mismatch', tenant: other.tenant } })
    if (out.kind === 'dead_letter') t.equal(out.letter.key?.text, keyOf(other).text)
  }
})

void t.test('properties that are not JSON: contract_violation', async (t) => {
  const out = validateStep({ checkContract: pass, config })(decoded(event({ properties: '{nope' })))
  t.match(out, { kind: 'dead_letter', letter: { reason: 'contract_violation', tenant: 'acme', message: 'properties is not JSON' } })
})

void t.test('the tenant\'s contract refuses the properties: contract_violation with each detail', async (t) => {
  const seen: unknown[] = []
  const checkContract: ProcessorDeps['checkContract'] = (tenant, eventType, properties) => {
    seen.push([tenant, eventType, properties])
    return { ok: false, details: [{ pointer: '/properties/amount', code: 'type', message: 'must be number' }, { pointer: '/properties', code: 'required', message: 'currency missing' }] }
  }
  const out = validateStep({ checkContract, config })(decoded(event()))
  t.same(seen, [['acme', 'purchase_completed', { amount: 12.5, currency: 'USD' }]])
  t.match(out, { kind: 'dead_letter', letter: { reason: 'contract_violation', message: '/properties/amount: must be number; /properties: currency missing' } })
})

void t.test('no identifier, or only blank ones: no_identity', async (t) => {
  for (const identity of [
    { externalUserId: null, email: null, phone: null, deviceKey: null },
    { externalUserId: '  ', email: '', phone: null, deviceKey: ' ' },
  ]) {
    const out = validateStep({ checkContract: pass, config })(decoded(event({ identity })))
    t.match(out, { kind: 'dead_letter', letter: { reason: 'no_identity', tenant: 'acme' } })
  }
})

void t.test('an invalid email or phone: contract_violation naming the field, as the API\'s 422', async (t) => {
  const bad = [
    [{ externalUserId: 'L-1', email: 'not-an-email', phone: null, deviceKey: null }, /^\/identity\/email: /],
    [{ externalUserId: 'L-1', email: null, phone: '12', deviceKey: null }, /^\/identity\/phone: /],
  ] as const
  for (const [identity, message] of bad) {
    const out = validateStep({ checkContract: pass, config })(decoded(event({ identity })))
    t.match(out, { kind: 'dead_letter', letter: { reason: 'contract_violation', tenant: 'acme', message } })
  }
})

void t.test('ok: the fingerprint and the parsed properties travel on', async (t) => {
  const e = event({ identity: { externalUserId: null, email: 'Customer@Example.com', phone: null, deviceKey: null } })
  const out = validateStep({ checkContract: pass, config })(decoded(e))
  t.equal(out.kind, 'ok')
  if (out.kind !== 'ok') return
  t.equal(out.value.fingerprint, fingerprintOf(e))
  t.same(out.value.properties, { amount: 12.5, currency: 'USD' })
  t.equal(out.value.event, e)
})
