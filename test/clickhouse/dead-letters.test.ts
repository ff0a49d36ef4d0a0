/**
 * Dead-letter reads and redrive records over a migrated chDB, and the dead-letter retention (TTL)
 * the migrations reconcile on every start.
 */
import t from 'tap'
import { runMigrations, tableTtlDays, type MigrateOptions } from '../../src/clickhouse/migrations.js'
import { DeadLetterTables } from '../../src/clickhouse/dead-letters.js'
import type { DeadLetterRow } from '../../src/clickhouse/rows.js'
import { eventRow, harness } from './fixtures/harness.js'

const letter = (offset: number, over: Partial<DeadLetterRow> = {}): DeadLetterRow => ({
  tenant: 'acme', reason_code: 'contract_violation', reason: 'unknown property', topic: 'events',
  kafka_partition: 1, kafka_offset: offset, key: JSON.stringify(['acme', 'svc', `e-${offset}`]),
  value_base64: Buffer.from(`value-${offset}`).toString('base64'), received_at: new Date(), ...over,
})

void t.test('dead-letter TTL: set, changed and removed by the migrations; unchanged settings alter nothing', async (t) => {
  const h = await harness(t, 'chdb')
  t.equal(await tableTtlDays(h.client, h.database, 'dead_letters'), undefined, 'no TTL unless configured')
  await runMigrations(h.client, { database: h.database, deadLetterTtlDays: 30 })
  t.equal(await tableTtlDays(h.client, h.database, 'dead_letters'), 30)
  t.equal(await tableTtlDays(h.client, h.database, 'dead_letter_redrives'), 30)
  const told: string[] = []
  const log = { info: (_o: unknown, msg: string) => { told.push(msg) } } as unknown as MigrateOptions['log']
  await runMigrations(h.client, { database: h.database, deadLetterTtlDays: 30, log })
  t.same(told, [], 'the same setting changes nothing')
  await runMigrations(h.client, { database: h.database, deadLetterTtlDays: 7, log })
  t.equal(await tableTtlDays(h.client, h.database, 'dead_letters'), 7, 'ALTER TABLE MODIFY TTL on a later start')
  t.equal(told.length, 2, 'one line per table changed')
  await runMigrations(h.client, { database: h.database, deadLetterTtlDays: 0 })
  t.equal(await tableTtlDays(h.client, h.database, 'dead_letters'), undefined, '0 keeps dead letters forever')
})

void t.test('list with counts by reason, pending excludes redriven and keyless/valueless records, stored fact and latest dead letter', async (t) => {
  const h = await harness(t, 'chdb')
  const tables = new DeadLetterTables(h.client, h.database)
  await h.writer.insertDeadLetters([
    letter(1), letter(2), letter(3, { reason_code: 'wrong_partition' }), letter(4, { tenant: 'other' }),
    letter(5, { value_base64: '' }), letter(6, { tenant: null, key: '', reason_code: 'bad_key' }),
  ])
  const all = await tables.list({}, 100)
  t.equal(all.rows.length, 6)
  t.same(all.counts.find((c) => c.reason_code === 'contract_violation'), { reason_code: 'contract_violation', total: 4, pending: 4 })
  t.equal(all.rows[0]?.redriven_at, null)
  t.match(all.rows[0]?.dead_lettered_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

  const f = { reason: 'contract_violation', tenant: 'acme' }
  t.same((await tables.pending(f, 100)).map((p) => p.kafka_offset), ['1', '2'], 'the tenant and reason; never a record without a value')
  t.equal(await tables.pendingCount(f), 2)
  t.equal(await tables.pendingCount({ ...f, since: new Date(Date.now() + 3600_000).toISOString() }), 0, 'since filters by dead_lettered_at')

  const first = await tables.pending(f, 1)
  await tables.recordRedrives(first, 'rd-1')
  t.same((await tables.pending(f, 100)).map((p) => p.kafka_offset), ['2'], 'a redriven dead letter is not pending any more')
  const listed = await tables.list({ reason: 'contract_violation', tenant: 'acme' }, 100)
  t.equal(listed.rows.find((r) => r.kafka_offset === '1')?.redrive_id, 'rd-1')
  t.same(listed.counts, [{ reason_code: 'contract_violation', total: 3, pending: 2 }])

  t.equal((await tables.latestDeadLetter('acme', letter(2).key))?.reason_code, 'contract_violation')
  t.equal(await tables.latestDeadLetter('other', letter(2).key), undefined, 'another tenant sees nothing')

  const ev = eventRow({ tenant: 'acme', source: 'svc', external_event_id: 'stored-1' })
  await h.writer.insertEvents([ev])
  const stored = await tables.storedFact('acme', 'svc', 'stored-1')
  t.equal(stored?.event_id, ev.event_id)
  t.match(stored?.stored_at, /Z$/)
  t.equal(await tables.storedFact('other', 'svc', 'stored-1'), undefined)
})
