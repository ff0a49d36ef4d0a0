import t from 'tap'
import { GroupedBatches, type GroupTarget } from '../../../src/pipeline/grouped.js'
import type { InboundRecord } from '../../../src/kafka/consumer.js'
import { record } from '../../helpers/pipeline-fakes.js'

/** a processor that records what it was handed; `fail(records)` decides a throw per call */
function target(fail: (records: InboundRecord[]) => boolean = () => false): GroupTarget & { calls: string[][]; release: () => void; hold: boolean } {
  const gates: (() => void)[] = []
  const t: GroupTarget & { calls: string[][]; release: () => void; hold: boolean } = {
    calls: [],
    hold: false,
    release: () => { for (const g of gates.splice(0)) g() },
    async process(records) {
      t.calls.push(records.map((r) => `${r.partition}@${r.offset}`))
      if (t.hold) await new Promise<void>((r) => { gates.push(r) })
      if (fail(records)) throw Object.assign(new Error('clickhouse away'), { retriable: true })
      return records.length
    },
  }
  return t
}

const batch = (partition: number, ...offsets: number[]) => offsets.map((o) => record(o, null, null, partition))
const tick = () => new Promise((r) => setImmediate(r))

void t.test('partition batches that arrive in the same turn are processed as one, each answered with its own count', async (t) => {
  const p = target()
  const g = new GroupedBatches(p, 100)
  const answers = await Promise.all([g.process(batch(0, 1, 2)), g.process(batch(1, 7)), g.process(batch(2, 4, 5, 6))])
  t.same(answers, [2, 1, 3])
  t.same(p.calls, [['0@1', '0@2', '1@7', '2@4', '2@5', '2@6']])
})

void t.test('batches arriving while a group is written form the next group', async (t) => {
  const p = target()
  p.hold = true
  const g = new GroupedBatches(p, 100)
  const first = g.process(batch(0, 1))
  await tick()
  t.equal(p.calls.length, 1, 'the first group started alone')
  const later = [g.process(batch(1, 3)), g.process(batch(2, 9))]
  await tick()
  t.equal(p.calls.length, 1, 'nothing else starts while a group is in flight')
  p.hold = false
  p.release()
  t.same(await Promise.all([first, ...later]), [1, 1, 1])
  t.same(p.calls, [['0@1'], ['1@3', '2@9']])
})

void t.test('a failed group rejects every member; each retries alone until it succeeds, then groups again', async (t) => {
  // partition 1's batch fails once (ClickHouse away), then works
  let failures = 1
  const p = target((records) => records.some((r) => r.partition === 1) && failures-- > 0)
  const g = new GroupedBatches(p, 100)
  const results = await Promise.allSettled([g.process(batch(0, 1)), g.process(batch(1, 2))])
  t.same(results.map((r) => r.status), ['rejected', 'rejected'], 'nothing of a failed group is answered as written')
  // the runner offers both again
  t.same(await Promise.all([g.process(batch(0, 1)), g.process(batch(1, 2))]), [1, 1])
  t.same(p.calls, [['0@1', '1@2'], ['0@1'], ['1@2']], 'after the failure each partition went alone')
  t.same(await Promise.all([g.process(batch(0, 3)), g.process(batch(1, 4))]), [1, 1])
  t.same(p.calls.at(-1), ['0@3', '1@4'], 'grouped again once both succeeded')
})

void t.test('a partition that keeps failing blocks only itself', async (t) => {
  const p = target((records) => records.some((r) => r.partition === 1))
  const g = new GroupedBatches(p, 100)
  await Promise.allSettled([g.process(batch(0, 1)), g.process(batch(1, 2))])
  for (let i = 0; i < 3; i++) {
    const [ok, bad] = await Promise.allSettled([g.process(batch(0, 10 + i)), g.process(batch(1, 2))])
    t.equal(ok.status, 'fulfilled', `neighbour written (attempt ${i + 1})`)
    t.equal(bad.status, 'rejected')
  }
  t.ok(p.calls.slice(1).every((c) => c.every((x) => x.startsWith('0@')) || c.every((x) => x.startsWith('1@'))), 'never grouped with the failing partition again')
})

void t.test('a processor that handles fewer records than it was given is an error, not a commit', async (t) => {
  const g = new GroupedBatches({ process: async (records) => records.length - 1 }, 100)
  await t.rejects(Promise.all([g.process(batch(0, 1)), g.process(batch(1, 2))]), /handled 1 of 2 records/)
})

void t.test('an empty batch is answered at once', async (t) => {
  const p = target()
  t.equal(await new GroupedBatches(p, 100).process([]), 0)
  t.same(p.calls, [])
})

void t.test('a batch larger than the group size goes alone and at once, next to a group in flight', async (t) => {
  const p = target()
  p.hold = true
  const g = new GroupedBatches(p, 3)
  const small = g.process(batch(0, 1))
  await tick()
  const big = g.process(batch(1, 1, 2, 3, 4))
  await tick()
  t.same(p.calls, [['0@1'], ['1@1', '1@2', '1@3', '1@4']], 'the large batch did not wait for the group')
  p.hold = false
  p.release()
  t.same(await Promise.all([small, big]), [1, 4])
})

void t.test('a group holds at most maxRows records; the rest form the next group', async (t) => {
  const p = target()
  const g = new GroupedBatches(p, 3)
  t.same(await Promise.all([g.process(batch(0, 1, 2)), g.process(batch(1, 5)), g.process(batch(2, 7, 8))]), [2, 1, 2])
  t.same(p.calls, [['0@1', '0@2', '1@5'], ['2@7', '2@8']])
})

void t.test('maxRows 0: every batch on its own', async (t) => {
  const p = target()
  const g = new GroupedBatches(p, 0)
  await Promise.all([g.process(batch(0, 1)), g.process(batch(1, 2))])
  t.same(p.calls, [['0@1'], ['1@2']])
})
