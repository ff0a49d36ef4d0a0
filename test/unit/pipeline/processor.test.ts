/**
 * The runner folds the steps over one batch: outcomes counted once, side effects in order. Every
 * dependency is a fake except the dedup store (the in-memory one, with the real rules).
 */
import t from 'tap'
import { BatchProcessor } from '../../../src/pipeline/processor.js'
import type { ProcessorDeps } from '../../../src/pipeline/deps.js'
import { createMemoryStateStores, emptyMemoryState, type MemoryStateData } from '../../../src/state/memory.js'
import { createLogger } from '../../../src/observability/logger.js'
import { partitionFor } from '../../../src/avro/partition.js'
import { config, event, fakeCodec, fakeIdentity, fakeWriter, keyOf, record, recordOf, wire, type Call } from '../../helpers/pipeline-fakes.js'

function processor(calls: Call[], mode: ProcessorDeps['mode'], data: MemoryStateData, inClickHouse = new Set<string>(), partitions = 1): BatchProcessor {
  return new BatchProcessor({
    config, codec: fakeCodec, partitions, mode, log: createLogger({ logLevel: 'silent' }),
    checkContract: (_tenant, _type, properties) => (properties as { amount?: unknown }).amount === 'bad'
      ? { ok: false, details: [{ pointer: '/properties/amount', code: 'type', message: 'must be number' }] }
      : { ok: true, version: 1 },
    segmentable: [],
    dedup: createMemoryStateStores(data).dedup,
    identity: fakeIdentity(calls),
    writer: fakeWriter(calls),
    existingFacts: async (tuples) => {
      calls.push({ call: 'existing', args: tuples })
      return new Set(tuples.map((x) => keyOf(x).text).filter((k) => inClickHouse.has(k)))
    },
    publishDeadLetters: async (letters) => { calls.push({ call: 'publish', args: letters.map((l) => `${l.record.offset}:${l.reason}`) }) },
    reassert: async (originals, keys) => { calls.push({ call: 'reassert', args: originals.map((o, i) => `${keys[i]}<-${o.offset}`) }) },
  })
}

const a = event({ externalEventId: 'a', eventId: 'evt_a' })
const b = event({ externalEventId: 'b', eventId: 'evt_b' })
const aOther = { ...a, eventId: 'evt_a2', properties: '{"amount":99}' }
const bAgain = { ...b, eventId: 'evt_b2' }
const cBad = event({ externalEventId: 'c', eventId: 'evt_c', properties: '{"amount":"bad"}' })

/** offsets 0..6: a, b, a with another payload, b again, bad bytes, bad a-key value, bad contract */
const batch = [
  recordOf(0, a), recordOf(1, b), recordOf(2, aOther), recordOf(3, bAgain),
  record(4, Buffer.from('junk'), null), record(5, keyOf(a).bytes, Buffer.from('no')), recordOf(6, cBad),
]

void t.test('live: one fact per tuple written, repeats skipped, dead letters in order, the first fact re-asserted once', async (t) => {
  const calls: Call[] = []
  const p = processor(calls, 'live', emptyMemoryState())
  t.equal(await p.process(batch), 7)
  t.same(calls.map((c) => c.call), ['resolve', 'events', 'forget', 'dead_letters', 'publish', 'reassert'], 'new facts: ClickHouse not asked')
  t.same(calls[0]!.args, ['evt_a', 'evt_b'])
  t.same(calls[3]!.rows!.map((r) => (r as { reason_code: string }).reason_code), ['bad_key', 'not_avro', 'contract_violation', 'tuple_conflict'])
  t.same(calls[4]!.args, ['4:bad_key', '5:not_avro', '6:contract_violation', '2:tuple_conflict'])
  t.same(calls[5]!.args, [`${keyOf(a).text}<-0`])
  t.same(p.totals, { written: 2, repeats: 1, deadLetters: 4, conflicts: 1 })
  t.same(Object.keys(p.timings), ['decode', 'dedup', 'existing', 'identity', 'insert', 'deadLetters'])
})

