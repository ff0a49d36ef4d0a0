/**
 * Versioned, idempotent ClickHouse schema.
 *
 * `schema_migrations` in the target database records each applied version; a start applies the
 * versions it lacks, in order, and records each after its last statement. Every statement is
 * itself idempotent (IF NOT EXISTS), so a crash between a statement and the record, or two
 * instances starting at once, re-runs harmlessly.
 *
 * Two parts depend on the event contracts rather than on a version and are reconciled on every
 * start: one typed column on `events` per segmentable property (ADD COLUMN IF NOT EXISTS; an
 * existing column of another type is refused), and the `events_resolved` view, recreated only
 * when the columns of `events` changed (a ClickHouse view fixes its columns when created).
 *
 * Conventions: tenant leads every ORDER BY of tenant data; timestamps are DateTime64(3, 'UTC');
 * tables written by the consumer keep the hashes of their last 10000 inserted blocks
 * (`non_replicated_deduplication_window`) so a batch re-sent with the same
 * `insert_deduplication_token` is dropped (without that setting the token is ignored).
 *
 * To change the schema, append a migration with the next version; never edit an applied one.
 * The statements are written for one node. With `cluster` set (config clickhouse.cluster),
 * forCluster() rewrites each one for a ClickHouse cluster: DDL `ON CLUSTER`, MergeTree engines as
 * their Replicated* twins (deduplication by block token then lives in Keeper:
 * `replicated_deduplication_window`), and beside each data table a `Distributed` table
 * `<table>_all` sharded by a hash of its ORDER BY key, so all copies of a fact land on one shard
 * (ReplacingMergeTree only merges within a shard).
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { CdpError } from '../errors.js'
import { clickHouseError, selectRows } from './errors.js'
import type { SegmentableColumn } from './rows.js'
import { quoteIdent } from './sql.js'
import type { Logger } from '../observability/logger.js'

export interface Migration {
  version: number
  name: string
  /** statements run in order; `db` is the quoted database name */
  statements: (db: string) => string[]
}

