/**
 * An event contract's `properties` as an OpenAPI 3.0 schema object (the JSON Schema subset
 * OpenAPI 3.0.3 allows: `nullable` instead of type arrays, no `const`), for the API's document:
 * client generators and fuzzers learn from it what a valid event of each type is.
 *
 * It states exactly what validate.ts checks, no more and no less, so a value the schema allows
 * is accepted and one it forbids is refused:
 *  - a declared string is capped by its own maxLength and the service-wide maxStringLength
 *    (both in code points, as JSON Schema's maxLength counts);
 *  - integers are safe integers (validate.ts refuses what a double cannot hold);
 *  - an optional property may be null (null counts as absent), a required one may not;
 *  - timestamps: RFC 3339 with seconds and an offset, years 1900 to 2299 (the pattern), and a
 *    real calendar date (`format: date-time`, which the pattern cannot say);
 *  - `unknownProperties: reject` is `additionalProperties: false`; `allow` leaves undeclared
 *    properties free (the envelope's depth and size limits still apply).
 */
import type { Contract, ItemSpec, PropertySpec, ScalarType } from './types.js'

/** the OpenAPI 3.0 schema keywords this module emits */
export interface OpenApiSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean'
  description?: string
  nullable?: boolean
  enum?: unknown[]
  format?: string
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  items?: OpenApiSchema
  maxItems?: number
  properties?: Record<string, OpenApiSchema>
  required?: string[]
  additionalProperties?: boolean | OpenApiSchema
  minProperties?: number
  anyOf?: OpenApiSchema[]
  oneOf?: OpenApiSchema[]
  discriminator?: { propertyName: string; mapping?: Record<string, string> }
  $ref?: string
  example?: unknown
  [extension: `x-${string}`]: unknown
}

/** validate.ts's timestamp rule as a pattern: RFC 3339 with seconds, an offset, years 1900–2299 */
export const TIMESTAMP_PATTERN = '^(19|2[0-2])[0-9]{2}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$'

function scalarSchema(type: ScalarType, spec: ItemSpec | PropertySpec, maxStringLength: number): OpenApiSchema {
  switch (type) {
    case 'string':
      return { type: 'string', maxLength: spec.maxLength === undefined ? maxStringLength : Math.min(spec.maxLength, maxStringLength) }
    case 'integer':
      return {
        type: 'integer',
        minimum: spec.minimum ?? Number.MIN_SAFE_INTEGER,
        maximum: spec.maximum ?? Number.MAX_SAFE_INTEGER,
      }
    case 'number': {
      const s: OpenApiSchema = { type: 'number' }
      if (spec.minimum !== undefined) s.minimum = spec.minimum
      if (spec.maximum !== undefined) s.maximum = spec.maximum
      return s
    }
    case 'boolean':
      return { type: 'boolean' }
    case 'timestamp':
      return { type: 'string', format: 'date-time', pattern: TIMESTAMP_PATTERN, maxLength: 64 }
    case 'enum':
      return { type: 'string', enum: [...(spec.values ?? [])] }
  }
}

function propertySchema(spec: PropertySpec, maxStringLength: number): OpenApiSchema {
  const s: OpenApiSchema = spec.type === 'array'
    ? {
        type: 'array',
        items: scalarSchema((spec.items as ItemSpec).type, spec.items as ItemSpec, maxStringLength),
        ...(spec.maxItems === undefined ? {} : { maxItems: spec.maxItems }),
      }
    : scalarSchema(spec.type, spec, maxStringLength)
  if (spec.description !== undefined) s.description = spec.description
  if (!spec.required) {
    s.nullable = true
    // tools differ on whether `nullable` admits null past an `enum`; listing it satisfies them all
    if (s.enum !== undefined) s.enum = [...s.enum, null]
  }
  // the flags are part of the contract a client may want to see (PII handling, segment columns)
  if (spec.pii) s['x-pii'] = true
  if (spec.segmentable) s['x-segmentable'] = true
  return s
}

/** The schema of `properties` for events of this contract. */
export function propertiesSchema(contract: Contract, opts: { maxStringLength: number }): OpenApiSchema {
  const properties: Record<string, OpenApiSchema> = {}
  const required: string[] = []
  for (const [name, spec] of Object.entries(contract.properties)) {
    properties[name] = propertySchema(spec, opts.maxStringLength)
    if (spec.required) required.push(name)
  }
  const s: OpenApiSchema = {
    type: 'object',
    description: `${contract.name} v${contract.version} (owner ${contract.owner}): ${contract.description}`,
    properties,
    additionalProperties: contract.unknownProperties === 'allow',
  }
  if (required.length > 0) s.required = required
  return s
}
