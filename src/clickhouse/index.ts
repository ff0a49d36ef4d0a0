/**
 * ClickHouse: the facade the service uses (openClickHouse), and below it the client factory
 * (chDB or server), migrations, batched writer, analyst queries. The only folder (with tools/)
 * that imports @clickhouse/client and chdb.
 */
export { openClickHouse } from './facade.js'
export type { ClickHouse, FactTuple } from './facade.js'
export { ANALYST_FORMATS, QUERY_FORMATS } from './formats.js'
export { analystQueryRunner, createAnalystQueryRunner } from './analyst.js'
export type { AnalystQuery, AnalystQueryRunner, AnalystFormat } from './analyst.js'
export type { QueryFormat } from './formats.js'
export { createClickHouse, pingClickHouse, closeClickHouse, clickHouseBackend } from './client.js'
export type { ClickHouseClient, ClickHouseClientConfig, ClickHouseBackend, CreateClickHouseOptions, PingOutcome } from './client.js'
export { runMigrations, appliedMigrations, tableTtlDays, MIGRATIONS, EVENT_BASE_COLUMNS } from './migrations.js'
export type { Migration, MigrateOptions, MigrateResult } from './migrations.js'
export { createWriter, dedupToken } from './writer.js'
export type { ClickHouseWriter, InsertOptions, InsertOutcome, WriterTable } from './writer.js'
export { quoteIdent } from './sql.js'
export { isClickHouseUnavailable, clickHouseError, clickHouseErrorCode } from './errors.js'
export type * from './rows.js'
export { DeadLetterTables, chTimeToIso } from './dead-letters.js'
export type { DeadLetterEntry, DeadLetterFilter, LatestDeadLetter, PendingDeadLetter, ReasonCount, StoredFact } from './dead-letters.js'
export { personRows } from './erasure.js'
export type { PersonRows, PersonIdentity, PersonFacts, DeadLetterRef, ErasedTable, RowIdentityType } from './erasure.js'
export { ensureRetention, currentTtl, RETENTION_COLUMNS } from './retention.js'
