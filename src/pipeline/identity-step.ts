/**
 * Identity step: normalize the raw identifiers of each event (the raw values stay in the topic
 * for provenance), resolve them against the global identity graph in one transaction per batch,
 * and turn the graph's answer into ClickHouse rows.
 */
import type { Config } from '../config/index.js'
import type { CdpEvent } from '../avro/event.js'
import { normalizeIdentities, type NormalizedIdentity } from '../identity/normalize.js'
import type { IdentityGraph } from '../identity/graph.js'
import type { IdentityResolution, IdentityStep } from './deps.js'
import type { Logger } from '../observability/logger.js'
import type { Pseudonymizer } from '../privacy/index.js'

const TYPE_NAME = { EXTERNAL: 'external', EMAIL: 'email', PHONE: 'phone', DEVICE: 'device' } as const
const iso = (t: number) => new Date(t).toISOString()

/** counts of what resolution did (metrics); reasons come from the graph's fixed sets */
export interface IdentityObserver {
  merge(reason: string): void
  blocked(reason: string): void
}

/**
 * With a pseudonymizer, a pseudonymized tenant's identities are hashed right after normalization:
 * the graph, the identities rows and the events row only ever see the hash (and no raw value).
 */
export function createIdentityStep(
  graph: IdentityGraph, config: Readonly<Config>, log: Logger, observe?: IdentityObserver, pseudonymizer?: Pseudonymizer,
): IdentityStep {
  const graphForm = (tenant: string, ids: NormalizedIdentity[]): NormalizedIdentity[] =>
    pseudonymizer === undefined || !pseudonymizer.applies(tenant) ? ids
      : ids.map((i) => { const value = pseudonymizer.identity(tenant, i.type, i.value); return { type: i.type, value, raw: value } })
  return {
    async forget(events: CdpEvent[]): Promise<void> {
      await graph.forget(events.map((e) => ({ tenant: e.tenant, eventId: e.eventId })))
    },
    async resolveMany(events: CdpEvent[]): Promise<IdentityResolution[]> {
      const normalized = events.map((e) => {
        const n = normalizeIdentities(e.identity, config.identity)
        return { ...n, identities: graphForm(e.tenant, n.identities) }
      })
      const results = await graph.resolveMany(
        events.map((e, i) => ({ tenant: e.tenant, identities: normalized[i]!.identities, event: { eventId: e.eventId } })),
        Date.now(),
      )
      return results.map((r, i) => {
        const e = events[i]!
        const ids = normalized[i]!.identities
        const pick = (t: NormalizedIdentity['type']) => ids.find((x) => x.type === t)?.value ?? null
        if (observe !== undefined) {
          for (const m of r.merges) observe.merge(m.reason)
          for (const b of r.blocked) observe.blocked(b.reason)
        }
        if (r.blocked.length > 0) {
          // merge protection fired: analysts see it in the log; the graph keeps the detail
          log.info({ eventId: e.eventId, blocked: r.blocked.map((b) => ({ type: b.identity.type, reason: b.reason, profileId: b.profileId })) }, 'identity merge stopped by a limit')
        }
        return {
          profileId: r.profileId ?? '',
          email: pick('EMAIL'), phone: pick('PHONE'), externalUserId: pick('EXTERNAL'), deviceKey: pick('DEVICE'),
          identities: r.newIdentities.map((l) => ({
            tenant: l.tenant, identity_type: TYPE_NAME[l.identity.type], identity_value: l.identity.value,
            raw_value: l.identity.raw !== l.identity.value ? l.identity.raw : null,
            profile_id: l.profileId, first_event_id: l.eventId, linked_at: iso(l.at),
          })),
          merges: r.merges.map((m) => ({
            tenant: m.tenant, from_profile_id: m.fromProfileId, to_profile_id: m.toProfileId, reason: m.reason, event_id: m.eventId, merged_at: iso(m.at),
          })),
          aliases: r.aliases.map((a) => ({ tenant: a.tenant, profile_id: a.profileId, canonical_id: a.canonicalId, version: a.at, updated_at: iso(a.at) })),
        }
      })
    },
  }
}
