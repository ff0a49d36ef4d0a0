/**
 * The two keyed hashes of the privacy features, both HMAC-SHA256 in lowercase hex:
 *
 * - pseudonymization (per tenant, secret from config.privacy.tenantSecrets, i.e. a file outside
 *   ClickHouse): identity values after normalization and contract properties flagged `pii`, so
 *   equal inputs hash equal (resolution, dedup and joins still work) and nobody without the
 *   secret can test a guess;
 * - suppression (one key for the deployment, created once in the state store): the suppression
 *   list's entries, so the list itself names nobody.
 *
 * Inputs are length-free but unambiguous: NUL separates the parts, and none of them holds a NUL
 * (tenants and identity types are restricted; values come from JSON strings, which may, so the
 * value goes last).
 */
import { createHmac } from 'node:crypto'
import type { Config } from '../config/index.js'
import type { IdentityType } from '../identity/normalize.js'

export function hmacHex(key: string | Buffer, ...parts: string[]): string {
  return createHmac('sha256', key).update(parts.join('\u0000')).digest('hex')
}

/** the suppression hash of one identity of a tenant (value as the identity graph keys it) */
export function suppressionHash(key: Buffer, tenant: string, i: { type: IdentityType; value: string }): string {
  return hmacHex(key, 'suppression', tenant, i.type, i.value)
}

export interface Pseudonymizer {
  /** true when the tenant's identities and pii properties are stored as keyed hashes */
  applies(tenant: string): boolean
  /** the value to store for a normalized identity (itself for other tenants) */
  identity(tenant: string, type: IdentityType, value: string): string
  /** a pii property's value: its JSON text hashed, as a string (the value itself for other tenants) */
  property(tenant: string, value: unknown): unknown
}

export function createPseudonymizer(privacy: Pick<Config['privacy'], 'pseudonymizeTenants' | 'tenantSecrets'>): Pseudonymizer {
  const tenants = new Set(privacy.pseudonymizeTenants)
  const secret = (tenant: string): string | undefined => (tenants.has(tenant) ? privacy.tenantSecrets[tenant] : undefined)
  return {
    applies: (tenant) => secret(tenant) !== undefined,
    identity: (tenant, type, value) => {
      const s = secret(tenant)
      return s === undefined ? value : hmacHex(s, 'identity', type, value)
    },
    property: (tenant, value) => {
      const s = secret(tenant)
      if (s === undefined || value === null || value === undefined) return value
      return hmacHex(s, 'property', JSON.stringify(value))
    },
  }
}
