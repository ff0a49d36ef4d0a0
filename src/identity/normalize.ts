/**
 * Identity normalization: the four identity fields of an event become typed, comparable values.
 *
 *   email          -> EMAIL     trimmed, lowercased, shape-checked (local@domain.tld)
 *   phone          -> PHONE     E.164 via libphonenumber-js (full metadata), national numbers read
 *                               in config.identity.defaultRegion; an extension is dropped
 *   externalUserId -> EXTERNAL  trimmed, case kept (upstream ids are case-sensitive)
 *   deviceKey      -> DEVICE    trimmed, case kept
 *
 * Outcomes per field:
 * - usable: a NormalizedIdentity, with the raw value kept for provenance;
 * - dropped (not an error): empty after trimming, or a junk value from
 *   config.identity.blockedValues ('null', 'n/a', 'test@test.com', ...), compared
 *   case-insensitively to the trimmed input and to the normalized value. Junk is common in
 *   upstream exports; rejecting the whole event for it would lose the business fact, and linking
 *   it would merge every customer who typed 'n/a' into one profile;
 * - invalid: an error detail (invalid_email, invalid_phone) the HTTP layer answers with 422 and
 *   the consumer dead-letters.
 * Presence ("at least one identity field") and JSON types are the envelope schema's checks
 * (src/ingest/envelope.ts); here a non-string field is simply not an identity.
 */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max'
import type { Config } from '../config/index.js'
import type { ErrorDetail } from '../errors.js'

export const IDENTITY_TYPES = ['EXTERNAL', 'EMAIL', 'PHONE', 'DEVICE'] as const
export type IdentityType = (typeof IDENTITY_TYPES)[number]

export interface NormalizedIdentity {
  type: IdentityType
  /** what the identity graph keys on */
  value: string
  /** as received, for provenance */
  raw: string
}

/** the identity object of an event (envelope or decoded Avro record) */
export interface IdentityInput {
  externalUserId?: unknown
  email?: unknown
  phone?: unknown
  deviceKey?: unknown
}

export type IdentityField = 'externalUserId' | 'email' | 'phone' | 'deviceKey'

export const FIELD_TYPES: Readonly<Record<IdentityField, IdentityType>> = {
  externalUserId: 'EXTERNAL',
  email: 'EMAIL',
  phone: 'PHONE',
  deviceKey: 'DEVICE',
}

const FIELDS = Object.keys(FIELD_TYPES) as IdentityField[]

export type NormalizeErrorCode = 'invalid_email' | 'invalid_phone'
export type FieldResult = { ok: true; value: string } | { ok: false; code: NormalizeErrorCode }

export type DropReason = 'empty' | 'blocked_value'
export interface DroppedIdentity {
  field: IdentityField
  type: IdentityType
  raw: string
  reason: DropReason
}

export interface NormalizedIdentities {
  identities: NormalizedIdentity[]
  dropped: DroppedIdentity[]
  /** invalid values, with pointers under `pointerBase` */
  errors: ErrorDetail[]
}

export type IdentityOptions = Pick<Config['identity'], 'defaultRegion' | 'blockedValues'>

const MAX_EMAIL = 254
const MAX_LOCAL = 64
// pragmatic, not RFC 5322: one @, no spaces or control characters, a dotted domain of
// letters/digits/hyphens (or non-ASCII, for IDNs) ending in a TLD of 2+ characters
const LOCAL = /^[^\s@\u0000-\u001f\u007f"(),:;<>[\\\]]+$/
const LABEL = /^(?!-)[a-z0-9\u00a1-\uffff-]{1,63}(?<!-)$/
const TLD = /^(?:[a-z\u00a1-\uffff]{2,63}|xn--[a-z0-9-]{1,59})$/

export function normalizeEmail(raw: string): FieldResult {
  const value = raw.trim().toLowerCase()
  const at = value.lastIndexOf('@')
  if (value.length > MAX_EMAIL || at <= 0 || at > MAX_LOCAL) return { ok: false, code: 'invalid_email' }
  const local = value.slice(0, at)
  const domain = value.slice(at + 1)
  if (!LOCAL.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    return { ok: false, code: 'invalid_email' }
  }
  const labels = domain.split('.')
  const tld = labels[labels.length - 1] ?? ''
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l)) || !TLD.test(tld)) return { ok: false, code: 'invalid_email' }
  return { ok: true, value }
}

export function normalizePhone(raw: string, defaultRegion: string): FieldResult {
  const phone = parsePhoneNumberFromString(raw.trim(), { defaultCountry: defaultRegion as CountryCode })
  if (phone === undefined || !phone.isValid()) return { ok: false, code: 'invalid_phone' }
  return { ok: true, value: phone.number }
}

