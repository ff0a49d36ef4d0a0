/**
 * Identity resolution: normalization (normalize.ts), the graph and its rules (graph.ts), and
 * the graph store chosen by config.state.backend:
 * - lmdb: its own environment under <config.state.lmdbPath>/identity;
 * - redis: keys under <config.keys.prefix>:idg:.
 */
import { join } from 'node:path'
import type { Config } from '../config/index.js'
import type { IdentityGraph } from './graph.js'
import { openLmdbIdentityGraph } from './graph-lmdb.js'
import { createRedisIdentityGraph } from './graph-redis.js'
import { redisSecurity } from '../state/redis-client.js'

export * from './normalize.js'
export * from './graph.js'
export { openLmdbIdentityGraph } from './graph-lmdb.js'
export { createRedisIdentityGraph } from './graph-redis.js'

export interface IdentityGraphExtras {
  /** how long a kept result (graph.ts rule 8) outlives a consumer that never calls forget(); default 1 hour */
  replayTtlMs?: number
}

export async function createIdentityGraph(config: Readonly<Config>, extras: IdentityGraphExtras = {}): Promise<IdentityGraph> {
  const { maxProfilesPerDevice } = config.identity
  switch (config.state.backend) {
    case 'lmdb':
      return openLmdbIdentityGraph({ path: join(config.state.lmdbPath, 'identity'), maxProfilesPerDevice, sync: config.state.lmdbSync, ...extras })
    case 'redis':
      return createRedisIdentityGraph({ url: config.state.redisUrl, prefix: config.keys.prefix, maxProfilesPerDevice, ...redisSecurity(config.state), ...extras })
  }
}
