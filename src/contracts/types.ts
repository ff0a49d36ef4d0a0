/**
 * Event contracts: the registered shape of each event type's `properties`.
 * One checked-in JSON file per contract under `config/contracts/` (see schema.ts for the file
 * format). Loaded contracts are normalized (flags present, defaults filled) and deep-frozen.
 */

export const SCALAR_TYPES = ['string', 'integer', 'number', 'boolean', 'timestamp', 'enum'] as const
export type ScalarType = (typeof SCALAR_TYPES)[number]
export const PROPERTY_TYPES = [...SCALAR_TYPES, 'array'] as const
export type PropertyType = (typeof PROPERTY_TYPES)[number]

export type UnknownPropertiesPolicy = 'reject' | 'allow'

/** Limits a value must satisfy; which apply depends on the type (the file schema enforces it). */
export interface Constraints {
  /** enum only: the allowed values */
  values?: string[]
  /** string only, in Unicode code points */
  maxLength?: number
  /** integer and number only, inclusive */
  minimum?: number
  maximum?: number
}

/** The element type of an `array` property. */
export interface ItemSpec extends Constraints {
  type: ScalarType
}

/**
 * A flat spec rather than a union per type: the file schema already rejects fields that do not
 * belong to the declared type, and the compatibility check compares the same field across types.
 */
export interface PropertySpec extends Constraints {
  type: PropertyType
  description?: string
  required: boolean
  /** marketing segments on it: it becomes a typed ClickHouse column */
  segmentable: boolean
  pii: boolean
  /** array only */
  items?: ItemSpec
  /** array only */
  maxItems?: number
}

export interface Contract {
  /** the event type, as sent in `eventType` */
  name: string
  /** bumped on every change other than documentation (description, owner) */
  version: number
  owner: string
  description: string
  /** absent: the shared catalog, for every tenant; present: only these tenants, overriding shared */
  tenants?: string[]
  unknownProperties: UnknownPropertiesPolicy
  /** declaration order is kept: it is the order errors and columns are reported in */
  properties: Record<string, PropertySpec>
}

export interface SegmentableColumn {
  /** the property name in events */
  property: string
  /** ClickHouse column name: `p_<snake_case>` */
  column: string
  clickhouseType: string
  /** the event types that declare it segmentable, sorted */
  eventTypes: string[]
}

/** A problem found in a contract file or snapshot; `pointer` is a JSON pointer into `file`. */
export interface ContractFileProblem {
  file: string
  pointer: string
  message: string
}
