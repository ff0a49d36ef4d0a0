/**
 * Embedded state stores on LMDB: one environment (a directory) with one named database each for
 * claims, dedup facts and API keys. Every batch call is one write transaction (coalesced with the
 * other calls of the same event-loop turn, see lmdb-env.ts). LMDB locks across processes too, so
 * several processes on one machine may share the directory, but the scale-out deployment uses Redis.
 *
 * Claims and dedup facts live in `claims.v2` / `dedup.v2`: 16-byte key digests and compact binary
 * values (compact.ts). Stores written before that hold them in `claims` / `dedup` (the JSON tuple
 * as key, msgpack values). Those are still read: when the old database holds anything, a key
 * missing from the new one is looked up there, and a change to such a record writes it in the new
 * form and removes the old one, so old records move over as they are touched. A store with no old
 * records never looks there. Re-assertion marks (rare) and API keys keep their layout.
 */
import type { Database, RootDatabase } from 'lmdb'
import { decideAbandon, decideClaim, decideCommit, decideDedup, shouldRelease, type ClaimRecord } from './rules.js'
import { EnvLifecycle, lmdbKey, openEnv, readOp, WriteQueue } from './lmdb-env.js'
import { decodeClaim, decodeFact, encodeClaim, encodeFact, factDigest } from './compact.js'
import type {
  ApiKeyRecord, ClaimInfo, ClaimOutcome, ClaimRequest, ClaimStore, DedupOutcome, DedupStore, FactRef, KeyStore, StateStores,
} from './types.js'

export interface LmdbStateOptions {
  /** directory of the LMDB environment (created when missing) */
  path: string
  /** fsync every commit (default); see openEnv */
  sync?: boolean
}

/**
 * One compact database with the database of the old layout behind it (see the module comment):
 * `read` finds a record in either, `write` and `remove` leave it only in the compact one.
 */
class Layered<T> {
  constructor(
    private readonly db: Database<Buffer, Buffer>,
    /** the old-layout database, or undefined when it holds nothing */
    private readonly legacy: Database<T, string> | undefined,
    private readonly encode: (v: T) => Buffer,
    private readonly decode: (b: Buffer) => T,
  ) {}

  /** `d` is factDigest(key), computed once per item by the caller */
  read(key: string, d: Buffer = factDigest(key)): T | undefined {
    const raw = this.db.get(d)
    if (raw !== undefined) return this.decode(raw)
    return this.legacy?.get(lmdbKey(key))
  }

  write(key: string, d: Buffer, v: T): void {
    this.db.putSync(d, this.encode(v))
    this.legacy?.removeSync(lmdbKey(key))
  }

  remove(key: string, d: Buffer): void {
    this.db.removeSync(d)
    this.legacy?.removeSync(lmdbKey(key))
  }
}

class LmdbClaimStore implements ClaimStore {
  constructor(private readonly db: Layered<ClaimRecord>, private readonly writes: WriteQueue, private readonly closed: () => boolean) {}

  claimMany(reqs: ClaimRequest[], now: number, leaseMs: number): Promise<ClaimOutcome[]> {
    if (reqs.length === 0) return Promise.resolve([])
    return this.writes.run(() => reqs.map((req) => {
      const d = factDigest(req.key)
      const { outcome, write } = decideClaim(this.db.read(req.key, d), req, now, leaseMs)
      if (write !== undefined) this.db.write(req.key, d, write)
      return outcome
    }))
  }

  async commitMany(items: { key: string; eventId: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const item of items) {
        const d = factDigest(item.key)
        const next = decideCommit(this.db.read(item.key, d), item.eventId)
        if (next !== undefined) this.db.write(item.key, d, next)
      }
    })
  }

  async releaseMany(items: { key: string; eventId: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const item of items) {
        const d = factDigest(item.key)
        if (shouldRelease(this.db.read(item.key, d), item.eventId)) this.db.remove(item.key, d)
      }
    })
  }

  async get(key: string): Promise<ClaimInfo | undefined> {
    const rec = await readOp('claims get', this.closed, () => this.db.read(key))
    return rec === undefined ? undefined : { state: rec.state, eventId: rec.eventId, claimedAt: rec.claimedAt }
  }

  async abandonMany(items: { key: string; eventId: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const item of items) {
        const d = factDigest(item.key)
        const next = decideAbandon(this.db.read(item.key, d), item.eventId)
        if (next !== undefined) this.db.write(item.key, d, next)
      }
    })
  }
}

