/**
 * `cdp serve --role api --workers N`: N API processes sharing one port (node:cluster), so the
 * API uses more than one core. Each worker is a complete API instance; they share the state
 * store (LMDB across processes on one machine, or Redis), exactly like instances on several
 * machines. The primary only supervises: it restarts a worker that dies unexpectedly and
 * forwards SIGTERM/SIGINT so every worker drains before the primary exits.
 */
import cluster from 'node:cluster'
import type { Logger } from '../observability/logger.js'

export function isClusterPrimary(): boolean {
  return cluster.isPrimary
}

export function superviseWorkers(workers: number, log: Logger): Promise<number> {
  let stopping = false
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
