/**
 * Consumer runner: a consumer group reading the events topic in batches, one partition batch at a
 * time, offsets committed only after the handler says the batch is durably written.
 *
 * A retriable failure (ClickHouse or a state store away) does not crash and does not commit: the
 * runner waits with backoff, heartbeating, and offers the same records again; the handler's
 * idempotent writes make the retry safe. Anything else is a bug in our code: it is logged and
 * retried the same way, so one bad batch never skips records silently.
 *
 * kafkajs restarts a consumer after a crash only when it judges the error retriable. After a
 * broker freeze longer than the session timeout it can crash on an error it does not (`The
 * coordinator is not aware of this member` from an offset commit) and stop for good, leaving the
 * process up with nothing consuming. The runner watches for that and rejoins with a new consumer
 * instance, with backoff, until it is stopped; `healthy` is false meanwhile (for readiness).
 */
import type { Consumer, ConsumerCrashEvent, KafkaMessage } from 'kafkajs'
import type { Config } from '../config/index.js'
import type { KafkaClient } from './client.js'
import type { Logger } from '../observability/logger.js'
import type { RemoveMember } from './members.js'

export interface InboundRecord {
  topic: string
  partition: number
  offset: string
  key: Buffer | null
  value: Buffer | null
  timestamp: string
}

export interface PartitionBatchHandler {
  /**
   * Process records of one partition, in offset order. Returns how many of them (a prefix) are
   * durably handled; the runner commits after the last of those and offers the rest again.
   */
  process(records: InboundRecord[]): Promise<number>
}

export interface ConsumerRunnerOptions {
  topic: string
  groupId: string
  fromBeginning: boolean
  /** largest slice handed to the handler at once */
  maxBatchRecords: number
  /** max bytes per partition fetch (kafkajs maxBytesPerPartition) */
  maxBytesPerPartition?: number
  /** max bytes of one fetch response (kafkajs maxBytes; its default 10 MiB) */
  maxBytes?: number
  /** group session timeout (default 30 s): a crashed member's partitions move on after it */
  sessionTimeoutMs?: number
  /** partition batches in progress at once; a partition itself is always processed in order */
  partitionConcurrency?: number
  /** first wait before a new consumer after a crash kafkajs does not restart from (default 1 s; doubles to 30 s) */
  rejoinFirstMs?: number
  /** called after each offset commit (metrics, the stall check) */
  onCommit?: (partition: number, nextOffset: string) => void
  /** removes the member this consumer was before kafkajs restarted it (members.ts); without it
   *  the group waits for the dead member's session after a crash */
  removeMember?: RemoveMember
}

/** runner settings from config; replay and benchmarks pass their own group */
export function consumerOptions(config: Readonly<Config>, groupId = config.kafka.consumerGroup): ConsumerRunnerOptions {
  return {
    topic: config.kafka.topic, groupId, fromBeginning: true,
    maxBatchRecords: config.consumer.flushMaxRows, partitionConcurrency: config.consumer.partitionConcurrency,
    sessionTimeoutMs: config.consumer.sessionTimeoutMs,
    maxBytes: config.consumer.fetchMaxBytes, maxBytesPerPartition: config.consumer.fetchMaxBytesPerPartition,
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The consumer's retry policy (issue 8 finding 2), for its client (createKafka's `retry`) and its
 * run loop. kafkajs gives up on a retriable error after `retries` attempts (a request's retries
 * are the client's; when they run out the error is KafkaJSNumberOfRetriesExceeded, which the run
 * loop does not retry) and "crashes": it disconnects and restarts as a NEW group member. While the
 * broker is away the old member's leave request fails, so once the broker is back the coordinator
 * still holds it and keeps the group waiting until its session expires (measured: caught up
 * 28.7-30.3 s after the broker answered). Retrying without a limit keeps the member id, so on the
 * broker's return the same member carries on; the cap keeps the next attempt within 2 s of the
 * broker answering. Non-retriable errors still end the run at once.
 */
export const CONSUMER_RETRY = { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 2000 } as const

function errorText(err: unknown): string {
  const e = err as { message?: unknown; errors?: unknown[]; apiId?: unknown }
  return [String(e.message ?? err), String(e.apiId ?? ''), ...(Array.isArray(e.errors) ? e.errors.map(errorText) : [])].join(' ')
}

/** heartbeat errors that mean this member must rejoin before it may write for its partitions */
const LEAVE_GROUP_ERRORS = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'NOT_COORDINATOR_FOR_GROUP', 'FENCED_INSTANCE_ID'])

/** first and largest wait before a new consumer instance after a crash kafkajs does not restart from */
const REJOIN_FIRST_MS = 1000
const REJOIN_MAX_MS = 30_000

