import t from 'tap'
import type { DedupTuple } from '../../../src/avro/key.js'
import { existingStep } from '../../../src/pipeline/existing-step.js'
import { event, keyOf, unique } from '../../helpers/pipeline-fakes.js'

function existing(held: DedupTuple[]) {
  const calls: DedupTuple[][] = []
  return {
    asked: calls,
    existingFacts: async (tuples: DedupTuple[]) => {
      calls.push(tuples)
      // like ClickHouse: only the asked tuples it holds
      const asked = new Set(tuples.map((x) => keyOf(x).text))
      return new Set(held.map((h) => keyOf(h).text).filter((k) => asked.has(k)))
    },
  }
}

const a = event({ externalEventId: 'a', eventId: 'evt_a' })
const b = event({ externalEventId: 'b', eventId: 'evt_b' })
const c = event({ externalEventId: 'c', eventId: 'evt_c' })

void t.test('new facts only: ClickHouse is not asked', async (t) => {
  const f = existing([a])
  const out = await existingStep(f)([unique(1, a, false), unique(2, b, false)])
  t.same(f.asked, [])
  t.same(out.map((o) => o.kind), ['ok', 'ok'])
})

void t.test('only maybe-written facts are looked up; the ones ClickHouse holds are skipped', async (t) => {
  const f = existing([a, c])
  const out = await existingStep(f)([unique(1, a, true), unique(2, b, true), unique(3, c, false)])
  t.same(f.asked, [[keyOf(a).tuple, keyOf(b).tuple]])
  t.match(out, [{ kind: 'skip', why: 'already_written', record: { offset: '1' } }, { kind: 'ok', value: { event: { eventId: 'evt_b' } } }, { kind: 'ok' }])
})

void t.test('a fact twice in a replay batch is written once, at its lowest offset', async (t) => {
  const f = existing([])
  const out = await existingStep(f)([unique(1, a, true), unique(2, b, true), unique(3, a, true)])
  t.match(out, [{ kind: 'ok', value: { record: { offset: '1' } } }, { kind: 'ok' }, { kind: 'skip', why: 'again_in_batch', record: { offset: '3' } }])
})

void t.test('ClickHouse down: the step throws', async (t) => {
  const down = { existingFacts: async () => { throw Object.assign(new Error('down'), { code: 'clickhouse_unavailable' }) } }
  await t.rejects(existingStep(down)([unique(1, a, true)]), { code: 'clickhouse_unavailable' })
})
