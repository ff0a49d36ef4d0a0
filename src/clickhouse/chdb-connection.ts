/**
 * chDB sessions on one data dir, and a connection for @clickhouse/client that keeps per-call
 * settings per call. The one place that opens chDB sessions: the embedded client below and the
 * development gateway (tools/clickhouse-gateway) both use ChdbSessions.
 *
 * chdb's own connection turns `clickhouse_settings` into `SET k = v; <query>` on its one
 * session, so a setting outlives the call it was meant for. Measured on chDB 26.7: after one
 * insert with `insert_deduplication_token = 'a'`, every later insert without a token reused
 * 'a' and was silently dropped as a duplicate; after one query with `readonly = 1` the whole
 * session refused writes for good. A session also keeps its current database (`USE`). On a
 * server both are per request (URL parameters).
 *
 * A call that must not leak its settings therefore runs on a short-lived extra session on the
 * same data dir (chDB allows several sessions per process on one path; each has its own settings)
 * and that session is closed when the call settles. Opening one costs well under a millisecond.
 * Other calls use the long-lived session, which also holds the data dir for the process.
 */
import { createRequire } from 'node:module'
import type { ClickHouseClientConfigOptions } from '@clickhouse/client'

// chDB is loaded on first use, not on import: its native library (libchdb.so, 566 MB) costs a
// process about 200 MB of RSS once loaded, and a process on a ClickHouse server never needs it
type CreateChdbConnection = typeof import('chdb/connection')['createChdbConnection']
let create: CreateChdbConnection | undefined
function createChdbConnection(opts: { path: string }): ReturnType<CreateChdbConnection> {
  create ??= (createRequire(import.meta.url)('chdb/connection') as typeof import('chdb/connection')).createChdbConnection
  return create(opts)
}

/**
 * The Connection contract as @clickhouse/client declares it. chdb/connection declares the same
 * contract against @clickhouse/client-common 1.23.0, which @clickhouse/client 1.23.1 bundles as
 * its own copy; the shapes match but TypeScript sees two declarations, hence the cast below.
 */
export type ChdbSession = NonNullable<ClickHouseClientConfigOptions['connection']>
export type ChdbExecParams = Parameters<ChdbSession['exec']>[0]
export type ChdbExecResult = Awaited<ReturnType<ChdbSession['exec']>>

function openChdb(path: string): ChdbSession {
  return createChdbConnection({ path }) as unknown as ChdbSession
}

/** One data dir: a session held open until close(), and fresh sessions for calls that need their own. */
export class ChdbSessions {
  readonly path: string
  readonly #main: ChdbSession
  readonly #inflight = new Set<Promise<unknown>>()
  #closed = false

  /** Opens the long-lived session; throws (chDB's error) when another process holds the dir. */
  constructor(path: string) {
    this.path = path
    this.#main = openChdb(path)
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Runs `op` on the long-lived session. */
  shared<T>(op: (s: ChdbSession) => Promise<T>): Promise<T> {
    return this.#track(() => op(this.#main))
  }

  /**
   * Runs `op` on a session of its own, closed when `op` settles. query/exec results are
   * materialized buffers, so closing right after is safe.
   */
  scoped<T>(op: (s: ChdbSession) => Promise<T>): Promise<T> {
    return this.#track(async () => {
      const session = openChdb(this.path)
      try {
        return await op(session)
      } finally {
        await session.close()
      }
    })
  }

  /** Waits for calls in flight (a consumer's last insert during shutdown), then releases the dir. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([...this.#inflight])
    await this.#main.close()
  }

  #track<T>(run: () => Promise<T>): Promise<T> {
    // src/clickhouse/errors.ts reads this text as transient (the process is shutting down)
    if (this.#closed) return Promise.reject(new Error(`ChdbConnection is closed (${this.path})`))
    const p = run()
    this.#inflight.add(p)
    const forget = (): void => { this.#inflight.delete(p) }
    p.then(forget, forget)
    return p
  }
}

/** The embedded client's connection: calls with settings get a session of their own. */
export class ScopedSettingsChdbConnection implements ChdbSession {
  readonly connectionName = 'chdb'
  readonly #sessions: ChdbSessions

  constructor(path: string) {
    this.#sessions = new ChdbSessions(path)
  }

  get path(): string {
    return this.#sessions.path
  }

  ping(params: Parameters<ChdbSession['ping']>[0]): ReturnType<ChdbSession['ping']> {
    return this.#sessions.shared((s) => s.ping(params))
  }

  query(params: Parameters<ChdbSession['query']>[0]): ReturnType<ChdbSession['query']> {
    return this.#run(params, (c) => c.query(params))
  }

  insert(params: Parameters<ChdbSession['insert']>[0]): ReturnType<ChdbSession['insert']> {
    return this.#run(params, (c) => c.insert(params))
  }

  command(params: Parameters<ChdbSession['command']>[0]): ReturnType<ChdbSession['command']> {
    return this.#run(params, (c) => c.command(params))
  }

  exec(params: Parameters<ChdbSession['exec']>[0]): ReturnType<ChdbSession['exec']> {
    return this.#run(params, (c) => c.exec(params))
  }

  close(): Promise<void> {
    return this.#sessions.close()
  }

  #run<T>(params: Settings, op: (c: ChdbSession) => Promise<T>): Promise<T> {
    return hasSettings(params) ? this.#sessions.scoped(op) : this.#sessions.shared(op)
  }
}

type Settings = { clickhouse_settings?: Record<string, unknown> }

function hasSettings(params: Settings): boolean {
  const s = params.clickhouse_settings
  return s !== undefined && Object.values(s).some((v) => v !== undefined)
}
