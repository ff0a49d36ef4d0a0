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
import { CdpError } from '../errors.js'
import { DeadLetterTables } from '../clickhouse/index.js'
import { eventStatus } from '../pipeline/event-status.js'
import { Redriver } from '../pipeline/redrive.js'
import type { MetricsSource } from '../http/routes/ops.js'
import type { Shared } from './shared.js'
import { combineChecks, dependencyChecks, type Checks } from './readiness.js'
import { erasureRequests } from '../privacy/index.js'

export interface Api {
  app: FastifyInstance
  ingest: IngestService
  keys: KeyVerifier
  readiness: () => Promise<Record<string, boolean>>
}

const ERROR_OUTCOME = { validation_failed: 'invalid', idempotency_conflict: 'conflict', forbidden: 'forbidden', suppressed: 'suppressed' } as const

/** an item's outcome for cdp_events_total; an invalid item by its first problem's code (a fixed set) */
function countResult(metrics: Metrics, tenant: string, r: ItemResult): void {
  if (r.status !== 'error') { metrics.event(tenant, r.status); return }
  metrics.event(tenant, ERROR_OUTCOME[r.error_code], r.error_code === 'validation_failed' ? r.details?.[0]?.code ?? r.error_code : r.error_code)
}

export interface ApiOptions {
  /** the analyst query runner, when this process owns ClickHouse (role all) */
  query?: QueryRunner
  /**
   * this process owns ClickHouse (role all): event status reads it and the dead-letter routes
   * are served. Without it they are served only when CLICKHOUSE_URL names a server.
   */
  ownsClickHouse?: boolean
  /** more /readyz checks: ClickHouse and consumer progress where this process runs the consumer (role all) */
  readiness?: () => Promise<Checks>
  /** what GET /metrics answers; default this process's registry (a cluster worker asks the primary) */
  metrics?: MetricsSource
}

const noClickHouse = () => new CdpError('clickhouse_unavailable',
  'this process does not read ClickHouse (--role api over embedded chDB): ask the process running the consumer, or set CLICKHOUSE_URL')

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
    suppressed: (tenant, identities) => shared.suppression.suppressed(tenant, identities),
  })
  const keys = new KeyVerifier(stores.keys, 1000, Date.now, config.http.keyNegativeCacheMs)
  const deps = dependencyChecks(shared)
  const readiness = opts.readiness === undefined ? deps : combineChecks(deps, opts.readiness)
  shared.metrics.countClaimsWith(() => ingest.claimsInFlight)
  // embedded chDB belongs to one process: an API-only process over it answers status from the claim
  const readsClickHouse = opts.ownsClickHouse === true || config.clickhouse.url !== undefined
  const tables = async () => { const ch = await shared.clickhouse(); return new DeadLetterTables(ch.client, ch.database) }
  const status = (tenant: string, source: string, externalEventId: string) => eventStatus({
    claim: (key) => stores.claims.get(key),
    ...(readsClickHouse ? {
      tables: {
        storedFact: async (...a: [string, string, string]) => (await tables()).storedFact(...a),
        latestDeadLetter: async (t: string, k: string) => (await tables()).latestDeadLetter(t, k),
      },
    } : {}),
    decode: async (value) => { const r = await codec.decode(value); return r.ok ? r.event : undefined },
  }, tenant, source, externalEventId)
  const redriver = new Redriver({
    tables: {
      pending: async (f, limit) => (await tables()).pending(f, limit),
      pendingCount: async (f) => (await tables()).pendingCount(f),
      recordRedrives: async (l, id) => (await tables()).recordRedrives(l, id),
    },
    produce: (messages) => producer.send(config.kafka.topic, messages).done,
    partitions: shared.partitions,
    log,
  })
  const deadLetters = readsClickHouse
    ? { list: async (f: Parameters<DeadLetterTables['list']>[0], limit: number) => (await tables()).list(f, limit), redrive: (r: Parameters<Redriver['run']>[0]) => redriver.run(r) }
    : {
      list: () => Promise.reject(noClickHouse()),
      redrive: () => Promise.reject(noClickHouse()),
    }
  const erasures = erasureRequests(config, shared.privacy, shared.suppression, shared.pseudonymizer)
  const app = await buildApp(config, {
    ingest, keys, readiness, logger: log, status, deadLetters, erasures, contracts: shared.contracts, ...(opts.query ? { query: opts.query } : {}),
    metrics: opts.metrics ?? (() => shared.metrics.text()), observeRequest: shared.metrics.request,
  })
  // registered after the producer: the app closes first, so in-flight requests finish before it flushes
  res.add('http', () => app.close())
  return { app, ingest, keys, readiness }
}
