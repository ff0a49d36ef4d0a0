/**
 * Which ClickHouse failures are worth retrying.
 *
 * Trouble reaching ClickHouse (refused, reset, timed out, DNS, a chDB session that is closed or
 * a data dir held by another process) and a few server states that pass by themselves become
 * CdpError('clickhouse_unavailable'), which is retriable: the consumer backs off and does not
 * commit offsets. Everything else, above all SQL errors (syntax, unknown column, type
 * mismatch), is returned unchanged: retrying a bad statement cannot help.
 */
import { wrapForeign } from '../errors.js'
import type { ClickHouseClient } from '@clickhouse/client'

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ESOCKETTIMEDOUT', 'ERR_SOCKET_CLOSED',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
])

/** server error types that describe a passing condition of the server, not of the statement */
const TRANSIENT_SERVER_TYPES = new Set([
  'TOO_MANY_PARTS', 'TOO_MANY_SIMULTANEOUS_QUERIES', 'TIMEOUT_EXCEEDED', 'NETWORK_ERROR',
  'SOCKET_TIMEOUT', 'ALL_CONNECTION_TRIES_FAILED', 'KEEPER_EXCEPTION', 'NO_ZOOKEEPER',
  'TABLE_IS_READ_ONLY', 'SERVER_OVERLOADED', 'MEMORY_LIMIT_EXCEEDED', 'CANNOT_ALLOCATE_MEMORY',
  'UNEXPECTED_END_OF_FILE', 'ABORTED',
])

const TRANSIENT_MESSAGES = [
  /^Timeout error\.?$/, // clickhouse-js request_timeout
  /socket hang up/i,
  /ChdbConnection is closed/,
  /Another server instance in same directory is already running/,
]

function* causes(err: unknown): Generator<unknown> {
  const seen = new Set<unknown>()
  let cur = err
  while (cur !== undefined && cur !== null && !seen.has(cur)) {
    seen.add(cur)
    yield cur
    if (cur instanceof AggregateError) for (const e of cur.errors) yield e
    cur = (cur as { cause?: unknown }).cause
  }
}

/** true when the failure says nothing about the statement, only about reaching ClickHouse */
export function isClickHouseUnavailable(err: unknown): boolean {
  for (const e of causes(err)) {
    if (typeof e !== 'object' || e === null) continue
    const code = (e as { code?: unknown }).code
    // a ClickHouse exception (numeric code + type). Matched by shape: chdb/connection raises
    // @clickhouse/client-common's ClickHouseError, a different class from @clickhouse/client's.
    if (typeof code === 'string' && /^[0-9]+$/.test(code)) {
      const type = (e as { type?: unknown }).type
      return typeof type === 'string' && TRANSIENT_SERVER_TYPES.has(type)
    }
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || code === 'CHDB_CONNECTION')) return true
    const message = (e as { message?: unknown }).message
    if (typeof message === 'string' && TRANSIENT_MESSAGES.some((re) => re.test(message))) return true
  }
  return false
}

/** What a ClickHouse failure means (for wrapForeign): unavailable, or undefined for a statement error. */
export function clickHouseErrorCode(err: unknown): 'clickhouse_unavailable' | undefined {
  return isClickHouseUnavailable(err) ? 'clickhouse_unavailable' : undefined
}

/**
 * `what` names the operation ("insert into events"). Returns the error to throw: a retriable
 * CdpError for unavailability, otherwise the original error.
 */
export const clickHouseError = (err: unknown, what: string): unknown =>
  wrapForeign(err, `ClickHouse unavailable during ${what}`, clickHouseErrorCode)

/** rows of a small metadata or lookup query as JSON objects; ClickHouse trouble as clickHouseError(what) */
export async function selectRows<T>(client: ClickHouseClient, query: string, params: Record<string, unknown> | undefined, what: string): Promise<T[]> {
  try {
    const rs = await client.query({ query, format: 'JSONEachRow', ...(params === undefined ? {} : { query_params: params }) })
    return await rs.json<T>()
  } catch (err) {
    throw clickHouseError(err, what)
  }
}
