/**
 * Which state store a configuration points at, as people and other processes can compare it:
 * `LMDB at /abs/path` or `Redis at redis://host:port/db (prefix p)`, and a short id of that. The
 * API reports the id on /readyz; `cdp keys create` compares it with its own, so a key is never
 * written silently into a store no running service reads. Credentials never appear (the Redis
 * URL is shown without user and password), and the id is a hash, so /readyz tells an outsider
 * nothing about the store's address.
 */
import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import type { Config } from '../config/index.js'

export interface StateStoreIdentity {
  backend: Config['state']['backend']
  /** for people: where the keys, claims and dedup marks live */
  location: string
  /** sha256 of backend, location and key prefix, 16 hex digits */
  id: string
}

function redisLocation(url: string): string {
  try {
    const u = new URL(url)
    const db = u.pathname.replace(/^\//, '') || '0'
    return `${u.protocol}//${u.hostname}:${u.port || '6379'}/${db}`
  } catch {
    return 'redis (unparsable URL)'
  }
}

export function describeStateStore(config: Readonly<Pick<Config, 'state' | 'keys'>>): StateStoreIdentity {
  const backend = config.state.backend
  const location = backend === 'lmdb'
    ? `LMDB at ${resolve(config.state.lmdbPath)}`
    : `Redis at ${redisLocation(config.state.redisUrl)} (prefix ${config.keys.prefix})`
  const id = createHash('sha256').update(`${backend}\n${location}\n${config.keys.prefix}`).digest('hex').slice(0, 16)
  return { backend, location, id }
}
