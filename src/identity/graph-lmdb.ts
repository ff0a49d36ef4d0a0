/**
 * The identity graph on LMDB (embedded mode): its own environment, so identity writes of the
 * consumer never wait on the API's claim writes. One resolveMany call is one write transaction
 * (coalesced with the other calls of the same event-loop turn, see src/state/lmdb-env.ts).
 *
 * Kept results (rule 8 in graph.ts) are also indexed by the wall-clock time they were kept;
 * every resolveMany drops a bounded number of those older than `replayTtlMs`, so a consumer that
 * never calls forget() cannot grow them without bound (Redis uses key expiry for the same).
 */
import type { Database, RootDatabase } from 'lmdb'
import { CdpError } from '../errors.js'
import { EnvLifecycle, lmdbKey, openEnv, readOp, WriteQueue } from '../state/lmdb-env.js'
import {
  canonicalIn, eraseIn, identityKey, profilesOfIn, resolveOrReplay, type GraphErasure,
  type GraphOptions, type GraphTxn, type IdentityGraph, type IdentityRecord, type ProfileRecord, type ResolveResult,
} from './graph.js'

export interface LmdbGraphOptions extends GraphOptions {
  /** directory of the LMDB environment (created when missing) */
  path: string
  /** how long a kept result outlives a consumer that never calls forget(); default 1 hour */
  replayTtlMs?: number
  /** fsync every commit (default); see openEnv in src/state/lmdb-env.ts */
  sync?: boolean
}

/** kept results dropped per resolveMany at most: bounds the extra work of one transaction */
const SWEEP_LIMIT = 500

class LmdbIdentityGraph implements IdentityGraph {
  readonly #identities: Database<IdentityRecord, string>
  readonly #profiles: Database<ProfileRecord, string>
  readonly #resolved: Database<ResolveResult, string>
  /** `<kept at, 15 digits>\0<resolved key>` -> resolved key */
  readonly #keptAt: Database<string, string>
  readonly #writes: WriteQueue
  readonly #view: GraphTxn
  readonly #life: EnvLifecycle

  constructor(private readonly env: RootDatabase, private readonly opts: GraphOptions, private readonly replayTtlMs: number) {
    this.#identities = env.openDB<IdentityRecord, string>({ name: 'identities' })
    this.#profiles = env.openDB<ProfileRecord, string>({ name: 'profiles' })
    this.#resolved = env.openDB<ResolveResult, string>({ name: 'resolved' })
    this.#keptAt = env.openDB<string, string>({ name: 'resolved-at' })
    this.#writes = new WriteQueue(env, 'identity graph')
    this.#life = new EnvLifecycle(env, this.#writes)
    const k = (tenant: string, key: string): string => lmdbKey(`${tenant}\u0000${key}`)
    this.#view = {
      getIdentity: (t, key) => this.#identities.get(k(t, key)),
      putIdentity: (t, key, rec) => this.#identities.putSync(k(t, key), rec),
      getProfile: (t, id) => this.#profiles.get(k(t, id)),
      putProfile: (t, id, rec) => this.#profiles.putSync(k(t, id), rec),
      getResolved: (t, id) => this.#resolved.get(k(t, id)),
      putResolved: (t, id, r) => {
        const key = k(t, id)
        this.#resolved.putSync(key, r)
        this.#keptAt.putSync(`${String(Date.now()).padStart(15, '0')}\u0000${key}`, key)
      },
    }
  }

  async resolve(...args: Parameters<IdentityGraph['resolve']>): Promise<ResolveResult> {
    const [tenant, identities, event, now] = args
    const [r] = await this.resolveMany([{ tenant, identities, event }], now)
    return r as ResolveResult
  }

  resolveMany(...[items, now]: Parameters<IdentityGraph['resolveMany']>): Promise<ResolveResult[]> {
    if (items.length === 0) return Promise.resolve([])
    return this.#writes.run(() => {
      this.#sweep()
      return items.map((item) => resolveOrReplay(this.#view, item, now, this.opts))
    })
  }

  #sweep(): void {
    const end = `${String(Date.now() - this.replayTtlMs).padStart(15, '0')}\u0000`
    const old = [...this.#keptAt.getRange({ end, limit: SWEEP_LIMIT })]
    for (const { key, value } of old) {
      this.#resolved.removeSync(value)
      this.#keptAt.removeSync(key)
    }
  }

  canonical(tenant: string, profileId: string): Promise<string> {
    return readOp('identity canonical', () => this.#life.closed, () => canonicalIn(this.#view, tenant, profileId)?.id ?? profileId)
  }

  canonicalMany(tenant: string, profileIds: string[]): Promise<string[]> {
    return readOp('identity canonical', () => this.#life.closed, () => profileIds.map((id) => canonicalIn(this.#view, tenant, id)?.id ?? id))
  }

  lookup(...[tenant, identity]: Parameters<IdentityGraph['lookup']>): Promise<string | undefined> {
    return readOp('identity lookup', () => this.#life.closed, () => {
      const rec = this.#view.getIdentity(tenant, identityKey(identity))
      if (rec === undefined) return undefined
      const p = canonicalIn(this.#view, tenant, rec.p)
      if (p === undefined) throw new CdpError('internal_error', `identity graph: missing profile ${rec.p}`)
      return p.id
    })
  }

  async forget(events: { tenant: string; eventId: string }[]): Promise<void> {
    if (events.length === 0) return
    await this.#writes.run(() => {
      for (const e of events) this.#resolved.removeSync(lmdbKey(`${e.tenant}\u0000${e.eventId}`))
    })
  }

  profilesOf(...[tenant, identities]: Parameters<IdentityGraph['profilesOf']>): Promise<string[]> {
    return readOp('identity profiles', () => this.#life.closed, () => profilesOfIn(this.#view, tenant, identities))
  }

  erase(...[tenant, what]: Parameters<IdentityGraph['erase']>): Promise<GraphErasure> {
    const k = (t: string, key: string): string => lmdbKey(`${t}\u0000${key}`)
    return this.#writes.run(() => eraseIn({
      ...this.#view,
      removeIdentity: (t, key) => void this.#identities.removeSync(k(t, key)),
      removeProfile: (t, id) => void this.#profiles.removeSync(k(t, id)),
      // the resolved-at index entry may stay: the sweep removes a missing key harmlessly
      removeResolved: (t, id) => this.#resolved.removeSync(k(t, id)),
    }, tenant, what))
  }

  ping(): Promise<boolean> { return this.#life.ping() }

  close(): Promise<void> { return this.#life.close() }
}

export function openLmdbIdentityGraph(opts: LmdbGraphOptions): IdentityGraph {
  return new LmdbIdentityGraph(openEnv(opts.path, opts.sync ?? true), { maxProfilesPerDevice: opts.maxProfilesPerDevice }, opts.replayTtlMs ?? 3600_000)
}