export class ConsumerRunner {
  private consumer: Consumer | undefined
  private stopping = false
  /** records handled since start, for progress and benchmarks */
  handled = 0
  /** ms since epoch of the last group join or committed batch; undefined before the first join */
  lastProgressAt: number | undefined
  /** new consumer instances made after crashes kafkajs did not restart from */
  rejoins = 0
  /** consumers kafkajs gave up on (crash with restart false): never healthy again */
  private readonly dead = new WeakSet<Consumer>()
  private rejoining: Promise<void> | undefined
  private wake: (() => void) | undefined
  /** the partitions of the topic the group gave this member at its last join */
  assignment: ReadonlySet<number> = new Set()
  /** the next offset committed per partition by this member, for the log line on stop */
  private readonly committed = new Map<number, string>()
  /** a member of the group with partitions to consume (readiness); false while (re)joining */
  joined = false

  constructor(private readonly kafka: KafkaClient, private readonly opts: ConsumerRunnerOptions, private readonly handler: PartitionBatchHandler, private readonly log: Logger) {}

  /**
   * For readiness: a consumer is in the group and has not crashed since it joined. False before
   * the first join, while kafkajs restarts after a crash, while the runner rejoins after a crash
   * kafkajs gave up on, and once stopping.
   */
  get healthy(): boolean {
    return this.joined && !this.stopping
  }

  /** joins the group; a failure to join here is thrown (later crashes are rejoined, see supervise) */
  async start(): Promise<void> {
    await this.launch()
  }

