/**
 * Building one record for a direct producer: the same key bytes and the same value shape the
 * HTTP API writes, so the consumer cannot tell the two apart (and judges both the same way).
 *
 * Pure and synchronous: no registry or Kafka here, which is what the unit tests pin.
 */
import type avro from 'avsc'
import { CdpError, type ErrorDetail } from '../errors.js'
import { buildFact, newEventId, type CdpEvent, type RawIdentity } from '../avro/event.js'
import { frameValue } from '../avro/wire.js'
import { encodeKey, keyString } from '../avro/key.js'

/** A business fact as an internal service states it. */
export interface DirectEvent {
  tenant: string
  source: string
  /** identifies the business fact within (tenant, source); a retry must reuse it */
  externalEventId: string
  eventType: string
  /**
   * When it happened (Date, epoch ms or ISO-8601 text). Omitted: the send time is used and the
   * record says so (occurredAtDefaulted), so a retry that omits it again is still the same fact.
   */
  occurredAt?: Date | number | string
  identity: RawIdentity
  /** the event's properties as an object; stored as its JSON text */
  properties?: Record<string, unknown>
  /** the contract version the producer built against, when it knows it */
  contractVersion?: number | null
}

/** Puts a CdpEvent into Confluent wire format under a registry schema id. */
export interface ValueEncoder {
  readonly schemaId: number
  encode(event: CdpEvent): Buffer
}

export interface BuiltRecord {
  /** Kafka key: UTF-8 JSON array [tenant, source, externalEventId] */
  key: Buffer
  /** Kafka value: magic byte 0, 4-byte big-endian schema id, Avro body */
  value: Buffer
  event: CdpEvent
  /** what the consumer compares to tell a duplicate from a conflict */
  fingerprint: string
}

export interface BuildOptions {
  /** epoch ms of the send: receivedAt, and occurredAt when omitted */
  now?: number
  /** reuse an event id (for example when re-sending after an unknown outcome); default a new one */
  eventId?: string
}

/** Confluent wire format over an avsc type: what SchemaCodec.encode does, for a looked-up id. */
export function wireEncoder(type: avro.Type, schemaId: number): ValueEncoder {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0xffffffff) throw new RangeError(`schema id ${schemaId} is not a registry id`)
  return {
    schemaId,
    encode: (event) => frameValue(schemaId, type.toBuffer(event)),
  }
}

const IDENTITY_FIELDS = ['externalUserId', 'email', 'phone', 'deviceKey'] as const

function toEpochMs(v: Date | number | string): number {
  if (v instanceof Date) return v.getTime()
  if (typeof v === 'number') return v
  // only ISO-8601 with a zone: a zoneless date would mean different instants on different hosts
  return /^\d{4}-\d{2}-\d{2}T.+(?:Z|[+-]\d{2}:?\d{2})$/i.test(v) ? Date.parse(v) : NaN
}

/**
 * Only what stops a record from being built is refused here (a missing tuple part would make a
 * key the consumer dead-letters as bad_key; a value that is not a JSON object cannot be stored).
 * Contracts and identity rules are the consumer's to check: it re-checks every record.
 */
export function checkDirectEvent(input: DirectEvent): ErrorDetail[] {
  const details: ErrorDetail[] = []
  const str = (name: 'tenant' | 'source' | 'externalEventId' | 'eventType') => {
    const v: unknown = input[name]
    if (typeof v !== 'string' || v.length === 0) details.push({ pointer: `/${name}`, code: 'required', message: `${name} must be a non-empty string` })
  }
  str('tenant'); str('source'); str('externalEventId'); str('eventType')
  if (input.occurredAt !== undefined && !Number.isSafeInteger(toEpochMs(input.occurredAt))) {
    details.push({ pointer: '/occurredAt', code: 'invalid_timestamp', message: 'occurredAt must be a Date, epoch ms, or ISO-8601 text with a zone' })
  }
  const id: unknown = input.identity
  if (id === null || typeof id !== 'object' || Array.isArray(id)) {
    details.push({ pointer: '/identity', code: 'type', message: 'identity must be an object' })
  } else {
    for (const f of IDENTITY_FIELDS) {
      const v: unknown = (id as Record<string, unknown>)[f]
      if (v !== undefined && v !== null && typeof v !== 'string') details.push({ pointer: `/identity/${f}`, code: 'type', message: `identity.${f} must be a string or null` })
    }
  }
  const p: unknown = input.properties
  if (p !== undefined && (p === null || typeof p !== 'object' || Array.isArray(p))) {
    details.push({ pointer: '/properties', code: 'type', message: 'properties must be an object' })
  }
  return details
}

/** The CdpEvent the API would have produced for the same fact, with its fingerprint. */
export function buildEvent(input: DirectEvent, opts: BuildOptions = {}): { event: CdpEvent; fingerprint: string } {
  const details = checkDirectEvent(input)
  if (details.length > 0) {
    throw new CdpError('validation_failed', `cannot build a record: ${details.map((d) => `${d.pointer} ${d.message}`).join('; ')}`, { details })
  }
  const now = opts.now ?? Date.now()
  const occurredAt = input.occurredAt === undefined ? null : toEpochMs(input.occurredAt)
  const properties = input.properties ?? {}
  let parsed: unknown
  try {
    // what the consumer will see: the JSON round trip (drops undefined, turns Dates into strings)
    parsed = JSON.parse(JSON.stringify(properties)) as unknown
  } catch (err) {
    throw new CdpError('validation_failed', `properties cannot be serialized to JSON: ${(err as Error).message}`, {
      cause: err, details: [{ pointer: '/properties', code: 'type', message: 'properties must be JSON-serializable' }],
    })
  }
  return buildFact({
    tenant: input.tenant, source: input.source, externalEventId: input.externalEventId, eventType: input.eventType,
    occurredAt, identity: input.identity, properties: parsed, contractVersion: input.contractVersion ?? null,
  }, opts.eventId ?? newEventId(now), now)
}

/** Key and value bytes of one fact, ready for the events topic. */
export function buildRecord(input: DirectEvent, encoder: ValueEncoder, opts: BuildOptions = {}): BuiltRecord {
  const { event, fingerprint: fp } = buildEvent(input, opts)
  return { key: encodeKey(event), value: encoder.encode(event), event, fingerprint: fp }
}

export { keyString }
