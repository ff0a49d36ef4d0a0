/**
 * ClickHouse rows of the pipeline's outcomes: the events row of a resolved fact, the dead_letters
 * row of a dead letter.
 */
import type { DeadLetterRow, EventRow, SegmentValue } from '../clickhouse/rows.js'
import type { ProcessorDeps } from './deps.js'
import type { DeadLetter } from './outcome.js'
import type { Resolved } from './resolve-step.js'

const iso = (t: number): string => new Date(t).toISOString()

export function eventRow(x: Resolved, segmentable: ProcessorDeps['segmentable']): EventRow {
  const e = x.event
  const r = x.resolution
  const props = (x.properties ?? {}) as Record<string, unknown>
  const typed: Record<string, SegmentValue> = {}
  for (const s of segmentable) {
    const v = props[s.property]
    if (v !== undefined) typed[s.column] = v as SegmentValue
  }
  return {
    tenant: e.tenant, source: e.source, external_event_id: e.externalEventId, event_id: e.eventId, event_type: e.eventType,
    occurred_at: iso(e.occurredAt), received_at: iso(e.receivedAt), profile_id: r.profileId,
    email: r.email, phone: r.phone, external_user_id: r.externalUserId, device_key: r.deviceKey,
    properties: e.properties, schema_version: e.contractVersion,
    kafka_partition: x.record.partition, kafka_offset: x.record.offset,
    typed_properties: typed,
  }
}

export function deadLetterRow(l: DeadLetter, receivedAt: Date = new Date()): DeadLetterRow {
  return {
    tenant: l.tenant, reason_code: l.reason, reason: l.message, topic: l.record.topic,
    kafka_partition: l.record.partition, kafka_offset: l.record.offset,
    key: l.record.key?.toString('utf8') ?? '', value_base64: l.record.value?.toString('base64') ?? '',
    received_at: receivedAt,
  }
}
