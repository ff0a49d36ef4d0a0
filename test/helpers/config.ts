/**
 * Test configuration: the real stack's addresses (from the same env vars as the service) with
 * per-test names so test files can run in parallel without seeing each other's data.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadConfig, merge, type Config, type DeepPartial } from '../../src/config/index.js'

export type TestContext = { teardown: (fn: () => unknown) => void }

/** a short random suffix for topic, group, database and key-prefix names */
export function uniq(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`
}

/** a temp dir removed when the test ends */
export function tempDir(t: TestContext, prefix = 'cdp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

type Overrides = DeepPartial<Config>

/** A config for one test: its own data dir, topic, DLQ topic, consumer group and ClickHouse database. */
export function testConfig(t: TestContext, overrides: Overrides = {}): Readonly<Config> {
  const dir = tempDir(t)
  const id = uniq('t')
  const base: Overrides = {
      dataDir: dir,
      logLevel: 'silent',
      kafka: { topic: `cdp.test.${id}`, deadLetterTopic: `cdp.test.${id}.dlq`, consumerGroup: `cdp-test-${id}`, partitions: 3 },
      clickhouse: { chdbPath: join(dir, 'chdb'), database: `cdp_${id}` },
      state: { lmdbPath: join(dir, 'state') },
      keys: { prefix: `test_${id}` },
  }
  return loadConfig({ overrides: merge(base, overrides) })
}
