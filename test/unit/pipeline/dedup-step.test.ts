import t from 'tap'
import { createMemoryStateStores, emptyMemoryState, type MemoryStateData } from '../../../src/state/memory.js'
import { dedupStep } from '../../../src/pipeline/dedup-step.js'
import type { DeadLetter } from '../../../src/pipeline/outcome.js'
import type { DedupStore } from '../../../src/state/types.js'
import { event, keyOf, record, ref, valid } from '../../helpers/pipeline-fakes.js'

const e = event()
const key = keyOf(e)

function store(data: MemoryStateData = emptyMemoryState()): { dedup: DedupStore; data: MemoryStateData; gets: string[] } {
  const dedup = createMemoryStateStores(data).dedup
  const gets: string[] = []
  return {
    data, gets,
    dedup: {
      checkMany: (i) => dedup.checkMany(i), get: async (k) => { gets.push(k); return dedup.get(k) },
      reassertedAfter: (k) => dedup.reassertedAfter(k), markReasserted: (i) => dedup.markReasserted(i), markErased: (k) => dedup.markErased(k),
    },
  }
}

/** a dead letter of an earlier step under the fact's key */
const badUnderKey = (offset: number, partition = 0): DeadLetter =>
  ({ record: record(offset, key.bytes, Buffer.from('junk'), partition), key, tenant: 'acme', reason: 'not_avro', message: 'x' })

void t.test('first: carries on, not maybe-written, and the store keeps it as the first fact', async (t) => {
  const s = store()
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(5, e)], [])
  t.match(r.outcomes, [{ kind: 'ok', value: { maybeWritten: false, event: { eventId: 'evt_1' } } }])
  t.same(r.reassert, [])
  t.match(s.data.dedup.get(key.text), { eventId: 'evt_1', partition: 0, offset: '5' })
})

void t.test('repeat (same fact at another position): skipped live', async (t) => {
  const s = store()
  const again = valid(9, event({ eventId: 'evt_2' }))
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(5, e), again], [])
  t.match(r.outcomes, [{ kind: 'ok' }, { kind: 'skip', why: 'repeat', record: again.record }])
  t.same(r.reassert, [])
})

void t.test('conflict (same tuple, other payload): dead letter naming the first fact, which is re-asserted', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: ref('evt_0', 0, 2, 'other') }])
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(5, e)], [])
  t.match(r.outcomes, [{ kind: 'dead_letter', letter: { reason: 'tuple_conflict', tenant: 'acme', message: /evt_0 .*at 0\/2/ } }])
  const [o] = r.outcomes
  t.equal(o?.kind === 'dead_letter' ? o.letter.key?.text : undefined, key.text)
  t.same(r.reassert.map((x) => [x.key.text, x.original]), [[key.text, ref('evt_0', 0, 2, 'other')]])
  t.match(s.data.dedup.get(key.text), { eventId: 'evt_0' }, 'the first fact stays')
})

void t.test('replay: a repeat stands for the fact under the original event id; everything is maybe-written', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: { ...ref('evt_0', 0, 2), fingerprint: valid(0, e).fingerprint } }])
  const other = event({ externalEventId: 'txn_9', eventId: 'evt_9' })
  const r = await dedupStep({ dedup: s.dedup, mode: 'replay' })([valid(7, e), valid(8, other)], [])
  t.match(r.outcomes, [
    { kind: 'ok', value: { maybeWritten: true, event: { eventId: 'evt_0', externalEventId: 'txn_1' }, record: { offset: '7' } } },
    { kind: 'ok', value: { maybeWritten: true, event: { eventId: 'evt_9' } } },
  ])
})

void t.test('replay: a conflict is a dead letter but nothing is re-asserted (a replay writes no topic)', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: ref('evt_0', 0, 2, 'other') }])
  const r = await dedupStep({ dedup: s.dedup, mode: 'replay' })([valid(5, e)], [badUnderKey(6)])
  t.match(r.outcomes, [{ kind: 'dead_letter', letter: { reason: 'tuple_conflict' } }])
  t.same(r.reassert, [])
  t.same(s.gets, [])
})

void t.test('re-delivery of the very record that won: first again, marked maybe-written', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: { ...ref('evt_1', 0, 5), fingerprint: valid(0, e).fingerprint } }])
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(5, e)], [])
  t.match(r.outcomes, [{ kind: 'ok', value: { maybeWritten: true } }])
})