const DEDUP_WINDOW = 10000

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'events, identities, merges, aliases, dead letters',
    statements: (db) => [
      `
      CREATE TABLE IF NOT EXISTS ${db}.events
      (
          tenant            LowCardinality(String),
          source            LowCardinality(String),
          external_event_id String,
          event_id          String,
          event_type        LowCardinality(String),
          occurred_at       DateTime64(3, 'UTC'),
          received_at       DateTime64(3, 'UTC'),
          profile_id        String,
          email             Nullable(String),
          phone             Nullable(String),
          external_user_id  Nullable(String),
          device_key        Nullable(String),
          properties        String,
          schema_version    Nullable(UInt32),
          kafka_partition   UInt32,
          kafka_offset      UInt64,
          ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3),
          -- ReplacingMergeTree keeps the row with the highest version. The tuple is the Kafka
          -- key, so all copies of a fact sit on one partition and the lowest offset is the
          -- first fact: bitNot turns "lowest offset" into "highest version".
          fact_version      UInt64 MATERIALIZED bitNot(kafka_offset),
          INDEX occurred_at_minmax occurred_at TYPE minmax GRANULARITY 1
      )
      ENGINE = ReplacingMergeTree(fact_version)
      ORDER BY (tenant, source, external_event_id)
      SETTINGS non_replicated_deduplication_window = ${DEDUP_WINDOW}
      `,
      `
      CREATE TABLE IF NOT EXISTS ${db}.identities
      (
          tenant          LowCardinality(String),
          identity_type   LowCardinality(String),
          identity_value  String,
          raw_value       Nullable(String),
          profile_id      String,
          first_event_id  String,
          linked_at       DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree(linked_at)
      ORDER BY (tenant, identity_type, identity_value)
      SETTINGS non_replicated_deduplication_window = ${DEDUP_WINDOW}
      `,
      `
      CREATE TABLE IF NOT EXISTS ${db}.profile_merges
      (
          tenant           LowCardinality(String),
          from_profile_id  String,
          to_profile_id    String,
          reason           LowCardinality(String),
          event_id         String,
          merged_at        DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (tenant, from_profile_id, to_profile_id)
      SETTINGS non_replicated_deduplication_window = ${DEDUP_WINDOW}
      `,
      `
      CREATE TABLE IF NOT EXISTS ${db}.profile_aliases
      (
          tenant        LowCardinality(String),
          profile_id    String,
          canonical_id  String,
          version       UInt64,
          updated_at    DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree(version)
      ORDER BY (tenant, profile_id)
      SETTINGS non_replicated_deduplication_window = ${DEDUP_WINDOW}
      `,
      // every recorded merge is also an alias (from -> to), in the same insert
      `
      CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.profile_merges_to_aliases
      TO ${db}.profile_aliases
      AS SELECT
          tenant,
          from_profile_id                               AS profile_id,
          to_profile_id                                 AS canonical_id,
          toUInt64(toUnixTimestamp64Milli(merged_at))   AS version,
          merged_at                                     AS updated_at
      FROM ${db}.profile_merges
      `,
      // any profile id, old or current, to its canonical id (ids never merged are absent)
      `
      CREATE VIEW IF NOT EXISTS ${db}.profile_canonical AS
      SELECT
          tenant,
          profile_id,
          argMax(canonical_id, version)  AS canonical_id,
          max(updated_at)                AS updated_at
      FROM ${db}.profile_aliases
      GROUP BY tenant, profile_id
      `,
      `
      CREATE TABLE IF NOT EXISTS ${db}.dead_letters
      (
          tenant            Nullable(String),
          reason_code       LowCardinality(String),
          reason            String,
          topic             LowCardinality(String),
          kafka_partition   UInt32,
          kafka_offset      UInt64,
          key               String,
          value_base64      String,
          received_at       DateTime64(3, 'UTC'),
          dead_lettered_at  DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (tenant, topic, kafka_partition, kafka_offset)
      SETTINGS allow_nullable_key = 1, non_replicated_deduplication_window = ${DEDUP_WINDOW}
      `,
    ],
  },
  {
    version: 2,
    name: 'dead_letter_redrives (cdp dlq redrive: each dead letter re-submitted at most once)',
    statements: (db) => [
      // one row per dead letter re-submitted to the events topic, keyed like the dead letter's
      // record position; `cdp dlq redrive` skips dead letters found here
      `
      CREATE TABLE IF NOT EXISTS ${db}.dead_letter_redrives
      (
          topic            LowCardinality(String),
          kafka_partition  UInt32,
          kafka_offset     UInt64,
          tenant           Nullable(String),
          reason_code      LowCardinality(String),
          redrive_id       String,
          redriven_at      DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (topic, kafka_partition, kafka_offset)
      `,
    ],
  },
]

/** tables whose rows expire after `deadLetterTtlDays`, and the time column each is aged by */
const DEAD_LETTER_TTL_TABLES = [['dead_letters', 'dead_lettered_at'], ['dead_letter_redrives', 'redriven_at']] as const

/** Base columns of `events` a segmentable column may not shadow. */
export const EVENT_BASE_COLUMNS: ReadonlySet<string> = new Set([
  'tenant', 'source', 'external_event_id', 'event_id', 'event_type', 'occurred_at', 'received_at',
  'profile_id', 'email', 'phone', 'external_user_id', 'device_key', 'properties', 'schema_version',
  'kafka_partition', 'kafka_offset', 'ingested_at', 'fact_version', 'ingest_profile_id',
])

/**
 * One row per fact (FINAL applies the ReplacingMergeTree rule: the first fact of each tuple),
 * `profile_id` replaced by the current canonical profile, the id resolved at ingest kept as
 * `ingest_profile_id`.
 */
function eventsResolvedView(db: string): string {
  return `
    CREATE OR REPLACE VIEW ${db}.events_resolved AS
    SELECT
        e.* REPLACE (if(p.canonical_id = '', e.profile_id, p.canonical_id) AS profile_id),
        e.profile_id AS ingest_profile_id
    FROM ${db}.events AS e FINAL
    LEFT ANY JOIN ${db}.profile_canonical AS p
        ON p.tenant = e.tenant AND p.profile_id = e.profile_id
  `
}

