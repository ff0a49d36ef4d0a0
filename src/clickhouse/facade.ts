/**
 * ClickHouse as the rest of the service sees it: one object per process over one client (chDB
 * or a server), bound to the configured database. Opening runs the migrations; the consumer
 * writes through `writer`, analyst SQL goes through analyst.ts over the same client. Close it where it was opened.
 */
import type { Config } from '../config/index.js'
import { keyString } from '../avro/key.js'
import { closeClickHouse, createClickHouse, pingClickHouse, type ClickHouseClient, type PingOutcome } from './client.js'
import { clickHouseError } from './errors.js'
import { runMigrations, type MigrateOptions, type MigrateResult } from './migrations.js'
import { ensureRetention } from './retention.js'
import type { SegmentableColumn } from './rows.js'
import { quoteIdent } from './sql.js'
import { createWriter, type ClickHouseWriter } from './writer.js'

export interface FactTuple { tenant: string; source: string; externalEventId: string }

export interface ClickHouse {
  readonly database: string
  /** the client underneath, for benchmarks and tests that need another database on the same chDB */
  readonly client: ClickHouseClient
  readonly writer: ClickHouseWriter
  /** dedup keys (avro/key keyString) of the given facts that are already stored */
  existingFacts(tuples: readonly FactTuple[]): Promise<Set<string>>
  ping(): Promise<PingOutcome>
  close(): Promise<void>
}

/** Opens ClickHouse and brings its schema up to date (typed columns for `segmentable`). */
export async function openClickHouse(
  config: Pick<Config, 'clickhouse'> & Partial<Pick<Config, 'retention'>>,
  segmentable: readonly SegmentableColumn[],
  log?: MigrateOptions['log'],
): Promise<{ clickhouse: ClickHouse; migrated: MigrateResult }> {
  const database = config.clickhouse.database
  const client = createClickHouse(config)
  try {
    const cluster = config.clickhouse.cluster ?? undefined
    // dead letters keep clickhouse.deadLetterTtlDays unless retention.tables names dead_letters:
    // one setting decides a table's TTL at each start, never two that undo each other
    const tables = config.retention?.tables ?? {}
    const deadLetterTtlDays = Object.hasOwn(tables, 'dead_letters') ? undefined : config.clickhouse.deadLetterTtlDays
    const migrated = await runMigrations(client, {
      database, segmentable, ...(deadLetterTtlDays === undefined ? {} : { deadLetterTtlDays }),
      ...(log === undefined ? {} : { log }), ...(cluster === undefined ? {} : { cluster }),
    })
    // the operator's retention (TTL) per table, after the versioned migrations
    for (const c of await ensureRetention(client, database, tables)) {
      log?.info({ database, table: c.table, days: c.days }, 'ClickHouse retention applied')
    }
    return { clickhouse: facadeOver(client, database), migrated }
  } catch (err) {
    await closeClickHouse(client).catch(() => undefined)
    throw err
  }
}

function facadeOver(client: ClickHouseClient, database: string): ClickHouse {
  return {
    database,
    client,
    writer: createWriter(client, { database }),
    existingFacts: async (tuples) => {
      try {
        return await existingFacts(client, database, tuples)
      } catch (err) {
        throw clickHouseError(err, 'checking existing facts')
      }
    },
    ping: () => pingClickHouse(client),
    close: () => closeClickHouse(client),
  }
}

async function existingFacts(ch: ClickHouseClient, database: string, tuples: readonly FactTuple[]): Promise<Set<string>> {
  if (tuples.length === 0) return new Set()
  const r = await ch.query({
    query: `SELECT tenant, source, external_event_id FROM ${quoteIdent(database)}.events
            WHERE tenant IN {tenants:Array(String)} AND external_event_id IN {ids:Array(String)}`,
    query_params: { tenants: [...new Set(tuples.map((t) => t.tenant))], ids: [...new Set(tuples.map((t) => t.externalEventId))] },
    format: 'JSONEachRow',
  })
  const rows = await r.json<{ tenant: string; source: string; external_event_id: string }>()
  return new Set(rows.map((x) => keyString({ tenant: x.tenant, source: x.source, externalEventId: x.external_event_id })))
}
