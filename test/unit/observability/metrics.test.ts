/**
 * The Metrics registry's labels (bounded; tenant only when enabled) and the consumer's stall
 * check over fake offsets and a fake clock.
 */
import t from 'tap'
import { Metrics } from '../../../src/observability/metrics.js'
import { ConsumerHealth, type GroupOffsets } from '../../../src/app/consumer-health.js'

const sample = async (m: Metrics, name: string) => (await m.registry.getSingleMetric(name)!.get()).values

void t.test('per-event counters carry a tenant label only when metrics.tenantLabel is on', async (t) => {
  const off = new Metrics({ metrics: { tenantLabel: false } })
  off.event('acme', 'accepted')
  off.event('acme', 'invalid', 'required')
  off.consumed(3, ['repeat'], [{ reason: 'contract_violation', tenant: 'acme' }])
  t.same((await sample(off, 'cdp_events_total')).map((v) => v.labels), [{ outcome: 'accepted', code: '' }, { outcome: 'invalid', code: 'required' }])
  t.same((await sample(off, 'cdp_consumer_dead_letters_total'))[0]?.labels, { reason: 'contract_violation' })

  const on = new Metrics({ metrics: { tenantLabel: true } })
  on.event('acme', 'accepted')
  on.consumed(1, [], [{ reason: 'bad_key', tenant: null }])
  t.same((await sample(on, 'cdp_events_total'))[0]?.labels, { outcome: 'accepted', code: '', tenant: 'acme' })
  t.same((await sample(on, 'cdp_consumer_dead_letters_total'))[0]?.labels, { reason: 'bad_key', tenant: 'unknown' })
})

void t.test('two Metrics objects never share a counter (no module singleton)', async (t) => {
  const a = new Metrics({ metrics: { tenantLabel: false } })
  const b = new Metrics({ metrics: { tenantLabel: false } })
  a.request('/v1/cdp/events', 'POST', 202, 0.01)
  t.equal((await sample(a, 'cdp_http_requests_total'))[0]?.value, 1)
  t.same(await sample(b, 'cdp_http_requests_total'), [])
  t.match((await a.text()).body, /cdp_http_requests_total\{route="\/v1\/cdp\/events",method="POST",status="202"\} 1/)
  t.match((await a.text()).body, /process_cpu_user_seconds_total/, 'default process metrics')
})

void t.test('429 answers count as rate-limited; end-to-end latency from received_at', async (t) => {
  let now = 10_000
  const m = new Metrics({ metrics: { tenantLabel: false } }, () => now)
  m.request('/v1/cdp/events', 'POST', 429, 0.001)
  t.equal((await sample(m, 'cdp_http_rate_limited_total'))[0]?.value, 1)
  m.eventsStored([{ tenant: 'acme', receivedAtMs: 7_500 }])
  const e2e = await sample(m, 'cdp_consumer_end_to_end_seconds')
  t.equal(e2e.find((v) => (v as { metricName?: string }).metricName === 'cdp_consumer_end_to_end_seconds_sum')?.value, 2.5)
  t.equal((await sample(m, 'cdp_consumer_events_written_total'))[0]?.value, 1)
  m.consumerStarted()
  now += 4000
  t.equal((await sample(m, 'cdp_consumer_last_commit_age_seconds'))[0]?.value, 4)
  m.committed()
  t.equal((await sample(m, 'cdp_consumer_last_commit_age_seconds'))[0]?.value, 0)
})

void t.test('stalled: an assigned partition with lag whose committed offset does not move for stallAfterMs', async (t) => {
  let now = 0
  let offsets: GroupOffsets = { end: new Map([[0, 10n], [1, 5n]]), start: new Map([[0, 0n], [1, 0n]]), committed: new Map([[0, 4n], [1, 5n]]) }
  let assignment = new Set([0, 1])
  const lags: Map<number, bigint>[] = []
  const stalled: boolean[] = []
  const h = new ConsumerHealth({
    offsets: async () => offsets, assignment: () => assignment,
    setLag: (l) => lags.push(new Map(l)), setStalled: (s) => stalled.push(s),
    stallAfterMs: 1000, intervalMs: 100, now: () => now,
  })
  await h.refresh()
  t.same([...lags.at(-1)!], [[0, 6n], [1, 0n]], 'lag = end - committed')
  t.same(h.stalledPartitions(), [])
  now = 1500
  await h.refresh()
  t.same(h.stalledPartitions(), [0], 'partition 0 has lag and has not moved')
  t.equal(stalled.at(-1), true)
  h.committed(0, '6')
  t.same(h.stalledPartitions(), [], 'a commit of this member is progress')
  now = 3000
  offsets = { ...offsets, committed: new Map([[0, 10n], [1, 5n]]) }
  await h.refresh()
  t.same(h.stalledPartitions(), [], 'no lag, no stall')
  t.equal(stalled.at(-1), false)
  // lag again on a partition another member owns: not this member's stall
  offsets = { ...offsets, end: new Map([[0, 10n], [1, 9n]]) }
  assignment = new Set([0])
  now = 9000
  await h.refresh()
  t.same(h.stalledPartitions(), [])
  // a partition never committed: lag from the first offset on the topic
  offsets = { end: new Map([[2, 3n]]), start: new Map([[2, 1n]]), committed: new Map() }
  assignment = new Set([2])
  await h.refresh()
  t.same([...lags.at(-1)!], [[2, 2n]])
  now = 9500
  t.same(h.stalledPartitions(), [], 'counted from the assignment, not from process start')
  now = 10_500
  t.same(h.stalledPartitions(), [2])
})

void t.test('a failed offsets read keeps the last lag and reports the error', async (t) => {
  const errors: unknown[] = []
  let fail = false
  const h = new ConsumerHealth({
    offsets: async () => { if (fail) throw new Error('broker down'); return { end: new Map([[0, 3n]]), start: new Map(), committed: new Map([[0, 1n]]) } },
    assignment: () => new Set([0]), setLag: () => undefined, setStalled: () => undefined,
    stallAfterMs: 1000, intervalMs: 100, onError: (e) => errors.push(e),
  })
  await h.refresh()
  fail = true
  await h.refresh()
  t.equal(errors.length, 1)
  t.same([...h.currentLag()], [[0, 2n]])
})
