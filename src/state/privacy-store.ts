/**
 * What the privacy features (src/privacy) keep between processes: erasure requests with their
 * status and receipt, the suppression list, and the key its entries are hashed with.
 *
 * Requests are written by whichever process takes them (the API, `cdp erase`) and run by the
 * process that owns ClickHouse (role all or consumer), so they live in the shared state store:
 * LMDB (its own environment under <state.lmdbPath>/privacy; LMDB locks across the processes of
 * one machine) or Redis (keys under <prefix>:privacy:). Both sit behind one small key-value
 * interface with an atomic read-modify-write, so the rules below are written once.
 *
 * Suppression entries never hold an identity: only HMAC-SHA256(suppression key, tenant, type,
 * normalized value), computed by the caller (src/privacy/suppression.ts).
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { Database, RootDatabase } from 'lmdb'
import type { Redis } from 'ioredis'
import type { Config } from '../config/index.js'
import { EnvLifecycle, lmdbKey, openEnv, readOp, WriteQueue } from './lmdb-env.js'
import { CdpError } from '../errors.js'
import { closeRedisClient, createRedisClient, redisCall, redisSecurity, RedisScript } from './redis-client.js'

export type ErasureStatus = 'pending' | 'running' | 'completed' | 'failed'

/** the identity types an erasure may name (src/identity/normalize.ts IdentityType) */
export type ErasureIdentityType = 'EXTERNAL' | 'EMAIL' | 'PHONE' | 'DEVICE'

export interface ErasureReceipt {
  profileIds: string[]
  /** rows removed per ClickHouse table */
  clickhouse: Record<string, number>
  graph: { identities: number; profiles: number; keptResults: number }
  /** dedup records marked erased (value-free: tuple, fingerprint, event id, position remain) */
  dedupMarkedErased: number
  /** claims hold no identity or payload (tuple, event id, fingerprint, time): nothing to scrub, always 0; kept so a retry answers duplicate */
  claimsScrubbed: number
  /** tombstones produced on the events topic, one per tuple key */
  tombstones: number
  /** suppression entries written (keyed hashes of the person's identities) */
  suppressed: number
}

export interface ErasureRecord {
  id: string
  tenant: string
  /**
   * `value` (normalized) only while the request is open: the run needs it to find rows; once the
   * request ends it is dropped and only `hash` (the suppression hash) remains
   */
  identity: { type: ErasureIdentityType; value?: string; hash: string }
  status: ErasureStatus
  /** the step running now (progress for `cdp erase`) */
  step?: string
  reason?: string
  requestedBy: string
  requestedAt: string
  startedAt?: string
  finishedAt?: string
  /** the process running it, and when it last said so (a crashed owner's request is taken over) */
  owner?: string
  heartbeatAt?: number
  receipt?: ErasureReceipt
}

export interface Suppression {
  tenant: string
  /** HMAC of (tenant, type, normalized value): never the value */
  hash: string
  type: ErasureIdentityType
  erasureId: string
  at: string
}

export interface PrivacyStore {
  createErasure(rec: ErasureRecord): Promise<void>
  getErasure(id: string): Promise<ErasureRecord | undefined>
  /** replaces the record (the owner's progress and outcome) */
  putErasure(rec: ErasureRecord): Promise<void>
  listErasures(): Promise<ErasureRecord[]>
  /**
   * Takes one open request for `owner`: a pending one, or a running one whose owner has not
   * said anything for `staleMs` (it crashed). Atomic: two processes never take the same request.
   */
  takeErasure(owner: string, now: number, staleMs: number): Promise<ErasureRecord | undefined>
  suppress(entries: Suppression[]): Promise<void>
  /** per hash, whether the tenant suppresses it */
  isSuppressed(tenant: string, hashes: string[]): Promise<boolean[]>
  listSuppressions(tenant?: string): Promise<Suppression[]>
  /** lifts the tenant's entries with this hash, or of this erasure id; returns how many */
  lift(tenant: string, hashOrErasureId: string): Promise<number>
  /** the key suppression hashes are made with: created once, shared by every process */
  suppressionKey(): Promise<Buffer>
  close(): Promise<void>
}

/** the atomic key-value operations the store needs; values are JSON text */
export interface PrivacyKv {
  get(key: string): Promise<string | undefined>
  getMany(keys: string[]): Promise<(string | undefined)[]>
  put(key: string, value: string): Promise<void>
  /** put only when absent; returns the value now stored */
  putIfAbsent(key: string, value: string): Promise<string>
  del(key: string): Promise<boolean>
  /** every (key, value) whose key starts with `prefix` */
  scan(prefix: string): Promise<[string, string][]>
  /** atomic read-modify-write: `fn` returns the new value, or undefined to leave it */
  update(key: string, fn: (cur: string | undefined) => string | undefined): Promise<string | undefined>
  close(): Promise<void>
}