  /** one kafkajs consumer instance: connect, subscribe, run; a failure leaves nothing behind */
  private async launch(): Promise<void> {
    const heartbeatMs = Math.min(3000, Math.floor((this.opts.sessionTimeoutMs ?? 30_000) / 3))
    const consumer = this.kafka.consumer({
      groupId: this.opts.groupId,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: this.opts.maxBytesPerPartition ?? 4 * 1024 * 1024,
      ...(this.opts.maxBytes === undefined ? {} : { maxBytes: this.opts.maxBytes }),
      // an idle fetch waits this long for records; disconnect waits for it, so it bounds the exit (kafkajs default 5 s)
      maxWaitTimeInMs: 1000,
      sessionTimeout: this.opts.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: heartbeatMs,
      retry: { ...CONSUMER_RETRY },
    })
    this.consumer = consumer
    this.supervise(consumer)
    let memberId: string | undefined
    // joined/crashed bookkeeping for readiness and rejoining: supervise(); here what this
    // instance's member id and assignment were
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      memberId = e.payload.memberId
      this.assignment = new Set(e.payload.memberAssignment[this.opts.topic] ?? [])
    })
    consumer.on(consumer.events.CRASH, (e) => {
      // kafkajs comes back as a new member; the old one is dead but still holds the group
      if (e.payload.restart && memberId !== undefined) void this.removeDeadMember(memberId)
      memberId = undefined
    })
    consumer.on(consumer.events.STOP, () => { if (this.consumer === consumer) this.joined = false })
    try {
      await this.run(consumer, heartbeatMs)
    } catch (err) {
      // a start that failed (no coordinator, broker away) leaves nothing behind, so it can be retried
      this.consumer = undefined
      await consumer.disconnect().catch(() => undefined)
      throw err
    }
  }

  private async run(consumer: Consumer, heartbeatMs: number): Promise<void> {
    await consumer.connect()
    await consumer.subscribe({ topic: this.opts.topic, fromBeginning: this.opts.fromBeginning })
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.opts.partitionConcurrency ?? 1,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
        const all = batch.messages.map((m: KafkaMessage): InboundRecord => ({
          topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key ?? null, value: m.value ?? null, timestamp: m.timestamp,
        }))
        let pos = 0
        let attempt = 0
        while (pos < all.length && isRunning() && !isStale() && !this.stopping) {
          const slice = all.slice(pos, pos + this.opts.maxBatchRecords)
          let done: number
          // kafkajs heartbeats only when asked: keep asking while a slice is written, so a slow
          // slice on a busy machine does not outlast the (short) session timeout and get this
          // member thrown out of the group mid-batch
          const beat = setInterval(() => { heartbeat().catch(() => undefined) }, heartbeatMs)
          try {
            done = await this.handler.process(slice)
            attempt = 0
          } catch (err) {
            attempt++
            const wait = Math.min(30_000, 250 * 2 ** Math.min(attempt, 7))
            const retriable = (err as { retriable?: boolean }).retriable === true
            this.log[retriable ? 'warn' : 'error']({ partition: batch.partition, offset: slice[0]?.offset, attempt, waitMs: wait, err: (err as Error).message },
              retriable ? 'batch not written, will retry (not committing)' : 'unexpected error in batch, will retry (not committing)')
            const until = Date.now() + wait
            while (Date.now() < until && isRunning() && !this.stopping) {
              await heartbeat().catch((hb: unknown) => {
                // The group is rebalancing or has dropped us: leave the batch now (nothing of it is
                // committed) so the partition can move on. Retrying on would keep the whole group
                // waiting for the rebalance timeout, and then write as a zombie next to the new owner.
                if (LEAVE_GROUP_ERRORS.has(String((hb as { type?: unknown }).type))) throw hb
              })
              await sleep(Math.min(1000, until - Date.now()))
            }
            continue
          } finally {
            clearInterval(beat)
          }
          if (done <= 0) break
          pos += done
          this.handled += done
          this.lastProgressAt = Date.now()
          const last = slice[done - 1]!.offset
          resolveOffset(last)
          // with autoCommit off, commitOffsetsIfNecessary commits nothing; commit explicitly
          const next = (BigInt(last) + 1n).toString()
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }])
          this.opts.onCommit?.(batch.partition, next)
          this.committed.set(batch.partition, next)
          await heartbeat()
        }
      },
    })
  }

  /** retries until the member is gone or the runner stops. The crash can come early in an
   *  outage, so the attempts go on until the broker is back (bounded, should it never be) */
  private async removeDeadMember(memberId: string): Promise<void> {
    const remove = this.opts.removeMember
    if (remove === undefined) return
    const until = Date.now() + 15 * 60_000
    while (!this.stopping && Date.now() < until) {
      try {
        await remove(this.opts.groupId, memberId)
        this.log.info({ group: this.opts.groupId, memberId }, 'removed the group member this consumer was before its restart')
        return
      } catch (err) {
        // UNKNOWN_MEMBER_ID: gone already; anything else (broker away, coordinator loading): again
        if (/UNKNOWN_MEMBER_ID|unknown member/i.test(errorText(err))) return
        this.log.debug({ group: this.opts.groupId, memberId, err: errorText(err) }, 'cannot remove the dead group member yet')
        await sleep(1000)
      }
    }
  }

  /** follows one consumer instance: joined, crashed and restarting itself, crashed for good */
  private supervise(consumer: Consumer): void {
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (this.consumer !== consumer) return
      this.joined = true
      this.lastProgressAt = Date.now()
    })
    consumer.on(consumer.events.CRASH, (e: ConsumerCrashEvent) => {
      if (this.consumer !== consumer) return
      this.joined = false
      if (e.payload.restart || this.stopping) return // kafkajs starts it again itself
      this.dead.add(consumer)
      this.log.error({ err: e.payload.error.message, group: this.opts.groupId },
        'consumer crashed and kafkajs will not restart it: rejoining the group with a new consumer')
      this.rejoining ??= this.rejoin().finally(() => { this.rejoining = undefined })
    })
  }

  /** new consumer instances, with backoff, until one runs (or the runner stops) */
  private async rejoin(): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt++) {
      await this.consumer?.disconnect().catch(() => undefined)
      await this.pause(Math.min(REJOIN_MAX_MS, (this.opts.rejoinFirstMs ?? REJOIN_FIRST_MS) * 2 ** Math.min(attempt - 1, 5)))
      if (this.stopping) return
      try {
        await this.launch()
      } catch (err) {
        this.log.warn({ attempt, err: (err as Error).message }, 'consumer could not rejoin the group, will retry')
        continue
      }
      const current = this.consumer
      if (this.stopping) { await current?.disconnect().catch(() => undefined); return }
      // run() returns even when the join inside it crashed: that crash marked the instance dead
      if (current !== undefined && this.dead.has(current)) continue
      this.rejoins++
      this.log.info({ attempt, rejoins: this.rejoins }, 'consumer rejoined the group after a crash')
      return
    }
  }

  /** a wait that stop() cuts short */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve() }
    })
  }

  /** finishes the slice in hand, commits it, and leaves the group (kafkajs disconnect sends LeaveGroup) */
  async stop(): Promise<void> {
    this.stopping = true
    this.wake?.()
    const started = Date.now()
    const wasJoined = this.joined
    this.joined = false
    const disconnect = this.consumer?.disconnect().catch((err: unknown) => { this.log.warn({ err: (err as Error).message }, 'consumer disconnect failed') })
    if (disconnect !== undefined) {
      // A member still (re)joining has no batch in flight, but kafkajs's disconnect waits for its
      // pending JoinGroup request, which the coordinator holds until the rebalance ends (up to a
      // dead member's session). Nothing was consumed, so leaving without that wait is safe: the
      // group drops the member after its session, as after a crash.
      if (wasJoined) await disconnect
      else await Promise.race([disconnect, sleep(1000)])
    }
    await this.rejoining
    this.log.info({
      group: this.opts.groupId, handled: this.handled, ms: Date.now() - started,
      committed: Object.fromEntries([...this.committed].sort(([a], [b]) => a - b)),
    }, 'consumer stopped: left the group, offsets committed up to the last written batch')
  }
}
