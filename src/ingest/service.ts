/**
 * The ingest core, independent of HTTP: validate -> claim -> encode -> produce -> commit.
 *
 * Idempotency (ARCHITECTURE "Idempotency at the HTTP edge"): the tuple is claimed in the state
 * store before producing, so the answer can name the original event id. The first claim wins.
 *  - same tuple, same fingerprint, committed            -> duplicate (original event id)
 *  - same tuple, same fingerprint, being produced now   -> wait for it, then duplicate
 *  - same tuple, same fingerprint, abandoned by a crash -> produce again under the SAME event id
 *  - same tuple, other fingerprint                      -> 409 idempotency_conflict
 * A produce that certainly did not happen (cancelled while queued, no connection) releases the
 * claim. A produce whose outcome is unknown (no ack in time, connection lost after the request
 * was written) may have put the record on the topic, so its claim keeps the event id and is
 * abandoned: the retry takes it over at once and produces again under the SAME event id, which
 * the consumer absorbs as a repeat. The client is never given an id the stored fact does not
 * carry. 422s never touch the store.
 */
import type { Config } from '../config/index.js'
import { CdpError, wrapForeign, type ErrorDetail } from '../errors.js'
import { buildFact, newEventId, type CdpEvent } from '../avro/event.js'
import { encodeKey, keyString } from '../avro/key.js'
import type { ClaimOutcome, ClaimStore } from '../state/types.js'
import { wasNotSent, type OutboundMessage, type Ticket } from '../kafka/producer.js'
import { createEnvelopeValidator, summarize, type EventEnvelope } from './envelope.js'

export type ItemResult =
  | { status: 'accepted'; event_id: string }
  | { status: 'duplicate'; original_event_id: string }
  | { status: 'error'; error_code: 'validation_failed' | 'idempotency_conflict' | 'forbidden' | 'suppressed'; message: string; details?: ErrorDetail[] }

export interface Caller {
  tenant: string
  /** empty: any source */
  sources: readonly string[]
}

export interface IngestDeps {
  config: Readonly<Config>
  /** contract checks for the event's type and properties; returns the contract version or problems */
  checkContract(tenant: string, eventType: string, properties: unknown): { ok: true; version: number } | { ok: false; details: ErrorDetail[] }
  /** identity value checks (email, phone shapes) */
  checkIdentity(identity: EventEnvelope['identity']): ErrorDetail[]
  claims: ClaimStore
  encode(event: CdpEvent): Buffer
  send(messages: OutboundMessage[]): Ticket
  /**
   * per event identity, whether it carries an identity of an erased person (src/privacy). Asked
   * only for facts that won their claim: a retry of an erased fact still answers duplicate.
   */
  suppressed?(tenant: string, identities: CdpEvent['identity'][]): Promise<boolean[]>
  /** true when a ticket's rejection proves nothing reached Kafka (default: src/kafka's wasNotSent) */
  wasNotSent?(err: unknown): boolean
  now?: () => number
  /** each request's item results, in order (metrics count them by outcome) */
  onResults?: (caller: Caller, results: readonly ItemResult[]) => void
}

