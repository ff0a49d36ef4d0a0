/**
 * Behaviour every backend must show. chdb.test.ts runs these on embedded chDB, server.test.ts
 * on a ClickHouse server when CLICKHOUSE_URL is set.
 */
import type { Test } from 'tap'
import { isCdpError } from '../../src/errors.js'
import { appliedMigrations, runMigrations } from '../../src/clickhouse/migrations.js'
import { runReadOnlyQuery } from '../../src/clickhouse/query.js'
import { dedupToken } from '../../src/clickhouse/writer.js'
import { count, eventRow, harness, rows, type Backend } from './harness.js'

export type Scenario = (t: Test, backend: Backend) => Promise<void>

export const scenarios: Record<string, Scenario> = {
  'migrations are idempotent and recorded': async (t, backend) => {
    const h = await harness(t, backend)
    t.same(h.migrated, { applied: [1], addedColumns: [], viewRecreated: true })
    const again = await runMigrations(h.client, { database: h.database, segmentable: [] })
    t.same(again, { applied: [], addedColumns: [], viewRecreated: false }, 'a second run changes nothing')
    t.same(await appliedMigrations(h.client, h.database), [1])
    t.equal(await count(h.client, `SELECT count() AS c FROM \`${h.database}\`.schema_migrations`), 1, 'one row per version')
    const tables = (await rows<{ name: string }>(h.client,
      'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', { db: h.database })).map((r) => r.name)
    t.same(tables, [
      'dead_letters', 'events', 'events_resolved', 'identities', 'profile_aliases', 'profile_canonical',
      'profile_merges', 'profile_merges_to_aliases', 'schema_migrations',
    ])
  },

  'same batch with the same token lands once; another token lands again': async (t, backend) => {
    const h = await harness(t, backend)
    const batch = [eventRow({ kafka_offset: 100 }), eventRow({ kafka_offset: 101 }), eventRow({ kafka_offset: 102 })]
    const token = dedupToken('cdp.events.v1', 0, 100, 102, 'events')
    t.same(await h.writer.insertEvents(batch, { dedupToken: token }), { rows: 3 })
    await h.writer.insertEvents(batch, { dedupToken: token })
    // no FINAL: the second insert must not have written anything, not merely be merged away later
    const events = `\`${h.database}\`.events`
    t.equal(await count(h.client, `SELECT count() AS c FROM ${events}`), 3, 'a re-sent batch is dropped')
    await h.writer.insertEvents(batch, { dedupToken: dedupToken('cdp.events.v1', 0, 100, 102, 'events') + ':other' })
    t.equal(await count(h.client, `SELECT count() AS c FROM ${events}`), 6, 'a different token inserts')
    t.equal(await count(h.client, `SELECT count() AS c FROM ${events} FINAL`), 3, 'ReplacingMergeTree still folds the tuple')
  },

  'read-only queries refuse writes': async (t, backend) => {
    const h = await harness(t, backend)
    await h.writer.insertEvents([eventRow()], { dedupToken: 'ro-seed' })
    for (const sql of [
      `INSERT INTO \`${h.database}\`.events (tenant) VALUES ('x')`,
      `DROP TABLE \`${h.database}\`.events`,
      `ALTER TABLE \`${h.database}\`.events DELETE WHERE 1`,
      `SELECT 1; DROP TABLE \`${h.database}\`.events`,
    ]) {
      const err = await runReadOnlyQuery(h.client, sql, 'JSONEachRow').then(() => undefined, (e: unknown) => e)
      t.ok(isCdpError(err) && err.code === 'bad_request', `refused: ${sql}`)
    }
    const res = await runReadOnlyQuery(h.client,
      `SELECT count() AS c FROM \`${h.database}\`.events WHERE tenant = {tenant:String}`, 'JSONEachRow', { tenant: 'acme' })
    t.equal(res.rows?.length, 1)
    t.equal(Number(res.rows?.[0]?.c), 1, 'query_params bound')
    t.equal(await count(h.client, `SELECT count() AS c FROM \`${h.database}\`.events`), 1, 'table intact')
    // the read-only setting stayed with its query: the writer still writes
    await h.writer.insertEvents([eventRow()], { dedupToken: 'ro-after' })
    t.equal(await count(h.client, `SELECT count() AS c FROM \`${h.database}\`.events`), 2)
  },
}
