import t from 'tap'
import { deadLetterStep } from '../../../src/pipeline/dead-letter-step.js'
import type { Reassertion } from '../../../src/pipeline/dedup-step.js'
import type { ProcessorDeps } from '../../../src/pipeline/deps.js'
import type { DeadLetter } from '../../../src/pipeline/outcome.js'
import { batchToken } from '../../../src/pipeline/write-step.js'
import { createLogger } from '../../../src/observability/logger.js'
import { createMemoryStateStores, emptyMemoryState, type MemoryStateData } from '../../../src/state/memory.js'
import { event, fakeWriter, keyOf, record, ref, type Call } from '../../helpers/pipeline-fakes.js'

const ka = keyOf(event({ externalEventId: 'a' }))
const kb = keyOf(event({ externalEventId: 'b' }))
const records = [record(20, Buffer.from('junk'), Buffer.from([1, 2, 3]), 1), record(21, ka.bytes, null, 1), record(22, kb.bytes, null, 1)]
const letters: DeadLetter[] = [
  { record: records[0]!, tenant: null, reason: 'bad_key', message: 'not a key' },
  { record: records[1]!, key: ka, tenant: 'acme', reason: 'not_avro', message: 'not wire format' },
  { record: records[2]!, key: kb, tenant: 'acme', reason: 'tuple_conflict', message: 'conflict' },
]
const reassert: Reassertion[] = [
  { key: kb, original: ref('evt_b', 1, 3), after: '22' }, { key: ka, original: ref('evt_a', 1, 4), after: '21' }, { key: kb, original: ref('evt_b', 1, 3), after: '19' },
]

type Deps = Pick<ProcessorDeps, 'writer' | 'publishDeadLetters' | 'reassert' | 'mode' | 'dedup' | 'log'>

function deps(calls: Call[], mode: ProcessorDeps['mode'], data: MemoryStateData = emptyMemoryState()): Deps {
  return {
    mode, writer: fakeWriter(calls), dedup: createMemoryStateStores(data).dedup, log: createLogger({ logLevel: 'silent' }),
    publishDeadLetters: async (l) => { calls.push({ call: 'publish', args: l }) },
    reassert: async (originals, keys) => { calls.push({ call: 'reassert', args: [originals, keys] }) },
  }
}

void t.test('live: rows into dead_letters, then the DLQ topic, then each key re-asserted once', async (t) => {
  const calls: Call[] = []
  await deadLetterStep(deps(calls, 'live'))(letters, reassert, batchToken('live', records))
  t.same(calls.map((c) => c.call), ['dead_letters', 'publish', 'reassert'])
  t.equal(calls[0]!.token, 'cdp:live:dead_letters:cdp.unit:1:20-22')
  t.match(calls[0]!.rows, [
    { tenant: null, reason_code: 'bad_key', reason: 'not a key', topic: 'cdp.unit', kafka_partition: 1, kafka_offset: '20', key: 'junk', value_base64: 'AQID' },
    { tenant: 'acme', reason_code: 'not_avro', key: '["acme","brand.pos","a"]', value_base64: '' },
    { tenant: 'acme', reason_code: 'tuple_conflict', kafka_offset: '22' },
  ])
  t.equal(calls[1]!.args, letters)
  t.same(calls[2]!.args, [[ref('evt_b', 1, 3), ref('evt_a', 1, 4)], [kb.text, ka.text]])
})

void t.test('live: the store remembers, per key, the last bad record each re-assertion follows', async (t) => {
  const data = emptyMemoryState()
  await deadLetterStep(deps([], 'live', data))(letters, reassert, batchToken('live', records))
  t.same([...data.reasserted], [[kb.text, '22'], [ka.text, '21']])
})

void t.test('a failed re-assertion is not remembered: the batch is retried and re-asserts again', async (t) => {
  const data = emptyMemoryState()
  const d = { ...deps([], 'live', data), reassert: async () => { throw new Error('broker away') } }
  await t.rejects(deadLetterStep(d)(letters, reassert, batchToken('live', records)), /broker away/)
  t.same([...data.reasserted], [])
})

void t.test('replay: rows into dead_letters only (the DLQ got them live; a replay writes no topic)', async (t) => {
  const calls: Call[] = []
  const data = emptyMemoryState()
  await deadLetterStep(deps(calls, 'replay', data))(letters, reassert, batchToken('replay', records))
  t.same(calls.map((c) => c.call), ['dead_letters'])
  t.equal(calls[0]!.token, 'cdp:replay:dead_letters:cdp.unit:1:20-22')
  t.same([...data.reasserted], [], 'nothing re-asserted, nothing remembered')
})

void t.test('no dead letters: nothing at all', async (t) => {
  const calls: Call[] = []
  await deadLetterStep(deps(calls, 'live'))([], [], batchToken('live', records))
  t.same(calls, [])
})

void t.test('the re-asserted key is the key\'s canonical text, whose UTF-8 bytes are the Kafka key', async (t) => {
  const calls: Call[] = []
  await deadLetterStep(deps(calls, 'live'))(letters.slice(1, 2), [{ key: ka, original: ref('evt_a', 1, 4), after: '21' }], batchToken('live', records))
  const keys = (calls.find((c) => c.call === 'reassert')!.args as [unknown, string[]])[1]
  t.ok(Buffer.from(keys[0]!, 'utf8').equals(records[1]!.key!))
})
