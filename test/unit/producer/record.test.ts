/**
 * The direct-producer kit builds the same bytes the API writes: key, wire-format header, an Avro
 * body the consumer's reader decodes, and the fingerprint the consumer computes.
 */
import t from 'tap'
import avro from 'avsc'
import { valueSchemaText } from '../../../src/avro/codec.js'
import { fingerprint, fingerprintOf, type CdpEvent } from '../../../src/avro/event.js'
import { encodeKey } from '../../../src/avro/key.js'
import { buildEvent, buildRecord, directProducerOver, wireEncoder, type DirectEvent } from '../../../src/producer/index.js'
import type { OutboundMessage } from '../../../src/kafka/producer.js'

const type = avro.Type.forSchema(JSON.parse(valueSchemaText()) as avro.Schema, { logicalTypes: {} })
const encoder = wireEncoder(type, 0x01020304)
const NOW = Date.parse('2026-05-20T12:50:00.000Z')

const fact: DirectEvent = {
  tenant: 'acme', source: 'brand.pos', externalEventId: 'txn_987654321', eventType: 'purchase_completed',
  occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: 'L-123456789', email: 'customer@example.com' },
  properties: { order_id: 'order_42', amount: 120.5, currency: 'USD' },
}

function decode(value: Buffer): CdpEvent {
  return type.fromBuffer(value.subarray(5)) as CdpEvent
}

void t.test('key: the pinned JSON-array bytes of the tuple', async (t) => {
  const r = buildRecord(fact, encoder, { now: NOW })
  t.equal(r.key.toString('utf8'), '["acme","brand.pos","txn_987654321"]')
  t.same(r.key, encodeKey(fact))
})

void t.test('value: magic byte 0, the schema id big-endian, then the Avro body of the event', async (t) => {
  const r = buildRecord(fact, encoder, { now: NOW })
  t.same([...r.value.subarray(0, 5)], [0, 1, 2, 3, 4])
  const e = decode(r.value)
  t.match(e.eventId, /^evt_[0-9a-z]{26}$/)
  t.equal(e.eventId, r.event.eventId)
  t.equal(e.occurredAt, Date.parse('2026-05-20T12:45:00Z'))
  t.equal(e.occurredAtDefaulted, false)
  t.equal(e.receivedAt, NOW)
  t.same(e.identity, { externalUserId: 'L-123456789', email: 'customer@example.com', phone: null, deviceKey: null })
  t.equal(e.properties, '{"order_id":"order_42","amount":120.5,"currency":"USD"}')
  t.equal(e.contractVersion, null)
})

void t.test('occurredAt omitted: the send time, flagged, and left out of the fingerprint', async (t) => {
  const { occurredAt: _omit, ...noTime } = fact
  const a = buildRecord(noTime, encoder, { now: NOW })
  const b = buildRecord(noTime, encoder, { now: NOW + 60_000 })
  const ea = decode(a.value)
  t.equal(ea.occurredAt, NOW)
  t.equal(ea.occurredAtDefaulted, true)
  t.equal(a.fingerprint, b.fingerprint, 'a retry a minute later is the same fact')
  t.not(a.event.eventId, b.event.eventId, 'each send gets its own event id')
  t.not(a.fingerprint, buildRecord(fact, encoder, { now: NOW }).fingerprint, 'a stated occurredAt is part of the fact')
})

void t.test('fingerprint: what the consumer computes from the decoded record, and what the API computes', async (t) => {
  const r = buildRecord(fact, encoder, { now: NOW })
  t.equal(fingerprintOf(decode(r.value)), r.fingerprint)
  t.equal(r.fingerprint, fingerprint({
    eventType: 'purchase_completed', occurredAt: Date.parse('2026-05-20T12:45:00Z'),
    identity: { externalUserId: 'L-123456789', email: 'customer@example.com' },
    properties: { currency: 'USD', amount: 120.5, order_id: 'order_42' },
  }))
  const other = buildRecord({ ...fact, properties: { ...fact.properties, amount: 99 } }, encoder, { now: NOW })
  t.not(other.fingerprint, r.fingerprint, 'another payload: a conflict for the consumer')
})

void t.test('occurredAt as Date or epoch ms; an event id can be reused', async (t) => {
  const at = Date.parse('2026-05-20T12:45:00Z')
  t.equal(buildEvent({ ...fact, occurredAt: new Date(at) }).event.occurredAt, at)
  t.equal(buildEvent({ ...fact, occurredAt: at }).event.occurredAt, at)
  t.equal(buildEvent(fact, { eventId: 'evt_0000000000aaaaaaaaaaaaaaaa' }).event.eventId, 'evt_0000000000aaaaaaaaaaaaaaaa')
})

void t.test('inputs that cannot become a record are refused with every problem named', async (t) => {
  const bad = { ...fact, tenant: '', occurredAt: '2026-05-20 12:45', identity: { email: 5 }, properties: [] } as unknown as DirectEvent
  t.throws(() => buildRecord(bad, encoder), { code: 'validation_failed' })
  try { buildRecord(bad, encoder) } catch (err) {
    t.same((err as { details: { pointer: string }[] }).details.map((d) => d.pointer), ['/tenant', '/occurredAt', '/identity/email', '/properties'])
  }
  // contracts are not checked here: the consumer does it (and dead-letters)
  t.doesNotThrow(() => buildRecord({ ...fact, eventType: 'no_such_event', properties: {} }, encoder))
})

void t.test('sendMany: built before sending, one ticket, results in order', async (t) => {
  const sent: OutboundMessage[][] = []
  const p = directProducerOver({ send: (m) => { sent.push(m); return { done: Promise.resolve(), cancel: () => false } } }, encoder)
  const out = await p.sendMany([fact, { ...fact, externalEventId: 'txn_2' }], { now: NOW })
  t.equal(sent.length, 1)
  t.same(sent[0]?.map((m) => m.key.toString()), ['["acme","brand.pos","txn_987654321"]', '["acme","brand.pos","txn_2"]'])
  t.same(out.map((o) => o.key), ['["acme","brand.pos","txn_987654321"]', '["acme","brand.pos","txn_2"]'])
  t.equal(out[0]?.eventId, decode(sent[0]![0]!.value).eventId)

  const retry = await p.send(fact, { eventId: out[0]!.eventId })
  t.equal(retry.eventId, out[0]?.eventId, 'a retry can keep the event id')
  t.equal(decode(sent[1]![0]!.value).eventId, out[0]?.eventId)
  t.equal(retry.fingerprint, out[0]?.fingerprint)

  await t.rejects(p.sendMany([fact, { ...fact, source: '' }]), { code: 'validation_failed' })
  t.equal(sent.length, 2, 'nothing sent when one input is refused')

  const failing = directProducerOver({ send: () => ({ done: Promise.reject(Object.assign(new Error('down'), { code: 'kafka_unavailable' })), cancel: () => false }) }, encoder)
  await t.rejects(failing.send(fact), { code: 'kafka_unavailable' })
})
