/**
 * Data governance (docs/PRIVACY.md): erasure of a person, suppression of their identities,
 * per-tenant pseudonymization. Retention lives with ClickHouse (src/clickhouse/retention.ts).
 */
export * from './keyed-hash.js'
export * from './suppression.js'
export * from './erasure.js'
