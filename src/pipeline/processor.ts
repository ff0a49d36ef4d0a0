/**
 * The consumer's work for one partition batch:
 *
 *   decode (any registered schema version)  -> dead letter: bad_key, not_avro, unknown_schema, bad_avro
 *   re-check the contract (direct producers skip the API) -> dead letter: key_mismatch, contract_violation, no_identity
 *   dedup: first fact per tuple wins         -> repeat: skipped; conflict: dead letter + original re-asserted
 *   (any dead letter under the key of a stored fact also re-asserts it: compaction keeps the last record)
 *   identity resolution (global graph)
 *   write to ClickHouse, idempotently        -> then the runner commits the offsets
 *
 * Expected outcomes are values (ok | dead letter | skip); only infrastructure trouble throws, as a
 * retriable CdpError, and the runner retries the same records without committing.
 *
 * Exactly once: every fact maps to one partition, so one consumer owns it at a time. For records
 * the dedup store has seen before at the same position (a re-delivery after a crash) and in a
 * replay, the processor asks ClickHouse which of those tuples it already holds (the table's
 * primary key) and inserts only the others; the insert also carries a dedup token from
 * the batch's offset range. A crash between insert and commit therefore re-inserts nothing, and so
 * does a replay. ReplacingMergeTree on the tuple stays as the last line of defence.
 */
import type { Config } from '../config/index.js'
import { CdpError, type ErrorDetail } from '../errors.js'
import { fingerprintOf, type CdpEvent } from '../avro/event.js'
import { decodeKey, encodeKey, keyString } from '../avro/key.js'
import { validateIdentity } from '../identity/normalize.js'
import type { SchemaCodec } from '../avro/codec.js'
import type { DedupStore, FactRef } from '../state/types.js'
import type { ClickHouseWriter } from '../clickhouse/writer.js'
import type { DeadLetterRow, EventRow, IdentityRow, MergeRow, ProfileAliasRow, SegmentValue } from '../clickhouse/rows.js'
import type { InboundRecord } from '../kafka/consumer.js'
import type { Logger } from '../observability/logger.js'

export type DeadLetterReason =
  | 'bad_key' | 'not_avro' | 'unknown_schema' | 'bad_avro'
  | 'key_mismatch' | 'contract_violation' | 'no_identity' | 'tuple_conflict'

export interface DeadLetter {
  record: InboundRecord
  tenant: string | null
  reason: DeadLetterReason
  message: string
}

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
  checkContract(tenant: string, eventType: string, properties: unknown): { ok: true; version: number } | { ok: false; details: ErrorDetail[] }
  /** segmentable property -> column, for the typed ClickHouse columns */
  segmentable: readonly { property: string; column: string }[]
  dedup: DedupStore
  identity: IdentityStep
  writer: ClickHouseWriter
  /** which of these tuples ClickHouse already holds (keyString form) */
  existingFacts(tuples: { tenant: string; source: string; externalEventId: string }[]): Promise<Set<string>>
  /** dead letters to the DLQ topic (with reason headers) */
  publishDeadLetters(letters: DeadLetter[]): Promise<void>
  /** produce the first fact again under its key, so compaction keeps it rather than a conflicting newcomer */
  reassert(originals: FactRef[], keys: string[]): Promise<void>
  /** replay: a record equal to the stored first fact is written even if at another offset */
  mode: 'live' | 'replay'
  log: Logger
}

export interface BatchOutcome {
  written: number
  repeats: number
  deadLetters: number
  conflicts: number
}

interface Decoded { record: InboundRecord; event: CdpEvent; key: string; fingerprint: string }

function ms(t: number): string {
  return new Date(t).toISOString()
}

export class BatchProcessor {
  /** totals since start */
  readonly totals: BatchOutcome = { written: 0, repeats: 0, deadLetters: 0, conflicts: 0 }
  /** milliseconds spent per step since start: where a batch's time goes (benchmarks print it) */
  readonly timings = { decode: 0, dedup: 0, existing: 0, identity: 0, insert: 0, deadLetters: 0 }

  constructor(private readonly deps: ProcessorDeps) {}

  async process(records: InboundRecord[]): Promise<number> {
    const out = await this.processBatch(records)
    this.totals.written += out.written
    this.totals.repeats += out.repeats
    this.totals.deadLetters += out.deadLetters
    this.totals.conflicts += out.conflicts
    return records.length
  }

