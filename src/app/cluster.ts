/**
 * `cdp serve --role api --workers N`: N API processes sharing one port (node:cluster), so the
 * API uses more than one core. Each worker is a complete API instance; they share the state
 * store (LMDB across processes on one machine, or Redis), exactly like instances on several
 * machines. The primary only supervises: it restarts a worker that dies unexpectedly and
 * forwards SIGTERM/SIGINT so every worker drains before the primary exits.
 *
 * Metrics: whichever worker receives GET /metrics asks the primary, which collects every
 * worker's registry (prom-client's AggregatorRegistry: counters summed, per-process gauges by
 * their aggregator) and answers with one text, so one scrape target covers all workers.
 */
import cluster from 'node:cluster'
import { AggregatorRegistry, type Registry } from 'prom-client'
import type { Logger } from '../observability/logger.js'
import type { MetricsText } from '../observability/metrics.js'

const METRICS_REQ = 'cdp:metrics-req'
const METRICS_RES = 'cdp:metrics-res'

interface MetricsReq { type: typeof METRICS_REQ; id: number }
interface MetricsRes { type: typeof METRICS_RES; id: number; body?: string; error?: string }

export function isClusterPrimary(): boolean {
  return cluster.isPrimary
}

export function isClusterWorker(): boolean {
  return cluster.isWorker
}

/**
 * In a worker: offer `registry` to the primary's aggregation and return the /metrics source that
 * answers with the aggregate of all workers.
 */
export function workerMetrics(registry: Registry): () => Promise<MetricsText> {
  AggregatorRegistry.setRegistries([registry])
  // prom-client installs a worker's answer to the primary's metrics request only when an
  // AggregatorRegistry is constructed in that worker; without it every scrape timed out
  // (seen with `serve --role api --workers 2`: "Operation timed out" on each GET /metrics)
  void new AggregatorRegistry()
  let next = 0
  const waiting = new Map<number, { resolve: (m: MetricsText) => void; reject: (e: Error) => void }>()
  process.on('message', (m: MetricsRes) => {
    if (m?.type !== METRICS_RES) return
    const w = waiting.get(m.id)
    if (w === undefined) return
    waiting.delete(m.id)
    if (m.body !== undefined) w.resolve({ contentType: registry.contentType, body: m.body })
    else w.reject(new Error(m.error ?? 'no metrics from the primary'))
  })
  return () => new Promise<MetricsText>((resolve, reject) => {
    const id = next++
    const timer = setTimeout(() => { waiting.delete(id); reject(new Error('the primary did not answer with metrics in time')) }, 10_000)
    waiting.set(id, { resolve: (m) => { clearTimeout(timer); resolve(m) }, reject: (e) => { clearTimeout(timer); reject(e) } })
    process.send?.({ type: METRICS_REQ, id } satisfies MetricsReq)
  })
}

export function superviseWorkers(workers: number, log: Logger): Promise<number> {
  let stopping = false
  const aggregator = new AggregatorRegistry()
  cluster.on('message', (worker, m: MetricsReq) => {
    if (m?.type !== METRICS_REQ) return
    aggregator.clusterMetrics().then(
      (body) => { worker.send({ type: METRICS_RES, id: m.id, body } satisfies MetricsRes) },
      (err: unknown) => { worker.send({ type: METRICS_RES, id: m.id, error: (err as Error).message } satisfies MetricsRes) },
    )
  })
  for (let i = 0; i < workers; i++) cluster.fork()
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return
    log.error({ pid: worker.process.pid, code, signal }, 'API worker died; starting another')
    cluster.fork()
  })
  return new Promise<number>((resolve) => {
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) return
      stopping = true
      log.info({ sig, workers: Object.keys(cluster.workers ?? {}).length }, 'stopping API workers')
      const all = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined)
      let left = all.length
      if (left === 0) resolve(0)
      for (const w of all) {
        w.once('exit', () => { if (--left === 0) resolve(0) })
        w.process.kill(sig)
      }
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}