/** the data tables: each gets a `<name>_all` Distributed table on a cluster */
const DATA_TABLES = new Set(['events', 'identities', 'profile_merges', 'profile_aliases', 'dead_letters'])

const CREATE = /^(\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+)?(?:TABLE|VIEW|DATABASE)\s+(?:IF\s+NOT\s+EXISTS\s+)?)(\S+)/i
const ALTER = /^(\s*ALTER\s+TABLE\s+)(\S+)/i
const ENGINE = /ENGINE\s*=\s*(\w*MergeTree)(?:\(([^)]*)\))?/i

/**
 * One single-node statement as the statements for a cluster named `cluster` (already a plain
 * identifier). Pure: tests check the generated SQL without a cluster.
 */
export function forCluster(statement: string, cluster: string): string[] {
  const on = ` ON CLUSTER ${quoteIdent(cluster)}`
  const alter = ALTER.exec(statement)
  if (alter !== null) {
    // a column added to a data table goes to its Distributed table too (created AS it, earlier)
    const t = alter[2]!.split('.').pop()!.replace(/`/g, '')
    const distributed = DATA_TABLES.has(t) ? [statement.replace(ALTER, `$1${alter[2]!.slice(0, alter[2]!.length - alter[2]!.split('.').pop()!.length)}${quoteIdent(`${t}_all`)}${on}`)] : []
    return [statement.replace(ALTER, `$1$2${on}`), ...distributed]
  }
  const create = CREATE.exec(statement)
  if (create === null) throw new CdpError('internal_error', 'forCluster: not a CREATE or ALTER TABLE statement')
  const name = create[2]!
  let out = statement.replace(CREATE, `$1$2${on}`)
  const engine = ENGINE.exec(out)
  if (engine === null) return [out]
  // {database} and {table} are server macros: one Keeper path per table and shard
  const args = [`'/clickhouse/tables/{shard}/{database}/{table}'`, `'{replica}'`, ...(engine[2]?.trim() ? [engine[2].trim()] : [])]
  out = out.replace(ENGINE, `ENGINE = Replicated${engine[1]!}(${args.join(', ')})`)
    .replace(/non_replicated_deduplication_window/g, 'replicated_deduplication_window')
  const table = name.split('.').pop()!.replace(/`/g, '')
  if (!DATA_TABLES.has(table)) return [out]
  const order = /ORDER\s+BY\s+\(([^)]*)\)/i.exec(out)?.[1] ?? ''
  // the sharding key: the table's identity minus what only orders within it (offsets)
  const key = order.split(',').map((c) => c.trim()).filter((c) => c !== '' && c !== 'kafka_offset')
  const db = name.slice(0, name.length - name.split('.').pop()!.length - 1)
  return [out, `CREATE TABLE IF NOT EXISTS ${db}.${quoteIdent(`${table}_all`)}${on} AS ${name}
      ENGINE = Distributed(${quoteIdent(cluster)}, ${db}, ${quoteIdent(table)}, cityHash64(${key.join(', ')}))`]
}

/** the statements of `m` for this deployment: as written, or rewritten for `cluster` */
export function migrationStatements(m: Migration, db: string, cluster?: string): string[] {
  const plain = m.statements(db)
  return cluster === undefined ? plain : plain.flatMap((st) => forCluster(st, cluster))
}

export interface MigrateOptions {
  database: string
  /** a ClickHouse cluster name (config clickhouse.cluster): ON CLUSTER, Replicated*, Distributed */
  cluster?: string
  /** segmentable contract properties (from the contracts registry) */
  segmentable?: readonly SegmentableColumn[]
  /**
   * days after which dead letters (and their redrive records) are deleted; 0: never. Reconciled
   * on every start (ALTER TABLE MODIFY TTL / REMOVE TTL), so a changed setting applies at the
   * next start. Undefined leaves the tables' TTL as it is.
   */
  deadLetterTtlDays?: number
  /** told once per change this run makes (a version applied, a column added, the view recreated) */
  log?: Pick<Logger, 'info'>
}

