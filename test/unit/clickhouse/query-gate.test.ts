/**
 * QueryGate, the process-wide cap on analyst queries: beyond maxActive a query waits in a queue
 * bounded by length (full: refused at once) and by time; a waiter that gives up frees its place;
 * close() refuses every waiter. Outcomes are values.
 */
import t from 'tap'
import { QueryGate, type GateOutcome } from '../../../src/clickhouse/query-gate.js'

/** whether `p` has settled by the time queued callbacks and timers of 0 ms ran */
async function settled(p: Promise<GateOutcome>): Promise<GateOutcome | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 20))])
}

void t.test('a third query waits while the cap of two is taken, and runs when one ends', async (t) => {
  const gate = new QueryGate({ maxActive: 2, maxQueued: 4, maxWaitMs: 60_000 })
  const a = await gate.acquire()
  const b = await gate.acquire()
  t.ok(a.ok && b.ok, 'two places')
  const third = gate.acquire()
  t.equal(await settled(third), 'pending', 'the third waits')
  t.equal(gate.queued, 1)
  if (a.ok) a.release()
  const got = await third
  t.ok(got.ok, 'the third got the freed place')
  t.equal(gate.active, 2)
  if (a.ok) a.release()
  t.equal(gate.active, 2, 'releasing twice frees one place only')
})

void t.test('a full queue refuses at once; a 0-length queue refuses whenever the cap is taken', async (t) => {
  const gate = new QueryGate({ maxActive: 1, maxQueued: 1, maxWaitMs: 60_000 })
  const a = await gate.acquire()
  const waiting = gate.acquire()
  t.same(await gate.acquire(), { ok: false, reason: 'queue_full' }, 'the second waiter is refused at once')
  if (a.ok) a.release()
  t.ok((await waiting).ok)

  const none = new QueryGate({ maxActive: 1, maxQueued: 0, maxWaitMs: 60_000 })
  const held = await none.acquire()
  t.ok(held.ok)
  t.same(await none.acquire(), { ok: false, reason: 'queue_full' })
})

void t.test('a waiter past maxWaitMs gives up with wait_timeout and its place goes to the next', async (t) => {
  const gate = new QueryGate({ maxActive: 1, maxQueued: 1, maxWaitMs: 30 })
  const a = await gate.acquire()
  t.same(await gate.acquire(), { ok: false, reason: 'wait_timeout' })
  t.equal(gate.queued, 0, 'left the queue')
  const next = gate.acquire()
  t.equal(await settled(next), 'pending', 'the freed queue place takes the next waiter')
  if (a.ok) a.release()
  t.ok((await next).ok)
})

void t.test('a cancelled waiter frees its place in the queue at once', async (t) => {
  const gate = new QueryGate({ maxActive: 1, maxQueued: 1, maxWaitMs: 60_000 })
  const a = await gate.acquire()
  const ac = new AbortController()
  const cancelled = gate.acquire(ac.signal)
  t.same(await gate.acquire(), { ok: false, reason: 'queue_full' }, 'the queue is full while it waits')
  ac.abort()
  t.same(await cancelled, { ok: false, reason: 'aborted' })
  const next = gate.acquire()
  t.equal(await settled(next), 'pending', 'its place in the queue is free for another')
  if (a.ok) a.release()
  const got = await next
  t.ok(got.ok, 'and the running place goes to that one, not to the cancelled waiter')
  t.equal(gate.active, 1)
  t.same(await gate.acquire(AbortSignal.abort()), { ok: false, reason: 'aborted' }, 'an already aborted signal does not queue')
})

void t.test('close() refuses every waiter and every later acquire', async (t) => {
  const gate = new QueryGate({ maxActive: 1, maxQueued: 4, maxWaitMs: 60_000 })
  const a = await gate.acquire()
  const w1 = gate.acquire()
  const w2 = gate.acquire()
  gate.close()
  t.same(await Promise.all([w1, w2]), [{ ok: false, reason: 'closed' }, { ok: false, reason: 'closed' }])
  t.same(await gate.acquire(), { ok: false, reason: 'closed' })
  if (a.ok) a.release()
  t.equal(gate.active, 0)
})
