/**
 * Analyst queries (`POST /v1/cdp/query`, `cdp query`): one guarded, tenant-scoped, bounded,
 * PII-masked SELECT at a time. docs/SECURITY.md explains the model; in short:
 *
 * - Guard: guard.ts decides from ClickHouse's parser and analyzer on the same engine, and the
 *   canonical text ClickHouse printed is what runs.
 * - Tenant: a `query:read` key of tenant T runs with `additional_table_filters` naming every
 *   table and view of the analyst databases that has a `tenant` column, each with
 *   `tenant = unhex('<hex of T>')` (hex: no quoting at any level can go wrong). ClickHouse applies
 *   the filter to every read of those tables, also inside subqueries, joins, CTEs, UNION and the
 *   views' own inner tables (measured on chDB 26.7). Tables without a `tenant` column are not
 *   on the caller's table list at all. Only an operator principal (no tenant) with `query:all`, an
 *   operator key made by the CLI, runs without the filter; a principal of a tenant is always
 *   filtered, whatever permissions it lists.
 * - Limits: from config, passed as settings with `readonly = 1` last, so the statement can change
 *   none of them (readonly = 1 refuses every SET and SETTINGS); at most N queries in flight per
 *   tenant in this process, and at most `maxConcurrentTotal` of all tenants together, the rest
 *   waiting in a bounded queue (query-gate.ts), so analysts cannot take every core from ingestion.
 * - PII: keys without `pii:read` read masking views in `<database>_masked` (created here at
 *   start-up) in which identity values, dead-letter payloads and contract properties flagged
 *   `pii` are HMAC-SHA256(key, value) in hex, computed by ClickHouse. The caller's SQL keeps
 *   naming `cdp.events`: the canonical text's references to a masked table are pointed at its
 *   view, and the result is checked again by the guard against a table list that holds only the
 *   views, so a reference the rewrite missed is refused rather than read raw.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ClickHouseClient, ClickHouseSettings, DataFormat } from '@clickhouse/client'
import type { Config } from '../config/index.js'
import type { ContractRegistry } from '../contracts/registry.js'
import { CdpError } from '../errors.js'
import { clickHouseError, selectRows } from './errors.js'
import { QUERY_FORMATS, type QueryFormat } from './formats.js'
import { SYSTEM_TABLES, checkAst, checkQueryTree, type GuardResult } from './guard.js'
import { quoteIdent } from './sql.js'
import { QueryGate } from './query-gate.js'

/** the limits an analyst query runs under (config `query.*` without the PII key); see Config['query'] */
export type AnalystLimits = Omit<Config['query'], 'piiHashKey'>

export const DEFAULT_ANALYST_LIMITS: Readonly<AnalystLimits> = Object.freeze({
  maxExecutionTime: 30,
  maxRowsToRead: 1_000_000_000,
  maxResultRows: 100_000,
  maxResultBytes: 64 * 1024 * 1024,
  maxMemoryUsage: 1024 * 1024 * 1024,
  maxConcurrentPerTenant: 2,
  maxThreads: 1,
  // the embedded default: one core for analysts, the rest for ingestion (config picks 8 on a server)
  maxConcurrentTotal: 1,
  maxQueued: 16,
  maxQueueWaitMs: 10_000,
})

/** the result formats an analyst may ask for (src/clickhouse/formats.ts lists them once) */
export type AnalystFormat = QueryFormat

export interface AnalystPrincipal {
  /** null: an operator key (reads every tenant with query:all) */
  tenant: string | null
  permissions: readonly string[]
}

export interface AnalystRequest {
  sql: string
  format: AnalystFormat
  principal: AnalystPrincipal
  /** aborted when the HTTP client goes away */
  signal?: AbortSignal
}

/** one analyst query: the answer in the asked format, or a CdpError */
export type AnalystQuery = (req: AnalystRequest) => Promise<string>

export interface AnalystQueryRunner extends AnalystQuery {
  /**
   * Refuses new queries and kills every one in flight in ClickHouse (KILL QUERY on the same
   * engine); resolves when the engine has let go of them, or after the kill deadline. The
   * service calls it first when it shuts down, so the drain never waits on analyst SQL.
   */
  cancelAll(): Promise<void>
  /** re-reads the analyst table list now (after migrations that add or change tables) */
  refreshTables(): Promise<void>
}

