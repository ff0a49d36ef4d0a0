/**
 * Pseudonymized tenants (src/privacy/keyed-hash.ts, docs/PRIVACY.md): ClickHouse never holds
 * their raw identities or pii properties. The identity step hashes identities after
 * normalization (identity-step.ts); here the contract properties flagged `pii` are hashed in the
 * events row (the JSON document and the typed columns, which are read from the same object), and
 * dead letters of those tenants lose their value (it holds everything raw). The fingerprint was
 * taken from the raw record before, so dedup is unchanged.
 */
import type { ProcessorDeps } from './deps.js'
import type { DeadLetter } from './outcome.js'
import type { Unique } from './dedup-step.js'

export function pseudonymizeFacts(deps: Pick<ProcessorDeps, 'pseudonymizer' | 'piiProperties'>): (items: Unique[]) => Unique[] {
  const p = deps.pseudonymizer
  return (items) => {
    if (p === undefined || deps.piiProperties === undefined) return items
    return items.map((x) => {
      const e = x.event
      if (!p.applies(e.tenant)) return x
      const pii = deps.piiProperties!(e.tenant, e.eventType)
      const props = x.properties
      if (pii.length === 0 || props === null || typeof props !== 'object') return x
      const hashed: Record<string, unknown> = { ...(props as Record<string, unknown>) }
      for (const name of pii) if (name in hashed) hashed[name] = p.property(e.tenant, hashed[name])
      return { ...x, properties: hashed, event: { ...e, properties: JSON.stringify(hashed) } }
    })
  }
}

export function withoutValues(deps: Pick<ProcessorDeps, 'pseudonymizer'>): (letters: DeadLetter[]) => DeadLetter[] {
  const p = deps.pseudonymizer
  return (letters) => p === undefined ? letters
    : letters.map((l) => (l.tenant !== null && p.applies(l.tenant) && l.record.value !== null ? { ...l, record: { ...l.record, value: null } } : l))
}
