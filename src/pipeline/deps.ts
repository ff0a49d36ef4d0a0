/**
 * What the consumer's pipeline needs from outside, passed in by the wiring. Each step takes only
 * the members it uses, so its unit test fakes just those.
 */
import type { Config } from '../config/index.js'
import type { ErrorDetail } from '../errors.js'
import type { CdpEvent } from '../avro/event.js'
import type { SchemaCodec } from '../avro/codec.js'
import type { DedupTuple } from '../avro/key.js'
import type { DedupStore, FactRef } from '../state/types.js'
import type { ClickHouseWriter } from '../clickhouse/writer.js'
import type { IdentityRow, MergeRow, ProfileAliasRow } from '../clickhouse/rows.js'
import type { Logger } from '../observability/logger.js'
import type { DeadLetter, SkipReason } from './outcome.js'

export interface BatchObservation {
  records: number
  skipped: SkipReason[]
  deadLetters: { reason: DeadLetter['reason']; tenant: string | null }[]
}
import type { Pseudonymizer, SuppressionCheck } from '../privacy/index.js'

export interface IdentityResolution {
  profileId: string
  /** normalized identities of the event, for the events row */
  email: string | null
  phone: string | null
  externalUserId: string | null
  deviceKey: string | null
  identities: IdentityRow[]
  merges: MergeRow[]
  aliases: ProfileAliasRow[]
}

export interface IdentityStep {
  /** in order; each event sees the graph as the earlier ones left it */
  resolveMany(events: CdpEvent[]): Promise<IdentityResolution[]>
  /** the events' rows are in ClickHouse: the graph may drop the results it kept for re-delivery */
  forget(events: CdpEvent[]): Promise<void>
}

export interface ProcessorDeps {
  config: Readonly<Config>
  codec: Pick<SchemaCodec, 'decode'>
  /**
   * the events topic's partition count, read once at start from the topic's metadata (start-up
   * refuses a topic whose count differs from config.kafka.partitions). Not re-read on rebalance:
   * partitions added while running would move keys, so records murmur2 does not place on their
   * partition under this count are dead-lettered `wrong_partition` until the operator acts.
   */
  partitions: number
  checkContract(tenant: string, eventType: string, properties: unknown): { ok: true; version: number } | { ok: false; details: ErrorDetail[] }
  /** segmentable property -> column, for the typed ClickHouse columns */
  segmentable: readonly { property: string; column: string }[]
  dedup: DedupStore
  identity: IdentityStep
  writer: ClickHouseWriter
  /** which of these tuples ClickHouse already holds (keyString form) */
  existingFacts(tuples: DedupTuple[]): Promise<Set<string>>
  /** dead letters to the DLQ topic (with reason headers) */
  publishDeadLetters(letters: DeadLetter[]): Promise<void>
  /** produce the first fact again under its key (keyString form, which is also the key's bytes
   *  as UTF-8), so compaction keeps it rather than a conflicting newcomer */
  reassert(originals: FactRef[], keys: string[]): Promise<void>
  /** after each batch: what became of its records (metrics); never called for a batch that threw */
  observe?: (o: BatchObservation) => void
  /** identities of erased people (src/privacy, suppress-step.ts); absent: nothing is suppressed */
  suppression?: Pick<SuppressionCheck, 'suppressed'>
  /** keyed hashes for the tenants in pseudonymized mode (src/privacy); absent: none */
  pseudonymizer?: Pseudonymizer
  /** the contract properties flagged pii of a tenant's event type (hashed in pseudonymized mode) */
  piiProperties?(tenant: string, eventType: string): readonly string[]
  /** null-value records for these keys (keyString form) on the events topic, each on its murmur2 partition */
  tombstone?(keys: string[]): Promise<void>
  /** replay: a record equal to the stored first fact is written even if at another offset */
  mode: 'live' | 'replay'
  log: Logger
}
