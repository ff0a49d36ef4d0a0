/**
 * The event envelope as sent by a backend (seed: POST /v1/cdp/events), and its structural checks.
 * Single events and batch items go through the same function, so a batch item gets exactly the
 * error a single request would get. Every problem is reported, not just the first.
 */
import { Ajv, type ErrorObject } from 'ajv'
import type { Config } from '../config/index.js'
import type { ErrorDetail } from '../errors.js'

export interface EventEnvelope {
  source: string
  externalEventId: string
  eventType: string
  occurredAt?: string
  identity: { externalUserId?: string; email?: string; phone?: string; deviceKey?: string }
  properties?: Record<string, unknown>
}

/** verbatim from the API contract (seed §2.2 example) */
export const IDENTITY_REQUIRED_MESSAGE = 'identity.externalUserId, identity.email, identity.phone, or identity.deviceKey is required'

export function envelopeSchema(v: Pick<Config['validation'], 'maxIdLength' | 'maxStringLength'>) {
  const id = { type: 'string', minLength: 1, maxLength: v.maxIdLength } as const
  return {
    $id: 'CdpEvent',
    type: 'object',
    additionalProperties: false,
    required: ['source', 'externalEventId', 'eventType', 'identity'],
    properties: {
      source: { ...id, pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$', description: 'Source system identifier such as brand.pos or brand.crm.', examples: ['brand.pos'] },
      externalEventId: { ...id, description: 'Stable idempotency key for the business fact.', examples: ['txn_987654321'] },
      eventType: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[a-z][a-z0-9_]*$', description: 'Registered CDP event type.', examples: ['purchase_completed'] },
      occurredAt: { type: 'string', maxLength: 64, description: 'ISO 8601 timestamp with offset, 1900-01-01 to 2299-12-31 UTC, at most millisecond precision (further digits must be 0); defaults to receipt time when omitted.', examples: ['2026-05-20T12:45:00Z'] },
      identity: {
        type: 'object',
        additionalProperties: false,
        description: 'Inbound identity object used for profile resolution. At least one field is required.',
        properties: {
          externalUserId: { ...id, description: 'External upstream user ID (EXTERNAL identity type).' },
          email: { type: 'string', minLength: 1, maxLength: 320, description: 'Email before normalization.' },
          phone: { type: 'string', minLength: 1, maxLength: 64, description: 'Phone before normalization (E.164 or national format).' },
          deviceKey: { ...id, description: 'Device-bound identifier.' },
        },
      },
      properties: { type: 'object', description: 'Registered event properties.', additionalProperties: true },
    },
  } as const
}

const CODE_BY_KEYWORD: Record<string, string> = {
  required: 'required',
  additionalProperties: 'unknown_field',
  type: 'type',
  minLength: 'too_short',
  maxLength: 'too_long',
  pattern: 'pattern',
}

function escapePointer(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

function toDetail(e: ErrorObject): ErrorDetail {
  const base = e.instancePath
  if (e.keyword === 'required') {
    const prop = (e.params as { missingProperty: string }).missingProperty
    return { pointer: `${base}/${escapePointer(prop)}`, code: 'required', message: `${(base + '/' + prop).slice(1).replace(/\//g, '.')} is required` }
  }
  if (e.keyword === 'additionalProperties') {
    const prop = (e.params as { additionalProperty: string }).additionalProperty
    return { pointer: `${base}/${escapePointer(prop)}`, code: 'unknown_field', message: `${(base + '/' + prop).slice(1).replace(/\//g, '.')} is not a known field` }
  }
  const where = base === '' ? 'body' : base.slice(1).replace(/\//g, '.')
  return { pointer: base, code: CODE_BY_KEYWORD[e.keyword] ?? e.keyword, message: `${where} ${e.message ?? 'is invalid'}` }
}

// ISO 8601 date-time with an explicit offset (Z or ±hh:mm); seconds and fractions optional
export const ISO_WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})$/

/** epoch ms, or an error code */
export function parseOccurredAt(s: string): number | 'invalid_timestamp' {
  const m = ISO_WITH_OFFSET.exec(s)
  if (m === null) return 'invalid_timestamp'
  const [, y, mo, d, h, mi, sec] = m
  const ms = Date.parse(s)
  if (Number.isNaN(ms)) return 'invalid_timestamp'
  // Date.parse accepts some impossible calendar dates (Feb 30); compare the calendar fields back
  const probe = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec ?? '0')))
  if (probe.getUTCMonth() !== Number(mo) - 1 || probe.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59) return 'invalid_timestamp'
  return ms
}

