/**
 * Reads over `events` and `dead_letters` for operators and senders: the fact stored under a tuple,
 * the latest dead letter under a key, dead letters by filter with counts by reason, the dead
 * letters still to redrive, and the record of each redrive (`dead_letter_redrives`, migration 2).
 *
 * Every value arrives as a query parameter, never as SQL text. Tables are read with FINAL: a
 * replay writes the dead letters it meets again, under the same sort key.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { clickHouseError } from './errors.js'
import { quoteIdent } from './sql.js'

export interface DeadLetterFilter {
  /** reason_code */
  reason?: string
  tenant?: string
  /** ISO 8601: dead-lettered at or after */
  since?: string
}

export interface DeadLetterEntry {
  tenant: string | null
  reason_code: string
  reason: string
  topic: string
  kafka_partition: number
  kafka_offset: string
  /** the record key as text (a canonical key is the tuple as JSON) */
  key: string
  /** ISO 8601 */
  dead_lettered_at: string
  /** ISO 8601 of the redrive that re-submitted it, or null */
  redriven_at: string | null
  redrive_id: string | null
}

export interface ReasonCount { reason_code: string; total: number; pending: number }

/** a dead letter with its original bytes, to re-submit */
export interface PendingDeadLetter {
  tenant: string | null
  reason_code: string
  topic: string
  kafka_partition: number
  kafka_offset: string
  key: string
  value_base64: string
}

export interface StoredFact { event_id: string; received_at: string; stored_at: string }
export interface LatestDeadLetter { reason_code: string; value_base64: string; dead_lettered_at: string }

/** ClickHouse's 'YYYY-MM-DD hh:mm:ss.sss' of a UTC column -> ISO 8601 */
export const chTimeToIso = (t: string): string => `${t.replace(' ', 'T')}Z`

async function select<T>(client: ClickHouseClient, query: string, params: Record<string, unknown>, what: string): Promise<T[]> {
  try {
    const rs = await client.query({ query, query_params: params, format: 'JSONEachRow' })
    return await rs.json<T>()
  } catch (err) {
    throw clickHouseError(err, what)
  }
}

function where(filter: DeadLetterFilter, alias = ''): { sql: string; params: Record<string, unknown> } {
  const conds: string[] = []
  const params: Record<string, unknown> = {}
  if (filter.reason !== undefined) { conds.push(`${alias}reason_code = {reason:String}`); params.reason = filter.reason }
  if (filter.tenant !== undefined) { conds.push(`${alias}tenant = {tenant:String}`); params.tenant = filter.tenant }
  if (filter.since !== undefined) {
    conds.push(`${alias}dead_lettered_at >= parseDateTime64BestEffort({since:String}, 3, 'UTC')`)
    params.since = filter.since
  }
  return { sql: conds.length === 0 ? '1' : conds.join(' AND '), params }
}

export class DeadLetterTables {
  private readonly db: string

  constructor(private readonly client: ClickHouseClient, database: string) {
    this.db = quoteIdent(database)
  }

  /** the fact stored under the tuple (the first one: lowest offset), when there is one */
  async storedFact(tenant: string, source: string, externalEventId: string): Promise<StoredFact | undefined> {
    const rows = await select<StoredFact>(this.client, `
      SELECT event_id, toString(received_at) AS received_at, toString(ingested_at) AS stored_at
      FROM ${this.db}.events
      WHERE tenant = {tenant:String} AND source = {source:String} AND external_event_id = {id:String}
      ORDER BY kafka_offset LIMIT 1`, { tenant, source, id: externalEventId }, 'reading a stored fact')
    const r = rows[0]
    return r === undefined ? undefined : { event_id: r.event_id, received_at: chTimeToIso(r.received_at), stored_at: chTimeToIso(r.stored_at) }
  }

  /** the most recent dead letter of `tenant` under the record key `key` */
  async latestDeadLetter(tenant: string, key: string): Promise<LatestDeadLetter | undefined> {
    const rows = await select<LatestDeadLetter>(this.client, `
      SELECT reason_code, value_base64, toString(dead_lettered_at) AS dead_lettered_at
      FROM ${this.db}.dead_letters FINAL
      WHERE tenant = {tenant:String} AND key = {key:String}
      ORDER BY dead_lettered_at DESC, kafka_offset DESC LIMIT 1`, { tenant, key }, 'reading a dead letter')
    const r = rows[0]
    return r === undefined ? undefined : { ...r, dead_lettered_at: chTimeToIso(r.dead_lettered_at) }
  }

