/**
 * Prometheus metrics of one process (prom-client). One `Metrics` object per process, created in
 * the composition root (app/shared.ts) with a registry of its own, never the library's global one,
 * so tests can build several services in one process without their counters adding up. The parts
 * that count get narrow callbacks from it (see app/*.ts), never the object itself.
 *
 * Labels stay bounded: route templates (not URLs), status codes, error and reason codes from
 * fixed sets, table names and partition numbers. Never event ids or identities. The tenant label
 * is added only when `metrics.tenantLabel` is on, since a deployment may have many tenants.
 *
 * Names: the README's "Operating" section lists them; ops/prometheus/alerts.yml and the Grafana
 * dashboard use them, and test/integration/prometheus.test.ts checks both against /metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Config } from '../config/index.js'

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** receipt to ClickHouse: seconds to minutes (a consumer catching up) */
const E2E_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]

/** an API item's outcome, as `cdp_events_total` labels it */
export type EventOutcome = 'accepted' | 'duplicate' | 'conflict' | 'invalid' | 'forbidden' | 'suppressed'

export interface MetricsText { contentType: string; body: string }

export class Metrics {
  readonly registry = new Registry()
  private readonly tenantLabel: boolean

  readonly httpRequests: Counter<'route' | 'method' | 'status'>
  readonly httpDuration: Histogram<'route' | 'method'>
  readonly rateLimited: Counter<'route'>
  readonly events: Counter<string>
  readonly produceBatchRecords: Histogram<string>
  readonly produceDuration: Histogram<'result'>
  readonly claimsInFlight: Gauge<string>

  readonly consumedRecords: Counter<string>
  readonly eventsWritten: Counter<string>
  readonly skipped: Counter<'reason'>
  readonly deadLetters: Counter<string>
  readonly identityMerges: Counter<'reason'>
  readonly blockedMerges: Counter<'reason'>
  readonly insertDuration: Histogram<'table'>
  readonly insertedRows: Counter<'table'>
  readonly consumerLag: Gauge<'partition'>
  readonly lastCommitAge: Gauge<string>
  readonly stalled: Gauge<string>
  readonly endToEnd: Histogram<string>

  private claimsSource: (() => number) | undefined
  private lastCommitAt: number
  /** the commit age is reported only by a process that runs a consumer */
  private consuming = false

  constructor(config: Pick<Readonly<Config>, 'metrics'>, private readonly now: () => number = Date.now) {
    this.tenantLabel = config.metrics.tenantLabel
    this.lastCommitAt = now()
    const registers = [this.registry]
    const t = (labels: string[]) => (this.tenantLabel ? [...labels, 'tenant'] : labels)
    collectDefaultMetrics({ register: this.registry })

    this.httpRequests = new Counter({ name: 'cdp_http_requests_total', help: 'HTTP requests answered, by route template, method and status', labelNames: ['route', 'method', 'status'], registers })
    this.httpDuration = new Histogram({ name: 'cdp_http_request_duration_seconds', help: 'HTTP request latency, from arrival to the response sent', labelNames: ['route', 'method'], buckets: LATENCY_BUCKETS, registers })
    this.rateLimited = new Counter({ name: 'cdp_http_rate_limited_total', help: 'requests answered 429 (per key, tenant or failing-address limit)', labelNames: ['route'], registers })
    this.events = new Counter({ name: 'cdp_events_total', help: 'API events by outcome; code: the error code of invalid/forbidden/conflict items', labelNames: t(['outcome', 'code']), registers })
    this.produceBatchRecords = new Histogram({ name: 'cdp_produce_batch_records', help: 'records per Kafka produce request of the batching producer', buckets: BATCH_BUCKETS, registers })
    this.produceDuration = new Histogram({ name: 'cdp_produce_duration_seconds', help: 'Kafka produce request latency (until acks=all), by result', labelNames: ['result'], buckets: LATENCY_BUCKETS, registers })
    const self = this
    this.claimsInFlight = new Gauge({
      name: 'cdp_claims_in_flight', help: 'idempotency claims of this process waiting for Kafka to acknowledge their records', registers,
      collect() { if (self.claimsSource !== undefined) this.set(self.claimsSource()) },
    })

    this.consumedRecords = new Counter({ name: 'cdp_consumer_records_total', help: 'records of the events topic the consumer handled', registers })
    this.eventsWritten = new Counter({ name: 'cdp_consumer_events_written_total', help: 'events rows inserted into ClickHouse', labelNames: t([]), registers })
    this.skipped = new Counter({ name: 'cdp_consumer_skipped_total', help: 'records skipped as duplicates: repeat (seen before), already_written (ClickHouse holds it), again_in_batch (replay)', labelNames: ['reason'], registers })
    this.deadLetters = new Counter({ name: 'cdp_consumer_dead_letters_total', help: 'records dead-lettered, by reason code', labelNames: t(['reason']), registers })
    this.identityMerges = new Counter({ name: 'cdp_identity_merges_total', help: 'profile merges made by identity resolution, by reason', labelNames: ['reason'], registers })
    this.blockedMerges = new Counter({ name: 'cdp_identity_blocked_merges_total', help: 'merges identity resolution refused (merge protection), by reason', labelNames: ['reason'], registers })
    this.insertDuration = new Histogram({ name: 'cdp_clickhouse_insert_duration_seconds', help: 'ClickHouse insert latency, by table', labelNames: ['table'], buckets: LATENCY_BUCKETS, registers })
    this.insertedRows = new Counter({ name: 'cdp_clickhouse_inserted_rows_total', help: 'rows inserted into ClickHouse, by table', labelNames: ['table'], registers })
    this.consumerLag = new Gauge({ name: 'cdp_consumer_lag', help: "records not yet committed by the consumer group: the broker's end offset minus the committed offset, per partition", labelNames: ['partition'], registers })
    this.lastCommitAge = new Gauge({
      name: 'cdp_consumer_last_commit_age_seconds', help: 'seconds since this consumer last committed offsets (since start before the first commit)', registers,
      // each process reports its own; the one aggregated over --workers is the youngest
      aggregator: 'min',
      collect() { if (self.consuming) this.set((self.now() - self.lastCommitAt) / 1000) },
    })
    this.stalled = new Gauge({ name: 'cdp_consumer_stalled', help: '1 while a partition of this consumer has lag and made no progress for consumer.stallAfterMs', aggregator: 'max', registers })
    this.endToEnd = new Histogram({ name: 'cdp_consumer_end_to_end_seconds', help: 'from the API receiving an event to its row being inserted into ClickHouse', labelNames: t([]), buckets: E2E_BUCKETS, registers })
  }

