import t from 'tap'
import { isCdpError } from '../../src/errors.js'
import { runMigrations, type MigrateOptions } from '../../src/clickhouse/migrations.js'
import { harness, rows } from './fixtures/harness.js'

const columnsOf = async (h: Awaited<ReturnType<typeof harness>>, table: string): Promise<Record<string, string>> => {
  const cols = await rows<{ name: string; type: string }>(h.client,
    'SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {table:String}', { db: h.database, table })
  return Object.fromEntries(cols.map((c) => [c.name, c.type]))
}

void t.test('segmentable properties become typed columns, added once, visible in events_resolved', async (t) => {
  const h = await harness(t, 'chdb', {
    segmentable: [
      { column: 'p_plan', clickhouseType: 'LowCardinality(Nullable(String))' },
      { column: 'p_amount', clickhouseType: 'Nullable(Float64)' },
    ],
  })
  t.same(h.migrated?.addedColumns, ['p_plan', 'p_amount'])
  const events = await columnsOf(h, 'events')
  t.equal(events.p_plan, 'LowCardinality(Nullable(String))')
  t.equal(events.p_amount, 'Nullable(Float64)')
  t.equal(events.occurred_at, "DateTime64(3, 'UTC')")
  t.equal((await columnsOf(h, 'events_resolved')).p_amount, 'Nullable(Float64)')

  // next start: same contracts change nothing; a new property adds only its column.
  // Types are compared in ClickHouse's spelling, so 'decimal(18,2)' matches 'Decimal(18, 2)'.
  const told: string[] = []
  const log = { info: (o: Record<string, unknown>, msg: string) => { told.push(`${msg}: ${String(o.column ?? o.version ?? '')}`) } } as unknown as MigrateOptions['log']
  const same = await runMigrations(h.client, {
    database: h.database, log,
    segmentable: [{ column: 'p_plan', clickhouseType: 'LowCardinality(Nullable(String))' }, { column: 'p_amount', clickhouseType: 'Nullable(Float64)' }],
  })
  t.same(same, { applied: [], addedColumns: [], viewRecreated: false })
  t.same(told, [], 'nothing changed: nothing logged')
  const more = await runMigrations(h.client, {
    database: h.database, log,
    segmentable: [
      { column: 'p_plan', clickhouseType: 'LowCardinality(Nullable(String))' },
      { column: 'p_price', clickhouseType: 'decimal(18,2)' },
      { column: 'p_tags', clickhouseType: 'Array(String)' },
    ],
  })
  t.same(more, { applied: [], addedColumns: ['p_price', 'p_tags'], viewRecreated: true })
  t.same(told, [
    'ClickHouse typed column added to events: p_price', 'ClickHouse typed column added to events: p_tags', 'ClickHouse view events_resolved (re)created: ',
  ], 'each change logged once')
  const resolved = await columnsOf(h, 'events_resolved')
  t.equal(resolved.p_price, 'Decimal(18, 2)')
  t.equal(resolved.p_tags, 'Array(String)')
  t.equal(resolved.p_amount, 'Nullable(Float64)', 'a column no longer declared is kept')
  t.equal(resolved.ingest_profile_id, 'String')
  t.notOk('fact_version' in resolved, 'the internal version column stays internal')
})

void t.test('a changed type, an invalid type or a shadowed base column is refused', async (t) => {
  const h = await harness(t, 'chdb', { segmentable: [{ column: 'p_plan', clickhouseType: 'Nullable(String)' }] })
  const attempt = (column: string, clickhouseType: string): Promise<unknown> =>
    runMigrations(h.client, { database: h.database, segmentable: [{ column, clickhouseType }] }).then(() => undefined, (e: unknown) => e)

  const changed = await attempt('p_plan', 'Nullable(Int64)')
  t.ok(isCdpError(changed) && changed.code === 'contract_incompatible', 'type change refused')
  if (isCdpError(changed)) t.match(changed.message, /Nullable\(String\).*Nullable\(Int64\)/)
  const invalid = await attempt('p_x', 'Nullable(String); DROP TABLE events')
  t.ok(isCdpError(invalid) && invalid.code === 'contract_incompatible', 'not a type')
  const unknown = await attempt('p_x', 'Nope')
  t.ok(isCdpError(unknown) && unknown.code === 'contract_incompatible', 'unknown type')
  const shadow = await attempt('email', 'Nullable(String)')
  t.ok(isCdpError(shadow) && shadow.code === 'contract_incompatible', 'base column')
  const badName = await attempt('p-x', 'Nullable(String)')
  t.ok(isCdpError(badName) && badName.code === 'contract_incompatible', 'bad name')
  t.equal((await columnsOf(h, 'events')).p_plan, 'Nullable(String)', 'unchanged')
})

void t.test('a database name that is not an identifier is refused before any SQL', async (t) => {
  const h = await harness(t, 'chdb', { migrate: false })
  const err = await runMigrations(h.client, { database: 'x`; DROP', segmentable: [] }).then(() => undefined, (e: unknown) => e)
  t.ok(isCdpError(err) && err.code === 'config_invalid')
})
