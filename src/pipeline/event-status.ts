/**
 * The status of one event for its sender (GET /v1/cdp/events/{source}/{externalEventId}), from
 * what the service knows about the tuple, strongest first:
 *
 *   stored         the events table holds the fact (event_id, received_at, stored_at = insert time)
 *   dead_lettered  the latest dead letter under the tuple's key (reason_code; the event id and
 *                  receipt time decoded from the dead-lettered record when it is Avro)
 *   accepted       the API's committed claim: written to the topic, not yet in ClickHouse
 *   unknown        none of these
 *
 * The tenant is the caller's (from its API key) and is part of every lookup, so another tenant's
 * tuple is simply not found: `unknown`, never a hint that it exists. A process without ClickHouse
 * (`--role api` over embedded chDB) answers from the claim alone: `accepted` or `unknown`.
 * A pending claim (a produce still waiting for Kafka) is `unknown`: the sender has not been told
 * `accepted` either.
 */
import type { CdpEvent } from '../avro/event.js'
import { keyString } from '../avro/key.js'
import type { ClaimInfo } from '../state/types.js'
import type { LatestDeadLetter, StoredFact } from '../clickhouse/dead-letters.js'

export const EVENT_STATUSES = ['accepted', 'stored', 'dead_lettered', 'unknown'] as const

export interface EventStatus {
  status: (typeof EVENT_STATUSES)[number]
  event_id: string | null
  received_at: string | null
  stored_at: string | null
  reason_code: string | null
}

export interface EventStatusDeps {
  claim(key: string): Promise<ClaimInfo | undefined>
  /** undefined when this process cannot read ClickHouse */
  tables?: {
    storedFact(tenant: string, source: string, externalEventId: string): Promise<StoredFact | undefined>
    latestDeadLetter(tenant: string, key: string): Promise<LatestDeadLetter | undefined>
  }
  /** the fact in a record value, or undefined when it does not decode */
  decode(value: Buffer): Promise<CdpEvent | undefined>
}

const iso = (ms: number): string => new Date(ms).toISOString()

export async function eventStatus(deps: EventStatusDeps, tenant: string, source: string, externalEventId: string): Promise<EventStatus> {
  const key = keyString({ tenant, source, externalEventId })
  const none: EventStatus = { status: 'unknown', event_id: null, received_at: null, stored_at: null, reason_code: null }
  const [claim, stored, dead] = await Promise.all([
    deps.claim(key),
    deps.tables?.storedFact(tenant, source, externalEventId),
    deps.tables?.latestDeadLetter(tenant, key),
  ])
  if (stored !== undefined) return { ...none, status: 'stored', ...stored }
  if (dead !== undefined) {
    const event = dead.value_base64 === '' ? undefined : await deps.decode(Buffer.from(dead.value_base64, 'base64'))
    return {
      ...none, status: 'dead_lettered', reason_code: dead.reason_code,
      event_id: event?.eventId ?? claim?.eventId ?? null,
      received_at: event !== undefined ? iso(event.receivedAt) : claim !== undefined ? iso(claim.claimedAt) : null,
    }
  }
  if (claim?.state === 'committed') return { ...none, status: 'accepted', event_id: claim.eventId, received_at: iso(claim.claimedAt) }
  return none
}
