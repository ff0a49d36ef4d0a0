/**
 * Retention per table (issue 12 item 5) on a real chDB: the TTL follows config.retention.tables
 * at each open: set, changed, left alone when the table is not mentioned, removed with null.
 */
import t from 'tap'
import type { Config } from '../../src/config/index.js'
import { openClickHouse } from '../../src/clickhouse/index.js'
import { currentTtl } from '../../src/clickhouse/retention.js'
import { testConfig } from '../helpers/config.js'

void t.test('retention: TTLs set, changed, kept and removed from config', async (t) => {
  const base = testConfig(t)
  const db = base.clickhouse.database
  const open = async (tables: Config['retention']['tables']) => {
    const { clickhouse } = await openClickHouse({ ...base, retention: { tables } }, [])
    const ttl = {
      events: await currentTtl(clickhouse.client, db, 'events'),
      identities: await currentTtl(clickhouse.client, db, 'identities'),
      dead_letters: await currentTtl(clickhouse.client, db, 'dead_letters'),
    }
    await clickhouse.close()
    return ttl
  }
  const first = await open({ events: { days: 30 }, identities: { days: 7 }, dead_letters: { days: 5 } })
  t.match(first.events, /received_at.*toIntervalDay\(30\)/)
  t.match(first.identities, /linked_at.*toIntervalDay\(7\)/)
  t.match(first.dead_letters, /dead_lettered_at.*toIntervalDay\(5\)/, 'retention.tables wins over clickhouse.deadLetterTtlDays')
  const changed = await open({ events: { days: 400 } })
  t.match(changed.events, /toIntervalDay\(400\)/, 'a new number of days applies at the next start')
  t.match(changed.identities, /toIntervalDay\(7\)/, 'a table not mentioned keeps its TTL')
  t.match(changed.dead_letters, /toIntervalDay\(90\)/, 'dead letters not mentioned: clickhouse.deadLetterTtlDays (90) decides')
  const removed = await open({ events: null })
  t.equal(removed.events, undefined, 'null removes the TTL')
  t.match(removed.identities, /toIntervalDay\(7\)/)
  await t.rejects(open({ nope: { days: 1 } }), { code: 'config_invalid' })
})