/** what ClickHouse's DateTime64(3, 'UTC') column holds exactly */
const MIN_STORABLE_MS = Date.UTC(1900, 0, 1)
const MAX_STORABLE_MS = Date.UTC(2300, 0, 1) - 1

/** a timestamp that parsed but would be stored as something else: out of range, or finer than 1 ms */
export function occurredAtUnstorable(s: string, ms: number): ErrorDetail | undefined {
  if (ms < MIN_STORABLE_MS || ms > MAX_STORABLE_MS) {
    return { pointer: '/occurredAt', code: 'out_of_range', message: 'occurredAt must be between 1900-01-01T00:00:00Z and 2299-12-31T23:59:59.999Z' }
  }
  const fraction = ISO_WITH_OFFSET.exec(s)?.[7] ?? ''
  if (/[1-9]/.test(fraction.slice(3))) {
    return { pointer: '/occurredAt', code: 'too_precise', message: 'occurredAt is stored with millisecond precision; send at most 3 fractional digits' }
  }
  return undefined
}

// C0 and C1 control characters (NUL included); identifiers are keys and log fields, never text
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

// a high surrogate not followed by a low one, or a low one not preceded by a high one (code units)
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** true when UTF-8 can carry the string unchanged */
export function wellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s)
}

/** control characters, or an unpaired UTF-16 surrogate (which UTF-8 cannot carry: it would be replaced) */
export function badCharacters(s: string): boolean {
  return CONTROL.test(s) || !wellFormed(s)
}

/**
 * Walks `properties` without recursion (a deep body must not overflow the stack): nesting beyond
 * `maxDepth`, and strings or keys with unpaired surrogates (stored as U+FFFD otherwise). Returns
 * the first problem of each kind.
 */
export function propertiesProblems(properties: unknown, maxDepth: number, base = '/properties'): ErrorDetail[] {
  if (properties === null || typeof properties !== 'object') return []
  const out: ErrorDetail[] = []
  let tooDeep = false
  let malformed = false
  // the pointer of a value is made only when it is needed (an error, or a container's children):
  // on the accept path most values are leaves that pass, and building every pointer showed in profiles
  const stack: { v: unknown; parent: string; key: string | undefined; depth: number }[] = [{ v: properties, parent: base, key: undefined, depth: 1 }]
  const ptrOf = (e: { parent: string; key: string | undefined }): string => (e.key === undefined ? e.parent : `${e.parent}/${escapePointer(e.key)}`)
  while (stack.length > 0 && !(tooDeep && malformed)) {
    const e = stack.pop()!
    const { v, depth } = e
    if (typeof v === 'string') {
      if (!malformed && !wellFormed(v)) {
        malformed = true
        const ptr = ptrOf(e)
        out.push({ pointer: ptr, code: 'invalid_characters', message: `${ptr.slice(1).replace(/\//g, '.')} contains an unpaired UTF-16 surrogate` })
      }
      continue
    }
    if (v === null || typeof v !== 'object') continue
    const ptr = ptrOf(e)
    if (depth > maxDepth) {
      if (!tooDeep) {
        tooDeep = true
        out.push({ pointer: ptr, code: 'too_deep', message: `properties nest deeper than ${maxDepth} levels` })
      }
      continue
    }
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue
      if (!malformed && !wellFormed(k)) {
        malformed = true
        out.push({ pointer: ptr, code: 'invalid_characters', message: `a property name under ${ptr.slice(1).replace(/\//g, '.')} contains an unpaired UTF-16 surrogate` })
      }
      stack.push({ v: (v as Record<string, unknown>)[k], parent: ptr, key: k, depth: depth + 1 })
    }
  }
  return out
}

