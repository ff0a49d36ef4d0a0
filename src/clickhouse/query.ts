/**
 * Analyst queries: one read-only statement, its result as text (and rows for JSONEachRow).
 *
 * Two guards. checkReadOnlySql admits SELECT / WITH / SHOW / DESCRIBE / EXPLAIN only, one
 * statement, without INTO OUTFILE or functions that reach files, hosts or processes. Then the
 * statement runs with `readonly = 1` on both backends: a server takes it as a per-request
 * setting; on chDB the client runs any call with settings on its own short-lived session
 * (chdb-connection.ts), so the setting cannot stick to the writer's session. readonly = 1 (not
 * 2) because only 1 also refuses table functions such as file() and url() in SELECT.
 *
 * Tables are named with their database (`cdp.events`); the client has no default database.
 */
import type { ClickHouseClient, ClickHouseSettings, DataFormat } from '@clickhouse/client'
import { CdpError } from '../errors.js'
import { clickHouseError } from './errors.js'
import { checkReadOnlySql } from './sql.js'
import { READ_ONLY_FORMATS } from './formats.js'

export { READ_ONLY_FORMATS } from './formats.js'
export type ReadOnlyFormat = (typeof READ_ONLY_FORMATS)[number]

export interface ReadOnlyQueryOptions {
  /** refuse results larger than this many rows */
  maxResultRows?: number
  /** seconds */
  maxExecutionTime?: number
  abortSignal?: AbortSignal
}

export interface ReadOnlyQueryResult {
  format: ReadOnlyFormat
  /** the result as ClickHouse wrote it */
  text: string
  /** JSONEachRow only: the parsed rows */
  rows: Record<string, unknown>[] | undefined
}

/**
 * Throws CdpError: 'bad_request' for a refused or failing statement (with ClickHouse's
 * message), 'forbidden' when ClickHouse itself refuses it as a write, and
 * 'clickhouse_unavailable' when ClickHouse cannot be reached.
 */
export async function runReadOnlyQuery(
  client: ClickHouseClient,
  sql: string,
  format: ReadOnlyFormat = 'JSONEachRow',
  params?: Record<string, unknown>,
  opts: ReadOnlyQueryOptions = {},
): Promise<ReadOnlyQueryResult> {
  if (!(READ_ONLY_FORMATS as readonly string[]).includes(format)) {
    throw new CdpError('bad_request', `unsupported format ${JSON.stringify(format)}; use one of ${READ_ONLY_FORMATS.join(', ')}`)
  }
  const check = checkReadOnlySql(sql)
  if (!check.ok) throw new CdpError('bad_request', `query refused: ${check.reason}`)

  const settings: ClickHouseSettings = {}
  if (opts.maxResultRows !== undefined) {
    settings.max_result_rows = String(opts.maxResultRows)
    settings.result_overflow_mode = 'throw'
  }
  if (opts.maxExecutionTime !== undefined) settings.max_execution_time = opts.maxExecutionTime
  // last: chDB applies settings one SET at a time, and none may follow readonly = 1
  settings.readonly = '1'

  let text: string
  try {
    const rs = await client.query({
      query: sql,
      format: format as DataFormat,
      clickhouse_settings: settings,
      ...(params === undefined ? {} : { query_params: params }),
      ...(opts.abortSignal === undefined ? {} : { abort_signal: opts.abortSignal }),
    })
    text = await rs.text()
  } catch (err) {
    const mapped = clickHouseError(err, 'read-only query')
    if (mapped instanceof CdpError) throw mapped
    const message = err instanceof Error ? err.message : String(err)
    const type = (err as { type?: unknown }).type
    throw new CdpError(type === 'READONLY' ? 'forbidden' : 'bad_request', message, { cause: err })
  }
  const rows = format === 'JSONEachRow'
    ? text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>)
    : undefined
  return { format, text, rows }
}
