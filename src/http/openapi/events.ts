/**
 * The request bodies of the event routes as the OpenAPI document shows them: one schema per
 * registered event type (`Event_<type>`: the envelope with `eventType` fixed and `properties` from
 * the contract, src/contracts/json-schema.ts), gathered under a `oneOf` with a `discriminator` on
 * `eventType`, for the single route and for each batch item.
 *
 * The routes validate bodies themselves (ingest/envelope.ts and the contract checks), so these
 * schemas are documentation and the input of client and test generators. They must say what the
 * validator says: test/unit/http/openapi-events.test.ts generates events from them and sends them
 * through the real app, and breaks each documented limit to see it refused.
 */
import type { Config } from '../../config/index.js'
import type { ContractRegistry } from '../../contracts/registry.js'
import { propertiesSchema, type OpenApiSchema } from '../../contracts/json-schema.js'
import type { Contract } from '../../contracts/types.js'
import { envelopeSchema } from '../../ingest/envelope.js'

/** no C0/C1 control characters (envelope.ts badCharacters); identifiers are keys and log fields */
const NO_CONTROL = '^[^\\u0000-\\u001f\\u007f-\\u009f]*$'
/** at least one character other than white space (what String.prototype.trim keeps) */
const NOT_BLANK = '\\S'

/**
 * envelope.ts ISO_WITH_OFFSET narrowed to what is stored exactly: years 1900–2299, hours 00–23,
 * minutes and seconds 00–59, at most millisecond precision (further fraction digits must be 0).
 * Seconds and the colon of the offset are required here although the validator tolerates their
 * absence: with `format: date-time` (RFC 3339) the document promises only what every RFC 3339
 * parser reads the same way, so whatever it allows is accepted.
 */
export const OCCURRED_AT_PATTERN = '^(19|2[0-2])[0-9]{2}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,3}0{0,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$'

export const EVENT_SCHEMA_PREFIX = 'Event_'
const ref = (name: string): string => `#/components/schemas/${name}`

export interface EventSchemas {
  /** to merge into the document's components.schemas */
  components: Record<string, OpenApiSchema>
  /** the body of POST /v1/cdp/events, and each item of a batch */
  event: OpenApiSchema
}

type Limits = Pick<Config['validation'], 'maxIdLength' | 'maxStringLength' | 'maxFutureSkewMs' | 'maxPropertiesDepth'> & Pick<Config['http'], 'maxEventBytes'>

/** the envelope fields every event shares, from the validator's own schema plus what it checks by hand */
function envelopeFields(v: Limits): Record<string, OpenApiSchema> {
  const base = envelopeSchema(v).properties
  const id = (s: { minLength: number; maxLength: number; description: string }, pattern = NO_CONTROL): OpenApiSchema =>
    ({ type: 'string', minLength: s.minLength, maxLength: s.maxLength, pattern, description: s.description })
  const identity = base.identity.properties
  return {
    source: { ...id(base.source, base.source.pattern), example: base.source.examples[0] },
    externalEventId: { ...id(base.externalEventId), example: base.externalEventId.examples[0] },
    eventType: { type: 'string', minLength: base.eventType.minLength, maxLength: base.eventType.maxLength, pattern: base.eventType.pattern, description: base.eventType.description, example: base.eventType.examples[0] },
    occurredAt: {
      type: 'string', format: 'date-time', maxLength: base.occurredAt.maxLength, pattern: OCCURRED_AT_PATTERN,
      description: 'RFC 3339 timestamp with an offset (Z or ±hh:mm); as an instant between ' +
        '1900-01-01T00:00:00Z and 2299-12-31T23:59:59.999Z, at most millisecond precision (further digits must be 0), ' +
        `and at most ${Math.round(v.maxFutureSkewMs / 1000)} s in the future. Defaults to receipt time when omitted.`,
      example: base.occurredAt.examples[0],
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      description: `${base.identity.description} Blank values count as absent; at least one field must have a non-blank value.`,
      properties: {
        externalUserId: id(identity.externalUserId),
        email: { ...id(identity.email), format: 'email', description: 'Email before normalization; a blank value counts as absent, otherwise it must be an address (one @, a dotted domain).', example: 'ana@example.com' },
        phone: { ...id(identity.phone), format: 'phone', description: `${identity.phone.description} A blank value counts as absent; otherwise it must be a valid number.`, example: '+14155550123' },
        deviceKey: id(identity.deviceKey),
      },
      minProperties: 1,
      anyOf: (['externalUserId', 'email', 'phone', 'deviceKey'] as const).map((k) => ({ required: [k], properties: { [k]: { type: 'string', pattern: NOT_BLANK } } })),
    },
  }
}

function sizeNote(v: Limits): string {
  return ` The whole event, serialized, must not exceed ${v.maxEventBytes} bytes; strings must not contain unpaired UTF-16 surrogates; properties nest at most ${v.maxPropertiesDepth} levels.`
}

/** The generic envelope, used when no contract registry is given (and published as EventEnvelope). */
function genericEnvelope(v: Limits): OpenApiSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['source', 'externalEventId', 'eventType', 'identity'],
    description: `A customer event; eventType must be registered and properties must fit its contract.${sizeNote(v)}`,
    properties: {
      ...envelopeFields(v),
      properties: { type: 'object', description: 'Registered event properties.', additionalProperties: true },
    },
  }
}

/** One event type: its shared contract, or (when tenants have their own) any of its variants. */
function eventOfType(name: string, variants: readonly Contract[], v: Limits): OpenApiSchema {
  const props = variants.map((c) => propertiesSchema(c, v))
  const needsProperties = props.some((p) => (p.required ?? []).length > 0)
  const required = ['source', 'externalEventId', 'eventType', 'identity', ...(needsProperties ? ['properties'] : [])]
  const properties: OpenApiSchema = props.length === 1
    ? props[0]!
    : { description: `${name} has tenant-specific contracts: the caller's tenant decides which applies.`, anyOf: props }
  const shared = variants.find((c) => c.tenants === undefined) ?? variants[0]!
  return {
    type: 'object',
    additionalProperties: false,
    required,
    description: `${shared.description}${sizeNote(v)}`,
    properties: { ...envelopeFields(v), eventType: { type: 'string', enum: [name] }, properties },
  }
}

export function eventSchemas(config: Pick<Config, 'validation' | 'http'>, contracts?: ContractRegistry): EventSchemas {
  const v: Limits = { ...config.validation, maxEventBytes: config.http.maxEventBytes }
  const envelope = genericEnvelope(v)
  const components: Record<string, OpenApiSchema> = { EventEnvelope: envelope }
  if (contracts === undefined || contracts.all().length === 0) return { components, event: envelope }
  const byName = new Map<string, Contract[]>()
  for (const c of contracts.all()) byName.set(c.name, [...(byName.get(c.name) ?? []), c])
  const mapping: Record<string, string> = {}
  for (const [name, variants] of byName) {
    components[EVENT_SCHEMA_PREFIX + name] = eventOfType(name, variants, v)
    mapping[name] = ref(EVENT_SCHEMA_PREFIX + name)
  }
  return {
    components,
    event: {
      description: `A customer event; eventType selects the schema of properties.${sizeNote(v)}`,
      oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
      discriminator: { propertyName: 'eventType', mapping },
    },
  }
}
