/**
 * The analyst runner on chDB and through the ClickHouse HTTP path: the bypass corpus and a
 * property test that mutates it are all refused or return only tenant acme's rows; tenant
 * scoping holds in subqueries, joins, CTEs, UNION and views; query:all reads across tenants;
 * PII is an HMAC without pii:read; limits hold; a cancelled query leaves nothing running.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { isCdpError } from '../../src/errors.js'
import { waitFor } from '../helpers/process.js'
import { hmacHex, type AnalystPrincipal, type AnalystFormat } from '../../src/clickhouse/analyst.js'
import { BYPASS_CORPUS } from './fixtures/bypass-corpus.js'
import { mutation, mutatedSql } from './fixtures/bypass-mutations.js'
import { ACME, ACME_PII, OPERATOR, analystFixture, type AnalystFixture, type Engine } from './fixtures/analyst.js'

type Outcome = { refused: true; code: string; message: string } | { refused: false; text: string }

async function attempt(f: AnalystFixture, sql: string, principal: AnalystPrincipal = ACME, format: AnalystFormat = 'JSONEachRow'): Promise<Outcome> {
  try {
    return { refused: false, text: await f.run({ sql, format, principal }) }
  } catch (err) {
    if (!isCdpError(err)) throw err
    return { refused: true, code: err.code, message: err.message }
  }
}

const fill = (f: AnalystFixture, sql: string): string => sql.replaceAll('{db}', f.database).replaceAll('{canary}', f.canary)

const PROPERTY_RUNS_CHDB = 400
const PROPERTY_RUNS_HTTP = 200

/** whether ClickHouse's parser (on the same engine, without the guard) reads `sql` as SQL */
async function parses(f: AnalystFixture, sql: string): Promise<boolean> {
  try {
    await f.client.query({ query: 'SELECT formatQuerySingleLine({sql:String}) AS q', format: 'JSONEachRow', query_params: { sql } }).then((rs) => rs.text())
    return true
  } catch (err) {
    // a second statement is SQL all the same: the guard must refuse it
    return /Multi-statements are not allowed/.test(String((err as Error).message))
  }
}

/**
 * How an attempt ended: refused by the guard (its own `query refused:`), by ClickHouse's refusal
 * of a second statement (the guard's first look) or of a statement's own SETTINGS (readonly = 1,
 * under which every look of the guard runs), by a limit, by ClickHouse while running a
 * statement the guard let through (`error`), or ran (`rows`, `empty`). Anything else is unsafe.
 */
type Verdict = 'guard' | 'multi' | 'readonly' | 'limit' | 'error' | 'rows' | 'empty'
function verdict(o: Outcome): Verdict | 'unsafe' {
  if (!o.refused) return o.text.trim() === '' ? 'empty' : 'rows'
  if (o.code !== 'bad_request') return 'unsafe'
  if (o.message.startsWith('query refused: ')) return 'guard'
  if (/Multi-statements are not allowed/.test(o.message)) return 'multi'
  // EXPLAIN applies a statement's own SETTINGS before the guard reads its tree; readonly = 1 refuses them
  if (/^Cannot modify '[A-Za-z0-9_]+' setting in readonly mode/.test(o.message)) return 'readonly'
  if (o.message.startsWith('query exceeded a limit')) return 'limit'
  return 'error'
}

const HOSTNAME = ((): string => { try { return readFileSync('/etc/hostname', 'utf8').trim() } catch { return '' } })()
const PATH_VALUE = ((): string => { try { return readFileSync('/proc/self/environ', 'utf8').split('\0').find((e) => e.startsWith('PATH='))?.slice(5) ?? '' } catch { return '' } })()

/**
 * What must never be in an answer to tenant acme's `query:read` key without pii:read: tenant
 * beta's values (all hold BETA) or its name, the canary file's content, this host's name (when it
 * is long enough to be told apart), the process environment (its PATH), or acme's raw email. A
 * result's values are looked at, not its column names (they may spell the query); an error
 * message is looked at whole, and may name 'beta' only where the query itself did.
 */