  async processBatch(records: InboundRecord[]): Promise<BatchOutcome> {
    const d = this.deps
    let mark = performance.now()
    const lap = (step: keyof BatchProcessor['timings']) => { const now = performance.now(); this.timings[step] += now - mark; mark = now }
    const letters: DeadLetter[] = []
    const decoded: Decoded[] = []
    for (const record of records) {
      const r = await this.decode(record)
      if ('reason' in r) letters.push(r)
      else decoded.push(r)
    }
    lap('decode')

    // first fact per tuple wins; the very record that won before (re-delivery) is 'first' again
    const outcomes = decoded.length === 0 ? [] : await d.dedup.checkMany(decoded.map((x) => ({
      key: x.key,
      ref: { eventId: x.event.eventId, fingerprint: x.fingerprint, partition: x.record.partition, offset: x.record.offset },
    })))
    const firsts: Decoded[] = []
    /** tuples whose rows may already be in ClickHouse: re-deliveries, and everything in a replay */
    const maybeWritten = new Set<string>()
    const reassert: { original: FactRef; key: string }[] = []
    let repeats = 0
    outcomes.forEach((o, i) => {
      const x = decoded[i]!
      if (o.outcome === 'first') {
        firsts.push(x)
        if (o.redelivered || d.mode === 'replay') maybeWritten.add(x.key)
      } else if (o.outcome === 'repeat') {
        // replay rebuilds from what the compacted topic still holds, where compaction may have
        // kept only a later copy of the fact: that copy stands for it, under the original event id
        // (ClickHouse's existence check keeps the fact single)
        if (d.mode === 'replay') {
          firsts.push({ ...x, event: { ...x.event, eventId: o.original.eventId } })
          maybeWritten.add(x.key)
        } else repeats++
      } else {
        letters.push({
          record: x.record, tenant: x.event.tenant, reason: 'tuple_conflict',
          message: `tuple already holds event ${o.original.eventId} with another payload (at ${o.original.partition}/${o.original.offset}); the first fact stays`,
        })
        reassert.push({ original: o.original, key: x.key })
      }
    })

    // Any other record under the key of a stored fact (a tombstone, bytes that do not decode, a
    // payload that fails its contract) is what compaction would keep for that key, and a replay
    // would then lose the fact: re-assert the first fact after it, as for a conflict. Not when the
    // first fact comes later in this partition: it already follows the bad record.
    const conflicts = reassert.length
    if (d.mode === 'live') {
      const undecided = letters.filter((l) => l.reason !== 'bad_key' && l.reason !== 'tuple_conflict')
      const originals = await Promise.all(undecided.map((l) => d.dedup.get(keyString(decodeKey(l.record.key)!))))
      undecided.forEach((l, i) => {
        const o = originals[i]
        if (o === undefined) return
        if (o.partition === l.record.partition && BigInt(o.offset) > BigInt(l.record.offset)) return
        reassert.push({ original: o, key: keyString(decodeKey(l.record.key)!) })
      })
    }

    // facts ClickHouse already has (a crash between insert and commit, or a replay) are not written
    // twice. Only a re-delivered record can have been written before: a tuple the dedup store
    // has just seen for the first time cannot be in ClickHouse yet, so it skips the query.
    lap('dedup')
    const check = firsts.filter((x) => maybeWritten.has(x.key))
    const existing = check.length === 0 ? new Set<string>() : await d.existingFacts(check.map((x) => x.event))
    lap('existing')
    // once per tuple: in a replay the first fact and later copies of it (a repeat, a re-assertion)
    // can share a batch; the lowest offset comes first and is the one the table would keep
    const inBatch = new Set<string>()
    const toWrite = firsts.filter((x) => !existing.has(x.key) && !inBatch.has(x.key) && inBatch.add(x.key))
    const resolved = toWrite.length === 0 ? [] : await d.identity.resolveMany(toWrite.map((x) => x.event))
    lap('identity')

    const first = records[0]!
    const last = records[records.length - 1]!
    const token = (table: string) => `cdp:${d.mode}:${table}:${first.topic}:${first.partition}:${first.offset}-${last.offset}`

    const events: EventRow[] = toWrite.map((x, i) => this.eventRow(x, resolved[i]!))
    const identities = resolved.flatMap((r) => r.identities)
    const merges = resolved.flatMap((r) => r.merges)
    const aliases = resolved.flatMap((r) => r.aliases)
    // identities and merges first: an event row never points at a profile the tables do not know
    if (identities.length > 0) await d.writer.insertIdentities(identities, { dedupToken: token('identities') })
    if (merges.length > 0) await d.writer.insertMerges(merges, { dedupToken: token('profile_merges') })
    if (aliases.length > 0) await d.writer.insertProfileAliases(aliases, { dedupToken: token('profile_aliases') })
    if (events.length > 0) {
      await d.writer.insertEvents(events, { dedupToken: token('events') })
      // a re-delivered batch now finds these facts in ClickHouse and never resolves them again
      await d.identity.forget(toWrite.map((x) => x.event))
    }
    lap('insert')
    if (letters.length > 0) {
      await d.writer.insertDeadLetters(letters.map((l) => this.deadLetterRow(l)), { dedupToken: token('dead_letters') })
      // the DLQ topic got them when they were first consumed; a replay only rebuilds ClickHouse
      if (d.mode === 'live') await d.publishDeadLetters(letters)
    }
    if (reassert.length > 0 && d.mode === 'live') {
      // once per key: one copy after the batch's bad records is enough for compaction
      const once = [...new Map(reassert.map((r) => [r.key, r])).values()]
      await d.reassert(once.map((r) => r.original), once.map((r) => r.key))
    }
    lap('deadLetters')
    return { written: events.length, repeats, deadLetters: letters.length, conflicts }
  }

