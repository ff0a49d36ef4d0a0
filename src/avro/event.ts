/**
 * The fact as it travels on the topic, and its fingerprint.
 *
 * The fingerprint decides "same business fact" (duplicate) versus "same tuple, other payload"
 * (conflict) at the HTTP edge and again in the consumer, so both must compute it from the same
 * fields: what the sender said, never what the service added (event id, receipt time, or the
 * occurredAt default when the sender left it out).
 */
import { createHash, randomBytes } from 'node:crypto'

export interface RawIdentity {
  externalUserId?: string | null
  email?: string | null
  phone?: string | null
  deviceKey?: string | null
}

export interface CdpEvent {
  eventId: string
  tenant: string
  source: string
  externalEventId: string
  eventType: string
  /** epoch ms */
  occurredAt: number
  occurredAtDefaulted: boolean
  /** epoch ms */
  receivedAt: number
  identity: { externalUserId: string | null; email: string | null; phone: string | null; deviceKey: string | null }
  /** JSON object text */
  properties: string
  contractVersion: number | null
}

/** JSON with object keys sorted, so {a,b} and {b,a} fingerprint the same */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
}

export interface FingerprintInput {
  eventType: string
  /** epoch ms as sent; null when the sender omitted occurredAt */
  occurredAt: number | null
  identity: RawIdentity
  /** the properties object (not its JSON text) */
  properties: unknown
}

export function fingerprint(e: FingerprintInput): string {
  const id = e.identity
  const h = createHash('sha256')
  h.update(e.eventType)
  h.update('\0')
  h.update(e.occurredAt === null ? '-' : String(e.occurredAt))
  h.update('\0')
  h.update(canonicalJson({ externalUserId: id.externalUserId ?? null, email: id.email ?? null, phone: id.phone ?? null, deviceKey: id.deviceKey ?? null }))
  h.update('\0')
  h.update(canonicalJson(e.properties ?? {}))
  return h.digest('base64url').slice(0, 32)
}

/** the fingerprint of a decoded record (consumer side) */
export function fingerprintOf(e: CdpEvent): string {
  return fingerprint({
    eventType: e.eventType,
    occurredAt: e.occurredAtDefaulted ? null : e.occurredAt,
    identity: e.identity,
    properties: JSON.parse(e.properties) as unknown,
  })
}

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

// crypto randomness drawn in 4 KiB blocks: one syscall per 256 ids instead of one per id
let pool = Buffer.alloc(0)
let poolPos = 0
function random16(): Buffer {
  if (poolPos + 16 > pool.length) { pool = randomBytes(4096); poolPos = 0 }
  const out = pool.subarray(poolPos, poolPos + 16)
  poolPos += 16
  return out
}

/** evt_ + 26 chars: 48 bits of time (sortable) + 80 random bits, Crockford-style base32 */
export function newEventId(now = Date.now()): string {
  let out = 'evt_'
  let t = now
  const time: string[] = []
  for (let i = 0; i < 10; i++) { time.push(ALPHABET[t % 32]!); t = Math.floor(t / 32) }
  out += time.reverse().join('')
  const rnd = random16()
  for (let i = 0; i < 16; i++) out += ALPHABET[rnd[i]! % 32]
  return out
}

export interface FactInput {
  tenant: string
  source: string
  externalEventId: string
  eventType: string
  /** epoch ms as sent; null when the sender omitted occurredAt (receipt time is used) */
  occurredAt: number | null
  identity: RawIdentity
  /** the properties object as sent */
  properties: unknown
  contractVersion: number | null
}

/**
 * The record for a fact and its fingerprint. The API and the direct-producer kit both build
 * records here, so a fact sent either way fingerprints the same and dedups against the other.
 */
export function buildFact(input: FactInput, eventId: string, now: number): { event: CdpEvent; fingerprint: string } {
  const identity = {
    externalUserId: input.identity.externalUserId ?? null,
    email: input.identity.email ?? null,
    phone: input.identity.phone ?? null,
    deviceKey: input.identity.deviceKey ?? null,
  }
  const properties = input.properties ?? {}
  const event: CdpEvent = {
    eventId,
    tenant: input.tenant,
    source: input.source,
    externalEventId: input.externalEventId,
    eventType: input.eventType,
    occurredAt: input.occurredAt ?? now,
    occurredAtDefaulted: input.occurredAt === null,
    receivedAt: now,
    identity,
    properties: JSON.stringify(properties),
    contractVersion: input.contractVersion,
  }
  return { event, fingerprint: fingerprint({ eventType: input.eventType, occurredAt: input.occurredAt, identity, properties }) }
}