  /** the newest `limit` dead letters matching the filter, and counts by reason over all that match */
  async list(filter: DeadLetterFilter, limit: number): Promise<{ rows: DeadLetterEntry[]; counts: ReasonCount[] }> {
    const w = where(filter, 'd.')
    const joined = `
      FROM ${this.db}.dead_letters AS d FINAL
      LEFT JOIN (SELECT topic, kafka_partition, kafka_offset, redrive_id, redriven_at FROM ${this.db}.dead_letter_redrives FINAL) AS r
        ON r.topic = d.topic AND r.kafka_partition = d.kafka_partition AND r.kafka_offset = d.kafka_offset
      WHERE ${w.sql}`
    type Raw = Omit<DeadLetterEntry, 'redriven_at' | 'redrive_id' | 'kafka_partition'> & { kafka_partition: number | string; redriven_at: string; redrive_id: string }
    const raw = await select<Raw>(this.client, `
      SELECT d.tenant AS tenant, d.reason_code AS reason_code, d.reason AS reason, d.topic AS topic,
             d.kafka_partition AS kafka_partition, toString(d.kafka_offset) AS kafka_offset, d.key AS key,
             toString(d.dead_lettered_at) AS dead_lettered_at, r.redrive_id AS redrive_id, toString(r.redriven_at) AS redriven_at
      ${joined}
      ORDER BY d.dead_lettered_at DESC, d.kafka_partition, d.kafka_offset DESC
      LIMIT {limit:UInt32}`, { ...w.params, limit }, 'listing dead letters')
    const counts = await select<{ reason_code: string; total: string | number; pending: string | number }>(this.client, `
      SELECT d.reason_code AS reason_code, count() AS total, countIf(r.redrive_id = '') AS pending
      ${joined}
      GROUP BY reason_code ORDER BY total DESC, reason_code`, w.params, 'counting dead letters')
    return {
      rows: raw.map((r) => ({
        ...r, kafka_partition: Number(r.kafka_partition), dead_lettered_at: chTimeToIso(r.dead_lettered_at),
        // LEFT JOIN fills a missing redrive with the column defaults
        redrive_id: r.redrive_id === '' ? null : r.redrive_id,
        redriven_at: r.redrive_id === '' ? null : chTimeToIso(r.redriven_at),
      })),
      counts: counts.map((c) => ({ reason_code: c.reason_code, total: Number(c.total), pending: Number(c.pending) })),
    }
  }

  /**
   * Dead letters matching the filter that no redrive re-submitted yet, oldest first, with the
   * original bytes. Records without a key or a value are never candidates: a null value on the
   * compacted events topic would be a tombstone.
   */
  async pending(filter: DeadLetterFilter, limit: number): Promise<PendingDeadLetter[]> {
    const w = where(filter)
    const rows = await select<PendingDeadLetter & { kafka_partition: number | string }>(this.client, `
      SELECT tenant, reason_code, topic, kafka_partition, toString(kafka_offset) AS kafka_offset, key, value_base64
      FROM ${this.db}.dead_letters FINAL
      WHERE ${w.sql} AND key != '' AND value_base64 != ''
        AND (topic, kafka_partition, kafka_offset) NOT IN (SELECT topic, kafka_partition, kafka_offset FROM ${this.db}.dead_letter_redrives)
      ORDER BY dead_lettered_at, kafka_partition, kafka_offset
      LIMIT {limit:UInt32}`, { ...w.params, limit }, 'reading dead letters to redrive')
    return rows.map((r) => ({ ...r, kafka_partition: Number(r.kafka_partition) }))
  }

  /** how many dead letters `pending` would return without a limit */
  async pendingCount(filter: DeadLetterFilter): Promise<number> {
    const w = where(filter)
    const [row] = await select<{ n: string | number }>(this.client, `
      SELECT count() AS n FROM ${this.db}.dead_letters FINAL
      WHERE ${w.sql} AND key != '' AND value_base64 != ''
        AND (topic, kafka_partition, kafka_offset) NOT IN (SELECT topic, kafka_partition, kafka_offset FROM ${this.db}.dead_letter_redrives)`,
    w.params, 'counting dead letters to redrive')
    return Number(row?.n ?? 0)
  }

  /** records that these dead letters were re-submitted by redrive `redriveId` */
  async recordRedrives(letters: readonly PendingDeadLetter[], redriveId: string): Promise<void> {
    if (letters.length === 0) return
    try {
      await this.client.insert({
        table: `${this.db}.dead_letter_redrives`,
        format: 'JSONEachRow',
        values: letters.map((l) => ({
          topic: l.topic, kafka_partition: l.kafka_partition, kafka_offset: l.kafka_offset, tenant: l.tenant,
          reason_code: l.reason_code, redrive_id: redriveId,
        })),
      })
    } catch (err) {
      throw clickHouseError(err, 'recording a redrive')
    }
  }
}
