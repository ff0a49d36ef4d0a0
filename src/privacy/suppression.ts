/**
 * Suppression: after an erasure, events carrying any identity of the erased person are refused
 * for that tenant: by the API (409 `suppressed`, nothing produced) and by the consumer for
 * records direct producers wrote (dead letter `suppressed` without the value, and a tombstone).
 *
 * The list holds keyed hashes (keyed-hash.ts) of the identities as the identity graph keys them:
 * normalized, and pseudonymized first for tenants in pseudonymized mode. So the list names
 * nobody, and a lookup costs one read per batch (LMDB: in-process; Redis: one MGET).
 */
import type { Config } from '../config/index.js'
import { normalizeIdentities, type IdentityInput, type NormalizedIdentity } from '../identity/normalize.js'
import type { PrivacyStore } from '../state/privacy-store.js'
import { suppressionHash, type Pseudonymizer } from './keyed-hash.js'

export interface SuppressionCheck {
  /** per identity object (an event's `identity`), whether any of its identities is suppressed for the tenant */
  suppressed(tenant: string, identities: readonly (IdentityInput | null | undefined)[]): Promise<boolean[]>
  /** the hash the list stores for one identity given in graph form (normalized, and already pseudonymized where the tenant is) */
  hash(tenant: string, identity: Pick<NormalizedIdentity, 'type' | 'value'>): Promise<string>
}

export function createSuppressionCheck(
  config: Readonly<Pick<Config, 'identity'>>, store: Pick<PrivacyStore, 'isSuppressed' | 'suppressionKey'>, pseudonymizer: Pseudonymizer,
): SuppressionCheck {
  let key: Promise<Buffer> | undefined
  const keyOnce = (): Promise<Buffer> => (key ??= store.suppressionKey().catch((err: unknown) => { key = undefined; throw err }))
  const hash = async (tenant: string, i: Pick<NormalizedIdentity, 'type' | 'value'>): Promise<string> =>
    suppressionHash(await keyOnce(), tenant, { type: i.type, value: i.value })
  return {
    hash,
    async suppressed(tenant, identities) {
      const k = await keyOnce()
      const perItem = identities.map((input) => normalizeIdentities(input, config.identity).identities
        .map((i) => suppressionHash(k, tenant, { type: i.type, value: pseudonymizer.identity(tenant, i.type, i.value) })))
      const all = [...new Set(perItem.flat())]
      if (all.length === 0) return identities.map(() => false)
      const hits = await store.isSuppressed(tenant, all)
      const on = new Set(all.filter((_, i) => hits[i] === true))
      return perItem.map((hashes) => hashes.some((h) => on.has(h)))
    },
  }
}
