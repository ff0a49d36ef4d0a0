/**
 * API keys: `rfcdp_<key id, 16 chars>_<secret, 32 chars>` (lowercase base32, 160-bit secret).
 * The prefix makes leaked keys easy to spot (secret scanners, logs); the key id lets us find the
 * record without scanning; only sha256(secret) is stored (the secret is random and long, so a
 * slow password hash adds nothing). Comparison is constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { CdpError } from '../errors.js'
import type { ApiKeyRecord, KeyStore } from '../state/types.js'

/**
 * Two kinds of key. A tenant key is bound to one tenant and carries tenant permissions:
 * events:write, events:batch (ingest), query:read (analyst SQL over its own tenant, PII hashed),
 * events:read (the status of its own events), privacy:erase (erasures of its own tenant's people).
 * An operator key is bound to no tenant (`tenant: null`) and carries operator permissions:
 * query:all (analyst SQL across every tenant) and dlq:manage (list and redrive dead letters of
 * every tenant, `cdp dlq`). pii:read (identity values and pii properties raw) goes with either
 * kind. Only the CLI makes keys, so an operator key never comes from the HTTP API; a kind never
 * borrows the other's permissions, so a producer's leaked key cannot read across tenants.
 */
export const PERMISSIONS = ['events:write', 'events:batch', 'query:read', 'query:all', 'pii:read', 'events:read', 'dlq:manage', 'privacy:erase'] as const
export type Permission = (typeof PERMISSIONS)[number]

export const OPERATOR_PERMISSIONS: readonly Permission[] = ['query:all', 'dlq:manage']
export const TENANT_PERMISSIONS: readonly Permission[] = ['events:write', 'events:batch', 'query:read', 'events:read', 'privacy:erase']
/** either kind of key may hold these */
export const SHARED_PERMISSIONS: readonly Permission[] = ['pii:read']

/** whether `p`, a string from a command line or a stored record, is one of `list` */
export function isIn(list: readonly Permission[], p: string): boolean {
  return (list as readonly string[]).includes(p)
}

export type KeyRuleCode = 'operator_permission_on_tenant_key' | 'tenant_permission_on_operator_key' | 'operator_key_without_operator_permission' | 'unknown_permission' | 'no_permission'

/** Whether a key of `tenant` (null: an operator key) may carry `permissions`; the refusal has a stable code. */
export function checkKeyPermissions(tenant: string | null, permissions: readonly string[]): { ok: true } | { ok: false; code: KeyRuleCode; message: string } {
  const unknown = permissions.filter((p) => !isIn(PERMISSIONS, p))
  if (unknown.length > 0) return { ok: false, code: 'unknown_permission', message: `unknown permission ${unknown.join(', ')} (known: ${PERMISSIONS.join(', ')})` }
  if (permissions.length === 0) return { ok: false, code: 'no_permission', message: 'a key needs at least one permission' }
  if (tenant !== null) {
    const op = permissions.filter((p) => isIn(OPERATOR_PERMISSIONS, p))
    if (op.length > 0) {
      return { ok: false, code: 'operator_permission_on_tenant_key', message: `${op.join(', ')} ${op.length > 1 ? 'are operator permissions' : 'is an operator permission'}: ` +
        'an operator key has no tenant (cdp keys create --operator --permission ' + op[0] + ')' }
    }
    return { ok: true }
  }
  const tp = permissions.filter((p) => isIn(TENANT_PERMISSIONS, p))
  if (tp.length > 0) {
    return { ok: false, code: 'tenant_permission_on_operator_key', message: `${tp.join(', ')} ${tp.length > 1 ? 'need' : 'needs'} a tenant: ` +
      `an operator key carries only ${[...OPERATOR_PERMISSIONS, ...SHARED_PERMISSIONS].join(', ')}` }
  }
  if (!permissions.some((p) => isIn(OPERATOR_PERMISSIONS, p))) {
    return { ok: false, code: 'operator_key_without_operator_permission', message: `an operator key needs ${OPERATOR_PERMISSIONS.join(' or ')}` }
  }
  return { ok: true }
}

/**
 * What `permission` is worth on a stored key. 'legacy': a key of a tenant made before operator
 * keys existed that holds an operator permission; it is no longer honoured (the caller answers
 * 403 saying how to replace the key), since a tenant key reading every tenant is what the
 * operator kind exists to prevent.
 */
export function grants(key: Pick<ApiKeyRecord, 'tenant' | 'permissions'>, permission: Permission): 'yes' | 'no' | 'legacy' {
  if (!key.permissions.includes(permission)) return 'no'
  if (isIn(SHARED_PERMISSIONS, permission)) return 'yes'
  const operatorPermission = isIn(OPERATOR_PERMISSIONS, permission)
  if (key.tenant === null) return operatorPermission ? 'yes' : 'no'
  return operatorPermission ? 'legacy' : 'yes'
}

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
  /** null: an operator key (query:all, dlq:manage, pii:read only) */
  tenant: string | null
  permissions: Permission[]
  sources?: string[]
  expiresAt?: string | null
  label?: string | null
}

/** Throws bad_request (details: the rule's code) when the permissions do not fit the kind of key; the CLI checks first. */
export async function createKey(store: KeyStore, k: NewKey, now = new Date()): Promise<{ key: string; record: ApiKeyRecord }> {
  const rule = checkKeyPermissions(k.tenant, k.permissions)
  if (!rule.ok) throw new CdpError('bad_request', rule.message, { details: [{ pointer: '/permissions', code: rule.code, message: rule.message }] })
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