const IDENTIFIERS = [
  ['/source', 'source'], ['/externalEventId', 'externalEventId'], ['/eventType', 'eventType'],
  ['/identity/externalUserId', 'identity.externalUserId'], ['/identity/email', 'identity.email'],
  ['/identity/phone', 'identity.phone'], ['/identity/deviceKey', 'identity.deviceKey'],
] as const

export type EnvelopeCheck =
  | { ok: true; event: EventEnvelope; occurredAt: number | null }
  | { ok: false; details: ErrorDetail[] }

export function createEnvelopeValidator(config: Pick<Config, 'validation' | 'http'>) {
  const maxDepth = config.validation.maxPropertiesDepth
  const ajv = new Ajv({ allErrors: true, strict: false })
  const check = ajv.compile(envelopeSchema(config.validation))
  return function validateEnvelope(body: unknown, now: number): EnvelopeCheck {
    const details: ErrorDetail[] = []
    if (!check(body)) {
      for (const e of check.errors ?? []) {
        // no identity at all gets the same sentence as an identity without a usable field (seed §2.2)
        if (e.keyword === 'required' && e.instancePath === '' && (e.params as { missingProperty: string }).missingProperty === 'identity') {
          details.push({ pointer: '/identity', code: 'identity_required', message: IDENTITY_REQUIRED_MESSAGE })
        } else {
          details.push(toDetail(e))
        }
      }
    }
    const b = body as Partial<EventEnvelope> | null
    if (b === null || typeof b !== 'object' || Array.isArray(b)) {
      return { ok: false, details: details.length > 0 ? details : [{ pointer: '', code: 'type', message: 'an event must be a JSON object' }] }
    }
    for (const [pointer, name] of IDENTIFIERS) {
      const v = pointer.startsWith('/identity/')
        ? (b.identity !== null && typeof b.identity === 'object' ? (b.identity as Record<string, unknown>)[name.slice(9)] : undefined)
        : (b as Record<string, unknown>)[name]
      // a pattern error on the same field already names it
      if (typeof v === 'string' && badCharacters(v) && !details.some((d) => d.pointer === pointer)) {
        details.push({ pointer, code: 'invalid_characters', message: `${name} must not contain control characters or unpaired UTF-16 surrogates` })
      }
    }
    details.push(...propertiesProblems(b.properties, maxDepth))
    const id = b.identity
    if (id !== null && typeof id === 'object' && !Array.isArray(id)) {
      const present = (['externalUserId', 'email', 'phone', 'deviceKey'] as const).some((k) => typeof id[k] === 'string' && id[k].trim() !== '')
      if (!present) details.push({ pointer: '/identity', code: 'identity_required', message: IDENTITY_REQUIRED_MESSAGE })
    }
    let occurredAt: number | null = null
    if (typeof b.occurredAt === 'string') {
      const parsed = parseOccurredAt(b.occurredAt)
      if (parsed === 'invalid_timestamp') {
        details.push({ pointer: '/occurredAt', code: 'invalid_timestamp', message: 'occurredAt must be an ISO 8601 timestamp with an offset, e.g. 2026-05-20T12:45:00Z' })
      } else if (occurredAtUnstorable(b.occurredAt, parsed) !== undefined) {
        details.push(occurredAtUnstorable(b.occurredAt, parsed)!)
      } else if (parsed > now + config.validation.maxFutureSkewMs) {
        details.push({ pointer: '/occurredAt', code: 'in_future', message: `occurredAt is more than ${Math.round(config.validation.maxFutureSkewMs / 1000)} s in the future` })
      } else {
        occurredAt = parsed
      }
    }
    if (details.length > 0) return { ok: false, details }
    return { ok: true, event: b as EventEnvelope, occurredAt }
  }
}

export function summarize(details: ErrorDetail[]): string {
  return details.map((d) => d.message).join('; ')
}
