/**
 * The analyst runner's process-wide cap (query.maxConcurrentTotal) on chDB: while the one place
 * is taken by tenant acme, tenant beta's query waits, a query beyond the queue is 429 at once, a
 * waiter whose client leaves frees its place, a waiter past query.maxQueueWaitMs is 429 with
 * Retry-After, and the waiter runs once the place is free. Also: the runner holds the key kinds'
 * rule itself (a principal of a tenant never reads across tenants, whatever it lists).
 */
import t from 'tap'
import { isCdpError } from '../../src/errors.js'
import { waitFor } from '../helpers/process.js'
import type { AnalystPrincipal } from '../../src/clickhouse/analyst.js'
import { ACME, analystFixture, type AnalystFixture } from './fixtures/analyst.js'

const BETA: AnalystPrincipal = { tenant: 'beta', permissions: ['query:read'] }
const GAMMA: AnalystPrincipal = { tenant: 'gamma', permissions: ['query:read'] }

const outcome = (p: Promise<string>): Promise<string | { code: string; message: string; retryAfter: number | undefined }> =>
  p.then((text) => text, (err: unknown) => {
    if (!isCdpError(err)) throw err
    return { code: err.code, message: err.message, retryAfter: err.retryAfter }
  })

async function pending<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), 300))])
}

async function running(f: AnalystFixture, marker: string): Promise<number> {
  const rs = await f.client.query({
    query: 'SELECT count() AS c FROM system.processes WHERE position(query, {m:String}) > 0 AND position(query, \'system.processes\') = 0',
    format: 'JSONEachRow', query_params: { m: marker },
  })
  return Number((await rs.json<{ c: number | string }>())[0]?.c)
}

void t.test('chdb: one place for all tenants; the rest wait in a bounded queue', async (t) => {
  const f = await analystFixture(t, 'chdb', { maxConcurrentTotal: 1, maxQueued: 1, maxQueueWaitMs: 120_000, maxRowsToRead: 1_000_000_000_000, maxExecutionTime: 600 })
  const slow = 'SELECT count() FROM numbers(999999999998)'
  const acAcme = new AbortController()
  const first = outcome(f.run({ sql: slow, format: 'JSONEachRow', principal: ACME, signal: acAcme.signal }))
  await waitFor('the slow query to run', async () => ((await running(f, '999999999998')) > 0 ? true : undefined), 20_000, 50)

  const acBeta = new AbortController()
  const waiting = outcome(f.run({ sql: 'SELECT 1 AS one', format: 'JSONEachRow', principal: BETA, signal: acBeta.signal }))
  t.equal(await pending(waiting), 'pending', 'another tenant\'s query waits while the place is taken')
  const full = await outcome(f.run({ sql: 'SELECT 1 AS one', format: 'JSONEachRow', principal: GAMMA }))
  t.match(full, { code: 'rate_limited', message: /run at a time in this service and 1 are waiting/ }, 'beyond the queue: 429 at once')
  t.ok(typeof full === 'object' && (full.retryAfter ?? 0) >= 1, 'with Retry-After')

  acBeta.abort()
  t.match(await waiting, { code: 'bad_request', message: /client went away/ }, 'a waiter whose client left ends')
  const next = outcome(f.run({ sql: 'SELECT 2 AS two', format: 'JSONEachRow', principal: GAMMA }))
  t.equal(await pending(next), 'pending', 'its place in the queue went to the next query')

  acAcme.abort()
  t.match(await first, { code: 'bad_request' }, 'the slow query was cancelled')
  t.equal(await next, '{"two":2}\n', 'the waiting query ran once the place was free')
})

void t.test('chdb: a waiter past maxQueueWaitMs is 429 with Retry-After', async (t) => {
  const f = await analystFixture(t, 'chdb', { maxConcurrentTotal: 1, maxQueued: 4, maxQueueWaitMs: 200, maxRowsToRead: 1_000_000_000_000, maxExecutionTime: 600 })
  const ac = new AbortController()
  const first = outcome(f.run({ sql: 'SELECT count() FROM numbers(999999999997)', format: 'JSONEachRow', principal: ACME, signal: ac.signal }))
  await waitFor('the slow query to run', async () => ((await running(f, '999999999997')) > 0 ? true : undefined), 20_000, 50)
  const late = await outcome(f.run({ sql: 'SELECT 1', format: 'JSONEachRow', principal: BETA }))
  t.match(late, { code: 'rate_limited', message: /no place for the query within 200 ms/, retryAfter: 1 })
  ac.abort()
  await first
})

void t.test('chdb: the runner holds the kinds of key too', async (t) => {
  const f = await analystFixture(t, 'chdb')
  const asTenantWithAll = await outcome(f.run({ sql: 'SELECT 1', format: 'JSONEachRow', principal: { tenant: 'acme', permissions: ['query:read', 'query:all'] } }))
  t.match(asTenantWithAll, { code: 'forbidden' }, 'a principal of a tenant holding query:all is refused, never widened')
  const operatorWithoutAll = await outcome(f.run({ sql: 'SELECT 1', format: 'JSONEachRow', principal: { tenant: null, permissions: ['query:read', 'pii:read'] } }))
  t.match(operatorWithoutAll, { code: 'forbidden' }, 'an operator principal needs query:all')
  const all = await outcome(f.run({ sql: `SELECT DISTINCT toString(tenant) AS t FROM ${f.database}.events ORDER BY t`, format: 'JSONEachRow', principal: { tenant: null, permissions: ['query:all'] } }))
  t.equal(all, '{"t":"acme"}\n{"t":"beta"}\n', 'an operator principal with query:all reads both tenants')
})
