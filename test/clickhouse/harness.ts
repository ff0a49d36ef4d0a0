/**
 * A migrated ClickHouse for one test: its own chDB data dir (or, on a server, its own
 * database, dropped afterwards), closed when the test ends.
 */
import type { Test } from 'tap'
import type { Config } from '../../src/config/index.js'
import { createClickHouse, type ClickHouseClient } from '../../src/clickhouse/client.js'
import { runMigrations, type MigrateResult } from '../../src/clickhouse/migrations.js'
import { createWriter, type ClickHouseWriter } from '../../src/clickhouse/writer.js'
import type { EventRow, SegmentableColumn } from '../../src/clickhouse/rows.js'
import { testConfig } from '../helpers/config.js'

export type Backend = 'chdb' | 'server'

export interface Harness {
  backend: Backend
  config: Readonly<Config>
  client: ClickHouseClient
  database: string
  writer: ClickHouseWriter
  migrated: MigrateResult | undefined
}

/** the server under test, from CLICKHOUSE_URL (read by the config loader), if any */
export function serverUrl(t: Test): string | undefined {
  return testConfig(t).clickhouse.url
}

export const NO_SERVER = 'CLICKHOUSE_URL is not set: the ClickHouse server path is not tested (chDB covers the same code)'

export async function harness(
  t: Test, backend: Backend, opts: { migrate?: boolean; segmentable?: SegmentableColumn[] } = {},
): Promise<Harness> {
  const config = testConfig(t)
  // chDB even when CLICKHOUSE_URL is set in the environment
  const chConfig = backend === 'chdb' ? { clickhouse: { ...config.clickhouse, url: undefined } } : config
  if (backend === 'server' && config.clickhouse.url === undefined) throw new Error(NO_SERVER)
  const client = createClickHouse(chConfig)
  const database = config.clickhouse.database
  t.teardown(async () => {
    if (backend === 'server') await client.command({ query: `DROP DATABASE IF EXISTS \`${database}\`` })
    await client.close()
  })
  const migrated = opts.migrate === false
    ? undefined
    : await runMigrations(client, { database, segmentable: opts.segmentable ?? [] })
  return { backend, config, client, database, writer: createWriter(client, { database }), migrated }
}

export async function rows<T = Record<string, unknown>>(
  client: ClickHouseClient, query: string, params?: Record<string, unknown>,
): Promise<T[]> {
  const rs = await client.query({ query, format: 'JSONEachRow', ...(params === undefined ? {} : { query_params: params }) })
  return rs.json<T>()
}

export async function count(client: ClickHouseClient, query: string, params?: Record<string, unknown>): Promise<number> {
  const [row] = await rows<{ c: string | number }>(client, query, params)
  return Number(row?.c)
}

let seq = 0

/** a realistic event; kafka_offset counts up unless given */
export function eventRow(over: Partial<EventRow> = {}): EventRow {
  seq++
  return {
    tenant: 'acme',
    source: 'brand.pos',
    external_event_id: `txn_${seq}`,
    event_id: `01J${String(seq).padStart(23, '0')}`,
    event_type: 'order_completed',
    occurred_at: new Date(Date.UTC(2024, 4, 1, 12, 0, 0, 123)),
    received_at: '2024-05-01T12:00:01.456Z',
    profile_id: 'prof_1',
    email: 'jane@example.com',
    phone: '+14155550100',
    external_user_id: 'u-42',
    device_key: null,
    properties: JSON.stringify({ amount: 42.5, currency: 'USD', items: 3 }),
    schema_version: 1,
    kafka_partition: 0,
    kafka_offset: seq,
    ...over,
  }
}
