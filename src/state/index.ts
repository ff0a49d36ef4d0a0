/**
 * The state stores of one process, chosen by config.state.backend:
 * - lmdb: embedded, files under config.state.lmdbPath (one machine);
 * - redis: shared by every API and consumer instance, keys under config.keys.prefix.
 */
import type { Config } from '../config/index.js'
import { openLmdbStateStores } from './lmdb.js'
import { createRedisStateStores } from './redis.js'
import type { StateStores } from './types.js'
import { redisSecurity } from './redis-client.js'

export type * from './types.js'
export { createMemoryStateStores } from './memory.js'
export { describeStateStore, type StateStoreIdentity } from './describe.js'

export async function createStateStores(config: Readonly<Config>): Promise<StateStores> {
  switch (config.state.backend) {
    case 'lmdb':
      return openLmdbStateStores({ path: config.state.lmdbPath, sync: config.state.lmdbSync })
    case 'redis':
      return createRedisStateStores({ url: config.state.redisUrl, prefix: config.keys.prefix, ...redisSecurity(config.state) })
  }
}