interface Prepared {
  index: number
  key: string
  event: CdpEvent
  fingerprint: string
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class IngestService {
  private readonly validateEnvelope
  private readonly now: () => number
  /** produces of this process still waiting for Kafka, by dedup key: lets in-process waiters skip polling */
  private readonly inFlight = new Map<string, Promise<void>>()

  constructor(private readonly deps: IngestDeps) {
    this.validateEnvelope = createEnvelopeValidator(deps.config)
    this.now = deps.now ?? Date.now
  }

  /** produces of this process waiting for Kafka, counted by claimed tuple */
  get claimsInFlight(): number { return this.inFlight.size }

  /** Judge each item on its own; results in request order. Throws CdpError (5xx) on infrastructure trouble. */
  async ingest(caller: Caller, items: unknown[]): Promise<ItemResult[]> {
    const now = this.now()
    const results: (ItemResult | undefined)[] = new Array(items.length)
    const firstByKey = new Map<string, Prepared>()
    const laterInBatch: { p: Prepared; first: Prepared }[] = []
    const toClaim: Prepared[] = []

    items.forEach((raw, index) => {
      const r = this.prepare(caller, raw, now)
      if ('status' in r) { results[index] = r; return }
      const p = { ...r, index }
      const first = firstByKey.get(p.key)
      // two items of one batch with the same tuple: the later one is judged against the earlier
      if (first !== undefined) { laterInBatch.push({ p, first }); return }
      firstByKey.set(p.key, p)
      toClaim.push(p)
    })

    if (toClaim.length > 0) await this.claimAndProduce(toClaim, results)

    for (const { p, first } of laterInBatch) {
      const r = results[first.index]!
      const originalId = r.status === 'accepted' ? r.event_id : r.status === 'duplicate' ? r.original_event_id : undefined
      if (originalId === undefined) results[p.index] = r // the first failed for a reason that applies to both
      else if (p.fingerprint === first.fingerprint) results[p.index] = { status: 'duplicate', original_event_id: originalId }
      else results[p.index] = conflict(originalId)
    }
    this.deps.onResults?.(caller, results as ItemResult[])
    return results as ItemResult[]
  }

  private prepare(caller: Caller, raw: unknown, now: number): ItemResult | Omit<Prepared, 'index'> {
    const { config } = this.deps
    if (raw !== null && typeof raw === 'object' && Buffer.byteLength(JSON.stringify(raw)) > config.http.maxEventBytes) {
      return invalid([{ pointer: '', code: 'too_large', message: `event is larger than ${config.http.maxEventBytes} bytes` }])
    }
    const env = this.validateEnvelope(raw, now)
    const details: ErrorDetail[] = env.ok ? [] : [...env.details]
    const body = raw as Partial<EventEnvelope>
    let contractVersion = 0
    if (typeof body?.eventType === 'string' && (body.properties === undefined || (typeof body.properties === 'object' && body.properties !== null && !Array.isArray(body.properties)))) {
      const c = this.deps.checkContract(caller.tenant, body.eventType, body.properties ?? {})
      if (c.ok) contractVersion = c.version
      else details.push(...c.details)
    }
    if (body?.identity !== null && typeof body?.identity === 'object' && !Array.isArray(body.identity)) {
      details.push(...this.deps.checkIdentity(body.identity))
    }
    if (!env.ok || details.length > 0) return invalid(details)
    const e = env.event
    if (caller.sources.length > 0 && !caller.sources.includes(e.source)) {
      return { status: 'error', error_code: 'forbidden', message: `this API key may not send events as source ${JSON.stringify(e.source)}` }
    }
    const { event, fingerprint } = buildFact({
      tenant: caller.tenant, source: e.source, externalEventId: e.externalEventId, eventType: e.eventType,
      occurredAt: env.occurredAt, identity: e.identity, properties: e.properties ?? {}, contractVersion,
    }, '' /* decided by the claim */, now)
    return { key: keyString(event), event, fingerprint }
  }

  private async claimAndProduce(items: Prepared[], results: (ItemResult | undefined)[]): Promise<void> {
    const { config, claims } = this.deps
    const deadline = this.now() + config.kafka.produceTimeoutMs
    let pending = items
    for (;;) {
      const outcomes = await claims.claimMany(
        pending.map((p) => ({ key: p.key, eventId: newEventId(), fingerprint: p.fingerprint })),
        this.now(), config.state.claimLeaseMs,
      ).catch((err: unknown) => { throw wrapForeign(err, 'idempotency store', 'state_store_unavailable', { retryAfter: 1 }) })
      const won: Prepared[] = []
      const waiting: Prepared[] = []
      pending.forEach((p, i) => {
        const o = outcomes[i] as ClaimOutcome
        switch (o.outcome) {
          case 'claimed': p.event.eventId = o.eventId; won.push(p); break
          case 'duplicate': results[p.index] = { status: 'duplicate', original_event_id: o.eventId }; break
          case 'conflict': results[p.index] = conflict(o.eventId); break
          case 'in_flight': waiting.push(p); break
        }
      })
      const allowed = await this.unsuppressed(won, results)
      if (allowed.length > 0) await this.produce(allowed, results, deadline)
      if (waiting.length === 0) return
      if (this.now() >= deadline) {
        throw new CdpError('timeout', 'an identical request is still being written; retry with the same externalEventId', { retryAfter: 1 })
      }
      // another request with the same fact is producing: wait for it (in-process: its promise;
      // other processes: poll the store) and ask again, which then answers duplicate
      const local = waiting.map((p) => this.inFlight.get(p.key)).filter((x): x is Promise<void> => x !== undefined)
      if (local.length > 0) await Promise.race([Promise.allSettled(local), sleep(Math.max(1, deadline - this.now()))])
      else await sleep(Math.min(25, Math.max(1, deadline - this.now())))
      pending = waiting
    }
  }

  /** drops (and releases the claims of) the won facts that carry a suppressed identity */
  private async unsuppressed(won: Prepared[], results: (ItemResult | undefined)[]): Promise<Prepared[]> {
    const check = this.deps.suppressed
    if (check === undefined || won.length === 0) return won
    const tenant = won[0]!.event.tenant
    const hits = await check.call(this.deps, tenant, won.map((p) => p.event.identity))
      .catch((err: unknown) => { throw wrapForeign(err, 'suppression list', 'state_store_unavailable', { retryAfter: 1 }) })
    const refused = won.filter((_, i) => hits[i] === true)
    if (refused.length === 0) return won
    await this.deps.claims.releaseMany(refused.map((p) => ({ key: p.key, eventId: p.event.eventId })))
      .catch((err: unknown) => { throw wrapForeign(err, 'idempotency store', 'state_store_unavailable', { retryAfter: 1 }) })
    for (const p of refused) {
      results[p.index] = {
        status: 'error', error_code: 'suppressed',
        message: 'this event carries an identity of a person erased for this tenant; it is not stored (docs/PRIVACY.md)',
      }
    }
    return won.filter((_, i) => hits[i] !== true)
  }

  private async produce(won: Prepared[], results: (ItemResult | undefined)[], deadline: number): Promise<void> {
    const { claims } = this.deps
    const messages = won.map((p) => ({ key: encodeKey(p.event), value: this.deps.encode(p.event) }))
    const ticket = this.deps.send(messages)
    const refs = won.map((p) => ({ key: p.key, eventId: p.event.eventId }))
    // settle the claims when Kafka answers, whether or not the caller is still waiting
    const settled = ticket.done.then(
      () => claims.commitMany(refs),
      async (err: unknown) => {
        if ((this.deps.wasNotSent ?? wasNotSent)(err)) await claims.releaseMany(refs)
        else await claims.abandonMany(refs)
        throw err
      },
    )
    const marker = settled.then(() => undefined, () => undefined)
    for (const r of refs) this.inFlight.set(r.key, marker)
    void marker.then(() => { for (const r of refs) if (this.inFlight.get(r.key) === marker) this.inFlight.delete(r.key) })

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), Math.max(1, deadline - this.now())) })
    try {
      const first = await Promise.race([settled.then(() => 'ok' as const), timeout])
      if (first === 'timeout') {
        ticket.cancel() // still queued: dropped, and the rejection above releases the claims (if sent: abandons them)
        throw new CdpError('kafka_unavailable', 'Kafka did not acknowledge in time; retry with the same externalEventId', { retryAfter: 1 })
      }
    } catch (err) {
      if (err instanceof CdpError && err.status >= 500) throw err
      throw new CdpError('kafka_unavailable', 'Kafka is unavailable; retry with the same externalEventId', { cause: err, retryAfter: 1 })
    } finally {
      clearTimeout(timer)
    }
    for (const p of won) results[p.index] = { status: 'accepted', event_id: p.event.eventId }
  }
}

function invalid(details: ErrorDetail[]): ItemResult {
  return { status: 'error', error_code: 'validation_failed', message: summarize(details), details }
}

function conflict(originalId: string): ItemResult {
  return {
    status: 'error',
    error_code: 'idempotency_conflict',
    message: `externalEventId was already used for a different payload (event ${originalId}); use a new externalEventId for a new business fact`,
  }
}
