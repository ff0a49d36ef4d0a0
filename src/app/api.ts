/**
 * The HTTP API of a process: the ingest core over the shared producer and claim store, the key
 * verifier, readiness, and the Fastify app (not listening; serve.ts listens).
 */
import type { FastifyInstance } from 'fastify'
import { IngestService, type ItemResult } from '../ingest/service.js'
import type { Metrics } from '../observability/metrics.js'
import { validateIdentity } from '../identity/normalize.js'
import { KeyVerifier } from '../auth/keys.js'
import { buildApp } from '../http/app.js'
import type { QueryRunner } from '../http/routes/query.js'
import type { MetricsSource } from '../http/routes/ops.js'
import type { Shared } from './shared.js'
import { combineChecks, dependencyChecks, type Checks } from './readiness.js'

export interface Api {
  app: FastifyInstance
  ingest: IngestService
  keys: KeyVerifier
  readiness: () => Promise<Record<string, boolean>>
}

const ERROR_OUTCOME = { validation_failed: 'invalid', idempotency_conflict: 'conflict', forbidden: 'forbidden' } as const

/** an item's outcome for cdp_events_total; an invalid item by its first problem's code (a fixed set) */
function countResult(metrics: Metrics, tenant: string, r: ItemResult): void {
  if (r.status !== 'error') { metrics.event(tenant, r.status); return }
  metrics.event(tenant, ERROR_OUTCOME[r.error_code], r.error_code === 'validation_failed' ? r.details?.[0]?.code ?? r.error_code : r.error_code)
}

export interface ApiOptions {
  /** the analyst query runner, when this process owns ClickHouse (role all) */
  query?: QueryRunner
  /** more /readyz checks: ClickHouse and consumer progress where this process runs the consumer (role all) */
  readiness?: () => Promise<Checks>
  /** what GET /metrics answers; default this process's registry (a cluster worker asks the primary) */
  metrics?: MetricsSource
}

export async function buildApi(shared: Shared, opts: ApiOptions = {}): Promise<Api> {
  const { config, log, res, stores, codec, producer } = shared
  const ingest = new IngestService({
    config,
    checkContract: shared.checkContract,
    checkIdentity: (identity) => validateIdentity(identity, config.identity),
    claims: stores.claims,
    encode: (e) => codec.encode(e),
    send: (m) => producer.send(m),
    onResults: (caller, results) => { for (const r of results) countResult(shared.metrics, caller.tenant, r) },
  })
  const keys = new KeyVerifier(stores.keys, 1000, Date.now, config.http.keyNegativeCacheMs)
  const deps = dependencyChecks(shared)
  const readiness = opts.readiness === undefined ? deps : combineChecks(deps, opts.readiness)
  shared.metrics.countClaimsWith(() => ingest.claimsInFlight)
  const app = await buildApp(config, {
    ingest, keys, readiness, logger: log, ...(opts.query ? { query: opts.query } : {}),
    metrics: opts.metrics ?? (() => shared.metrics.text()), observeRequest: shared.metrics.request,
  })
  // registered after the producer: the app closes first, so in-flight requests finish before it flushes
  res.add('http', () => app.close())
  return { app, ingest, keys, readiness }
}