function leakIn(o: Outcome, sql: string): string | undefined {
  const text = o.refused ? o.message : rowsOf(o).flatMap((r) => Object.values(r)).map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join('\n')
  if (/BETA/.test(text)) return "tenant beta's data"
  if ((!o.refused || !/beta/i.test(sql)) && /beta/i.test(text)) return "tenant beta's name"
  if (/CANARY/.test(text)) return 'host file content'
  if (HOSTNAME.length >= 6 && text.includes(HOSTNAME)) return "the host's name"
  if (PATH_VALUE.length >= 6 && text.includes(PATH_VALUE)) return 'the process environment'
  if (/ann@acme\.test/i.test(text)) return 'a raw email without pii:read'
  return undefined
}

const rowsOf = (o: Outcome): Record<string, unknown>[] =>
  o.refused ? [] : o.text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)

for (const engine of ['chdb', 'http'] as Engine[]) {
  void t.test(`${engine}: the bypass corpus is refused or filtered to the caller's tenant`, async (t) => {
    const f = await analystFixture(t, engine)
    t.ok(BYPASS_CORPUS.length >= 60, `${BYPASS_CORPUS.length} attempts`)
    for (const { name, sql } of BYPASS_CORPUS) {
      const o = await attempt(f, fill(f, sql))
      const v = verdict(o)
      t.ok(v !== 'unsafe' && leakIn(o, sql) === undefined, `${name}: ${v}`, { outcome: o })
    }
    // the examples of issue 7, precisely
    const unicode = await attempt(f, fill(f, "SELECT \u2018--\u2019 AS u, file('{canary}') AS f"))
    t.ok(unicode.refused && /file\(\) is not allowed/.test(unicode.message), 'Unicode quotes: file() seen and refused')
    const numbers = await attempt(f, 'SELECT count() FROM system.numbers')
    t.ok(numbers.refused && /limit/i.test(numbers.message), 'system.numbers stops at max_rows_to_read')
    t.same(rowsOf(await attempt(f, `SELECT DISTINCT tenant FROM ${f.database}.events`)), [{ tenant: 'acme' }], 'events: acme only')
  })

  void t.test(`${engine}: re-spelt, wrapped and extended attacks are refused by the guard or return only acme's rows`, async (t) => {
    const f = await analystFixture(t, engine)
    const tally: Record<Verdict, number> = { guard: 0, multi: 0, readonly: 0, limit: 0, error: 0, rows: 0, empty: 0 }
    let discarded = 0
    const started = Date.now()
    await fc.assert(fc.asyncProperty(mutation, async (m) => {
      const sql = mutatedSql(m, (s) => fill(f, s))
      const parse = await parses(f, sql)
      if (!parse) discarded++
      // text ClickHouse's own parser refuses proves nothing about the guard
      fc.pre(parse)
      const o = await attempt(f, sql)
      const v = verdict(o)
      if (v === 'unsafe') return false
      tally[v]++
      const leak = leakIn(o, sql)
      if (leak !== undefined) throw new Error(`${leak} in the answer to ${JSON.stringify(sql)}: ${JSON.stringify(o).slice(0, 400)}`)
      return true
    }), { numRuns: engine === 'chdb' ? PROPERTY_RUNS_CHDB : PROPERTY_RUNS_HTTP })
    t.comment(`${engine}: ${JSON.stringify(tally)}, ${discarded} discarded as not ClickHouse SQL, ${Date.now() - started} ms`)
    // the generator reaches both sides of the oracle
    t.ok(tally.guard > 0 && tally.rows > 0, 'some attacks were refused by the guard and some ran with rows')
  })

  void t.test(`${engine}: scoping, operator reads, PII masking, limits`, async (t) => {
    const f = await analystFixture(t, engine, { maxResultRows: 50 })
    const db = f.database
    const q = async (sql: string, p: AnalystPrincipal = ACME): Promise<Record<string, unknown>[]> => {
      const o = await attempt(f, sql, p)
      if (o.refused) t.fail(`${sql}: ${o.message}`)
      return rowsOf(o)
    }
    t.same(await q(`SELECT tenant, count() AS c FROM ${db}.events GROUP BY tenant ORDER BY tenant`, OPERATOR),
      [{ tenant: 'acme', c: 2 }, { tenant: 'beta', c: 1 }].map((r) => ({ ...r, c: r.c })), 'query:all sees both tenants')
    for (const sql of [
      `SELECT tenant FROM ${db}.events WHERE tenant IN (SELECT tenant FROM ${db}.identities)`,
      `SELECT b.tenant AS tenant FROM ${db}.events AS a JOIN ${db}.identities AS b ON a.tenant != b.tenant OR 1`,
      `WITH x AS (SELECT tenant FROM ${db}.events_resolved) SELECT tenant FROM x`,
      `SELECT tenant FROM ${db}.profile_canonical UNION ALL SELECT tenant FROM ${db}.profile_merges`,
      `SELECT toString(tenant) AS tenant FROM ${db}.dead_letters`,
    ]) {
      const rows = await q(sql)
      t.ok(rows.length > 0 || /dead_letters/.test(sql), `rows for ${sql}`)
      t.ok(rows.every((r) => r.tenant === 'acme'), `acme only: ${sql}`)
    }
    const canon = await q(`SELECT profile_id, canonical_id FROM ${db}.profile_canonical`)
    t.same(canon, [{ profile_id: 'prof_a', canonical_id: 'prof_1' }], "a view's inner table is filtered too")

    const masked = await q(`SELECT email, properties FROM ${db}.events WHERE external_event_id = 'a1'`)
    t.equal(masked[0]?.email, hmacHex(f.piiKey, 'ann@acme.test'), 'email is HMAC-SHA256 hex without pii:read')
    const props = JSON.parse(String(masked[0]?.properties)) as Record<string, unknown>
    t.same(props, { first_name: hmacHex(f.piiKey, '"Ann"'), amount: 5 }, 'pii property hashed, others kept')
    const raw = await q(`SELECT email FROM ${db}.events WHERE external_event_id = 'a1'`, ACME_PII)
    t.equal(raw[0]?.email, 'ann@acme.test', 'pii:read sees the raw email')
    const joined = await q(`SELECT count() AS c FROM ${db}.events AS e JOIN ${db}.identities AS i ON e.email = i.identity_value`)
    t.equal(Number(joined[0]?.c), 2, 'joins on hashed values still match')
    const ids = await q(`SELECT identity_value, raw_value FROM ${db}.identities`)
    t.same(ids, [{ identity_value: hmacHex(f.piiKey, 'ann@acme.test'), raw_value: hmacHex(f.piiKey, 'Ann@Acme.test') }], 'identities masked')
    const literal = await q(`SELECT '${db}.events' AS s, email FROM ${db}.events_resolved LIMIT 1`)
    t.equal(literal[0]?.s, `${db}.events`, 'a string literal naming a table is not rewritten')
    t.equal(literal[0]?.email, hmacHex(f.piiKey, 'ann@acme.test'), 'events_resolved masked')

    const tooMany = await attempt(f, 'SELECT number FROM numbers(100)')
    t.ok(tooMany.refused && tooMany.code === 'bad_request', 'maxResultRows')
    t.same(await q('SHOW TABLES FROM ' + db), (await q('SHOW TABLES FROM ' + db)), 'SHOW TABLES of the analyst database runs')
    t.ok((await q(`DESCRIBE TABLE ${db}.events`)).some((r) => r.name === 'email'), 'DESCRIBE runs')
    t.match(await f.run({ sql: 'SELECT 1 AS one', format: 'CSVWithNames', principal: ACME }), '"one"\n1\n', 'format from the request')
  })
}

