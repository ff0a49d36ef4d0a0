import t from 'tap'
import { loadConfig } from '../../../src/config/index.js'

void t.test('query.maxConcurrentTotal: 1 on embedded chDB, 8 with a ClickHouse server, as set otherwise; validated', async (t) => {
  t.equal(loadConfig({ env: {} }).query.maxConcurrentTotal, 1, 'embedded: one core for analysts')
  t.equal(loadConfig({ env: { CLICKHOUSE_URL: 'http://127.0.0.1:8123' } }).query.maxConcurrentTotal, 8, 'a server')
  t.equal(loadConfig({ env: {}, overrides: { query: { maxConcurrentTotal: 3 } } }).query.maxConcurrentTotal, 3, 'as set')
  const d = loadConfig({ env: {} }).query
  t.same({ maxQueued: d.maxQueued, maxQueueWaitMs: d.maxQueueWaitMs }, { maxQueued: 16, maxQueueWaitMs: 10_000 })
  t.throws(() => loadConfig({ env: {}, overrides: { query: { maxConcurrentTotal: -1 } } }), { code: 'config_invalid' })
  t.throws(() => loadConfig({ env: {}, overrides: { query: { maxQueueWaitMs: 1.5 } } }), { code: 'config_invalid' })
})
