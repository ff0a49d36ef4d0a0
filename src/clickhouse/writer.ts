/**
 * Batched, idempotent inserts (JSONEachRow), one call per table per consumer batch.
 *
 * Exactly-once: the consumer cuts a batch per partition (offsets first..last), inserts it with
 * `dedupToken(topic, partition, first, last, table)` and commits offsets only afterwards (batches
 * of several partitions written together name every range: src/pipeline/write-step.ts). After
 * a crash it re-cuts the same range and inserts again with the same token; ClickHouse drops the
 * block because the table remembers its last 10000 block tokens
 * (`non_replicated_deduplication_window`, see migrations.ts). Verified on chDB 26.7: a re-send
 * with the same token adds nothing (`count()` without FINAL), also after OPTIMIZE FINAL and after
 * closing and reopening the data dir; another token inserts; without the table setting the
 * token is ignored; a token falls out of the window after 10000 newer blocks into that table.
 * Without a token, a block identical to a recent one is dropped too (content hash).
 *
 * A token stands for its rows: never reuse one for a different batch, that batch would be
 * dropped silently. The ReplacingMergeTree keys stay the last defence.
 *
 * Failures reaching ClickHouse throw CdpError('clickhouse_unavailable') (retriable: don't
 * commit, back off, re-send the same batch with the same token); SQL errors are rethrown as they
 * are (not retriable).
 */
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client'
import { clickHouseError } from './errors.js'
import { quoteIdent } from './sql.js'
import type { DeadLetterRow, EventRow, IdentityRow, MergeRow, ProfileAliasRow } from './rows.js'

export type WriterTable = 'events' | 'identities' | 'profile_merges' | 'profile_aliases' | 'dead_letters'

export interface InsertOptions {
  /** `insert_deduplication_token`; build it with dedupToken() */
  dedupToken?: string
}

export interface InsertOutcome {
  /** rows sent; a deduplicated re-send reports the same number */
  rows: number
}

export interface ClickHouseWriter {
  insertEvents(rows: readonly EventRow[], opts?: InsertOptions): Promise<InsertOutcome>
  insertIdentities(rows: readonly IdentityRow[], opts?: InsertOptions): Promise<InsertOutcome>
  insertMerges(rows: readonly MergeRow[], opts?: InsertOptions): Promise<InsertOutcome>
  insertProfileAliases(rows: readonly ProfileAliasRow[], opts?: InsertOptions): Promise<InsertOutcome>
  insertDeadLetters(rows: readonly DeadLetterRow[], opts?: InsertOptions): Promise<InsertOutcome>
}

/**
 * The token of one batch: which table, and which offsets of which topic partition it holds.
 * Offsets are inclusive. Deterministic, so a re-cut batch gets the same token.
 */
export function dedupToken(
  topic: string, partition: number, firstOffset: number | bigint | string, lastOffset: number | bigint | string, table: WriterTable | string,
): string {
  return `cdp:${table}:${topic}:${partition}:${String(firstOffset)}-${String(lastOffset)}`
}

export function createWriter(client: ClickHouseClient, opts: { database: string }): ClickHouseWriter {
  const db = quoteIdent(opts.database)

  async function insert(table: WriterTable, values: Record<string, unknown>[], o: InsertOptions | undefined): Promise<InsertOutcome> {
    if (values.length === 0) return { rows: 0 }
    const settings: ClickHouseSettings = {
      // said explicitly: a server profile may turn either off, which would break the token
      insert_deduplicate: 1,
      async_insert: 0,
      // Date objects serialize as ISO-8601 with 'Z'
      date_time_input_format: 'best_effort',
      // a typed property without its column is a bug to see, not a value to drop
      input_format_skip_unknown_fields: 0,
    }
    if (o?.dedupToken !== undefined) settings.insert_deduplication_token = o.dedupToken
    try {
      await client.insert({ table: `${db}.${table}`, values, format: 'JSONEachRow', clickhouse_settings: settings })
    } catch (err) {
      throw clickHouseError(err, `insert into ${table}`)
    }
    return { rows: values.length }
  }

  return {
    insertEvents: async (rows, o) => insert('events', rows.map(eventValues), o),
    insertIdentities: async (rows, o) => insert('identities', rows.map(plain), o),
    insertMerges: async (rows, o) => insert('profile_merges', rows.map(plain), o),
    insertProfileAliases: async (rows, o) => insert('profile_aliases', rows.map(plain), o),
    insertDeadLetters: async (rows, o) => insert('dead_letters', rows.map(plain), o),
  }
}

/** JSON cannot carry bigint; ClickHouse reads UInt64 from a string */
function plain(row: object): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(row)) out[k] = typeof v === 'bigint' ? v.toString() : v
  return out
}

function eventValues(row: EventRow): Record<string, unknown> {
  const { typed_properties: typed, ...base } = row
  const out = plain(base)
  if (typed !== undefined) {
    for (const [column, value] of Object.entries(typed)) {
      if (column in out) throw new Error(`typed property ${column} collides with the events column of the same name`)
      out[column] = value
    }
  }
  return out
}