export interface AnalystRunnerOptions {
  database: string
  limits?: Partial<AnalystLimits>
  /** HMAC key for masked values (at least 16 bytes of secret) */
  piiHashKey: string
  /** contract property names flagged `pii` (masked inside `properties`) */
  piiProperties?: readonly string[]
  /** typed `events` columns of pii properties */
  piiColumns?: readonly string[]
  /** how long the analyst table list is reused before it is read again (ms, default 30 s) */
  tableListTtlMs?: number
  /**
   * false: use the masking views the schema's owner (the consumer) created, never (re)create
   * them; piiHashKey is then unused. A query-only process (`serve --role api` over a ClickHouse
   * server) runs so, so two processes with different keys cannot fight over the views.
   */
  createViews?: boolean
}

/** identity and payload columns masked for keys without pii:read, per table */
const PII_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  events: ['email', 'phone', 'external_user_id', 'device_key'],
  events_resolved: ['email', 'phone', 'external_user_id', 'device_key'],
  identities: ['identity_value', 'raw_value'],
  dead_letters: ['key', 'value_base64'],
}

export function maskedDatabase(database: string): string {
  return `${database}_masked`
}

/**
 * HMAC-SHA256 as ClickHouse SQL over a String (or Nullable(String)) expression, in lower hex.
 * The key's inner and outer pads are literals of the view's definition.
 */
export function hmacSql(expr: string, key: string): string {
  const k = Buffer.alloc(64)
  const raw = Buffer.from(key, 'utf8')
  ;// HMAC hashes keys longer than the block size first
  ;(raw.length > 64 ? createHash('sha256').update(raw).digest() : raw).copy(k)
  const ipad = Buffer.from(k.map((b) => b ^ 0x36)).toString('hex')
  const opad = Buffer.from(k.map((b) => b ^ 0x5c)).toString('hex')
  return `lower(hex(SHA256(concat(unhex('${opad}'), SHA256(concat(unhex('${ipad}'), ${expr}))))))`
}

/** Node's HMAC of a value, as the masking views compute it (tests and operators compare with it). */
export function hmacHex(key: string, value: string): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('hex')
}

/**
 * The key from config, or one generated once and kept in `file` (0600) so hashes stay stable
 * across restarts. Several instances must share one key: set it in config.
 */
export function loadOrCreatePiiKey(configured: string | undefined, file: string): string {
  if (configured !== undefined) return configured
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const key = randomBytes(32).toString('hex')
  writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' })
  chmodSync(file, 0o600)
  return key
}

const select = <T>(client: ClickHouseClient, query: string, params?: Record<string, unknown>): Promise<T[]> =>
  selectRows<T>(client, query, params, 'reading the analyst schema')

/** (Re)creates the masking views; their column lists follow the tables', so run after migrations. */
export async function ensureMaskedViews(client: ClickHouseClient, opts: AnalystRunnerOptions): Promise<void> {
  const db = quoteIdent(opts.database)
  const mdb = quoteIdent(maskedDatabase(opts.database))
  const run = async (query: string): Promise<void> => {
    try { await client.command({ query }) } catch (err) { throw clickHouseError(err, 'creating the masking views') }
  }
  await run(`CREATE DATABASE IF NOT EXISTS ${mdb}`)
  const cols = await select<{ table: string; name: string; type: string }>(client,
    'SELECT table, name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position', { db: opts.database })
  const byTable = new Map<string, Map<string, string>>()
  for (const c of cols) {
    let m = byTable.get(c.table)
    if (m === undefined) byTable.set(c.table, (m = new Map()))
    m.set(c.name, c.type)
  }
  const mask = (e: string): string => hmacSql(e, opts.piiHashKey)
  const props = [...new Set(opts.piiProperties ?? [])].sort()
  for (const [table, masked] of Object.entries(PII_COLUMNS)) {
    const columns = byTable.get(table)
    if (columns === undefined) continue
    const replace: string[] = []
    for (const c of masked) if (columns.has(c)) replace.push(`${mask(quoteIdent(c))} AS ${quoteIdent(c)}`)
    if (table === 'events' || table === 'events_resolved') {
      for (const c of opts.piiColumns ?? []) {
        if (columns.has(c)) replace.push(`${mask(`toString(${quoteIdent(c)})`)} AS ${quoteIdent(c)}`)
      }
      if (props.length > 0 && columns.has('properties')) {
        const list = `[${props.map((p) => `'${p.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(', ')}]`
        // each pii key's raw JSON value becomes the JSON string of its hash; other keys are kept
        replace.push(`if(isValidJSON(properties), concat('{', arrayStringConcat(arrayMap(kv -> concat(toJSONString(kv.1), ':', ` +
          `if(has(${list}, kv.1), toJSONString(${mask('kv.2')}), kv.2)), JSONExtractKeysAndValuesRaw(properties)), ','), '}'), ` +
          `${mask('properties')}) AS properties`)
      }
    }
    const t = quoteIdent(table)
    await run(`CREATE OR REPLACE VIEW ${mdb}.${t} AS SELECT * REPLACE (${replace.join(', ')}) FROM ${db}.${t}`)
  }
}

