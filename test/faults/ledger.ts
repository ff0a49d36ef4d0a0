/**
 * The client ledger: a well-behaved client of the ingest API that writes down every answer it
 * gets, per externalEventId, and at the end compares what it was told with what ClickHouse holds.
 *
 * Sending: facts go out as single events and as batches, at a bounded rate and concurrency. A 5xx,
 * a 429, a timeout or a connection error is retried with the same externalEventId (and the same
 * payload) after an exponential backoff with jitter (Retry-After honoured, capped), until the fact
 * gets a final answer or its own deadline passes. Batch items that come back with a retriable
 * error code are retried the same way; the others are final.
 *
 * Reconciliation (no FINAL: what a reader sees without deduplicating reads):
 *   - lost: answered accepted/duplicate, not in `events`
 *   - duplicated: rows beyond the first for one (tenant, source, externalEventId)
 *   - wrongId: stored under an event id other than the one the client was given
 *   - unexpected: in `events` although the client never had it accepted
 *   - idMismatch: the API gave two different event ids for one fact
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client'

export interface Answer {
  at: number; target: string; status: number | 'timeout' | 'conn'; body?: string; eventId?: string; code?: string
  /** the API's word for a final answer with an event id */
  result?: 'accepted' | 'duplicate'
}

export interface Fact {
  id: string
  payload: Record<string, unknown>
  answers: Answer[]
  state: 'pending' | 'accepted' | 'rejected' | 'unresolved'
  eventIds: Set<string>
  acceptedCount: number
}

export interface LedgerOptions {
  /** base URLs of the API; each unit goes to one of them in turn, or to all at once (fanout) */
  targets: () => string[]
  key: string
  tenant: string
  source: string
  prefix: string
  fanout?: boolean
  requestTimeoutMs?: number
  /** a fact not final after this long is left `unresolved` */
  factDeadlineMs?: number
}

export interface LoadOptions {
  total: number
  /** facts per second offered (retries come on top) */
  rate: number
  batchSize: number
  /** share of facts sent through the single route */
  singleShare: number
  concurrency: number
}

export interface Reconciliation {
  sent: number; accepted: number; rejected: number; unresolved: number
  lost: number; duplicated: number; wrongId: number; unexpected: number; idMismatch: number
  examples: Record<string, string[]>
}