void t.test('the same batch again (a crash before the commit): ClickHouse is asked and nothing is written twice', async (t) => {
  const data = emptyMemoryState()
  await processor([], 'live', data).process(batch)
  const calls: Call[] = []
  const p = processor(calls, 'live', data, new Set([keyOf(a).text, keyOf(b).text]))
  await p.process(batch)
  // the first pass re-asserted a after the conflict and the store remembers it: the topic already
  // ends with the fact, so no second copy (a fresh consumer group over the same store is the same)
  t.same(calls.map((c) => c.call), ['existing', 'dead_letters', 'publish'])
  t.same(calls[0]!.args, [keyOf(a).tuple, keyOf(b).tuple])
  t.equal(p.totals.written, 0)
})

void t.test('replay of what compaction kept: the later copy stands for the fact under its first id; no topic written', async (t) => {
  const data = emptyMemoryState()
  await processor([], 'live', data).process(batch)
  const calls: Call[] = []
  const p = processor(calls, 'replay', data, new Set([keyOf(a).text]))
  // compaction kept a at 0 and only the later copy of b
  await p.process([recordOf(0, a), recordOf(3, bAgain), record(7, keyOf(b).bytes, wire(bAgain))])
  t.same(calls.map((c) => c.call), ['existing', 'resolve', 'events', 'forget'])
  t.same(calls[1]!.args, ['evt_b'], 'b once, under its original id')
  t.match(calls[2]!.rows, [{ event_id: 'evt_b', kafka_offset: '3' }])
  t.equal(calls[2]!.token, 'cdp:replay:events:cdp.unit:0:0-7')
  t.same(p.totals, { written: 1, repeats: 0, deadLetters: 0, conflicts: 0 })
})

void t.test('tombstones: skipped, never dead letters; a stray one under a live fact re-asserts it, an erased fact stays erased', async (t) => {
  const data = emptyMemoryState()
  const calls: Call[] = []
  const p = processor(calls, 'live', data)
  await p.process([recordOf(0, a), recordOf(1, b)])
  await createMemoryStateStores(data).dedup.markErased([keyOf(b).text])
  calls.length = 0
  const out = await p.processBatch([record(2, keyOf(a).bytes, null), record(3, keyOf(b).bytes, null), recordOf(4, bAgain)])
  t.same(out, { written: 0, repeats: 0, deadLetters: 0, conflicts: 0 }, 'nothing written, nothing dead-lettered')
  t.same(calls.map((c) => c.call), ['reassert'], 'only the live fact is produced again')
  t.same(calls[0]!.args, [`${keyOf(a).text}<-0`])
})

void t.test('a group of several partitions\' batches: one insert per table for all of them, dead letters in partition and offset order', async (t) => {
  // facts spread over 4 partitions by their key, as the producer spreads them
  const facts = ['p', 'q', 'r', 's', 'u', 'v', 'w', 'z'].map((x) => event({ externalEventId: x, eventId: `evt_${x}` }))
  const byPartition = new Map<number, typeof facts>()
  for (const f of facts) {
    const n = partitionFor(keyOf(f).bytes, 4)
    byPartition.set(n, [...(byPartition.get(n) ?? []), f])
  }
  t.ok(byPartition.size >= 2, 'the facts fall on at least two partitions')
  const group = [...byPartition].flatMap(([n, fs]) => [...fs.map((f, i) => recordOf(100 * n + i, f, n)), record(100 * n + fs.length, Buffer.from('junk'), null, n)])
  const calls: Call[] = []
  const p = processor(calls, 'live', emptyMemoryState(), new Set(), 4)
  t.equal(await p.process(group), group.length)
  const events = calls.filter((c) => c.call === 'events')
  t.equal(events.length, 1, 'one events insert for the group')
  t.equal(events[0]!.rows!.length, facts.length)
  const parts = [...byPartition.keys()]
  t.equal(events[0]!.token!.split('+').length, parts.length, 'the token names every partition range')
  const letters = calls.find((c) => c.call === 'publish')!.args as string[]
  t.same(letters, [...parts].sort((x, y) => x - y).map((n) => `${100 * n + byPartition.get(n)!.length}:bad_key`))
})
