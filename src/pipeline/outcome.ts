/**
 * The one outcome type of the consumer's pipeline steps: each record either carries on (`ok`),
 * leaves as a dead letter with its reason, or is skipped with why. Every step is a small function
 * from a batch to these outcomes (processor.ts folds them in order); a bad record is an outcome,
 * never an exception, and a step throws only for infrastructure trouble (a retriable CdpError, so
 * the runner retries the batch without committing). Each step has a unit test over fakes of the
 * dependencies it takes (test/unit/pipeline/); docs/ARCHITECTURE.md says how to add one.
 */
import type { FactKey } from '../avro/key.js'
import type { InboundRecord } from '../kafka/consumer.js'

export type DeadLetterReason =
  | 'bad_key' | 'not_avro' | 'unknown_schema' | 'bad_avro'
  | 'key_mismatch' | 'contract_violation' | 'no_identity' | 'tuple_conflict'
  /** the key's murmur2 names another partition than the record's (partition-step.ts) */
  | 'wrong_partition'
  /** carries an identity of an erased person (suppress-step.ts); kept without its value */
  | 'suppressed'

export interface DeadLetter {
  record: InboundRecord
  /** the fact's key when the record's key is a canonical one (every reason but bad_key) */
  key?: FactKey
  tenant: string | null
  reason: DeadLetterReason
  message: string
}

export type SkipReason =
  /** the same fact seen before at another position (live) */
  | 'repeat'
  /** ClickHouse already holds the fact (re-delivery after a crash, or a replay) */
  | 'already_written'
  /** a replay batch holding the fact twice (the first and a later copy): the first one is written */
  | 'again_in_batch'
  /** a null value: an erasure's tombstone (src/privacy), there for compaction only */
  | 'tombstone'
  /** the tuple's fact was erased (the dedup record says so) */
  | 'erased'

export type Outcome<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'dead_letter'; letter: DeadLetter }
  | { kind: 'skip'; why: SkipReason; record: InboundRecord }

export const ok = <T>(value: T): Outcome<T> => ({ kind: 'ok', value })
export const deadLetter = (letter: DeadLetter): Outcome<never> => ({ kind: 'dead_letter', letter })
export const skip = (why: SkipReason, record: InboundRecord): Outcome<never> => ({ kind: 'skip', why, record })

export interface Sorted<T> {
  ok: T[]
  deadLetters: DeadLetter[]
  skipped: { why: SkipReason; record: InboundRecord }[]
}

/** splits outcomes by kind, each list in input order */
export function sortOutcomes<T>(outcomes: readonly Outcome<T>[]): Sorted<T> {
  const out: Sorted<T> = { ok: [], deadLetters: [], skipped: [] }
  for (const o of outcomes) {
    if (o.kind === 'ok') out.ok.push(o.value)
    else if (o.kind === 'dead_letter') out.deadLetters.push(o.letter)
    else out.skipped.push({ why: o.why, record: o.record })
  }
  return out
}