void t.test('a bad record under the key of a stored fact re-asserts the fact', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: ref('evt_0', 0, 2) }])
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([], [badUnderKey(6)])
  t.same(r.reassert, [{ key, original: ref('evt_0', 0, 2), after: '6' }])
})

void t.test('... also when the fact came first earlier in the same batch', async (t) => {
  const s = store()
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(5, e)], [badUnderKey(6)])
  t.match(r.reassert, [{ key, original: { eventId: 'evt_1', offset: '5' } }])
})

void t.test('... but not when the first fact comes later in the partition: it already follows the bad record', async (t) => {
  const s = store()
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(7, e)], [badUnderKey(6)])
  t.same(r.reassert, [])
  t.same(s.gets, [key.text], 'asked after the batch\'s facts were recorded')
})

void t.test('... and not when no fact is stored under the key, or the letter has no key', async (t) => {
  const s = store()
  const noKey: DeadLetter = { record: record(3, Buffer.from('junk'), null), tenant: null, reason: 'bad_key', message: 'x' }
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([], [badUnderKey(6), noKey])
  t.same(r.reassert, [])
  t.same(s.gets, [key.text], 'no lookup for a record without a key')
})

void t.test('a wrong_partition record never re-asserts: it is not on the fact\'s partition', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: ref('evt_0', 0, 2) }])
  const wrong: DeadLetter = { ...badUnderKey(6, 3), reason: 'wrong_partition' }
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([], [wrong])
  t.same(r.reassert, [])
})

void t.test('idempotent: no re-assertion after a bad record the store says was already followed by one', async (t) => {
  const s = store()
  await s.dedup.checkMany([{ key: key.text, ref: ref('evt_0', 0, 2, 'other') }])
  await s.dedup.markReasserted([{ key: key.text, after: '6' }])
  const conflictAt = (o: number) => dedupStep({ dedup: s.dedup, mode: 'live' })([valid(o, e)], [])
  const again = await conflictAt(6)
  t.match(again.outcomes, [{ kind: 'dead_letter', letter: { reason: 'tuple_conflict' } }], 'still dead-lettered')
  t.same(again.reassert, [], 'the topic already holds a copy after offset 6')
  t.same((await dedupStep({ dedup: s.dedup, mode: 'live' })([], [badUnderKey(4)])).reassert, [], 'nor after an earlier one')
  t.same((await conflictAt(9)).reassert.map((x) => x.after), ['9'], 'a bad record after the last copy still calls for one')
})

void t.test('idempotent: no re-assertion when a later record of the batch is a copy of the first fact', async (t) => {
  const s = store()
  const first = valid(2, e)
  await s.dedup.checkMany([{ key: key.text, ref: { ...ref('evt_0', 0, 2), fingerprint: first.fingerprint } }])
  const conflicting = valid(6, event({ properties: '{"amount":99}' }))
  const copy = valid(7, event({ eventId: 'evt_0' }))
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([conflicting, copy], [])
  t.match(r.outcomes, [{ kind: 'dead_letter', letter: { reason: 'tuple_conflict' } }, { kind: 'skip', why: 'repeat' }])
  t.same(r.reassert, [])
  const before = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(8, event({ eventId: 'evt_0' })), valid(9, event({ properties: '{"amount":1}' }))], [])
  t.same(before.reassert.map((x) => x.after), ['9'], 'a copy before the bad record does not count')
})

void t.test('conflicts come first in the re-assertions, then bad records under stored keys', async (t) => {
  const s = store()
  const other = event({ externalEventId: 'txn_2' })
  await s.dedup.checkMany([{ key: key.text, ref: ref('evt_0', 0, 1) }, { key: keyOf(other).text, ref: ref('evt_a', 0, 2, 'other') }])
  const r = await dedupStep({ dedup: s.dedup, mode: 'live' })([valid(8, other)], [badUnderKey(6)])
  t.same(r.reassert.map((x) => [x.key.text, x.original.eventId]), [[keyOf(other).text, 'evt_a'], [key.text, 'evt_0']])
})

void t.test('a store outage throws: no verdict on any record', async (t) => {
  const s = createMemoryStateStores()
  await s.close()
  await t.rejects(dedupStep({ dedup: s.dedup, mode: 'live' })([valid(5, e)], []), { code: 'state_store_unavailable' })
})
