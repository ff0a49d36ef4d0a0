/**
 * JSON schema of a contract file. `additionalProperties: false` everywhere so a typo such as
 * `"requried": true` fails review-time checks instead of silently meaning "optional".
 * Property and item specs are discriminated on `type` so an error names the field that does not
 * belong to that type rather than listing every branch of a oneOf.
 */

const NAME_PATTERN = '^[a-z][a-z0-9_]*$'
/** camelCase is allowed; the ClickHouse column is the snake_case form */
const PROPERTY_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_]*$'
const TENANT_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$'

const enumValues = {
  type: 'array', minItems: 1, uniqueItems: true,
  items: { type: 'string', minLength: 1, maxLength: 128 },
} as const

/** fields each scalar type accepts besides `type`, shared by properties and array items */
const scalarFields = {
  string: { maxLength: { type: 'integer', minimum: 1 } },
  integer: { minimum: { type: 'integer' }, maximum: { type: 'integer' } },
  number: { minimum: { type: 'number' }, maximum: { type: 'number' } },
  boolean: {},
  timestamp: {},
  enum: { values: enumValues },
} as const

type ScalarName = keyof typeof scalarFields

function branch(type: string, fields: object, extra: object, requiredFields: string[] = []): object {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['type', ...requiredFields],
    properties: { type: { const: type }, ...fields, ...extra },
  }
}

const scalarNames = Object.keys(scalarFields) as ScalarName[]
const requiredFor = (type: string): string[] => (type === 'enum' ? ['values'] : [])

const itemSchema = {
  type: 'object',
  discriminator: { propertyName: 'type' },
  required: ['type'],
  oneOf: scalarNames.map((n) => branch(n, scalarFields[n], {}, requiredFor(n))),
}

const flags = {
  description: { type: 'string' },
  required: { type: 'boolean' },
  segmentable: { type: 'boolean' },
  pii: { type: 'boolean' },
}

const propertySchema = {
  type: 'object',
  discriminator: { propertyName: 'type' },
  required: ['type'],
  oneOf: [
    ...scalarNames.map((n) => branch(n, scalarFields[n], flags, requiredFor(n))),
    branch('array', { items: itemSchema, maxItems: { type: 'integer', minimum: 1 } }, flags, ['items']),
  ],
}

export const contractFileSchema = {
  $id: 'https://resultfly.example/cdp/contract.schema.json',
  title: 'CDP event contract',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version', 'owner', 'description', 'unknownProperties', 'properties'],
  properties: {
    $schema: { type: 'string' },
    name: { type: 'string', pattern: NAME_PATTERN, maxLength: 100 },
    version: { type: 'integer', minimum: 1 },
    owner: { type: 'string', minLength: 1, maxLength: 200 },
    description: { type: 'string', minLength: 1 },
    tenants: {
      type: 'array', minItems: 1, uniqueItems: true,
      items: { type: 'string', pattern: TENANT_PATTERN, maxLength: 128 },
    },
    unknownProperties: { enum: ['reject', 'allow'] },
    properties: {
      type: 'object',
      propertyNames: { pattern: PROPERTY_NAME_PATTERN, maxLength: 64 },
      additionalProperties: propertySchema,
    },
  },
} as const
