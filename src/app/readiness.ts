/**
 * The dependency checks behind /readyz, shared by the API and the consumer's own port: Kafka
 * (metadata of the events topic), the schema registry and the state store, each bounded to 2 s
 * so one hung dependency cannot hold the probe. The consumer adds ClickHouse and its progress.
 */
import { KafkaAdmin } from '../kafka/index.js'
import type { Shared } from './shared.js'

export type Checks = Record<string, boolean>

export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | false> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<false>((r) => { timer = setTimeout(() => r(false), ms) })])
  } finally { clearTimeout(timer) }
}

/** Kafka, registry and state store; the admin client it opens closes with `shared.res` */
export function dependencyChecks(shared: Shared): () => Promise<Checks> {
  const { config, res, stores, codec } = shared
  const admin = new KafkaAdmin(shared.kafka)
  res.add('kafka-admin', () => admin.close())
  return async () => {
    const registryOk = (async () => {
      try { await codec.registry.getLatestSchemaId(`${config.kafka.topic}-value`); return true } catch { return false }
    })()
    const [k, r, s] = await Promise.all([
      withTimeout(admin.probe(config.kafka.topic), 2000), withTimeout(registryOk, 2000), withTimeout(stores.ping(), 2000),
    ])
    return { kafka: k === true, schemaRegistry: r === true, stateStore: s === true }
  }
}

/** runs the checks together and merges their answers */
export function combineChecks(...checks: (() => Promise<Checks>)[]): () => Promise<Checks> {
  return async () => Object.assign({}, ...await Promise.all(checks.map((c) => c()))) as Checks
}