export interface MigrateResult {
  /** versions applied by this run */
  applied: number[]
  /** typed columns added by this run */
  addedColumns: string[]
  /** whether this run (re)created events_resolved */
  viewRecreated: boolean
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/

export async function runMigrations(client: ClickHouseClient, opts: MigrateOptions): Promise<MigrateResult> {
  const db = quoteIdent(opts.database)
  const run = async (query: string, what: string): Promise<void> => {
    try {
      await client.command({ query })
    } catch (err) {
      throw clickHouseError(err, what)
    }
  }

  const ddl = (st: string): string[] => (opts.cluster === undefined ? [st] : forCluster(st, opts.cluster))
  const one = (st: string): string => ddl(st)[0]!
  await run(one(`CREATE DATABASE IF NOT EXISTS ${db}`), 'create database')
  await run(one(`
    CREATE TABLE IF NOT EXISTS ${db}.schema_migrations
    (
        version     UInt32,
        name        String,
        applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree
    ORDER BY version
  `), 'create schema_migrations')

  const done = new Set((await select<{ version: number }>(client,
    `SELECT version FROM ${db}.schema_migrations FINAL`)).map((r) => Number(r.version)))

  const applied: number[] = []
  for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue
    for (const [i, statement] of migrationStatements(m, db, opts.cluster).entries()) {
      await run(statement, `migration ${m.version} statement ${i + 1}`)
    }
    try {
      await client.insert({
        table: `${db}.schema_migrations`,
        values: [{ version: m.version, name: m.name }],
        format: 'JSONEachRow',
      })
    } catch (err) {
      throw clickHouseError(err, `recording migration ${m.version}`)
    }
    applied.push(m.version)
    opts.log?.info({ database: opts.database, version: m.version, migration: m.name }, 'ClickHouse migration applied')
  }

  const addedColumns = await ensureSegmentableColumns(client, opts.database, opts.segmentable ?? [], ddl)
  const viewRecreated = await ensureEventsResolved(client, opts.database, ddl)
  if (opts.deadLetterTtlDays !== undefined) {
    for (const [table, column] of DEAD_LETTER_TTL_TABLES) {
      const changed = await ensureTtlDays(client, opts.database, table, column, opts.deadLetterTtlDays)
      if (changed) opts.log?.info({ database: opts.database, table, ttlDays: opts.deadLetterTtlDays }, 'ClickHouse table TTL changed')
    }
  }
  for (const column of addedColumns) opts.log?.info({ database: opts.database, column }, 'ClickHouse typed column added to events')
  if (viewRecreated) opts.log?.info({ database: opts.database }, 'ClickHouse view events_resolved (re)created')
  return { applied, addedColumns, viewRecreated }
}

/** Versions recorded in schema_migrations, ascending. */
export async function appliedMigrations(client: ClickHouseClient, database: string): Promise<number[]> {
  const rows = await select<{ version: number }>(client,
    `SELECT version FROM ${quoteIdent(database)}.schema_migrations FINAL ORDER BY version`)
  return rows.map((r) => Number(r.version))
}