interface TableLists {
  /** tables with a tenant column: the filter map's keys */
  tenantTables: string[]
  /** what a pii:read key may name */
  raw: Set<string>
  /** what other keys may name (masking views instead of the raw tables) */
  masked: Set<string>
  /** raw name -> masking view name */
  redirect: Map<string, string>
}

async function tableLists(client: ClickHouseClient, database: string): Promise<TableLists> {
  const mdb = maskedDatabase(database)
  const rows = await select<{ database: string; table: string }>(client,
    `SELECT database, table FROM system.columns WHERE database IN ({db:String}, {mdb:String}) AND name = 'tenant'`,
    { db: database, mdb })
  const tenantTables = rows.map((r) => `${r.database}.${r.table}`).filter((n) => /^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$/.test(n)).sort()
  const maskedNames = new Set(rows.filter((r) => r.database === mdb).map((r) => r.table))
  const raw = new Set([...SYSTEM_TABLES, ...tenantTables.filter((n) => n.startsWith(`${database}.`))])
  const masked = new Set<string>(SYSTEM_TABLES)
  const redirect = new Map<string, string>()
  for (const r of rows) {
    if (r.database !== database) continue
    if (r.table in PII_COLUMNS) {
      if (maskedNames.has(r.table)) {
        masked.add(`${mdb}.${r.table}`)
        redirect.set(`${database}.${r.table}`, `${mdb}.${r.table}`)
      }
      // without its masking view a pii table is not readable at all
    } else masked.add(`${database}.${r.table}`)
  }
  return { tenantTables, raw, masked, redirect }
}

/** additional_table_filters: every tenant table and view, `tenant = unhex('<hex>')` */
export function tenantFilters(tables: readonly string[], tenant: string): string {
  const cond = `tenant = unhex(''${Buffer.from(tenant, 'utf8').toString('hex')}'')`
  return `{${tables.map((t) => `'${t}': '${cond}'`).join(', ')}}`
}

/**
 * Points `db.table` references in ClickHouse's canonical text at their masking views. Only code
 * is touched: string literals and quoted identifiers are skipped. The result is guarded again.
 */
export function redirectTables(canonical: string, redirect: ReadonlyMap<string, string>): string {
  if (redirect.size === 0) return canonical
  const names = [...redirect.keys()].map((n) => n.replace('.', '\\.')).join('|')
  const re = new RegExp(`(?<![A-Za-z0-9_.\`])(${names})(?![A-Za-z0-9_])`, 'g')
  let out = ''
  let i = 0
  while (i < canonical.length) {
    const c = canonical[i]!
    if (c === '\'' || c === '`' || c === '"') {
      let j = i + 1
      while (j < canonical.length && canonical[j] !== c) j += canonical[j] === '\\' ? 2 : 1
      out += canonical.slice(i, j + 1)
      i = j + 1
      continue
    }
    let j = i
    while (j < canonical.length && !['\'', '`', '"'].includes(canonical[j]!)) j++
    out += canonical.slice(i, j).replace(re, (m) => redirect.get(m) ?? m)
    i = j
  }
  return out
}

