/**
 * `cdp serve`: build what the role needs over one shared set of resources, listen, and drain on
 * SIGTERM/SIGINT. Roles: all (API + consumer in one process, the embedded default), api, consumer.
 *
 * The API listens as soon as its own dependencies are up; the consumer joins its group after
 * that, in the background. Joining can take a whole session timeout after a crash (the group
 * waits for the dead member), and the API must not be refusing connections meanwhile: /readyz
 * says `consumer: false` until the group is joined.
 *
 * Shutdown (issue 8 finding 3): analyst queries are cancelled first (they hold chDB worker
 * threads), then the close list runs (consumer, HTTP, producer, ..., ClickHouse last). The whole
 * drain has `shutdown.deadlineMs`; past it the process ends at once (see `installSignalHandlers`).
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/index.js'
import { isCdpError } from '../errors.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { Resources } from './resources.js'
import { buildShared } from './shared.js'
import { buildApi } from './api.js'
import { buildConsumer, type Consumer } from './consumer.js'
import { buildOpsApp } from '../http/ops-app.js'
import { isClusterWorker, workerMetrics } from './cluster.js'
import { combineChecks, dependencyChecks } from './readiness.js'
import { remoteAnalyst } from './analyst.js'

export const ROLES = ['all', 'api', 'consumer'] as const
export type Role = (typeof ROLES)[number]

export interface Running {
  app?: FastifyInstance
  /** role consumer: /healthz, /readyz and /metrics on consumer.httpPort */
  opsApp?: FastifyInstance
  /** resolves when the consumer has joined its group (at once for role api, or when closing first) */
  consumerJoined: Promise<void>
  /** drains and closes everything; safe to call twice */
  close(): Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** joins the group, retrying with backoff while the broker or the coordinator is not there yet */
async function joinInBackground(consumer: Consumer, log: Logger, stopping: () => boolean, topic: string, group: string): Promise<void> {
  for (let attempt = 1; !stopping(); attempt++) {
    try {
      await consumer.start()
      if (!stopping()) log.info({ topic, group }, 'consumer running')
      return
    } catch (err) {
      if (stopping()) return
      const waitMs = Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))
      log.warn({ err: isCdpError(err) || err instanceof Error ? err.message : String(err), attempt, waitMs }, 'consumer could not join its group; retrying')
      await sleep(waitMs)
    }
  }
}

export async function serve(config: Readonly<Config>, role: Role, log: Logger = createLogger(config)): Promise<Running> {
  const res = new Resources()
  let app: FastifyInstance | undefined
  let opsApp: FastifyInstance | undefined
  let consumer: Consumer | undefined
  let stopping = false
  try {
    const shared = await buildShared(config, log, res)
    // the consumer owns ClickHouse; with role all the API's query route runs over the same
    consumer = role === 'api' ? undefined : await buildConsumer(shared, 'live')
    const c = consumer
    // the consumer's own checks; `consumer` is false until it joined its group (it joins in the
    // background, after the listeners are up) and while it rejoins after a crash
    const consumerChecks = c === undefined ? undefined : () => c.readiness()
    if (consumerChecks !== undefined && role === 'consumer') {
      opsApp = await buildOpsApp({
        readiness: combineChecks(dependencyChecks(shared), consumerChecks), metrics: () => shared.metrics.text(),
        readinessIntervalMs: config.http.readinessIntervalMs, logger: log, observeRequest: shared.metrics.request,
      })
      const ops = opsApp
      res.add('ops-http', () => ops.close())
      await opsApp.listen({ host: config.http.host, port: config.consumer.httpPort })
      log.info({ host: config.http.host, port: config.consumer.httpPort }, 'consumer health and metrics listening')
    }
    if (role !== 'consumer') {
      // a cluster worker's /metrics answers for every worker (cluster.ts)
      const metrics = isClusterWorker() ? { metrics: workerMetrics(shared.metrics.registry) } : {}
      // role api: analyst SQL over a ClickHouse server the consumers own (none over embedded chDB)
      const query = c?.query ?? remoteAnalyst(shared)
      app = (await buildApi(shared, {
        ...metrics,
        ...(query === undefined ? {} : { query }),
        ...(consumerChecks === undefined ? {} : { readiness: consumerChecks, ownsClickHouse: true }),
      })).app
      await app.listen({ host: config.http.host, port: config.http.port })
      log.info({ host: config.http.host, port: config.http.port, role }, 'cdp ingest API listening')
    }
  } catch (err) {
    await res.close(log)
    throw err
  }
  const consumerJoined = consumer === undefined
    ? Promise.resolve()
    : joinInBackground(consumer, log, () => stopping, config.kafka.topic, config.kafka.consumerGroup)
  const analyst = consumer?.query
  let closing: Promise<void> | undefined
  const close = () => (closing ??= (async () => {
    stopping = true
    // first: an analyst query holds a chDB worker thread that nothing else can stop, and the
    // HTTP drain would wait for its request
    await analyst?.cancelAll?.().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'cancelling analyst queries failed'))
    await res.close(log)
  })())
  return { ...(app ? { app } : {}), ...(opsApp ? { opsApp } : {}), consumerJoined, close }
}

/**
 * SIGTERM/SIGINT: drain within `deadlineMs`, then exit 0 (1 if a close failed). Past the
 * deadline the process logs so and kills itself with SIGKILL: `process.exit` would run chDB's
 * exit handlers, which join its worker threads, so an exit with a query still on one blocks
 * (and ended in SIGSEGV minutes later), holding the data dir's lock all that time.
 */
export function installSignalHandlers(close: () => Promise<void>, log: Logger, deadlineMs: number): void {
  let draining = false
  const onSignal = (sig: string) => {
    if (draining) return
    draining = true
    const started = Date.now()
    log.info({ sig, deadlineMs }, 'draining')
    const force = setTimeout(() => {
      log.error({ deadlineMs }, 'shutdown deadline passed; the drain did not finish, exiting now (SIGKILL, without waiting for native threads)')
      // createLogger's stream writes synchronously, so the line is out already; the flush is for a
      // logger given another, buffering stream. Then the end, whether or not the flush answers.
      const end = () => process.kill(process.pid, 'SIGKILL')
      log.flush(() => end())
      setTimeout(end, 1000)
    }, deadlineMs)
    force.unref()
    close().then(() => {
      log.info({ ms: Date.now() - started }, 'drained')
      process.exit(0)
    }, (err: unknown) => {
      log.error({ err: isCdpError(err) || err instanceof Error ? err.message : String(err) }, 'drain failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))
}