export function normalizeExternalId(raw: string): string {
  return raw.trim()
}

export function normalizeDeviceKey(raw: string): string {
  return raw.trim()
}

const MESSAGES: Record<NormalizeErrorCode, string> = {
  invalid_email: 'identity.email is not a valid email address',
  invalid_phone: 'identity.phone is not a valid phone number (E.164, or national format of the default region)',
}

/**
 * A normalizer bound to the identity config: the blocked set is built once, and recent phone
 * results are cached (libphonenumber-js costs ~10 µs a number; the same customers come back).
 */
export class IdentityNormalizer {
  readonly #blocked: ReadonlySet<string>
  readonly #region: string
  readonly #phoneCache = new Map<string, FieldResult>()
  static readonly PHONE_CACHE_SIZE = 10_000

  constructor(opts: IdentityOptions) {
    this.#blocked = new Set(opts.blockedValues.map((v) => v.trim().toLowerCase()))
    this.#region = opts.defaultRegion
  }

  isBlocked(value: string): boolean {
    return this.#blocked.has(value.toLowerCase())
  }

  /** normalize one field's value; undefined when the field is absent or not a string */
  field(field: IdentityField, raw: unknown): { identity: NormalizedIdentity } | { dropped: DropReason } | { error: NormalizeErrorCode } | undefined {
    if (typeof raw !== 'string') return undefined
    const trimmed = raw.trim()
    if (trimmed === '') return { dropped: 'empty' }
    if (this.isBlocked(trimmed)) return { dropped: 'blocked_value' }
    const type = FIELD_TYPES[field]
    let value: string
    switch (type) {
      case 'EMAIL': {
        const r = normalizeEmail(trimmed)
        if (!r.ok) return { error: r.code }
        value = r.value
        break
      }
      case 'PHONE': {
        const r = this.#phone(trimmed)
        if (!r.ok) return { error: r.code }
        value = r.value
        break
      }
      case 'EXTERNAL':
        value = normalizeExternalId(trimmed)
        break
      case 'DEVICE':
        value = normalizeDeviceKey(trimmed)
        break
    }
    if (this.isBlocked(value)) return { dropped: 'blocked_value' }
    return { identity: { type, value, raw } }
  }

  normalize(input: IdentityInput | null | undefined, pointerBase = '/identity'): NormalizedIdentities {
    const out: NormalizedIdentities = { identities: [], dropped: [], errors: [] }
    if (input === null || input === undefined || typeof input !== 'object') return out
    for (const f of FIELDS) {
      const raw = input[f]
      const r = this.field(f, raw)
      if (r === undefined) continue
      if ('identity' in r) out.identities.push(r.identity)
      else if ('dropped' in r) out.dropped.push({ field: f, type: FIELD_TYPES[f], raw: raw as string, reason: r.dropped })
      else out.errors.push({ pointer: `${pointerBase}/${f}`, code: r.error, message: MESSAGES[r.error] })
    }
    return out
  }

  /** the HTTP layer's check: value-shape errors only (presence and types are the envelope's) */
  validate(input: IdentityInput | null | undefined, pointerBase = '/identity'): ErrorDetail[] {
    return this.normalize(input, pointerBase).errors
  }

  #phone(trimmed: string): FieldResult {
    const hit = this.#phoneCache.get(trimmed)
    if (hit !== undefined) return hit
    const r = normalizePhone(trimmed, this.#region)
    if (this.#phoneCache.size >= IdentityNormalizer.PHONE_CACHE_SIZE) {
      // drop the oldest entry (Map keeps insertion order): a cheap FIFO bound
      const oldest = this.#phoneCache.keys().next()
      if (oldest.done !== true) this.#phoneCache.delete(oldest.value)
    }
    this.#phoneCache.set(trimmed, r)
    return r
  }
}

// one normalizer per distinct options object: config is frozen once at start-up, so callers that
// pass config.identity every time share the blocked set and the phone cache
const normalizers = new WeakMap<object, IdentityNormalizer>()

function normalizerFor(opts: IdentityOptions): IdentityNormalizer {
  let n = normalizers.get(opts)
  if (n === undefined) {
    n = new IdentityNormalizer(opts)
    normalizers.set(opts, n)
  }
  return n
}

export function normalizeIdentities(input: IdentityInput | null | undefined, opts: IdentityOptions, pointerBase = '/identity'): NormalizedIdentities {
  return normalizerFor(opts).normalize(input, pointerBase)
}

/** value-shape errors of an event's identity object, e.g. `{ pointer: '/identity/email', code: 'invalid_email' }` */
export function validateIdentity(input: IdentityInput | null | undefined, opts: IdentityOptions, pointerBase = '/identity'): ErrorDetail[] {
  return normalizerFor(opts).validate(input, pointerBase)
}
