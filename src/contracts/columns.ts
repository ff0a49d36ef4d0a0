/**
 * How a segmentable property maps to a ClickHouse column. The column type is part of the
 * contract's compatibility: the compat check refuses type changes for the same reason a
 * column cannot change its type under rows already written.
 */
import type { ItemSpec, PropertySpec, ScalarType } from './types.js'

/**
 * `p_` keeps property columns out of the envelope columns' namespace (event_id, tenant, ...),
 * whatever a contract author names a property. Property names are restricted to
 * [A-Za-z][A-Za-z0-9_]* by the file schema, so the result needs no quoting in SQL.
 */
export function columnName(property: string): string {
  const snake = property
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
  return `p_${snake}`
}

// ClickHouse's own spelling (as system.columns reports it), so a migration can compare strings.
const DATETIME = "DateTime64(3, 'UTC')"

const NULLABLE: Record<ScalarType, string> = {
  string: 'Nullable(String)',
  integer: 'Nullable(Int64)',
  number: 'Nullable(Float64)',
  boolean: 'Nullable(Bool)',
  timestamp: `Nullable(${DATETIME})`,
  enum: 'LowCardinality(Nullable(String))',
}

// Array elements are never null (validation rejects null items) and ClickHouse arrays cannot be
// Nullable: an absent array is stored as [].
const ELEMENT: Record<ScalarType, string> = {
  string: 'String',
  integer: 'Int64',
  number: 'Float64',
  boolean: 'Bool',
  timestamp: DATETIME,
  enum: 'LowCardinality(String)',
}

export function clickhouseType(spec: PropertySpec): string {
  if (spec.type === 'array') return `Array(${ELEMENT[(spec.items as ItemSpec).type]})`
  return NULLABLE[spec.type]
}
