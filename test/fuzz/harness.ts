/**
 * The API under test for the OpenAPI checks and the fuzz run, built by the same composition as
 * `cdp serve` (src/app: buildShared + buildApi) over the real stack, or, for unit tests, the real
 * app and ingest core (envelope, contracts, identity checks, claims) over in-memory state and a
 * producer that acknowledges at once.
 *
 * The analyst query route needs ClickHouse; here it gets a stand-in runner with the route's real
 * checks in front of it (answers `SELECT 1`, refuses anything else as the guard would, 400).
 */
import type { FastifyInstance } from 'fastify'
import { loadConfig, merge, type Config, type DeepPartial } from '../../src/config/index.js'
import { buildApp } from '../../src/http/app.js'
import { IngestService } from '../../src/ingest/service.js'
import { KeyVerifier, createKey, type Permission } from '../../src/auth/keys.js'
import { createMemoryStateStores } from '../../src/state/index.js'
import { MemoryRateLimitStore } from '../../src/state/rate-limit-store.js'
import { loadContracts } from '../../src/contracts/registry.js'
import { contractChecker } from '../../src/contracts/check.js'
import { validateIdentity } from '../../src/identity/normalize.js'
import { createLogger } from '../../src/observability/logger.js'
import { CdpError } from '../../src/errors.js'
import type { QueryRunner } from '../../src/http/routes/query.js'
import type { KeyStore } from '../../src/state/types.js'

export interface ApiUnderTest {
  app: FastifyInstance
  config: Readonly<Config>
  /** tenant null: an operator key */
  key(tenant: string | null, permissions: Permission[], sources?: string[]): Promise<string>
  close(): Promise<void>
}

/** a stand-in for the analyst runner: the route's own checks run in front of it */
export const stubQuery: QueryRunner = async ({ sql }) => {
  if (/^\s*select\s+1\s*;?\s*$/i.test(sql)) return '{"1":1}\n'
  throw new CdpError('bad_request', 'query refused: only SELECT 1 in this test runner')
}

export async function memoryApi(overrides: DeepPartial<Config> = {}): Promise<ApiUnderTest> {
  const config = loadConfig({ env: {}, overrides: merge({ logLevel: 'silent' } as DeepPartial<Config>, overrides) })
  const stores = createMemoryStateStores()
  const contracts = loadContracts(config.contracts.dir)
  const ingest = new IngestService({
    config,
    checkContract: contractChecker(contracts, { maxStringLength: config.validation.maxStringLength }),
    checkIdentity: (identity) => validateIdentity(identity, config.identity),
    claims: stores.claims,
    encode: (e) => Buffer.from(JSON.stringify(e)),
    send: () => ({ done: Promise.resolve(), cancel: () => false }),
  })
  const keys: KeyStore = stores.keys
  const app = await buildApp(config, {
    ingest, keys: new KeyVerifier(keys), contracts, query: stubQuery,
    readiness: async () => ({ kafka: true, schemaRegistry: true, stateStore: true }),
    logger: createLogger({ logLevel: 'silent' }), rateLimitStore: new MemoryRateLimitStore(),
  })
  await app.ready()
  return {
    app, config,
    key: async (tenant, permissions, sources = []) => (await createKey(stores.keys, { tenant, permissions, sources })).key,
    close: () => app.close(),
  }
}

/** `cdp serve`'s API over the running stack (STACK_DIR), with its own topic and key prefix */
export async function stackApi(overrides: DeepPartial<Config>): Promise<ApiUnderTest> {
  const { Resources } = await import('../../src/app/resources.js')
  const { buildShared } = await import('../../src/app/shared.js')
  const { buildApi } = await import('../../src/app/api.js')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'cdp-fuzz-'))
  const id = Math.random().toString(36).slice(2, 10)
  const config = loadConfig({
    overrides: merge({
      dataDir: dir, logLevel: 'silent',
      kafka: { topic: `cdp.fuzz.${id}`, deadLetterTopic: `cdp.fuzz.${id}.dlq`, consumerGroup: `cdp-fuzz-${id}`, partitions: 3 },
      state: { lmdbPath: join(dir, 'state') },
      keys: { prefix: `fuzz_${id}` },
    } as DeepPartial<Config>, overrides),
  })
  const log = createLogger({ logLevel: 'silent' })
  const res = new Resources()
  const shared = await buildShared(config, log, res)
  const { app } = await buildApi(shared, { query: stubQuery })
  await app.ready()
  return {
    app, config,
    key: async (tenant, permissions, sources = []) => (await createKey(shared.stores.keys, { tenant, permissions, sources })).key,
    close: async () => {
      await res.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