const ERASURE = 'erasure:'
const SUP = 'sup:'
const SECRET = 'suppression-key'
const supKey = (tenant: string, hash: string): string => `${SUP}${encodeURIComponent(tenant)}:${hash}`

export function privacyStoreOver(kv: PrivacyKv): PrivacyStore {
  const parse = <T>(s: string): T => JSON.parse(s) as T
  return {
    createErasure: (rec) => kv.put(ERASURE + rec.id, JSON.stringify(rec)),
    getErasure: async (id) => { const v = await kv.get(ERASURE + id); return v === undefined ? undefined : parse<ErasureRecord>(v) },
    putErasure: (rec) => kv.put(ERASURE + rec.id, JSON.stringify(rec)),
    listErasures: async () => (await kv.scan(ERASURE)).map(([, v]) => parse<ErasureRecord>(v)).sort((a, b) => a.requestedAt.localeCompare(b.requestedAt)),
    async takeErasure(owner, now, staleMs) {
      const open = (await kv.scan(ERASURE)).map(([, v]) => parse<ErasureRecord>(v))
        .filter((r) => r.status === 'pending' || (r.status === 'running' && (r.heartbeatAt ?? 0) < now - staleMs))
        .sort((a, b) => a.requestedAt.localeCompare(b.requestedAt))
      for (const candidate of open) {
        // judge by what update() wrote, not by what `fn` once decided: an optimistic backend
        // (Redis) may call `fn` again after losing a race, and then the earlier decision is void
        const written = await kv.update(ERASURE + candidate.id, (cur) => {
          if (cur === undefined) return undefined
          const r = parse<ErasureRecord>(cur)
          const free = r.status === 'pending' || (r.status === 'running' && (r.heartbeatAt ?? 0) < now - staleMs)
          if (!free) return undefined
          return JSON.stringify({ ...r, status: 'running', owner, heartbeatAt: now, startedAt: r.startedAt ?? new Date(now).toISOString() })
        })
        if (written !== undefined) return parse<ErasureRecord>(written)
      }
      return undefined
    },
    async suppress(entries) {
      for (const e of entries) await kv.put(supKey(e.tenant, e.hash), JSON.stringify(e))
    },
    async isSuppressed(tenant, hashes) {
      if (hashes.length === 0) return []
      return (await kv.getMany(hashes.map((h) => supKey(tenant, h)))).map((v) => v !== undefined)
    },
    listSuppressions: async (tenant) => (await kv.scan(tenant === undefined ? SUP : `${SUP}${encodeURIComponent(tenant)}:`))
      .map(([, v]) => parse<Suppression>(v)).sort((a, b) => a.at.localeCompare(b.at)),
    async lift(tenant, what) {
      const mine = (await kv.scan(`${SUP}${encodeURIComponent(tenant)}:`)).map(([, v]) => parse<Suppression>(v))
      let n = 0
      for (const s of mine) if ((s.hash === what || s.erasureId === what) && await kv.del(supKey(tenant, s.hash))) n++
      return n
    },
    suppressionKey: async () => Buffer.from(await kv.putIfAbsent(SECRET, randomBytes(32).toString('hex')), 'hex'),
    close: () => kv.close(),
  }
}

// ---------- backends ----------

export function memoryPrivacyKv(data: Map<string, string> = new Map()): PrivacyKv {
  return {
    get: async (k) => data.get(k),
    getMany: async (keys) => keys.map((k) => data.get(k)),
    put: async (k, v) => void data.set(k, v),
    putIfAbsent: async (k, v) => { if (!data.has(k)) data.set(k, v); return data.get(k)! },
    del: async (k) => data.delete(k),
    scan: async (prefix) => [...data].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => a.localeCompare(b)),
    update: async (k, fn) => { const next = fn(data.get(k)); if (next !== undefined) data.set(k, next); return next },
    close: async () => undefined,
  }
}

class LmdbPrivacyKv implements PrivacyKv {
  readonly #db: Database<string, string>
  readonly #writes: WriteQueue
  readonly #life: EnvLifecycle
  constructor(env: RootDatabase) {
    this.#db = env.openDB<string, string>({ name: 'privacy' })
    this.#writes = new WriteQueue(env, 'privacy')
    this.#life = new EnvLifecycle(env, this.#writes)
  }