async function ensureSegmentableColumns(
  client: ClickHouseClient, database: string, segmentable: readonly SegmentableColumn[], ddl: (st: string) => string[],
): Promise<string[]> {
  const db = quoteIdent(database)
  const existing = await eventColumns(client, database)
  const added: string[] = []
  for (const { column, clickhouseType } of segmentable) {
    if (!IDENT.test(column) || EVENT_BASE_COLUMNS.has(column)) {
      throw new CdpError('contract_incompatible',
        `segmentable column ${JSON.stringify(column)} is not a valid column name or shadows a base column of events`)
    }
    // ClickHouse names the type itself: this validates it (passed as a parameter, never as SQL)
    // and gives the spelling system.columns uses, e.g. 'decimal(18,2)' -> 'Decimal(18, 2)'
    let canonical: string
    try {
      const rows = await select<{ t: string }>(client,
        'SELECT toTypeName(defaultValueOfTypeName({type:String})) AS t', { type: clickhouseType })
      canonical = rows[0]?.t ?? ''
    } catch (err) {
      const mapped = clickHouseError(err, 'checking a column type')
      if (mapped instanceof CdpError) throw mapped
      throw new CdpError('contract_incompatible',
        `segmentable column ${column}: ${JSON.stringify(clickhouseType)} is not a ClickHouse type`, { cause: err })
    }
    const have = existing.get(column)
    if (have !== undefined) {
      if (have.type !== canonical) {
        throw new CdpError('contract_incompatible',
          `events.${column} is ${have.type} but the contracts declare ${canonical}; a column's type cannot change in place`)
      }
      continue
    }
    try {
      for (const query of ddl(`ALTER TABLE ${db}.events ADD COLUMN IF NOT EXISTS ${quoteIdent(column)} ${canonical}`)) await client.command({ query })
    } catch (err) {
      throw clickHouseError(err, `adding events.${column}`)
    }
    existing.set(column, { type: canonical, kind: '' })
    added.push(column)
  }
  return added
}

async function ensureEventsResolved(client: ClickHouseClient, database: string, ddl: (st: string) => string[]): Promise<boolean> {
  const events = await eventColumns(client, database)
  const expected = [...events].filter(([, c]) => c.kind !== 'MATERIALIZED' && c.kind !== 'ALIAS').map(([n]) => n)
  expected.push('ingest_profile_id')
  const view = await select<{ name: string }>(client,
    'SELECT name FROM system.columns WHERE database = {db:String} AND table = \'events_resolved\' ORDER BY position',
    { db: database })
  const current = view.map((r) => r.name)
  if (current.length === expected.length && current.every((n, i) => n === expected[i])) return false
  try {
    for (const query of ddl(eventsResolvedView(quoteIdent(database)))) await client.command({ query })
  } catch (err) {
    throw clickHouseError(err, 'creating events_resolved')
  }
  return true
}

/** the TTL of `table` in whole days as its engine reads (undefined: none, or not in days) */
export async function tableTtlDays(client: ClickHouseClient, database: string, table: string): Promise<number | undefined> {
  const rows = await select<{ engine_full: string }>(client,
    'SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}', { db: database, t: table })
  const m = /\bTTL\b.*?toIntervalDay\((\d+)\)/.exec(rows[0]?.engine_full ?? '')
  return m === null ? undefined : Number(m[1])
}

/** sets (or removes, for 0) the TTL of `table`; true when it changed anything */
async function ensureTtlDays(client: ClickHouseClient, database: string, table: string, column: string, days: number): Promise<boolean> {
  const current = await tableTtlDays(client, database, table)
  if ((days === 0 && current === undefined) || current === days) return false
  const target = `${quoteIdent(database)}.${quoteIdent(table)}`
  const query = days === 0
    ? `ALTER TABLE ${target} REMOVE TTL`
    : `ALTER TABLE ${target} MODIFY TTL toDateTime(${quoteIdent(column)}) + INTERVAL ${Math.trunc(days)} DAY`
  try {
    await client.command({ query })
  } catch (err) {
    throw clickHouseError(err, `setting the TTL of ${table}`)
  }
  return true
}

async function eventColumns(client: ClickHouseClient, database: string): Promise<Map<string, { type: string; kind: string }>> {
  const rows = await select<{ name: string; type: string; default_kind: string }>(client,
    'SELECT name, type, default_kind FROM system.columns WHERE database = {db:String} AND table = \'events\' ORDER BY position',
    { db: database })
  return new Map(rows.map((r) => [r.name, { type: r.type, kind: r.default_kind }]))
}

const select = <T>(client: ClickHouseClient, query: string, params?: Record<string, unknown>): Promise<T[]> =>
  selectRows<T>(client, query, params, 'reading the schema')
