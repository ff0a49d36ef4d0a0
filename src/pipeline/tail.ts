/**
 * `cdp tail`: lines for the events of one tenant as they arrive on the events topic, each with
 * its outcome once known:
 *
 *   written          the consumer's dedup store holds this very record as the tuple's first fact
 *   duplicate <id>   the store holds the same fact from an earlier record (its event id)
 *   dead_letter <r>  a DLQ record names this record (cdp-source-partition/-offset) with reason r
 *   pending          none of these within the wait (consumer behind or stopped)
 *
 * The tenant and source filters read the key, so other tenants' values are never decoded.
 * Identity values are masked: a line shows which identities an event carries, never their values.
 */
import type { CdpEvent } from '../avro/event.js'
import { fingerprintOf } from '../avro/event.js'
import { decodeKey, keyString } from '../avro/key.js'
import type { FactRef } from '../state/types.js'
import type { TailedRecord } from '../kafka/tail.js'

export interface TailFilter { tenant: string; source?: string; eventType?: string }

export interface TailDeps {
  filter: TailFilter
  /** the fact in a value, or undefined when it does not decode */
  decode(value: Buffer | null): Promise<CdpEvent | undefined>
  /** the consumer's first fact for a dedup key */
  firstFact(key: string): Promise<FactRef | undefined>
  /** how long a line waits for its outcome before it is printed as pending */
  outcomeWaitMs: number
  now?: () => number
}

interface Waiting {
  record: TailedRecord
  event: CdpEvent
  key: string
  fingerprint: string
  since: number
}

/** 'jane@example.com' -> 'j***@e***', '+14155550100' -> '***00', others keep their last 2 characters */
export function maskIdentity(kind: 'email' | 'phone' | 'externalUserId' | 'deviceKey', value: string): string {
  if (kind === 'email') {
    const at = value.lastIndexOf('@')
    return at <= 0 ? '***' : `${value[0]}***@${value[at + 1] ?? ''}***`
  }
  return value.length <= 4 ? '***' : `***${value.slice(-2)}`
}

export function maskedIdentity(identity: CdpEvent['identity']): string {
  const parts: string[] = []
  for (const kind of ['email', 'phone', 'externalUserId', 'deviceKey'] as const) {
    const v = identity[kind]
    if (v !== null && v !== '') parts.push(`${kind}=${maskIdentity(kind, v)}`)
  }
  return parts.join(',')
}

export function formatTailLine(event: CdpEvent, record: Pick<TailedRecord, 'partition' | 'offset'>, outcome: string): string {
  return [
    new Date(event.receivedAt).toISOString(), event.tenant, event.source, event.externalEventId, event.eventType, event.eventId,
    `p${record.partition}@${record.offset}`, maskedIdentity(event.identity) || '-', outcome,
  ].join('  ')
}

export class TailTracker {
  private readonly waiting: Waiting[] = []
  /** DLQ verdicts by source position, which may arrive before the record itself */
  private readonly deadLetters = new Map<string, string>()
  private readonly now: () => number

  constructor(private readonly deps: TailDeps) {
    this.now = deps.now ?? Date.now
  }

  /** a record of the events topic */
  async onEvent(record: TailedRecord): Promise<void> {
    const f = this.deps.filter
    const tuple = decodeKey(record.key)
    if (tuple === undefined || tuple.tenant !== f.tenant || (f.source !== undefined && tuple.source !== f.source)) return
    const event = await this.deps.decode(record.value)
    if (event === undefined) {
      // still worth a line: the sender is wiring up and this record will be dead-lettered
      const stub: CdpEvent = {
        eventId: '-', tenant: tuple.tenant, source: tuple.source, externalEventId: tuple.externalEventId, eventType: '?',
        occurredAt: 0, occurredAtDefaulted: false, receivedAt: Number(record.timestamp), identity: { externalUserId: null, email: null, phone: null, deviceKey: null },
        properties: '{}', contractVersion: null,
      }
      if (f.eventType !== undefined) return
      this.waiting.push({ record, event: stub, key: keyString(tuple), fingerprint: '', since: this.now() })
      return
    }
    if (f.eventType !== undefined && event.eventType !== f.eventType) return
    this.waiting.push({ record, event, key: keyString(tuple), fingerprint: fingerprintOf(event), since: this.now() })
  }

  /** a record of the DLQ topic */
  onDeadLetter(record: TailedRecord): void {
    const p = record.headers['cdp-source-partition']
    const o = record.headers['cdp-source-offset']
    if (p === undefined || o === undefined) return
    this.deadLetters.set(`${p}/${o}`, record.headers['cdp-reason-code'] ?? 'unknown')
    if (this.deadLetters.size > 100_000) this.deadLetters.delete(this.deadLetters.keys().next().value as string)
  }

  /** lines whose outcome is now known (or whose wait is over), in arrival order of the resolved */
  async poll(): Promise<string[]> {
    const lines: string[] = []
    const keep: Waiting[] = []
    for (const w of this.waiting) {
      const outcome = await this.outcome(w)
      if (outcome === undefined) keep.push(w)
      else lines.push(formatTailLine(w.event, w.record, outcome))
    }
    this.waiting.splice(0, this.waiting.length, ...keep)
    return lines
  }

  get pending(): number { return this.waiting.length }

  private async outcome(w: Waiting): Promise<string | undefined> {
    const dead = this.deadLetters.get(`${w.record.partition}/${w.record.offset}`)
    if (dead !== undefined) return `dead_letter ${dead}`
    if (w.fingerprint !== '') {
      const first = await this.deps.firstFact(w.key)
      if (first !== undefined) {
        if (first.partition === w.record.partition && first.offset === w.record.offset) return 'written'
        // same tuple, other payload: a tuple_conflict whose DLQ record is on its way
        if (first.fingerprint === w.fingerprint) return `duplicate ${first.eventId}`
      }
    }
    return this.now() - w.since >= this.deps.outcomeWaitMs ? 'pending' : undefined
  }
}
