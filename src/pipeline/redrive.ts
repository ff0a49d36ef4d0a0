/**
 * Dead-letter redrive (`cdp dlq redrive`): after the cause of some dead letters is fixed (a
 * contract released, a schema registered, a producer's partitioner corrected), their original key
 * and value bytes go back to the events topic, through the process's one batching producer, on
 * the partition murmur2 names for the key (the consumer dead-letters anything else as
 * `wrong_partition`, so for those dead letters this is exactly the fix).
 *
 * At most once per dead letter: each chunk is produced, then recorded in
 * `dead_letter_redrives`, and later runs skip what is recorded; a second run finds nothing. A
 * crash between the produce and the record can re-submit a chunk once more; the consumer's dedup
 * treats the copy as the same fact (same tuple, same fingerprint: skipped), and a copy that fails
 * again is dead-lettered again. Each redriven record carries `cdp-redriven-from:
 * <partition>/<offset>` and `cdp-redrive-id`, so the topic says where it came from. A record that
 * fails again gets a new dead letter with the new reason, which a later redrive can pick up.
 *
 * Never redriven: `bad_key` (no tuple to place it by) and `tuple_conflict` (the first fact owns the
 * tuple for good, so it would only conflict again), and records without a key or value (a null
 * value on a compacted topic is a tombstone).
 */
import { randomBytes } from 'node:crypto'
import { partitionFor } from '../avro/partition.js'
import { CdpError } from '../errors.js'
import type { Logger } from '../observability/logger.js'
import type { DeadLetterFilter, PendingDeadLetter } from '../clickhouse/dead-letters.js'
import type { TopicMessage } from '../kafka/producer.js'
import type { DeadLetterReason } from './outcome.js'

export const NOT_REDRIVABLE: readonly DeadLetterReason[] = ['bad_key', 'tuple_conflict']

export interface RedriveDeps {
  tables: {
    pending(filter: DeadLetterFilter, limit: number): Promise<PendingDeadLetter[]>
    pendingCount(filter: DeadLetterFilter): Promise<number>
    recordRedrives(letters: readonly PendingDeadLetter[], redriveId: string): Promise<void>
  }
  /** produce to the events topic and resolve once Kafka acknowledged */
  produce(messages: TopicMessage[]): Promise<void>
  /** the events topic's partition count */
  partitions: number
  log: Pick<Logger, 'info'>
}

export interface RedriveRequest extends DeadLetterFilter {
  reason: string
  dryRun?: boolean
  /** at most this many in this call (the CLI calls again until nothing is left) */
  limit: number
  /** continue a redrive: the same id on every call of one `cdp dlq redrive` */
  redriveId?: string
}

export interface RedriveResult {
  redrive_id: string
  dry_run: boolean
  /** dead letters not yet redriven that match, before this call */
  matched: number
  /** re-submitted by this call */
  redriven: number
  /** still to redrive after this call */
  remaining: number
}

export const newRedriveId = (): string => `rdr_${Date.now().toString(36)}${randomBytes(5).toString('hex')}`

/** the message that puts a dead letter's original bytes back on the events topic */
export function redriveMessage(l: PendingDeadLetter, partitions: number, redriveId: string): TopicMessage {
  const key = Buffer.from(l.key, 'utf8')
  return {
    key, value: Buffer.from(l.value_base64, 'base64'), partition: partitionFor(key, partitions),
    headers: { 'cdp-redriven-from': `${l.kafka_partition}/${l.kafka_offset}`, 'cdp-redrive-id': redriveId, 'cdp-redrive-reason': l.reason_code },
  }
}

export class Redriver {
  /** one redrive at a time per process: two calls must not pick the same dead letters */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(private readonly deps: RedriveDeps) {}

  run(req: RedriveRequest): Promise<RedriveResult> {
    const next = this.queue.then(() => this.once(req))
    this.queue = next.catch(() => undefined)
    return next
  }

  private async once(req: RedriveRequest): Promise<RedriveResult> {
    if ((NOT_REDRIVABLE as readonly string[]).includes(req.reason)) {
      throw new CdpError('bad_request', `dead letters with reason ${req.reason} cannot be redriven: ${req.reason === 'bad_key'
        ? 'the key names no tuple, so the producer must send the event again with a canonical key'
        : 'the first fact owns the tuple, so the record would conflict again; send the new payload under a new externalEventId'}`)
    }
    const filter: DeadLetterFilter = { reason: req.reason, ...(req.tenant === undefined ? {} : { tenant: req.tenant }), ...(req.since === undefined ? {} : { since: req.since }) }
    const redriveId = req.redriveId ?? newRedriveId()
    const matched = await this.deps.tables.pendingCount(filter)
    if (req.dryRun === true || matched === 0) return { redrive_id: redriveId, dry_run: req.dryRun === true, matched, redriven: 0, remaining: matched }
    const letters = await this.deps.tables.pending(filter, req.limit)
    await this.deps.produce(letters.map((l) => redriveMessage(l, this.deps.partitions, redriveId)))
    // only after Kafka acknowledged: a failed produce leaves them pending for the next run
    await this.deps.tables.recordRedrives(letters, redriveId)
    this.deps.log.info({ redriveId, reason: req.reason, tenant: req.tenant, redriven: letters.length }, 'dead letters redriven')
    return { redrive_id: redriveId, dry_run: false, matched, redriven: letters.length, remaining: Math.max(0, matched - letters.length) }
  }
}