/** EXPLAIN's one-column result as lines; undefined when it is not that shape */
function explainLines(jsonEachRow: string): string | undefined {
  const lines: string[] = []
  const all = jsonEachRow.split('\n').filter((l) => l !== '')
  // the HTTP gateway answers EXPLAIN in TabSeparated whatever was asked: a line break inside a
  // value is escaped there, so its lines are the rows
  if (all.length > 0 && !all[0]!.startsWith('{')) {
    // embedded chDB 26.7 answers EXPLAIN as CSV whatever was asked: one quoted field per line,
    // quotes doubled; a line break inside a field would leave a line unquoted, which is refused
    if (!all[0]!.startsWith('"')) return all.join('\n')
    const out: string[] = []
    for (const l of all) {
      const m = /^"((?:[^"]|"")*)"$/.exec(l)
      if (m === null) return undefined
      out.push(m[1]!.replaceAll('""', '"'))
    }
    return out.join('\n')
  }
  for (const l of all) {
    const row = JSON.parse(l) as Record<string, unknown>
    const keys = Object.keys(row)
    if (keys.length !== 1 || keys[0] !== 'explain' || typeof row.explain !== 'string') return undefined
    // a line break inside one row would let a name fake a node: refuse
    if (/[\r\n]/.test(row.explain)) return undefined
    // chDB 26.7 (embedded) wraps each EXPLAIN line in double quotes
    const line = row.explain.length >= 2 && row.explain.startsWith('"') && row.explain.endsWith('"') ? row.explain.slice(1, -1) : row.explain
    lines.push(line)
  }
  return lines.join('\n')
}

function refused(reason: string): CdpError {
  return new CdpError('bad_request', `query refused: ${reason}`)
}

/** how often a kill is repeated until the engine lets go of the query */
const KILL_RETRY_MS = 200

/** why a query was cancelled from our side: the caller gets a message that says so */
type CancelReason = 'client' | 'deadline' | 'shutdown'

function cancelledError(reason: CancelReason, limits: AnalystLimits, cause?: unknown): CdpError {
  if (reason === 'shutdown') return new CdpError('clickhouse_unavailable', 'the service is shutting down; the analyst query was cancelled', { cause, retryAfter: 5 })
  if (reason === 'deadline') return new CdpError('bad_request', `query exceeded a limit: max_execution_time (${limits.maxExecutionTime} s)`, { cause })
  return new CdpError('bad_request', 'query cancelled: the client went away', { cause })
}

interface Running {
  cancel(reason: CancelReason): void
  /** settles when every ClickHouse call of the query has settled */
  done: Promise<void>
}

/**
 * The runner behind `POST /v1/cdp/query`. Creates the masking views (so call it after the
 * migrations) and returns a function that guards, scopes, bounds and runs one statement.
 *
 * Cancellation: every query gets its own id (`cdp-analyst-<uuid>`), sent as `query_id` (a server
 * keeps it) and as the `log_comment` setting of each of its calls (embedded chDB makes up its
 * own query ids but keeps the settings, visible in system.processes.Settings). Aborting a
 * request does not stop a query in ClickHouse: chDB runs the call to completion on a worker
 * thread (measured on chDB 26.7: it stayed in system.processes until max_execution_time), and a
 * server keeps running a query whose HTTP client left. So the client leaving, the deadline
 * (max_execution_time plus a grace, should the engine not enforce it) and cancelAll() each run
 * `KILL QUERY` on the same engine, repeated until the call settles. The calls carry no abort
 * signal on purpose: their promise settles only once the engine has let go, so the in-flight
 * count, the per-tenant slot and the shutdown all wait for the real end of the work.
 */
