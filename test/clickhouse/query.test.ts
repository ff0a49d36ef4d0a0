import t from 'tap'
import { isCdpError } from '../../src/errors.js'
import { runReadOnlyQuery, type ReadOnlyFormat } from '../../src/clickhouse/query.js'
import { checkReadOnlySql } from '../../src/clickhouse/sql.js'
import { count, eventRow, harness } from './fixtures/harness.js'

void t.test('statement check: reads pass, anything else or anything hidden is refused', async (t) => {
  const allowed = [
    'SELECT 1',
    '  select 1 ;  ',
    'WITH x AS (SELECT 1) SELECT * FROM x',
    '(SELECT 1) UNION ALL (SELECT 2)',
    'SHOW TABLES FROM cdp',
    'DESCRIBE TABLE cdp.events',
    'desc cdp.events',
    'EXPLAIN SELECT 1',
    "SELECT 'DROP TABLE x; --' AS s",
    "SELECT 'it''s', 'a\\'b' -- trailing; comment",
    'SELECT $$; DROP TABLE x$$',
    'SELECT /* outer /* inner */ still; comment */ 1',
    'SELECT 1 # a comment; DROP',
    'SELECT `file_name` FROM t',
    'SELECT urlEncode(x), URLHierarchy(x) FROM t',
  ]
  for (const sql of allowed) t.ok(checkReadOnlySql(sql).ok, `allowed: ${sql}`)
  const refused = [
    '',
    '   ;  ',
    '-- only a comment',
    'INSERT INTO cdp.events VALUES (1)',
    'DROP TABLE cdp.events',
    'ALTER TABLE cdp.events DELETE WHERE 1',
    'TRUNCATE TABLE cdp.events',
    'OPTIMIZE TABLE cdp.events FINAL',
    'SYSTEM STOP MERGES',
    'SET readonly = 0',
    'CREATE TABLE x (a UInt8) ENGINE = Memory',
    'SELECT 1; DROP TABLE cdp.events',
    'SELECT 1; SELECT 2',
    '/* SELECT */ DROP TABLE cdp.events',
    "SELECT 1 INTO OUTFILE '/tmp/x.csv'",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
    "SELECT * FROM file /* hi */ ('/etc/passwd', 'LineAsString')",
    "DESCRIBE file('/etc/passwd', 'CSVWithNames')",
    "SELECT * FROM url('http://169.254.169.254/', 'LineAsString')",
    "SELECT * FROM s3('https://bucket/x.csv')",
    "SELECT * FROM remote('10.0.0.1', system.one)",
    "SELECT * FROM executable('x.sh', 'TSV', 'a String')",
    "SELECT 'unterminated",
    'SELECT /* unterminated',
    'SELECT $tag$ unterminated',
    'SELECT 1 #x',
  ]
  for (const sql of refused) t.notOk(checkReadOnlySql(sql).ok, `refused: ${JSON.stringify(sql)}`)
})

void t.test('runReadOnlyQuery on chDB: formats, params, refusals, and ClickHouse enforcing readonly', async (t) => {
  const h = await harness(t, 'chdb')
  const db = `\`${h.database}\``
  await h.writer.insertEvents([
    eventRow({ external_event_id: 'q1', event_type: 'signup' }),
    eventRow({ external_event_id: 'q2', event_type: 'order_completed' }),
  ], { dedupToken: 'q' })
  const sql = `SELECT external_event_id, event_type FROM ${db}.events WHERE event_type = {type:String} ORDER BY external_event_id`

  const json = await runReadOnlyQuery(h.client, sql, 'JSONEachRow', { type: 'signup' })
  t.same(json.rows, [{ external_event_id: 'q1', event_type: 'signup' }])
  const csv = await runReadOnlyQuery(h.client, sql, 'CSV', { type: 'signup' })
  t.equal(csv.text, '"q1","signup"\n')
  t.equal(csv.rows, undefined)
  const tsv = await runReadOnlyQuery(h.client, `SELECT count() AS c FROM ${db}.events`, 'TabSeparatedWithNames')
  t.equal(tsv.text, 'c\n2\n')
  const pretty = await runReadOnlyQuery(h.client, `SELECT count() AS c FROM ${db}.events`, 'PrettyCompactMonoBlock')
  t.match(pretty.text, /┌─c─┐[\s\S]*│ 2 │/)
  const described = await runReadOnlyQuery(h.client, `DESCRIBE TABLE ${db}.events_resolved`, 'JSONEachRow')
  t.ok(described.rows?.some((r) => r.name === 'ingest_profile_id'))

  const failure = async (q: string, format: ReadOnlyFormat = 'JSONEachRow'): Promise<unknown> =>
    runReadOnlyQuery(h.client, q, format).then(() => undefined, (e: unknown) => e)

  for (const q of [`INSERT INTO ${db}.events (tenant) VALUES ('x')`, `DROP TABLE ${db}.events`, `ALTER TABLE ${db}.events DROP COLUMN email`]) {
    const err = await failure(q)
    t.ok(isCdpError(err) && err.code === 'bad_request' && /refused/.test(err.message), `refused before ClickHouse: ${q}`)
  }
  // statements the check lets through but ClickHouse refuses under readonly = 1
  const settingChange = await failure('SELECT 1 SETTINGS readonly = 0')
  t.ok(isCdpError(settingChange) && settingChange.code === 'forbidden', 'readonly cannot be lifted from inside the query')
  const otherSetting = await failure('SELECT 1 SETTINGS max_threads = 1')
  t.ok(isCdpError(otherSetting) && otherSetting.code === 'forbidden', 'nor any other setting')

  const syntax = await failure('SELECT FROM WHERE')
  t.ok(isCdpError(syntax) && syntax.code === 'bad_request' && /SYNTAX_ERROR|Syntax error/.test(syntax.message), 'ClickHouse message kept')
  const bogusFormat = await runReadOnlyQuery(h.client, 'SELECT 1', 'Native' as ReadOnlyFormat).then(() => undefined, (e: unknown) => e)
  t.ok(isCdpError(bogusFormat) && bogusFormat.code === 'bad_request')

  const limited = await runReadOnlyQuery(h.client, `SELECT * FROM ${db}.events`, 'JSONEachRow', undefined, { maxResultRows: 1 })
    .then(() => undefined, (e: unknown) => e)
  t.ok(isCdpError(limited) && limited.code === 'bad_request', 'maxResultRows enforced')

  // none of it stuck to the writer's session
  await h.writer.insertEvents([eventRow({ external_event_id: 'q3' })], { dedupToken: 'q-after' })
  t.equal(await count(h.client, `SELECT count() AS c FROM ${db}.events`), 3)
})
