/**
 * A running consumer pipeline (real Kafka, registry, state store and chDB) for a test's config,
 * with a query helper that polls ClickHouse until a condition holds.
 */
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { Resources } from '../../src/app/resources.js'
import { buildShared } from '../../src/app/shared.js'
import { buildConsumer } from '../../src/app/consumer.js'
import type { TestContext } from './config.js'
import type { QueryFormat, QueryRunner } from '../../src/http/routes/query.js'
import { waitFor } from './process.js'

export interface TestPipeline {
  /** JSONEachRow rows of a read-only query */
  rows<T = Record<string, unknown>>(sql: string): Promise<T[]>
  /** the query runner `cdp query` uses: text in the given format */
  /** as an operator key (query:all, pii:read) */
  rowsText: (sql: string, format: QueryFormat) => Promise<string>
  /** polls until `check(rows)` is true; returns the rows */
  until<T = Record<string, unknown>>(sql: string, check: (rows: T[]) => boolean, timeoutMs?: number): Promise<T[]>
  stop(): Promise<void>
  /** the analyst runner the service hands to POST /v1/cdp/query */
  query: QueryRunner
}

export async function startPipeline(t: TestContext, config: Readonly<Config>): Promise<TestPipeline> {
  const log = createLogger({ logLevel: 'silent' })
  const res = new Resources()
  let stopped = false
  const stop = async () => { if (!stopped) { stopped = true; await res.close() } }
  t.teardown(stop)
  const consumer = await buildConsumer(await buildShared(config, log, res), 'live')
  await consumer.start()
  const { query } = consumer
  // the tests read as an operator: every tenant, PII raw
  const principal = { tenant: null, permissions: ['query:all', 'pii:read'] }
  const rowsText = (sql: string, format: QueryFormat): Promise<string> => query({ sql, format, principal })
  const rows = async <T>(sql: string): Promise<T[]> => {
    const text = await rowsText(sql, 'JSONEachRow')
    return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T)
  }
  const until = async <T>(sql: string, check: (r: T[]) => boolean, timeoutMs = 30_000): Promise<T[]> =>
    waitFor(`ClickHouse: ${sql}`, async () => { const r = await rows<T>(sql); return check(r) ? r : undefined }, timeoutMs, 250)
  return { rows, until, stop, rowsText, query }
}