const RETRIABLE_CODES = new Set(['kafka_unavailable', 'schema_registry_unavailable', 'state_store_unavailable', 'clickhouse_unavailable', 'timeout', 'internal_error', 'rate_limited'])
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class Ledger {
  readonly facts = new Map<string, Fact>()
  /** HTTP statuses seen (and 'timeout', 'conn'), for the scenario's own checks */
  readonly statusCounts = new Map<string, number>()
  private next = 0
  private rr = 0
  private readonly opts: Required<LedgerOptions>

  constructor(opts: LedgerOptions) {
    this.opts = { fanout: false, requestTimeoutMs: 10_000, factDeadlineMs: 180_000, ...opts }
  }

  private newFact(): Fact {
    const i = this.next++
    const id = `${this.opts.prefix}-${i}`
    const payload = {
      source: this.opts.source, externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
      identity: { email: `shopper${i}@example.com`, ...(i % 3 === 0 ? { externalUserId: `L-${i % 400}` } : {}) },
      properties: { order_id: `order-${i}`, amount: (i % 97) + 0.5, currency: 'EUR' },
    }
    const f: Fact = { id, payload, answers: [], state: 'pending', eventIds: new Set(), acceptedCount: 0 }
    this.facts.set(id, f)
    return f
  }

  private count(k: string) { this.statusCounts.set(k, (this.statusCounts.get(k) ?? 0) + 1) }

  private pickTargets(): string[] {
    const all = this.opts.targets()
    if (this.opts.fanout) return all
    return [all[this.rr++ % all.length] as string]
  }

  private async post(target: string, path: string, body: unknown): Promise<{ status: number | 'timeout' | 'conn'; text?: string; retryAfterMs?: number }> {
    try {
      const res = await fetch(`${target}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.opts.key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs),
      })
      const text = await res.text()
      const ra = Number(res.headers.get('retry-after'))
      return { status: res.status, text, ...(Number.isFinite(ra) && ra > 0 ? { retryAfterMs: ra * 1000 } : {}) }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } }
      return { status: e.name === 'TimeoutError' || e.name === 'AbortError' ? 'timeout' : 'conn' }
    }
  }

  private settle(f: Fact, a: Answer, r: { status?: string; event_id?: string; original_event_id?: string; error_code?: string } | undefined): 'final' | 'retry' {
    f.answers.push(a)
    if (r?.status === 'accepted' || r?.status === 'duplicate') {
      const eid = r.event_id ?? r.original_event_id
      if (eid !== undefined) { f.eventIds.add(eid); a.eventId = eid }
      a.result = r.status
      if (r.status === 'accepted') f.acceptedCount++
      f.state = 'accepted'
      return 'final'
    }
    if (r?.error_code !== undefined) a.code = r.error_code
    if (r?.error_code !== undefined && !RETRIABLE_CODES.has(r.error_code)) { f.state = 'rejected'; return 'final' }
    return 'retry'
  }

  /** sends one unit (one fact single, or several as a batch) to one target until final */
  private async sendUnit(facts: Fact[], target: string, single: boolean, born: number): Promise<void> {
    let pending = facts
    for (let attempt = 0; pending.length > 0; attempt++) {
      const res = single
        ? await this.post(target, '/v1/cdp/events', pending[0]!.payload)
        : await this.post(target, '/v1/cdp/events/batch', { items: pending.map((f) => f.payload) })
      this.count(single ? String(res.status) : `batch ${res.status}`)
      const at = Date.now()
      const still: Fact[] = []
      if (typeof res.status === 'number' && res.status < 500 && res.status !== 429) {
        let parsed: unknown
        try { parsed = JSON.parse(res.text ?? '') } catch { parsed = undefined }
        if (single) {
          const f = pending[0]!
          const body = parsed as { status?: string; event_id?: string; original_event_id?: string; error_code?: string } | undefined
          if (this.settle(f, { at, target, status: res.status, body: res.status >= 300 ? res.text?.slice(0, 300) : undefined }, body) === 'retry') {
            if (res.status >= 400) { f.state = 'rejected' } else still.push(f)
          }
        } else if (res.status === 200) {
          const results = (parsed as { results?: unknown[] } | undefined)?.results ?? []
          pending.forEach((f, k) => {
            const r = results[k] as Parameters<Ledger['settle']>[2]
            if (this.settle(f, { at, target, status: res.status }, r) === 'retry') still.push(f)
          })
        } else {
          for (const f of pending) { f.answers.push({ at, target, status: res.status, body: res.text?.slice(0, 300) }); f.state = 'rejected' }
        }
      } else {
        for (const f of pending) { f.answers.push({ at, target, status: res.status }); still.push(f) }
      }
      pending = still
      if (pending.length === 0) return
      if (Date.now() - born > this.opts.factDeadlineMs) { for (const f of pending) f.state = 'unresolved'; return }
      const backoff = Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2)
      await sleep(Math.min(5000, Math.max(backoff, res.retryAfterMs ?? 0)))
    }
  }

  /**
   * Offers `total` facts at `rate` per second, `concurrency` units in flight at most; resolves when
   * every fact is final or unresolved. `stop()` (returned by the caller's closure) is not needed:
   * the run is bounded by total and by the per-fact deadline.
   */
  async run(load: LoadOptions): Promise<void> {
    const inflight = new Set<Promise<void>>()
    const start = Date.now()
    let offered = 0
    let singles = 0
    while (offered < load.total) {
      // singleShare is a share of facts, not of requests
      const single = singles < load.singleShare * (offered + 1)
      if (single) singles++
      const n = single ? 1 : Math.min(load.batchSize, load.total - offered)
      const facts = Array.from({ length: n }, () => this.newFact())
      offered += n
      const born = Date.now()
      const p = Promise.all(this.pickTargets().map((t) => this.sendUnit(facts, t, single, born)))
        .then(() => { for (const f of facts) if (f.state === 'pending') f.state = f.eventIds.size > 0 ? 'accepted' : 'unresolved' })
        .finally(() => inflight.delete(p))
      inflight.add(p)
      while (inflight.size >= load.concurrency) await Promise.race(inflight)
      const due = start + (offered / load.rate) * 1000
      if (due > Date.now()) await sleep(due - Date.now())
    }
    await Promise.all(inflight)
  }

  /** a client that gave up for a while comes back: every unresolved fact is sent again, in batches */
  async retryUnresolved(batchSize = 50): Promise<number> {
    const again = [...this.facts.values()].filter((f) => f.state === 'unresolved')
    for (const f of again) f.state = 'pending'
    const target = this.opts.targets()[0] as string
    for (let i = 0; i < again.length; i += batchSize) {
      const unit = again.slice(i, i + batchSize)
      await this.sendUnit(unit, target, false, Date.now())
      for (const f of unit) if (f.state === 'pending') f.state = f.eventIds.size > 0 ? 'accepted' : 'unresolved'
    }
    return again.length
  }

  /**
   * A client retrying facts it already holds an answer for (it never heard it, or it re-sends to
   * be sure): each goes out again with the same externalEventId and payload, singles and batches
   * as in `run`. The answers join the fact's history; a different event id shows in the
   * reconciliation as two ids for one fact.
   */
  async resend(facts: Fact[], load: Omit<LoadOptions, 'total'>): Promise<void> {
    const inflight = new Set<Promise<void>>()
    const start = Date.now()
    let offered = 0
    let singles = 0
    while (offered < facts.length) {
      const single = singles < load.singleShare * (offered + 1)
      if (single) singles++
      const unit = facts.slice(offered, offered + (single ? 1 : load.batchSize))
      offered += unit.length
      const p = Promise.all(this.pickTargets().map((t) => this.sendUnit(unit, t, single, Date.now()))).then(() => undefined).finally(() => inflight.delete(p))
      inflight.add(p)
      while (inflight.size >= load.concurrency) await Promise.race(inflight)
      const due = start + (offered / load.rate) * 1000
      if (due > Date.now()) await sleep(due - Date.now())
    }
    await Promise.all(inflight)
  }

  /** the API key for the requests from now on (after the key store was lost and a new key made) */
  useKey(key: string): void { this.opts.key = key }

  /** how many facts are answered accepted or duplicate so far */
  acceptedSoFar(): number { let n = 0; for (const f of this.facts.values()) if (f.state === 'accepted') n++; return n }

  async reconcile(ch: ClickHouseClient, opts: { database?: string; settleTimeoutMs?: number } = {}): Promise<Reconciliation> {
    const db = opts.database ?? 'cdp'
    const accepted = [...this.facts.values()].filter((f) => f.state === 'accepted')
    type Row = { external_event_id: string; c: string; ids: string[] }
    const read = async (): Promise<Row[]> => (await ch.query({
      query: `SELECT external_event_id, count() AS c, groupUniqArray(event_id) AS ids FROM ${db}.events WHERE tenant = {t:String} AND source = {s:String} GROUP BY tenant, source, external_event_id`,
      query_params: { t: this.opts.tenant, s: this.opts.source },
      format: 'JSONEachRow',
    })).json<Row>()
    // wait until every accepted fact is stored, or nothing new arrives for a while, bounded
    const deadline = Date.now() + (opts.settleTimeoutMs ?? 120_000)
    let rows: Row[] = []
    let last = -1
    let lastChange = Date.now()
    for (;;) {
      try { rows = await read() } catch { /* ClickHouse may still be coming back */ }
      const have = new Set(rows.map((r) => r.external_event_id))
      const missing = accepted.filter((f) => !have.has(f.id)).length
      if (missing === 0) break
      if (rows.length !== last) { last = rows.length; lastChange = Date.now() }
      if (Date.now() > deadline || Date.now() - lastChange > 45_000) break
      await sleep(1000)
    }
    await sleep(1500) // late duplicates of what was just counted
    try { rows = await read() } catch (err) { throw new Error(`reconcile: cannot read ClickHouse: ${(err as Error).message}`) }

    const byId = new Map(rows.map((r) => [r.external_event_id, r]))
    const ex: Record<string, string[]> = { lost: [], duplicated: [], wrongId: [], unexpected: [], idMismatch: [], unresolved: [], rejected: [] }
    const note = (k: string, s: string) => { const a = ex[k]!; if (a.length < 5) a.push(s) }
    let lost = 0; let duplicated = 0; let wrongId = 0; let unexpected = 0; let idMismatch = 0; let rejected = 0; let unresolved = 0
    for (const f of this.facts.values()) {
      const row = byId.get(f.id)
      if (f.state === 'accepted') {
        if (f.eventIds.size > 1) { idMismatch++; note('idMismatch', `${f.id}: ${[...f.eventIds].join(',')}`) }
        if (row === undefined) { lost++; note('lost', `${f.id} (${[...f.eventIds][0]})`); continue }
        const c = Number(row.c)
        if (c > 1) { duplicated += c - 1; note('duplicated', `${f.id} x${c}`) }
        if (!row.ids.some((id) => f.eventIds.has(id)) || row.ids.length > 1) { wrongId++; note('wrongId', `${f.id}: told ${[...f.eventIds].join(',')}, stored ${row.ids.join(',')}`) }
      } else {
        if (f.state === 'rejected') { rejected++; note('rejected', `${f.id}: ${f.answers.at(-1)?.status} ${f.answers.at(-1)?.code ?? f.answers.at(-1)?.body ?? ''}`) }
        else { unresolved++; note('unresolved', `${f.id}: last ${f.answers.at(-1)?.status}`) }
        if (row !== undefined) { unexpected++; note('unexpected', `${f.id} (${f.state})`) }
      }
    }
    for (const r of rows) if (!this.facts.has(r.external_event_id)) { unexpected += Number(r.c); note('unexpected', `${r.external_event_id} (never sent)`) }
    return { sent: this.facts.size, accepted: accepted.length, rejected, unresolved, lost, duplicated, wrongId, unexpected, idMismatch, examples: ex }
  }
}

export function clickhouseReader(url: string, password?: string): ClickHouseClient {
  return createClient({ url, ...(password !== undefined ? { password } : {}), request_timeout: 30_000 })
}