  private async decode(record: InboundRecord): Promise<Decoded | DeadLetter> {
    const tuple = decodeKey(record.key)
    if (tuple === undefined) {
      return { record, tenant: null, reason: 'bad_key', message: 'key is not the JSON array ["tenant","source","externalEventId"]' }
    }
    // the bytes, not just the tuple: other bytes for the same tuple (spaces, other escaping) are
    // another Kafka key, so another partition and another compaction slot for one fact
    if (!encodeKey(tuple).equals(record.key!)) {
      return { record, tenant: tuple.tenant, reason: 'bad_key', message: 'key is not in canonical form: the UTF-8 bytes of JSON.stringify([tenant, source, externalEventId])' }
    }
    const r = await this.deps.codec.decode(record.value)
    if (!r.ok) return { record, tenant: tuple.tenant, reason: r.reason, message: r.message }
    const e = r.event
    if (e.tenant !== tuple.tenant || e.source !== tuple.source || e.externalEventId !== tuple.externalEventId) {
      return { record, tenant: tuple.tenant, reason: 'key_mismatch', message: 'the key does not match tenant, source and externalEventId of the value' }
    }
    let properties: unknown
    try { properties = JSON.parse(e.properties) } catch {
      return { record, tenant: e.tenant, reason: 'contract_violation', message: 'properties is not JSON' }
    }
    const c = this.deps.checkContract(e.tenant, e.eventType, properties)
    if (!c.ok) {
      return { record, tenant: e.tenant, reason: 'contract_violation', message: c.details.map((x) => `${x.pointer}: ${x.message}`).join('; ') }
    }
    const id = e.identity
    if (![id.externalUserId, id.email, id.phone, id.deviceKey].some((v) => typeof v === 'string' && v.trim() !== '')) {
      return { record, tenant: e.tenant, reason: 'no_identity', message: 'identity.externalUserId, identity.email, identity.phone, or identity.deviceKey is required' }
    }
    // the API answers these with 422 (invalid_email, invalid_phone); a direct record gets the same verdict
    const invalid = validateIdentity(id, this.deps.config.identity)
    if (invalid.length > 0) {
      return { record, tenant: e.tenant, reason: 'contract_violation', message: invalid.map((x) => `${x.pointer}: ${x.message}`).join('; ') }
    }
    return { record, event: e, key: keyString(e), fingerprint: fingerprintOf(e) }
  }

  private eventRow(x: Decoded, r: IdentityResolution): EventRow {
    const e = x.event
    const props = JSON.parse(e.properties) as Record<string, unknown>
    const typed: Record<string, SegmentValue> = {}
    for (const s of this.deps.segmentable) {
      const v = props[s.property]
      if (v !== undefined) typed[s.column] = v as SegmentValue
    }
    return {
      tenant: e.tenant, source: e.source, external_event_id: e.externalEventId, event_id: e.eventId, event_type: e.eventType,
      occurred_at: ms(e.occurredAt), received_at: ms(e.receivedAt), profile_id: r.profileId,
      email: r.email, phone: r.phone, external_user_id: r.externalUserId, device_key: r.deviceKey,
      properties: e.properties, schema_version: e.contractVersion,
      kafka_partition: x.record.partition, kafka_offset: x.record.offset,
      typed_properties: typed,
    }
  }

  private deadLetterRow(l: DeadLetter): DeadLetterRow {
    return {
      tenant: l.tenant, reason_code: l.reason, reason: l.message, topic: l.record.topic,
      kafka_partition: l.record.partition, kafka_offset: l.record.offset,
      key: l.record.key?.toString('utf8') ?? '', value_base64: l.record.value?.toString('base64') ?? '',
      received_at: new Date(),
    }
  }
}