/** analyst queries of this fixture still in system.processes (the probe itself excluded) */
async function runningAnalystQueries(f: AnalystFixture, marker: string): Promise<number> {
  const rs = await f.client.query({
    query: `SELECT count() AS c FROM system.processes WHERE position(query, {m:String}) > 0 AND position(query, 'system.processes') = 0`,
    format: 'JSONEachRow', query_params: { m: marker },
  })
  return Number((await rs.json<{ c: number | string }>())[0]?.c)
}

const started = async (f: AnalystFixture, marker: string): Promise<void> => {
  await waitFor('the slow query to show in system.processes', async () => ((await runningAnalystQueries(f, marker)) > 0 ? true : undefined), 20_000, 50)
}

for (const engine of ['chdb', 'http'] as Engine[]) {
  void t.test(`${engine}: at most N queries per tenant; a cancelled query is killed in ClickHouse`, async (t) => {
    // max_execution_time far beyond the test's deadline: only KILL QUERY can end the query in time
    const f = await analystFixture(t, engine, { maxConcurrentPerTenant: 1, maxRowsToRead: 1_000_000_000_000, maxExecutionTime: 600 })
    const slow = 'SELECT count() FROM numbers(999999999999)'
    const ac = new AbortController()
    const first = f.run({ sql: slow, format: 'JSONEachRow', principal: ACME, signal: ac.signal }).then(() => 'done', (e: unknown) => e)
    await started(f, '999999999999')
    const second = await attempt(f, 'SELECT 1')
    t.ok(second.refused && second.code === 'rate_limited', 'a second concurrent query of the tenant is 429')
    const other = await attempt(f, 'SELECT 1', { tenant: 'beta', permissions: ['query:read'] })
    t.notOk(other.refused, 'another tenant is not held up')
    ac.abort()
    const ended = await first
    t.ok(isCdpError(ended) && /cancelled/.test(ended.message), `the cancelled query ends with an error (${String((ended as Error).message).slice(0, 80)})`)
    // the runner's promise settles only once the engine let go; poll anyway, with a generous deadline
    const gone = await waitFor('the killed query to leave system.processes', async () => ((await runningAnalystQueries(f, '999999999999')) === 0 ? true : undefined), 20_000)
    t.ok(gone, 'nothing of it left in system.processes')
    t.notOk((await attempt(f, 'SELECT 1')).refused, 'the slot is free again')
  })

  void t.test(`${engine}: cancelAll() kills every analyst query in flight and refuses new ones`, async (t) => {
    const f = await analystFixture(t, engine, { maxRowsToRead: 1_000_000_000_000, maxExecutionTime: 600 })
    const runs = [ACME, OPERATOR].map((principal, i) =>
      f.run({ sql: `SELECT count() FROM numbers(99999999999${i})`, format: 'JSONEachRow', principal }).then(() => 'done', (e: unknown) => e))
    await started(f, '999999999990')
    await started(f, '999999999991')
    await f.run.cancelAll()
    t.equal(await runningAnalystQueries(f, '99999999999'), 0, 'nothing left in system.processes once cancelAll() resolved')
    for (const r of await Promise.all(runs)) t.ok(isCdpError(r) && r.code === 'clickhouse_unavailable', `ended as shutting down: ${String((r as Error).message)}`)
    const after = await attempt(f, 'SELECT 1')
    t.ok(after.refused && after.code === 'clickhouse_unavailable', 'a new query after cancelAll() is refused')
  })
}

