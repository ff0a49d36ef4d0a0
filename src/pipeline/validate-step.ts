/**
 * Validate step: what the API checks before producing, checked again for records that direct
 * producers wrote past the API. The key must name the value's tuple, the properties must meet the
 * tenant's contract, and the identity must hold at least one valid identifier.
 */
import { fingerprintOf } from '../avro/event.js'
import { validateIdentity } from '../identity/normalize.js'
import type { Decoded } from './decode-step.js'
import type { ProcessorDeps } from './deps.js'
import { deadLetter, ok, type Outcome } from './outcome.js'

export interface Valid extends Decoded {
  /** decides repeat (same fact) versus conflict (same tuple, other payload) in the dedup step */
  fingerprint: string
  /** the parsed properties, for the typed columns of the events row */
  properties: unknown
}

export function validateStep(deps: Pick<ProcessorDeps, 'checkContract' | 'config'>): (x: Decoded) => Outcome<Valid> {
  return (x) => {
    const { record, key, event: e } = x
    const letter = (tenant: string, reason: 'key_mismatch' | 'contract_violation' | 'no_identity', message: string) =>
      deadLetter({ record, key, tenant, reason, message })
    if (!key.matches(e)) {
      return letter(key.tenant, 'key_mismatch', 'the key does not match tenant, source and externalEventId of the value')
    }
    let properties: unknown
    try { properties = JSON.parse(e.properties) } catch {
      return letter(e.tenant, 'contract_violation', 'properties is not JSON')
    }
    const c = deps.checkContract(e.tenant, e.eventType, properties)
    if (!c.ok) return letter(e.tenant, 'contract_violation', c.details.map((d) => `${d.pointer}: ${d.message}`).join('; '))
    const id = e.identity
    if (![id.externalUserId, id.email, id.phone, id.deviceKey].some((v) => typeof v === 'string' && v.trim() !== '')) {
      return letter(e.tenant, 'no_identity', 'identity.externalUserId, identity.email, identity.phone, or identity.deviceKey is required')
    }
    // the API answers these with 422 (invalid_email, invalid_phone); a direct record gets the same verdict
    const invalid = validateIdentity(id, deps.config.identity)
    if (invalid.length > 0) return letter(e.tenant, 'contract_violation', invalid.map((d) => `${d.pointer}: ${d.message}`).join('; '))
    return ok({ ...x, fingerprint: fingerprintOf(e), properties })
  }
}
