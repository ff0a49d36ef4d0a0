/**
 * One factory for both ClickHouse backends. `config.clickhouse.url` set: a server over HTTP(S)
 * with username/password. Unset: embedded chDB bound to `config.clickhouse.chdbPath`.
 * Everything above this file speaks @clickhouse/client and cannot tell the two apart.
 *
 * chDB holds its data dir for one process; a second process gets `clickhouse_unavailable`
 * at creation (in embedded mode analysts go through the running service).
 *
 * The client is not bound to `config.clickhouse.database`: on a server that parameter must name
 * an existing database on every request, including the migrations' CREATE DATABASE.
 * All statements here name their tables as `database.table`.
 */
import { mkdirSync } from 'node:fs'
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client'
import type { Config } from '../config/index.js'
import { CdpError } from '../errors.js'
import { ScopedSettingsChdbConnection } from './chdb-connection.js'
import { clickHouseError } from './errors.js'

export type { ClickHouseClient } from '@clickhouse/client'

export interface ClickHouseClientConfig {
  clickhouse: Pick<Config['clickhouse'], 'url' | 'username' | 'password' | 'chdbPath'>
}

export interface CreateClickHouseOptions {
  /** server only: how long one HTTP request may take (clickhouse-js default 30 s) */
  requestTimeoutMs?: number
}

export type ClickHouseBackend = 'server' | 'chdb'

export function clickHouseBackend(config: ClickHouseClientConfig): ClickHouseBackend {
  return config.clickhouse.url === undefined ? 'chdb' : 'server'
}

export function createClickHouse(config: ClickHouseClientConfig, opts: CreateClickHouseOptions = {}): ClickHouseClient {
  const ch = config.clickhouse
  if (ch.url !== undefined) {
    return createClient({
      url: ch.url,
      username: ch.username,
      password: ch.password,
      application: 'resultfly-cdp',
      // the library logs a failed query with its SQL text, which may hold an analyst's PII
      // literals; errors reach our own logger through the callers, without the statement
      log: { level: ClickHouseLogLevel.OFF },
      ...(opts.requestTimeoutMs === undefined ? {} : { request_timeout: opts.requestTimeoutMs }),
    })
  }
  let connection: ScopedSettingsChdbConnection
  try {
    mkdirSync(ch.chdbPath, { recursive: true, mode: 0o700 })
    connection = new ScopedSettingsChdbConnection(ch.chdbPath)
  } catch (err) {
    const mapped = clickHouseError(err, `opening chDB at ${ch.chdbPath}`)
    if (mapped instanceof CdpError) {
      throw new CdpError('clickhouse_unavailable',
        `cannot open chDB data dir ${ch.chdbPath}: ${mapped.message} (is another cdp process using it? ` +
        'in embedded mode query through the running service)', { cause: err })
    }
    throw mapped
  }
  return createClient({ connection })
}

export type PingOutcome = { ok: true } | { ok: false; error: CdpError }

/**
 * Liveness as a value, never thrown. On a server it runs `SELECT 1` (the `/ping` endpoint does
 * not check credentials); chDB always runs `SELECT 1`.
 */
export async function pingClickHouse(client: ClickHouseClient, opts: { timeoutMs?: number } = {}): Promise<PingOutcome> {
  try {
    const res = await client.ping({ select: true, abort_signal: AbortSignal.timeout(opts.timeoutMs ?? 5000) })
    if (res.success) return { ok: true }
    return { ok: false, error: unavailable(res.error) }
  } catch (err) {
    return { ok: false, error: unavailable(err) }
  }
}

function unavailable(err: unknown): CdpError {
  const mapped = clickHouseError(err, 'ping')
  if (mapped instanceof CdpError) return mapped
  // any failing ping (bad credentials, unknown server error) means "not usable now"
  const reason = err instanceof Error ? err.message : String(err)
  return new CdpError('clickhouse_unavailable', `ClickHouse ping failed: ${reason}`, { cause: err })
}

/** Closes the client; on chDB it first lets calls in flight finish. Safe to call twice. */
export async function closeClickHouse(client: ClickHouseClient): Promise<void> {
  await client.close()
}