class LmdbDedupStore implements DedupStore {
  constructor(
    private readonly db: Layered<FactRef>,
    private readonly reasserted: Database<string, string>,
    private readonly writes: WriteQueue,
    private readonly closed: () => boolean,
  ) {}

  checkMany(items: { key: string; ref: FactRef }[]): Promise<DedupOutcome[]> {
    if (items.length === 0) return Promise.resolve([])
    return this.writes.run(() => items.map((item) => {
      const d = factDigest(item.key)
      const { outcome, write } = decideDedup(this.db.read(item.key, d), item.ref)
      if (write !== undefined) this.db.write(item.key, d, write)
      return outcome
    }))
  }

  get(key: string): Promise<FactRef | undefined> {
    return readOp('dedup get', this.closed, () => this.db.read(key))
  }

  reassertedAfter(keys: string[]): Promise<(string | undefined)[]> {
    return readOp('dedup reasserted', this.closed, () => keys.map((k) => this.reasserted.get(lmdbKey(k))))
  }

  async markReasserted(items: { key: string; after: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const { key, after } of items) this.reasserted.putSync(lmdbKey(key), after)
    })
  }

  markErased(keys: string[]): Promise<number> {
    if (keys.length === 0) return Promise.resolve(0)
    return this.writes.run(() => {
      let n = 0
      for (const k of keys) {
        const d = factDigest(k)
        const cur = this.db.read(k, d)
        if (cur !== undefined) { this.db.write(k, d, { ...cur, erased: true }); n++ }
      }
      return n
    })
  }
}

class LmdbKeyStore implements KeyStore {
  constructor(
    private readonly db: Database<ApiKeyRecord, string>,
    private readonly writes: WriteQueue,
    private readonly closed: () => boolean,
  ) {}

  async putKey(rec: ApiKeyRecord): Promise<void> {
    await this.writes.run(() => this.db.putSync(lmdbKey(rec.id), rec))
  }

  getKey(id: string): Promise<ApiKeyRecord | undefined> {
    return readOp('keys get', this.closed, () => this.db.get(lmdbKey(id)))
  }

  listKeys(): Promise<ApiKeyRecord[]> {
    return readOp('keys list', this.closed, () => [...this.db.getRange().map(({ value }) => value)])
  }
}

class LmdbStateStores implements StateStores {
  readonly claims: ClaimStore
  readonly dedup: DedupStore
  readonly keys: KeyStore
  readonly #writes: WriteQueue
  readonly #life: EnvLifecycle

  constructor(private readonly env: RootDatabase) {
    this.#writes = new WriteQueue(env, 'state')
    this.#life = new EnvLifecycle(env, this.#writes)
    const closed = (): boolean => this.#life.closed
    this.claims = new LmdbClaimStore(new Layered(compactDb(env, 'claims.v2'), legacyDb<ClaimRecord>(env, 'claims'), encodeClaim, decodeClaim), this.#writes, closed)
    this.dedup = new LmdbDedupStore(
      new Layered(compactDb(env, 'dedup.v2'), legacyDb<FactRef>(env, 'dedup'), encodeFact, decodeFact),
      env.openDB<string, string>({ name: 'reasserted' }), this.#writes, closed)
    this.keys = new LmdbKeyStore(env.openDB<ApiKeyRecord, string>({ name: 'keys' }), this.#writes, closed)
  }

  ping(): Promise<boolean> { return this.#life.ping() }

  close(): Promise<void> { return this.#life.close() }
}

function compactDb(env: RootDatabase, name: string): Database<Buffer, Buffer> {
  return env.openDB<Buffer, Buffer>({ name, keyEncoding: 'binary', encoding: 'binary' })
}

/** the old-layout database when it holds any record (one cursor step), else undefined */
function legacyDb<T>(env: RootDatabase, name: string): Database<T, string> | undefined {
  const db = env.openDB<T, string>({ name })
  for (const _ of db.getKeys({ limit: 1 })) return db
  return undefined
}

export function openLmdbStateStores(opts: LmdbStateOptions): StateStores {
  return new LmdbStateStores(openEnv(opts.path, opts.sync ?? true))
}
