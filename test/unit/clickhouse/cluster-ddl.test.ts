/**
 * The cluster DDL (config clickhouse.cluster), checked as generated SQL: no cluster is needed.
 */
import t from 'tap'
import type { ClickHouseClient } from '@clickhouse/client'
import { forCluster, migrationStatements, MIGRATIONS, runMigrations } from '../../../src/clickhouse/migrations.js'

const db = '`cdp`'
const all = (cluster?: string) => MIGRATIONS.flatMap((m) => migrationStatements(m, db, cluster))
const squash = (s: string) => s.replace(/\s+/g, ' ').trim()

void t.test('without a cluster the statements are the single-node ones, unchanged', async (t) => {
  t.same(all(), MIGRATIONS.flatMap((m) => m.statements(db)))
  for (const st of all()) t.notMatch(st, /ON CLUSTER|Replicated|Distributed/)
})

void t.test('on a cluster: every statement ON CLUSTER, every MergeTree replicated, Keeper dedup window', async (t) => {
  const st = all('prod')
  t.ok(st.length > 0)
  for (const s of st) {
    t.match(s, /ON CLUSTER `prod`/, squash(s).slice(0, 60))
    t.notMatch(s, /non_replicated_deduplication_window/)
    t.notMatch(s, /ENGINE = (Replacing)?MergeTree\b/, 'no single-node engine left')
  }
  const events = st.find((s) => /TABLE IF NOT EXISTS `cdp`\.events ON CLUSTER/.test(s))!
  t.match(squash(events), "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', fact_version)")
  t.match(events, /replicated_deduplication_window = 10000/)
  const merges = st.find((s) => /TABLE IF NOT EXISTS `cdp`\.profile_merges ON CLUSTER/.test(s))!
  t.match(squash(merges), "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY")
  t.ok(st.some((s) => /MATERIALIZED VIEW IF NOT EXISTS `cdp`\.profile_merges_to_aliases ON CLUSTER `prod`/.test(s)))
  t.ok(st.some((s) => /VIEW IF NOT EXISTS `cdp`\.profile_canonical ON CLUSTER `prod`/.test(s)))
})

void t.test('on a cluster: a Distributed table per data table, sharded by its key so a fact\'s copies share a shard', async (t) => {
  const st = all('prod').map(squash)
  const dist = (table: string) => st.find((s) => s.includes(`\`cdp\`.\`${table}_all\``))
  t.equal(dist('events'), 'CREATE TABLE IF NOT EXISTS `cdp`.`events_all` ON CLUSTER `prod` AS `cdp`.events ENGINE = Distributed(`prod`, `cdp`, `events`, cityHash64(tenant, source, external_event_id))')
  t.match(dist('identities'), 'cityHash64(tenant, identity_type, identity_value)')
  t.match(dist('profile_aliases'), 'cityHash64(tenant, profile_id)')
  t.match(dist('dead_letters'), 'cityHash64(tenant, topic, kafka_partition))')
  t.equal(dist('profile_canonical'), undefined, 'views get none')
})

void t.test('on a cluster: a typed column goes to the table and to its Distributed table', async (t) => {
  t.same(forCluster('ALTER TABLE `cdp`.events ADD COLUMN IF NOT EXISTS `p_plan` String', 'prod'), [
    'ALTER TABLE `cdp`.events ON CLUSTER `prod` ADD COLUMN IF NOT EXISTS `p_plan` String',
    'ALTER TABLE `cdp`.`events_all` ON CLUSTER `prod` ADD COLUMN IF NOT EXISTS `p_plan` String',
  ])
  t.throws(() => forCluster('INSERT INTO x VALUES (1)', 'prod'), { code: 'internal_error' })
})

void t.test('runMigrations sends the cluster statements, schema_migrations and the resolved view included', async (t) => {
  const sent: string[] = []
  const client = {
    command: async ({ query }: { query: string }) => { sent.push(squash(query)); return {} },
    insert: async () => ({}),
    query: async () => ({ json: async () => [] }),
  } as unknown as ClickHouseClient
  const r = await runMigrations(client, { database: 'cdp', cluster: 'prod' })
  t.same(r.applied, MIGRATIONS.map((m) => m.version))
  t.match(sent[0], /^CREATE DATABASE IF NOT EXISTS `cdp` ON CLUSTER `prod`$/)
  t.match(sent[1], /schema_migrations ON CLUSTER `prod`.*ReplicatedReplacingMergeTree/)
  t.ok(sent.some((s) => /^CREATE OR REPLACE VIEW `cdp`\.events_resolved ON CLUSTER `prod`/.test(s)))
  for (const s of sent) t.match(s, /ON CLUSTER `prod`/)
})
