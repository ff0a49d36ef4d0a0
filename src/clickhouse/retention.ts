/**
 * Retention as ClickHouse TTLs, reconciled on every start from config.retention.tables (after
 * the versioned migrations, like the typed columns): a row is deleted `days` after its table's
 * time column. Reconciled rather than a numbered migration because the number of days is an
 * operator's setting that changes: a new value is applied at the next start, and only when it
 * differs from the table's TTL (`MODIFY TTL` rewrites parts, so it is not run on every start).
 *
 *   a table with {days: N}  ->  TTL toDateTime(<time column>) + INTERVAL N DAY
 *   a table set to null     ->  REMOVE TTL (keep rows forever)
 *   a table not mentioned   ->  left as it is (a TTL set by a migration stays)
 *
 * TTL deletes run in merges: an expired row can stay visible until its part is merged
 * (`merge_with_ttl_timeout`, 4 hours by default). The time column is when the service received
 * the row, not when the event happened, so a late or replayed event still gets the full period.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { CdpError } from '../errors.js'
import { clickHouseError } from './errors.js'
import { quoteIdent } from './sql.js'

/** the column each table's retention counts from */
export const RETENTION_COLUMNS: Readonly<Record<string, string>> = {
  events: 'received_at',
  dead_letters: 'dead_lettered_at',
  identities: 'linked_at',
  profile_merges: 'merged_at',
  profile_aliases: 'updated_at',
}

export type RetentionChange = { table: string; days: number | null }

export async function ensureRetention(
  client: ClickHouseClient, database: string, tables: Readonly<Record<string, { days: number } | null>>,
): Promise<RetentionChange[]> {
  const db = quoteIdent(database)
  const changes: RetentionChange[] = []
  for (const [table, want] of Object.entries(tables)) {
    const column = RETENTION_COLUMNS[table]
    if (column === undefined) {
      throw new CdpError('config_invalid', `retention.tables.${table}: no such table (one of ${Object.keys(RETENTION_COLUMNS).join(', ')})`)
    }
    const current = await currentTtl(client, database, table)
    const days = want?.days ?? null
    if (days === null) {
      if (current === undefined) continue
      await command(client, `ALTER TABLE ${db}.${quoteIdent(table)} REMOVE TTL`, `removing the TTL of ${table}`)
    } else {
      if (current !== undefined && current.includes(column) && current.includes(`toIntervalDay(${days})`)) continue
      await command(client, `ALTER TABLE ${db}.${quoteIdent(table)} MODIFY TTL toDateTime(${quoteIdent(column)}) + toIntervalDay(${days})`,
        `setting the TTL of ${table}`)
    }
    changes.push({ table, days })
  }
  return changes
}

/** the TTL clause of a table as ClickHouse prints it, or undefined */
export async function currentTtl(client: ClickHouseClient, database: string, table: string): Promise<string | undefined> {
  let rows: { engine_full: string }[]
  try {
    rows = await (await client.query({
      query: 'SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}',
      query_params: { db: database, table }, format: 'JSONEachRow',
    })).json()
  } catch (err) {
    throw clickHouseError(err, 'reading table TTLs')
  }
  const m = / TTL (.+?)(?: SETTINGS |$)/.exec(rows[0]?.engine_full ?? '')
  return m?.[1]
}

async function command(client: ClickHouseClient, query: string, what: string): Promise<void> {
  try {
    await client.command({ query })
  } catch (err) {
    throw clickHouseError(err, what)
  }
}