  /** the label object with the tenant added when the operator enabled it */
  private withTenant<L extends Record<string, string>>(labels: L, tenant: string | null | undefined): L | (L & { tenant: string }) {
    return this.tenantLabel ? { ...labels, tenant: tenant ?? 'unknown' } : labels
  }

  // ---- API -------------------------------------------------------------------------------------

  /** one answered request; `route` is the route template (or `unmatched`) */
  request = (route: string, method: string, status: number, seconds: number): void => {
    this.httpRequests.inc({ route, method, status: String(status) })
    this.httpDuration.observe({ route, method }, seconds)
    if (status === 429) this.rateLimited.inc({ route })
  }

  /** one API item's outcome */
  event = (tenant: string, outcome: EventOutcome, code = ''): void => {
    this.events.inc(this.withTenant({ outcome, code }, tenant))
  }

  /** one Kafka produce request of the batching producer */
  produceBatch = (records: number, seconds: number, ok: boolean): void => {
    this.produceBatchRecords.observe(records)
    this.produceDuration.observe({ result: ok ? 'ok' : 'error' }, seconds)
  }

  /** where the claims-in-flight gauge reads its value at scrape time */
  countClaimsWith(source: () => number): void { this.claimsSource = source }

  // ---- consumer --------------------------------------------------------------------------------

  consumed = (records: number, skipped: readonly string[], deadLetters: readonly { reason: string; tenant: string | null }[]): void => {
    this.consumedRecords.inc(records)
    for (const reason of skipped) this.skipped.inc({ reason })
    for (const d of deadLetters) this.deadLetters.inc(this.withTenant({ reason: d.reason }, d.tenant))
  }

  merge = (reason: string): void => { this.identityMerges.inc({ reason }) }
  blockedMerge = (reason: string): void => { this.blockedMerges.inc({ reason }) }

  inserted = (table: string, rows: number, seconds: number): void => {
    this.insertDuration.observe({ table }, seconds)
    this.insertedRows.inc({ table }, rows)
  }

  /** events rows written: each with its tenant and when the API received it (epoch ms) */
  eventsStored = (rows: readonly { tenant: string; receivedAtMs: number }[]): void => {
    const now = this.now()
    for (const r of rows) {
      const labels = this.withTenant({}, r.tenant)
      this.eventsWritten.inc(labels)
      if (Number.isFinite(r.receivedAtMs)) this.endToEnd.observe(labels, Math.max(0, (now - r.receivedAtMs) / 1000))
    }
  }

  /** the consumer of this process started: the commit age counts from now */
  consumerStarted(): void { this.consuming = true; this.lastCommitAt = this.now() }

  committed = (): void => { this.lastCommitAt = this.now() }

  /** replaces the lag gauge: partitions no longer reported disappear */
  setLag(lag: ReadonlyMap<number, bigint>): void {
    this.consumerLag.reset()
    for (const [partition, n] of lag) this.consumerLag.set({ partition: String(partition) }, Number(n))
  }

  setStalled(stalled: boolean): void { this.stalled.set(stalled ? 1 : 0) }

  /** the text exposition of this process's registry */
  async text(): Promise<MetricsText> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
