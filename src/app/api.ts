/**
 * The HTTP API of a process: the ingest core over the shared producer and claim store, the key
 * verifier, readiness, and the Fastify app (not listening; serve.ts listens).
 */
import type { FastifyInstance } from 'fastify'
import { IngestService } from '../ingest/service.js'
import { validateIdentity } from '../identity/normalize.js'
import { KeyVerifier } from '../auth/keys.js'
import { KafkaAdmin } from '../kafka/index.js'
import { buildApp } from '../http/app.js'
import type { QueryRunner } from '../http/routes/query.js'
import type { Shared } from './shared.js'

export interface Api {
  app: FastifyInstance
  ingest: IngestService
  keys: KeyVerifier
  readiness: () => Promise<Record<string, boolean>>
}

export interface ApiOptions {
  /** the analyst query runner, when this process owns ClickHouse (role all) */
  query?: QueryRunner
  /** more readiness checks of the process (role all: `consumer`, true once it joined its group) */
  checks?: Record<string, () => boolean>
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | false> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<false>((r) => { timer = setTimeout(() => r(false), ms) })])
  } finally { clearTimeout(timer) }
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
  })
  const keys = new KeyVerifier(stores.keys, 1000, Date.now, config.http.keyNegativeCacheMs)
  const admin = new KafkaAdmin(shared.kafka)
  res.add('kafka-admin', () => admin.close())
  const readiness = async () => {
    const registryOk = (async () => {
      try { await codec.registry.getLatestSchemaId(`${config.kafka.topic}-value`); return true } catch { return false }
    })()
    const [k, r, s] = await Promise.all([
      withTimeout(admin.probe(config.kafka.topic), 2000), withTimeout(registryOk, 2000), withTimeout(stores.ping(), 2000),
    ])
    const extra = Object.fromEntries(Object.entries(opts.checks ?? {}).map(([name, ok]) => [name, ok()]))
    return { kafka: k === true, schemaRegistry: r === true, stateStore: s === true, ...extra }
  }
  const app = await buildApp(config, { ingest, keys, readiness, logger: log, ...(opts.query ? { query: opts.query } : {}) })
  // registered after the producer: the app closes first, so in-flight requests finish before it flushes
  res.add('http', () => app.close())
  return { app, ingest, keys, readiness }
}
