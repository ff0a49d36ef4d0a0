import t from 'tap'
import { TailTracker, maskIdentity, maskedIdentity } from '../../../src/pipeline/tail.js'
import { eventStatus, type EventStatusDeps } from '../../../src/pipeline/event-status.js'
import type { CdpEvent } from '../../../src/avro/event.js'
import { fingerprintOf } from '../../../src/avro/event.js'
import { encodeKey, keyString } from '../../../src/avro/key.js'
import type { FactRef } from '../../../src/state/types.js'
import type { TailedRecord } from '../../../src/kafka/tail.js'

const ev = (externalEventId: string, over: Partial<CdpEvent> = {}): CdpEvent => ({
  eventId: `evt_${externalEventId}`, tenant: 'acme', source: 'web', externalEventId, eventType: 'purchase_completed',
  occurredAt: 1, occurredAtDefaulted: false, receivedAt: Date.UTC(2026, 0, 1), properties: '{}', contractVersion: 1,
  identity: { email: 'jane@example.com', phone: '+14155550100', externalUserId: null, deviceKey: null }, ...over,
})

const rec = (e: CdpEvent, offset: string, partition = 0): TailedRecord => ({
  topic: 'events', partition, offset, key: encodeKey(e), value: Buffer.from(JSON.stringify(e)), timestamp: '0', headers: {},
})

void t.test('masks: an identity value never appears, its kind does', async (t) => {
  t.equal(maskIdentity('email', 'jane@example.com'), 'j***@e***')
  t.equal(maskIdentity('phone', '+14155550100'), '***00')
  t.equal(maskIdentity('deviceKey', 'abc'), '***')
  t.equal(maskedIdentity(ev('x').identity), 'email=j***@e***,phone=***00')
})

void t.test('tail tracker: filters by key before decoding, outcome from the dedup store or the DLQ, pending after the wait', async (t) => {
  let now = 0
  const first = new Map<string, FactRef>()
  const decoded: string[] = []
  const tr = new TailTracker({
    filter: { tenant: 'acme', eventType: 'purchase_completed' },
    decode: async (v) => { const e = JSON.parse(v!.toString()) as CdpEvent; decoded.push(e.externalEventId); return e },
    firstFact: async (k) => first.get(k), outcomeWaitMs: 1000, now: () => now,
  })
  const a = ev('a')
  await tr.onEvent(rec(a, '1'))
  await tr.onEvent(rec({ ...a, eventId: 'evt_a2' }, '2'))
  await tr.onEvent(rec(ev('b'), '3'))
  await tr.onEvent(rec(ev('c'), '4'))
  await tr.onEvent(rec(ev('o', { tenant: 'other' }), '5'))
  await tr.onEvent(rec(ev('t', { eventType: 'cart_updated' }), '6'))
  t.same(decoded, ['a', 'a', 'b', 'c', 't'], 'another tenant is never decoded')
  t.same(await tr.poll(), [], 'nothing known yet')
  first.set(keyString(a), { eventId: 'evt_a', fingerprint: fingerprintOf(a), partition: 0, offset: '1' })
  tr.onDeadLetter({ ...rec(ev('b'), '9'), topic: 'dlq', headers: { 'cdp-source-partition': '0', 'cdp-source-offset': '3', 'cdp-reason-code': 'contract_violation' } })
  const lines = await tr.poll()
  t.equal(lines.length, 3)
  t.match(lines[0], /  a  purchase_completed  evt_a  p0@1  email=j\*\*\*@e\*\*\*,phone=\*\*\*00  written$/)
  t.match(lines[1], /  evt_a2  p0@2  .*  duplicate evt_a$/)
  t.match(lines[2], /  b  .*  dead_letter contract_violation$/)
  t.ok(lines.every((l) => !l.includes('jane') && !l.includes('4155550100')))
  now = 1000
  t.match(await tr.poll(), [/  c  .*  pending$/], 'no outcome within the wait')
  t.equal(tr.pending, 0)
})

void t.test('event status: stored beats dead_lettered beats a committed claim; pending claim and nothing: unknown', async (t) => {
  const key = keyString({ tenant: 'acme', source: 'web', externalEventId: 'x' })
  const deps = (over: Partial<EventStatusDeps> = {}, tables: Partial<NonNullable<EventStatusDeps['tables']>> = {}): EventStatusDeps => ({
    claim: async (k) => (k === key ? { state: 'committed', eventId: 'evt_claim', claimedAt: Date.UTC(2026, 0, 1) } : undefined),
    tables: { storedFact: async () => undefined, latestDeadLetter: async () => undefined, ...tables },
    decode: async () => ev('x', { eventId: 'evt_dead', receivedAt: Date.UTC(2026, 0, 2) }),
    ...over,
  })
  t.same(await eventStatus(deps(), 'acme', 'web', 'x'), { status: 'accepted', event_id: 'evt_claim', received_at: '2026-01-01T00:00:00.000Z', stored_at: null, reason_code: null })
  const dead = { reason_code: 'no_identity', value_base64: 'AA==', dead_lettered_at: '2026-01-03T00:00:00.000Z' }
  t.same(await eventStatus(deps({}, { latestDeadLetter: async () => dead }), 'acme', 'web', 'x'),
    { status: 'dead_lettered', event_id: 'evt_dead', received_at: '2026-01-02T00:00:00.000Z', stored_at: null, reason_code: 'no_identity' })
  const stored = { event_id: 'evt_s', received_at: '2026-01-01T00:00:00.000Z', stored_at: '2026-01-01T00:00:01.000Z' }
  t.same(await eventStatus(deps({}, { latestDeadLetter: async () => dead, storedFact: async () => stored }), 'acme', 'web', 'x'),
    { status: 'stored', ...stored, reason_code: null })
  t.equal((await eventStatus(deps({ claim: async () => ({ state: 'pending', eventId: 'e', claimedAt: 0 }) }), 'acme', 'web', 'x')).status, 'unknown')
  const { tables: _unused, ...noClickHouse } = deps()
  t.equal((await eventStatus(noClickHouse, 'acme', 'web', 'x')).status, 'accepted', 'without ClickHouse: from the claim')
  t.equal((await eventStatus(deps(), 'other', 'web', 'x')).status, 'unknown', 'another tenant: a different key, nothing found')
})
