/**
 * API keys: `rfcdp_<key id, 16 chars>_<secret, 32 chars>` (lowercase base32, 160-bit secret).
 * The prefix makes leaked keys easy to spot (secret scanners, logs); the key id lets us find the
 * record without scanning; only sha256(secret) is stored (the secret is random and long, so a
 * slow password hash adds nothing). Comparison is constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { ApiKeyRecord, KeyStore } from '../state/types.js'

/**
 * query:read: analyst SQL over the key's own tenant, PII masked. query:all: across tenants (an
 * operator key; only the CLI creates keys). pii:read: identity values and pii properties raw.
 * events:read: the status of the tenant's own events (GET /v1/cdp/events/{source}/{id}).
 * dlq:manage: list and redrive dead letters of every tenant (an operator key, `cdp dlq`).
 * privacy:erase: request and read erasures of people of the key's tenant (docs/PRIVACY.md).
 */
export const PERMISSIONS = ['events:write', 'events:batch', 'query:read', 'query:all', 'pii:read', 'events:read', 'dlq:manage', 'privacy:erase'] as const
export type Permission = (typeof PERMISSIONS)[number]

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const KEY_RE = /^rfcdp_([a-z2-7]{16})_([a-z2-7]{32})$/

function randomBase32(n: number): string {
  const bytes = randomBytes(n)
  let out = ''
  for (let i = 0; i < n; i++) out += ALPHABET[bytes[i]! & 31]
  return out
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

export function parseKey(raw: string): { id: string; secret: string } | undefined {
  const m = KEY_RE.exec(raw)
  return m === null ? undefined : { id: m[1]!, secret: m[2]! }
}

export interface NewKey {
  tenant: string
  permissions: Permission[]
  sources?: string[]
  expiresAt?: string | null
  label?: string | null
}

export async function createKey(store: KeyStore, k: NewKey, now = new Date()): Promise<{ key: string; record: ApiKeyRecord }> {
  const id = randomBase32(16)
  const secret = randomBase32(32)
  const record: ApiKeyRecord = {
    id,
    tenant: k.tenant,
    secretHash: hashSecret(secret),
    permissions: [...k.permissions],
    sources: [...(k.sources ?? [])],
    createdAt: now.toISOString(),
    expiresAt: k.expiresAt ?? null,
    revokedAt: null,
    label: k.label ?? null,
  }
  await store.putKey(record)
  return { key: `rfcdp_${id}_${secret}`, record }
}

export async function revokeKey(store: KeyStore, id: string, now = new Date()): Promise<ApiKeyRecord | undefined> {
  const rec = await store.getKey(id)
  if (rec === undefined) return undefined
  if (rec.revokedAt === null) {
    rec.revokedAt = now.toISOString()
    await store.putKey(rec)
  }
  return rec
}

export type AuthOutcome =
  | { ok: true; key: ApiKeyRecord }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown' | 'revoked' | 'expired' }

/**
 * Verifies bearer keys with a short positive cache, so a hot path does not hit Redis per
 * request. Revocation and expiry therefore take effect within `cacheMs` (default 1 s).
 * Unknown key ids are remembered for `negativeCacheMs` (default 5 s), so a flood of random
 * well-formed keys costs one store read per id, not one per request. Ids are random, so the
 * only key this delays is one created within those seconds after someone guessed its id.
 */
export class KeyVerifier {
  private readonly cache = new Map<string, { rec: ApiKeyRecord; until: number }>()
  private readonly unknown = new Map<string, number>()

  constructor(
    private readonly store: KeyStore,
    private readonly cacheMs = 1000,
    private readonly now: () => number = Date.now,
    private readonly negativeCacheMs = 5000,
  ) {}

  async verify(header: string | undefined): Promise<AuthOutcome> {
    if (header === undefined || header === '') return { ok: false, reason: 'missing' }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (m === null) return { ok: false, reason: 'malformed' }
    const parsed = parseKey(m[1]!)
    if (parsed === undefined) return { ok: false, reason: 'malformed' }
    const t = this.now()
    const cached = this.cache.get(parsed.id)
    let rec = cached !== undefined && cached.until > t ? cached.rec : undefined
    if (rec === undefined && !((this.unknown.get(parsed.id) ?? 0) > t)) {
      rec = await this.store.getKey(parsed.id)
      if (rec !== undefined) {
        if (this.cache.size > 10_000) this.cache.clear()
        this.cache.set(parsed.id, { rec, until: t + this.cacheMs })
      } else if (this.negativeCacheMs > 0) {
        if (this.unknown.size > 100_000) this.unknown.clear()
        this.unknown.set(parsed.id, t + this.negativeCacheMs)
      }
    }
    const given = Buffer.from(hashSecret(parsed.secret), 'hex')
    // compare even when the id is unknown, so timing does not tell ids apart
    const expected = Buffer.from(rec?.secretHash ?? '0'.repeat(64), 'hex')
    const match = given.length === expected.length && timingSafeEqual(given, expected)
    if (rec === undefined || !match) return { ok: false, reason: 'unknown' }
    if (rec.revokedAt !== null) return { ok: false, reason: 'revoked' }
    if (rec.expiresAt !== null && Date.parse(rec.expiresAt) <= t) return { ok: false, reason: 'expired' }
    return { ok: true, key: rec }
  }
}
