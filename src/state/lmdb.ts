/**
 * Embedded state stores on LMDB: one environment (a directory) with one named database each for
 * claims, dedup facts and API keys. Every batch call is one write transaction (coalesced with the
 * other calls of the same event-loop turn, see lmdb-env.ts); values are msgpack (lmdb's default).
 * LMDB locks across processes too, so several processes on one machine may share the directory,
 * but the scale-out deployment uses Redis.
 */
import type { Database, RootDatabase } from 'lmdb'
import { decideAbandon, decideClaim, decideCommit, decideDedup, shouldRelease, type ClaimRecord } from './rules.js'
import { EnvLifecycle, lmdbKey, openEnv, readOp, WriteQueue } from './lmdb-env.js'
import type {
  ApiKeyRecord, ClaimInfo, ClaimOutcome, ClaimRequest, ClaimStore, DedupOutcome, DedupStore, FactRef, KeyStore, StateStores,
} from './types.js'

export interface LmdbStateOptions {
  /** directory of the LMDB environment (created when missing) */
  path: string
  /** fsync every commit (default); see openEnv */
  sync?: boolean
}

class LmdbClaimStore implements ClaimStore {
  constructor(private readonly db: Database<ClaimRecord, string>, private readonly writes: WriteQueue, private readonly closed: () => boolean) {}

  claimMany(reqs: ClaimRequest[], now: number, leaseMs: number): Promise<ClaimOutcome[]> {
    if (reqs.length === 0) return Promise.resolve([])
    return this.writes.run(() => reqs.map((req) => {
      const key = lmdbKey(req.key)
      const { outcome, write } = decideClaim(this.db.get(key), req, now, leaseMs)
      if (write !== undefined) this.db.putSync(key, write)
      return outcome
    }))
  }

  async commitMany(items: { key: string; eventId: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const item of items) {
        const key = lmdbKey(item.key)
        const next = decideCommit(this.db.get(key), item.eventId)
        if (next !== undefined) this.db.putSync(key, next)
      }
    })
  }

  async releaseMany(items: { key: string; eventId: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const item of items) {
        const key = lmdbKey(item.key)
        if (shouldRelease(this.db.get(key), item.eventId)) this.db.removeSync(key)
      }
    })
  }

  async get(key: string): Promise<ClaimInfo | undefined> {
    const rec = await readOp('claims get', this.closed, () => this.db.get(lmdbKey(key)))
    return rec === undefined ? undefined : { state: rec.state, eventId: rec.eventId, claimedAt: rec.claimedAt }
  }

  async abandonMany(items: { key: string; eventId: string }[]): Promise<void> {
    if (items.length === 0) return
    await this.writes.run(() => {
      for (const item of items) {
        const key = lmdbKey(item.key)
        const next = decideAbandon(this.db.get(key), item.eventId)
        if (next !== undefined) this.db.putSync(key, next)
      }
    })
  }
}

class LmdbDedupStore implements DedupStore {
  constructor(
    private readonly db: Database<FactRef, string>,
    private readonly reasserted: Database<string, string>,
    private readonly writes: WriteQueue,
    private readonly closed: () => boolean,
  ) {}

  checkMany(items: { key: string; ref: FactRef }[]): Promise<DedupOutcome[]> {
    if (items.length === 0) return Promise.resolve([])
    return this.writes.run(() => items.map((item) => {
      const key = lmdbKey(item.key)
      const { outcome, write } = decideDedup(this.db.get(key), item.ref)
      if (write !== undefined) this.db.putSync(key, { ...write })
      return outcome
    }))
  }

  get(key: string): Promise<FactRef | undefined> {
    return readOp('dedup get', this.closed, () => this.db.get(lmdbKey(key)))
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
        const key = lmdbKey(k)
        const cur = this.db.get(key)
        if (cur !== undefined) { this.db.putSync(key, { ...cur, erased: true }); n++ }
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
    this.claims = new LmdbClaimStore(env.openDB<ClaimRecord, string>({ name: 'claims' }), this.#writes, closed)
    this.dedup = new LmdbDedupStore(
      env.openDB<FactRef, string>({ name: 'dedup' }), env.openDB<string, string>({ name: 'reasserted' }), this.#writes, closed)
    this.keys = new LmdbKeyStore(env.openDB<ApiKeyRecord, string>({ name: 'keys' }), this.#writes, closed)
  }

  ping(): Promise<boolean> { return this.#life.ping() }

  close(): Promise<void> { return this.#life.close() }
}

export function openLmdbStateStores(opts: LmdbStateOptions): StateStores {
  return new LmdbStateStores(openEnv(opts.path, opts.sync ?? true))
}