export async function createAnalystQueryRunner(client: ClickHouseClient, opts: AnalystRunnerOptions): Promise<AnalystQueryRunner> {
  const limits: AnalystLimits = { ...DEFAULT_ANALYST_LIMITS, ...opts.limits }
  if (opts.createViews !== false) await ensureMaskedViews(client, opts)
  // null: the operators' slot group
  const inFlight = new Map<string | null, number>()
  const gate = new QueryGate({ maxActive: limits.maxConcurrentTotal, maxQueued: limits.maxQueued, maxWaitMs: limits.maxQueueWaitMs })
  const running = new Map<string, Running>()
  let closed = false

  // The table list is an allow list and the source of the tenant filter map. Reading it on
  // every query costs a round trip, so it is cached. A stale list fails closed: a table created
  // after the last read is on neither the allow list nor the filter map, so the guard refuses
  // it until the next read (every tableListTtlMs, after refreshTables(), or at once when the
  // guard refuses a table not on the list); a table whose tenant column went away keeps a
  // filter naming a column it no longer has, and ClickHouse refuses the query.
  const ttl = opts.tableListTtlMs ?? 30_000
  let lists: { at: number; value: Promise<TableLists> } | undefined
  const readLists = (force = false): Promise<TableLists> => {
    if (!force && lists !== undefined && Date.now() - lists.at < ttl) return lists.value
    const value = tableLists(client, opts.database)
    const entry = { at: Date.now(), value }
    lists = entry
    // a failed read is not cached
    value.catch(() => { if (lists === entry) lists = undefined })
    return value
  }
  await readLists(true)

  const kill = async (id: string): Promise<void> => {
    // the id is ours (cdp-analyst-<uuid>), so it needs no quoting beyond the literal
    await client.command({ query: `KILL QUERY WHERE query_id = '${id}' OR Settings['log_comment'] = '${id}' ASYNC` })
  }

  /** kills `id` until `settled` resolves, or for at most the query's own time limit plus a grace */
  const killUntil = async (id: string, settled: Promise<unknown>): Promise<void> => {
    let over = false
    void settled.then(() => { over = true }, () => { over = true })
    const until = Date.now() + (limits.maxExecutionTime + 10) * 1000
    while (!over && Date.now() < until) {
      try { await kill(id) } catch { /* the engine may be closing; the loop ends with the call */ }
      await Promise.race([settled.catch(() => undefined), new Promise((r) => setTimeout(r, KILL_RETRY_MS))])
    }
  }

  const baseSettings = (): ClickHouseSettings => ({
    max_execution_time: limits.maxExecutionTime,
    timeout_overflow_mode: 'throw',
    max_rows_to_read: String(limits.maxRowsToRead),
    read_overflow_mode: 'throw',
    max_result_rows: String(limits.maxResultRows),
    max_result_bytes: String(limits.maxResultBytes),
    result_overflow_mode: 'throw',
    max_memory_usage: String(limits.maxMemoryUsage),
    max_threads: limits.maxThreads,
  })

  interface CallContext { id: string; queryId: string; cancelled: () => CancelReason | undefined; onCancel: (f: () => void) => () => void }

  const call = async (ctx: CallContext, query: string, format: string, settings: ClickHouseSettings, params?: Record<string, unknown>): Promise<string> => {
    const before = ctx.cancelled()
    if (before !== undefined) throw cancelledError(before, limits)
    const p = client.query({
      query, format: format as DataFormat, query_id: ctx.queryId,
      // last: chDB applies settings one SET at a time, and none may follow readonly = 1
      clickhouse_settings: { ...settings, log_comment: ctx.id, readonly: '1' },
      ...(params === undefined ? {} : { query_params: params }),
    }).then((rs) => rs.text())
    const stop = ctx.onCancel(() => { void killUntil(ctx.id, p) })
    try {
      return await p
    } catch (err) {
      // a client-side failure (socket, request timeout) leaves a server query running
      void kill(ctx.id).catch(() => undefined)
      const reason = ctx.cancelled()
      if (reason !== undefined) throw cancelledError(reason, limits, err)
      const mapped = clickHouseError(err, 'analyst query')
      if (mapped instanceof CdpError) throw mapped
      const message = err instanceof Error ? err.message : String(err)
      const type = (err as { type?: unknown }).type
      if (type === 'TIMEOUT_EXCEEDED' || type === 'TOO_MANY_ROWS' || type === 'TOO_MANY_ROWS_OR_BYTES' || type === 'MEMORY_LIMIT_EXCEEDED') {
        throw new CdpError('bad_request', `query exceeded a limit: ${message}`, { cause: err })
      }
      throw new CdpError('bad_request', message, { cause: err })
    } finally {
      stop()
    }
  }

  const guard = async (ctx: CallContext, canonical: string, tables: ReadonlySet<string>, settings: ClickHouseSettings): Promise<GuardResult> => {
    if (/[\r\n]/.test(canonical)) return { ok: false, reason: 'line breaks in identifiers are not allowed' }
    const ast = explainLines(await call({ ...ctx, queryId: `${ctx.id}-ast` }, `EXPLAIN AST ${canonical}`, 'JSONEachRow', settings))
    if (ast === undefined) return { ok: false, reason: 'unrecognised EXPLAIN output' }
    const checked = checkAst(ast, { database: opts.database, tables, explainFormat: 'JSONEachRow' })
    if (!checked.ok || checked.kind !== 'select') return checked
    const tree = explainLines(await call({ ...ctx, queryId: `${ctx.id}-tree` }, `EXPLAIN QUERY TREE ${canonical}`, 'JSONEachRow', settings))
    if (tree === undefined) return { ok: false, reason: 'unrecognised EXPLAIN output' }
    return checkQueryTree(tree, tables)
  }

  const execute = async (req: AnalystRequest, ctx: CallContext): Promise<string> => {
    const p = req.principal
    const rawPii = p.permissions.includes('pii:read')
    const plan = async (l: TableLists): Promise<{ canonical: string; settings: ClickHouseSettings; verdict: GuardResult }> => {
      const settings = baseSettings()
      // a Map literal in ClickHouse's text form; clickhouse-js passes strings through as they are
      if (p.tenant !== null) settings.additional_table_filters = tenantFilters(l.tenantTables, p.tenant) as unknown as ClickHouseSettings['additional_table_filters']
      // formatting and EXPLAIN answer with more text than a small result limit allows
      const { max_result_rows: _r, max_result_bytes: _b, result_overflow_mode: _m, ...guardSettings } = settings
      const formatted = await call({ ...ctx, queryId: `${ctx.id}-fmt` }, 'SELECT formatQuerySingleLine({sql:String}) AS q', 'JSONEachRow', guardSettings, { sql: req.sql })
      let canonical = (JSON.parse(formatted.trim()) as { q: string }).q
      if (!rawPii) canonical = redirectTables(canonical, l.redirect)
      const verdict = await guard(ctx, canonical, rawPii ? l.raw : l.masked, guardSettings)
      return { canonical, settings, verdict }
    }
    let planned = await plan(await readLists())
    // a table created since the list was read: read it again once, then decide
    if (!planned.verdict.ok && /^table .* is not allowed$/.test(planned.verdict.reason) && Date.now() - (lists?.at ?? 0) > 1000) {
      planned = await plan(await readLists(true))
    }
    if (!planned.verdict.ok) throw refused(planned.verdict.reason)
    return await call(ctx, planned.canonical, req.format, planned.settings)
  }

  const run = async (req: AnalystRequest): Promise<string> => {
    if (!(QUERY_FORMATS as readonly string[]).includes(req.format)) {
      throw new CdpError('bad_request', `unsupported format ${JSON.stringify(req.format)}; use one of ${QUERY_FORMATS.join(', ')}`)
    }
    const p = req.principal
    // the same rule as the route's (auth/keys.ts grants), held here too so that no caller of the
    // runner can read across tenants with a tenant's principal
    if (p.tenant === null ? !p.permissions.includes('query:all') : !p.permissions.includes('query:read') || p.permissions.includes('query:all')) {
      throw new CdpError('forbidden', p.tenant === null ? 'an operator key needs query:all' : 'a key of a tenant needs query:read and cannot hold query:all')
    }
    if (closed) throw cancelledError('shutdown', limits)
    const slot = p.tenant
    const n = inFlight.get(slot) ?? 0
    if (n >= limits.maxConcurrentPerTenant) {
      throw new CdpError('rate_limited', `at most ${limits.maxConcurrentPerTenant} analyst queries at a time per tenant`, { retryAfter: 1 })
    }
    inFlight.set(slot, n + 1)
    const freeSlot = (): void => {
      const left = (inFlight.get(slot) ?? 1) - 1
      if (left <= 0) inFlight.delete(slot)
      else inFlight.set(slot, left)
    }
    // a query waiting for a place holds its tenant's slot, so one tenant cannot fill the queue
    const place = await gate.acquire(req.signal)
    if (!place.ok) {
      freeSlot()
      if (place.reason === 'closed') throw cancelledError('shutdown', limits)
      if (place.reason === 'aborted') throw cancelledError('client', limits)
      const retryAfter = Math.max(1, Math.ceil(limits.maxQueueWaitMs / 1000))
      throw new CdpError('rate_limited', place.reason === 'queue_full'
        ? `at most ${limits.maxConcurrentTotal} analyst queries run at a time in this service and ${limits.maxQueued} are waiting already`
        : `no place for the query within ${limits.maxQueueWaitMs} ms: at most ${limits.maxConcurrentTotal} analyst queries run at a time in this service`, { retryAfter })
    }
    // cancelAll() may have run between the grant and here; from here on to running.set nothing awaits
    if (closed) { freeSlot(); place.release(); throw cancelledError('shutdown', limits) }

    const id = `cdp-analyst-${randomUUID()}`
    let reason: CancelReason | undefined
    const listeners = new Set<() => void>()
    const cancel = (r: CancelReason): void => {
      if (reason !== undefined) return
      reason = r
      for (const f of listeners) f()
    }
    const ctx: CallContext = {
      id, queryId: id,
      cancelled: () => reason,
      onCancel: (f) => {
        if (reason !== undefined) f()
        else listeners.add(f)
        return () => { listeners.delete(f) }
      },
    }
    const onAbort = (): void => cancel('client')
    req.signal?.addEventListener('abort', onAbort, { once: true })
    if (req.signal?.aborted === true) cancel('client')
    // ClickHouse enforces max_execution_time itself; this is the backstop should it not
    const deadline = setTimeout(() => cancel('deadline'), (limits.maxExecutionTime + 5) * 1000)
    deadline.unref()
    const result = execute(req, ctx)
    const done = result.then(() => undefined, () => undefined)
    running.set(id, { cancel, done })
    try {
      return await result
    } finally {
      clearTimeout(deadline)
      req.signal?.removeEventListener('abort', onAbort)
      running.delete(id)
      freeSlot()
      place.release()
    }
  }

  const cancelAll = async (): Promise<void> => {
    closed = true
    gate.close()
    const all = [...running.values()]
    for (const r of all) r.cancel('shutdown')
    await Promise.all(all.map((r) => r.done))
  }

  return Object.assign(run, { cancelAll, refreshTables: async () => { await readLists(true) } })
}

