/**
 * The identity graph on LMDB (embedded mode): its own environment, so identity writes of the
 * consumer never wait on the API's claim writes. One resolveMany call is one write transaction
 * (coalesced with the other calls of the same event-loop turn, see src/state/lmdb-env.ts).
 */
import type { Database, RootDatabase } from 'lmdb'
import { CdpError } from '../errors.js'
import { lmdbKey, openEnv, readOp, WriteQueue } from '../state/lmdb-env.js'
import {
  canonicalIn, identityKey, resolveInTxn,
  type GraphOptions, type GraphTxn, type IdentityGraph, type IdentityRecord, type ProfileRecord, type ResolveResult,
} from './graph.js'

export interface LmdbGraphOptions extends GraphOptions {
  /** directory of the LMDB environment (created when missing) */
  path: string
}

class LmdbIdentityGraph implements IdentityGraph {
  readonly #identities: Database<IdentityRecord, string>
  readonly #profiles: Database<ProfileRecord, string>
  readonly #writes: WriteQueue
  readonly #view: GraphTxn
  #closed = false

  constructor(private readonly env: RootDatabase, private readonly opts: GraphOptions) {
    this.#identities = env.openDB<IdentityRecord, string>({ name: 'identities' })
    this.#profiles = env.openDB<ProfileRecord, string>({ name: 'profiles' })
    this.#writes = new WriteQueue(env, 'identity graph')
    const k = (tenant: string, key: string): string => lmdbKey(`${tenant}\u0000${key}`)
    this.#view = {
      getIdentity: (t, key) => this.#identities.get(k(t, key)),
      putIdentity: (t, key, rec) => this.#identities.putSync(k(t, key), rec),
      getProfile: (t, id) => this.#profiles.get(k(t, id)),
      putProfile: (t, id, rec) => this.#profiles.putSync(k(t, id), rec),
    }
  }

  async resolve(...args: Parameters<IdentityGraph['resolve']>): Promise<ResolveResult> {
    const [tenant, identities, event, now] = args
    const [r] = await this.resolveMany([{ tenant, identities, event }], now)
    return r as ResolveResult
  }

  resolveMany(...[items, now]: Parameters<IdentityGraph['resolveMany']>): Promise<ResolveResult[]> {
    if (items.length === 0) return Promise.resolve([])
    return this.#writes.run(() => items.map((item) => resolveInTxn(this.#view, item, now, this.opts)))
  }

  canonical(tenant: string, profileId: string): Promise<string> {
    return readOp('identity canonical', () => this.#closed, () => canonicalIn(this.#view, tenant, profileId)?.id ?? profileId)
  }

  canonicalMany(tenant: string, profileIds: string[]): Promise<string[]> {
    return readOp('identity canonical', () => this.#closed, () => profileIds.map((id) => canonicalIn(this.#view, tenant, id)?.id ?? id))
  }

  lookup(...[tenant, identity]: Parameters<IdentityGraph['lookup']>): Promise<string | undefined> {
    return readOp('identity lookup', () => this.#closed, () => {
      const rec = this.#view.getIdentity(tenant, identityKey(identity))
      if (rec === undefined) return undefined
      const p = canonicalIn(this.#view, tenant, rec.p)
      if (p === undefined) throw new CdpError('internal_error', `identity graph: missing profile ${rec.p}`)
      return p.id
    })
  }

  ping(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    try {
      this.env.get('\u0000ping')
      return Promise.resolve(true)
    } catch {
      return Promise.resolve(false)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#writes.close()
    await this.env.close()
  }
}

export function openLmdbIdentityGraph(opts: LmdbGraphOptions): IdentityGraph {
  return new LmdbIdentityGraph(openEnv(opts.path), { maxProfilesPerDevice: opts.maxProfilesPerDevice })
}
