/**
 * The whole service of `cdp serve` (role all) in the test's process, not listening: the API and
 * the consumer over one set of shared resources, as serve.ts builds them. The consumer joins its
 * group only when `start()` is called (or at once with `{ start: true }`).
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../src/config/index.js'
import { createLogger, type Logger } from '../../src/observability/logger.js'
import { Resources } from '../../src/app/resources.js'
import { buildShared, type Shared } from '../../src/app/shared.js'
import { buildApi } from '../../src/app/api.js'
import { buildConsumer, type Consumer } from '../../src/app/consumer.js'
import { createKey, type Permission } from '../../src/auth/keys.js'
import type { TestContext } from './config.js'

export interface TestService {
  app: FastifyInstance
  shared: Shared
  consumer: Consumer
  /** tenant null: an operator key */
  key(tenant: string | null, permissions: Permission[]): Promise<string>
  /** closes everything (chDB too, so another service may open the same data dir) */
  stop(): Promise<void>
}

export async function startService(t: TestContext, config: Readonly<Config>, opts: { start?: boolean; log?: Logger } = {}): Promise<TestService> {
  const log = opts.log ?? createLogger({ logLevel: 'silent' })
  const res = new Resources()
  let stopped = false
  const stop = async () => { if (!stopped) { stopped = true; await res.close() } }
  t.teardown(stop)
  const shared = await buildShared(config, log, res)
  const consumer = await buildConsumer(shared, 'live')
  const { app } = await buildApi(shared, { query: consumer.query, ownsClickHouse: true })
  if (opts.start !== false) await consumer.start()
  return {
    app, shared, consumer, stop,
    key: async (tenant, permissions) => (await createKey(shared.stores.keys, { tenant, permissions })).key,
  }
}