/**
 * The runner as the service builds it: limits and key from config, pii properties and their
 * typed columns from the contracts. The one place the composition root calls.
 */
export async function analystQueryRunner(
  client: ClickHouseClient,
  config: Readonly<Pick<Config, 'dataDir' | 'query'> & { clickhouse: Pick<Config['clickhouse'], 'database'> }>,
  contracts: Pick<ContractRegistry, 'all' | 'segmentableColumns'>,
  opts: { createViews?: boolean } = {},
): Promise<AnalystQueryRunner> {
  if (opts.createViews === false) {
    const { piiHashKey: _unused, ...queryLimits } = config.query
    return createAnalystQueryRunner(client, { database: config.clickhouse.database, limits: queryLimits, piiHashKey: '', createViews: false })
  }
  const piiProperties = new Set<string>()
  for (const c of contracts.all()) for (const [name, spec] of Object.entries(c.properties)) if (spec.pii) piiProperties.add(name)
  const piiColumns = contracts.segmentableColumns().filter((s) => piiProperties.has(s.property)).map((s) => s.column)
  const { piiHashKey, ...limits } = config.query
  return createAnalystQueryRunner(client, {
    database: config.clickhouse.database,
    limits,
    piiHashKey: loadOrCreatePiiKey(piiHashKey, join(config.dataDir, 'pii-hash.key')),
    piiProperties: [...piiProperties],
    piiColumns,
  })
}