void t.test('chdb: the table list is cached; a table created later is refused until read again, then scoped', async (t) => {
  const f = await analystFixture(t, 'chdb')
  const db = f.database
  await f.client.command({ query: `CREATE TABLE ${db}.later (tenant String, v String) ENGINE = MergeTree ORDER BY tenant` })
  await f.client.command({ query: `INSERT INTO ${db}.later VALUES ('acme', 'mine'), ('beta', 'BETA')` })
  await f.client.command({ query: `CREATE TABLE ${db}.untenanted (v String) ENGINE = MergeTree ORDER BY v` })
  await f.client.command({ query: `INSERT INTO ${db}.untenanted VALUES ('BETA')` })
  // a refusal naming a table not on the list reads the list again (at most once a second)
  await new Promise((r) => setTimeout(r, 1100))
  t.same(rowsOf(await attempt(f, `SELECT tenant, v FROM ${db}.later`)), [{ tenant: 'acme', v: 'mine' }], 'a table created later is on the list and filtered')
  const untenanted = await attempt(f, `SELECT v FROM ${db}.untenanted`)
  t.ok(untenanted.refused && /not allowed/.test(untenanted.message), 'a table without a tenant column stays unreadable')
  await f.run.refreshTables()
  t.same(rowsOf(await attempt(f, `SELECT count() AS c FROM ${db}.later`)).map((r) => Number(r.c)), [1], 'refreshTables() keeps it scoped')
})
