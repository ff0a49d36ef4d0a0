/**
 * Fakes for the pipeline steps' unit tests: records, events, a codec that reads its own toy
 * format, a writer and a dead-letter/re-assert sink that record their calls in one log, so a test
 * can assert both what was written and in which order.
 */
import { loadConfig } from '../../src/config/index.js'
import type { CdpEvent } from '../../src/avro/event.js'
import { fingerprintOf } from '../../src/avro/event.js'
import { FactKey } from '../../src/avro/key.js'
import type { DecodeResult } from '../../src/avro/codec.js'
import type { ClickHouseWriter, InsertOptions } from '../../src/clickhouse/writer.js'
import type { InboundRecord } from '../../src/kafka/consumer.js'
import type { Valid } from '../../src/pipeline/validate-step.js'
import type { Unique } from '../../src/pipeline/dedup-step.js'
import type { IdentityResolution, IdentityStep, ProcessorDeps } from '../../src/pipeline/deps.js'
import type { FactRef } from '../../src/state/types.js'

export const config = loadConfig({ env: {} })
export const TOPIC = 'cdp.unit'

export function event(over: Partial<CdpEvent> = {}): CdpEvent {
  return {
    eventId: 'evt_1', tenant: 'acme', source: 'brand.pos', externalEventId: 'txn_1', eventType: 'purchase_completed',
    occurredAt: Date.parse('2026-05-20T12:45:00Z'), occurredAtDefaulted: false, receivedAt: Date.parse('2026-05-20T12:45:01Z'),
    identity: { externalUserId: 'L-1', email: null, phone: null, deviceKey: null },
    properties: '{"amount":12.5,"currency":"USD"}', contractVersion: 1,
    ...over,
  }
}

export const keyOf = (e: Pick<CdpEvent, 'tenant' | 'source' | 'externalEventId'>): FactKey => FactKey.of(e)

/** the fake codec's wire format: 'E' + JSON of the event; 'E?' is a schema id the registry lacks */
export const wire = (e: CdpEvent): Buffer => Buffer.from(`E${JSON.stringify(e)}`)
export const UNKNOWN_SCHEMA = Buffer.from('E?')

export const fakeCodec: ProcessorDeps['codec'] = {
  async decode(buf: Buffer | null): Promise<DecodeResult> {
    if (buf === null || buf[0] !== 0x45) return { ok: false, reason: 'not_avro', message: 'not wire format' }
    if (buf.equals(UNKNOWN_SCHEMA)) return { ok: false, reason: 'unknown_schema', message: 'schema id 9 is not registered' }
    return { ok: true, event: JSON.parse(buf.subarray(1).toString('utf8')) as CdpEvent, schemaId: 1 }
  },
}

export function record(offset: number, key: Buffer | null, value: Buffer | null, partition = 0): InboundRecord {
  return { topic: TOPIC, partition, offset: String(offset), key, value, timestamp: '0' }
}

/** a record of `e` under its canonical key */
export const recordOf = (offset: number, e: CdpEvent, partition = 0): InboundRecord => record(offset, keyOf(e).bytes, wire(e), partition)

/** what the validate step hands on, built directly */
export function valid(offset: number, e: CdpEvent, partition = 0): Valid {
  return { record: recordOf(offset, e, partition), key: keyOf(e), event: e, fingerprint: fingerprintOf(e), properties: JSON.parse(e.properties) as unknown }
}

export const unique = (offset: number, e: CdpEvent, maybeWritten: boolean): Unique => ({ ...valid(offset, e), maybeWritten })

export const ref = (eventId: string, partition: number, offset: number, fingerprint = 'fp'): FactRef => ({ eventId, fingerprint, partition, offset: String(offset) })

export type Call = { call: string; rows?: unknown[]; token?: string; args?: unknown[] }

/** a writer that appends each insert to `calls` */
export function fakeWriter(calls: Call[]): ClickHouseWriter {
  const insert = (call: string) => async (rows: readonly unknown[], o?: InsertOptions) => {
    calls.push({ call, rows: [...rows], token: o?.dedupToken })
    return { rows: rows.length }
  }
  return {
    insertEvents: insert('events'), insertIdentities: insert('identities'), insertMerges: insert('profile_merges'),
    insertProfileAliases: insert('profile_aliases'), insertDeadLetters: insert('dead_letters'),
  }
}

/** an identity step giving each event its own profile plus the rows given per event id */
export function fakeIdentity(calls: Call[], extra: Record<string, Partial<IdentityResolution>> = {}): IdentityStep {
  return {
    async resolveMany(events) {
      calls.push({ call: 'resolve', args: events.map((e) => e.eventId) })
      return events.map((e) => ({
        profileId: `prof_${e.eventId}`, email: null, phone: null, externalUserId: e.identity.externalUserId, deviceKey: null,
        identities: [], merges: [], aliases: [], ...extra[e.eventId],
      }))
    },
    async forget(events) {
      calls.push({ call: 'forget', args: events.map((e) => e.eventId) })
    },
  }
}