  get(k: string): Promise<string | undefined> { return readOp('privacy get', () => this.#life.closed, () => this.#db.get(lmdbKey(k))) }
  getMany(keys: string[]): Promise<(string | undefined)[]> {
    return readOp('privacy get', () => this.#life.closed, () => keys.map((k) => this.#db.get(lmdbKey(k))))
  }

  async put(k: string, v: string): Promise<void> { await this.#writes.run(() => this.#db.putSync(lmdbKey(k), v)) }
  putIfAbsent(k: string, v: string): Promise<string> {
    return this.#writes.run(() => {
      const cur = this.#db.get(lmdbKey(k))
      if (cur !== undefined) return cur
      this.#db.putSync(lmdbKey(k), v)
      return v
    })
  }

  del(k: string): Promise<boolean> { return this.#writes.run(() => this.#db.removeSync(lmdbKey(k))) }
  scan(prefix: string): Promise<[string, string][]> {
    // keys here are short (ids, hashes): lmdbKey leaves them as they are, so a range scan finds them
    return readOp('privacy scan', () => this.#life.closed, () => [...this.#db.getRange({ start: prefix })]
      .filter(({ key }) => key.startsWith(prefix)).map(({ key, value }): [string, string] => [key, value]))
  }

  update(k: string, fn: (cur: string | undefined) => string | undefined): Promise<string | undefined> {
    return this.#writes.run(() => {
      const next = fn(this.#db.get(lmdbKey(k)))
      if (next !== undefined) this.#db.putSync(lmdbKey(k), next)
      return next
    })
  }

  close(): Promise<void> { return this.#life.close() }
}

/** KEYS[1]; ARGV: expected value, '1' when a value was expected ('0': absent), new value */
const CAS = new RedisScript('privacy cas', `
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
`)

class RedisPrivacyKv implements PrivacyKv {
  constructor(private readonly client: Redis, private readonly prefix: string, private readonly owned: boolean) {}
  #k(k: string): string { return `${this.prefix}:privacy:${k}` }

  async get(k: string): Promise<string | undefined> { return (await redisCall(this.client, 'privacy get', (c) => c.get(this.#k(k)))) ?? undefined }
  async getMany(keys: string[]): Promise<(string | undefined)[]> {
    if (keys.length === 0) return []
    return (await redisCall(this.client, 'privacy get', (c) => c.mget(...keys.map((k) => this.#k(k))))).map((v) => v ?? undefined)
  }

  async put(k: string, v: string): Promise<void> { await redisCall(this.client, 'privacy put', (c) => c.set(this.#k(k), v)) }
  async putIfAbsent(k: string, v: string): Promise<string> {
    await redisCall(this.client, 'privacy put', (c) => c.set(this.#k(k), v, 'NX'))
    return (await this.get(k)) ?? v
  }

  async del(k: string): Promise<boolean> { return (await redisCall(this.client, 'privacy del', (c) => c.del(this.#k(k)))) > 0 }
  async scan(prefix: string): Promise<[string, string][]> {
    const keys: string[] = []
    let cursor = '0'
    do {
      const [next, found] = await redisCall(this.client, 'privacy scan', (c) => c.scan(cursor, 'MATCH', `${this.#k(prefix).replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000))
      cursor = next
      keys.push(...found)
    } while (cursor !== '0')
    if (keys.length === 0) return []
    const values = await redisCall(this.client, 'privacy get', (c) => c.mget(...keys))
    const strip = this.#k('').length
    return keys.flatMap((k, i): [string, string][] => (values[i] == null ? [] : [[k.slice(strip), values[i]!]]))
      .sort(([a], [b]) => a.localeCompare(b))
  }

  async update(k: string, fn: (cur: string | undefined) => string | undefined): Promise<string | undefined> {
    // optimistic: decide on what was read, write only if the key still holds it (one script, so
    // atomic); another writer in between makes us read and decide again
    const key = this.#k(k)
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = (await redisCall(this.client, 'privacy update', (c) => c.get(key))) ?? undefined
      const next = fn(cur)
      if (next === undefined) return undefined
      if (Number(await CAS.run(this.client, [key], [cur ?? '', cur === undefined ? '0' : '1', next])) === 1) return next
    }
    throw new CdpError('state_store_unavailable', `redis privacy update ${k}: too much contention`, { retryAfter: 1 })
  }

  async close(): Promise<void> { if (this.owned) await closeRedisClient(this.client) }
}

export function createPrivacyStore(config: Readonly<Config>): PrivacyStore {
  switch (config.state.backend) {
    case 'lmdb':
      return privacyStoreOver(new LmdbPrivacyKv(openEnv(join(config.state.lmdbPath, 'privacy'), config.state.lmdbSync)))
    case 'redis':
      return privacyStoreOver(new RedisPrivacyKv(createRedisClient(config.state.redisUrl, redisSecurity(config.state)), config.keys.prefix, true))
  }
}

export function createMemoryPrivacyStore(data?: Map<string, string>): PrivacyStore {
  return privacyStoreOver(memoryPrivacyKv(data))
}
