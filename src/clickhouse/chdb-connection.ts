/**
 * A chDB connection for @clickhouse/client that keeps per-call settings per call.
 *
 * chdb's own connection turns `clickhouse_settings` into `SET k = v; <query>` on its one
 * session, so a setting outlives the call it was meant for. Measured on chDB 26.7: after one
 * insert with `insert_deduplication_token = 'a'`, every later insert without a token reused
 * 'a' and was silently dropped as a duplicate; after one query with `readonly = 1` the whole
 * session refused writes for good. On a server both are per request (URL parameters).
 *
 * A call that carries settings therefore runs on a short-lived extra session on the same data
 * dir (chDB allows several sessions per process on one path; each has its own settings) and
 * that session is closed when the call settles. Opening one costs well under a millisecond.
 * Calls without settings use the long-lived session.
 */
import type { ClickHouseClientConfigOptions } from '@clickhouse/client'
import { createChdbConnection } from 'chdb/connection'

/**
 * The Connection contract as @clickhouse/client declares it. chdb/connection declares the same
 * contract against @clickhouse/client-common 1.23.0, which @clickhouse/client 1.23.1 bundles as
 * its own copy; the shapes match but TypeScript sees two declarations, hence the casts below.
 */
type Conn = NonNullable<ClickHouseClientConfigOptions['connection']>

function openChdb(path: string): Conn {
  return createChdbConnection({ path }) as unknown as Conn
}

export class ScopedSettingsChdbConnection implements Conn {
  readonly connectionName = 'chdb'
  readonly path: string
  readonly #main: Conn
  readonly #inflight = new Set<Promise<unknown>>()
  #closed = false

  constructor(path: string) {
    this.path = path
    this.#main = openChdb(path)
  }

  ping(params: Parameters<Conn['ping']>[0]): ReturnType<Conn['ping']> {
    return this.#main.ping(params)
  }

  query(params: Parameters<Conn['query']>[0]): ReturnType<Conn['query']> {
    return this.#run(params, (c) => c.query(params))
  }

  insert(params: Parameters<Conn['insert']>[0]): ReturnType<Conn['insert']> {
    return this.#run(params, (c) => c.insert(params))
  }

  command(params: Parameters<Conn['command']>[0]): ReturnType<Conn['command']> {
    return this.#run(params, (c) => c.command(params))
  }

  exec(params: Parameters<Conn['exec']>[0]): ReturnType<Conn['exec']> {
    return this.#run(params, (c) => c.exec(params))
  }

  /** Waits for calls in flight (a consumer's last insert during shutdown), then closes. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([...this.#inflight])
    await this.#main.close()
  }

  #run<T>(params: Settings, op: (c: Conn) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('ChdbConnection is closed'))
    const p = hasSettings(params) ? this.#scoped(op) : op(this.#main)
    this.#inflight.add(p)
    const forget = (): void => { this.#inflight.delete(p) }
    p.then(forget, forget)
    return p
  }

  async #scoped<T>(op: (c: Conn) => Promise<T>): Promise<T> {
    const session = openChdb(this.path)
    try {
      // query/exec results are already materialized buffers, so closing right after is safe
      return await op(session)
    } finally {
      await session.close()
    }
  }
}

type Settings = { clickhouse_settings?: Record<string, unknown> }

function hasSettings(params: Settings): boolean {
  const s = params.clickhouse_settings
  return s !== undefined && Object.values(s).some((v) => v !== undefined)
}
