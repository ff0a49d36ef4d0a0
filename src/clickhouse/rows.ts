/**
 * Rows as the writer sends them (JSONEachRow), one type per table. Field names are the column
 * names. Timestamps are a Date or an ISO-8601 string (the writer inserts with
 * `date_time_input_format = best_effort`, so a `Z` or `+02:00` suffix is honoured); the
 * columns are DateTime64(3, 'UTC'). Reading back, ClickHouse returns 'YYYY-MM-DD hh:mm:ss.sss'
 * in UTC and UInt64 as a string.
 */

export type Timestamp = Date | string

/** a value of a segmentable (typed) property column; timestamps as ISO-8601 strings */
export type SegmentValue = string | number | boolean | null | readonly (string | number | boolean)[]

/** One fact: the first event accepted for (tenant, source, external_event_id). */
export interface EventRow {
  tenant: string
  source: string
  external_event_id: string
  event_id: string
  event_type: string
  occurred_at: Timestamp
  received_at: Timestamp
  /** the profile the identity step resolved at ingest; events_resolved maps it to the current one */
  profile_id: string
  /** normalized: trimmed, lowercased */
  email: string | null
  /** E.164 */
  phone: string | null
  external_user_id: string | null
  device_key: string | null
  /** the event's properties as a JSON document */
  properties: string
  schema_version: number | null
  kafka_partition: number
  kafka_offset: number | bigint | string
  /** defaults to the insert time */
  ingested_at?: Timestamp
  /**
   * Segmentable contract properties by column name (see SegmentableColumn). The writer puts
   * them in their own columns; a name that is not such a column fails the insert.
   */
  typed_properties?: Record<string, SegmentValue>
}

/** A link of one normalized identity to a profile. */
export interface IdentityRow {
  tenant: string
  /** 'email' | 'phone' | 'external' | 'device' (the identity step's names) */
  identity_type: string
  /** normalized value: what the identity graph keys on */
  identity_value: string
  /** as received, when it differed from the normalized value */
  raw_value: string | null
  profile_id: string
  /** the event that first carried this identity */
  first_event_id: string
  linked_at: Timestamp
}

/** One merge: every identity of `from_profile_id` now belongs to `to_profile_id`. */
export interface MergeRow {
  tenant: string
  from_profile_id: string
  to_profile_id: string
  /** the rule that decided the merge, e.g. 'shared_email' */
  reason: string
  /** the event that caused it */
  event_id: string
  merged_at: Timestamp
}

/**
 * The current canonical id of a profile id. Every merge row adds (from -> to) on its own
 * (a materialized view); when a merge also moves ids that already pointed at `from`, the
 * identity step writes one alias row per moved id so lookups stay one hop. The row with the
 * highest version per (tenant, profile_id) wins.
 */
export interface ProfileAliasRow {
  tenant: string
  profile_id: string
  canonical_id: string
  /** monotonic per profile id; the merge time in ms works */
  version: number | bigint | string
  updated_at: Timestamp
}

/** A Kafka record the consumer could not ingest. */
export interface DeadLetterRow {
  /** null when the record was too broken to tell */
  tenant: string | null
  /** stable machine code, e.g. 'not_avro', 'contract_violation', 'tuple_conflict' */
  reason_code: string
  reason: string
  topic: string
  kafka_partition: number
  kafka_offset: number | bigint | string
  /** the record key as text ('' when absent) */
  key: string
  /** the record value, base64 */
  value_base64: string
  received_at: Timestamp
}

/** A segmentable contract property as a typed column of `events`. */
export interface SegmentableColumn {
  /** column name, e.g. 'prop_plan' */
  column: string
  /** a ClickHouse type, e.g. 'Nullable(Float64)', 'LowCardinality(Nullable(String))' */
  clickhouseType: string
}
