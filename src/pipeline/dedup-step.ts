/**
 * Dedup step: the first fact per tuple wins.
 *
 *   first    -> carries on; a re-delivery of the very record that won (a crash before the offset
 *               commit), and everything in a replay, may already be in ClickHouse: `maybeWritten`
 *   repeat   -> skipped live; in a replay it stands for the fact under the original event id
 *   conflict -> dead letter, and the first fact is re-asserted after it
 *   erased   -> skipped: an erasure (src/privacy) erased the tuple's fact; nothing under its key is
 *               stored or re-asserted again
 *
 * Re-assertion: compaction keeps the last record under a key, so any other record under the key of
 * a stored fact (a conflict, but also a value that does not decode or fails its contract) would
 * replace the fact; producing the first fact again after it keeps the fact. Not when the topic
 * already holds a copy of the fact after the bad record: the first fact itself coming later in the
 * same partition, a later copy in this batch (a re-assertion met again, a producer's retry), or a
 * re-assertion the dedup store remembers making after this offset. That last check is what keeps
 * a live consumer under a fresh group from growing the topic on every pass (issue 13). Only
 * live: a replay reads the topic, it does not write to it. A `wrong_partition` record never calls
 * for one: it sits on another partition than the fact, where compaction cannot touch the fact.
 */
import type { FactKey } from '../avro/key.js'
import type { FactRef } from '../state/types.js'
import type { ProcessorDeps } from './deps.js'
import { deadLetter, ok, skip, type DeadLetter, type Outcome } from './outcome.js'
import type { Valid } from './validate-step.js'

export interface Unique extends Valid {
  /** its rows may already be in ClickHouse: the existing step asks */
  maybeWritten: boolean
}

/** produce `original` again under `key`, after the bad record at offset `after` */
export interface Reassertion {
  key: FactKey
  original: FactRef
  /** the bad record's offset (same partition as the fact) */
  after: string
}

export interface DedupResult {
  /** one per input item, in order */
  outcomes: Outcome<Unique>[]
  /** live only: conflicts first, then dead letters of earlier steps under a stored fact's key */
  reassert: Reassertion[]
}

/**
 * A record under a fact's key that compaction could keep instead of the fact: a dead letter of an
 * earlier step, or a tombstone nobody asked for (an erasure marks its facts erased first, so its
 * own tombstones never call for a re-assertion).
 */
export type UnderKey = Pick<DeadLetter, 'key' | 'record'> & { reason: DeadLetter['reason'] | 'tombstone' }

export function dedupStep(deps: Pick<ProcessorDeps, 'dedup' | 'mode'>): (items: Valid[], earlier: readonly UnderKey[]) => Promise<DedupResult> {
  return async (items, earlier) => {
    // in order: the very record that won before (re-delivery) is 'first' again, and a later item
    // of the batch sees an earlier one
    const decided = items.length === 0 ? [] : await deps.dedup.checkMany(items.map((x) => ({
      key: x.key.text,
      ref: { eventId: x.event.eventId, fingerprint: x.fingerprint, partition: x.record.partition, offset: x.record.offset },
    })))
    const wanted: Wanted[] = []
    /** per key, the highest offset in this batch holding a copy of the stored first fact */
    const copies = new Map<string, bigint>()
    const outcomes = items.map((x, i): Outcome<Unique> => {
      const d = decided[i]!
      if (d.outcome !== 'conflict') copies.set(x.key.text, maxBig(copies.get(x.key.text), BigInt(x.record.offset)))
      switch (d.outcome) {
        case 'first':
          return ok({ ...x, maybeWritten: d.redelivered || deps.mode === 'replay' })
        case 'repeat':
          // replay rebuilds from what the compacted topic still holds, where compaction may have
          // kept only a later copy of the fact: that copy stands for it, under the original event
          // id (the existing step keeps the fact single)
          if (deps.mode === 'replay') return ok({ ...x, event: { ...x.event, eventId: d.original.eventId }, maybeWritten: true })
          return skip('repeat', x.record)
        case 'erased':
          // an erased fact met again (a retry, a replay of a record not yet compacted): gone for good
          return skip('erased', x.record)
        case 'conflict':
          wanted.push({ key: x.key, record: x.record, original: d.original })
          return deadLetter({
            record: x.record, key: x.key, tenant: x.event.tenant, reason: 'tuple_conflict',
            message: `tuple already holds event ${d.original.eventId} with another payload (at ${d.original.partition}/${d.original.offset}); the first fact stays`,
          })
      }
    })
    if (deps.mode === 'replay') return { outcomes, reassert: [] }
    wanted.push(...await underStoredFacts(deps, earlier))
    return { outcomes, reassert: await stillNeeded(deps, wanted, copies) }
  }
}

interface Wanted { key: FactKey; record: { partition: number; offset: string }; original: FactRef }

const maxBig = (a: bigint | undefined, b: bigint): bigint => (a === undefined || b > a ? b : a)

/** earlier dead letters whose key holds a stored fact that does not come after them */
async function underStoredFacts(deps: Pick<ProcessorDeps, 'dedup'>, letters: readonly UnderKey[]): Promise<Wanted[]> {
  const keyed = letters.filter((l): l is UnderKey & { key: FactKey } =>
    l.key !== undefined && l.reason !== 'tuple_conflict' && l.reason !== 'wrong_partition')
  // after checkMany above: a fact first seen in this batch counts
  const found = await Promise.all(keyed.map(async (l) => ({ l, o: await deps.dedup.get(l.key.text) })))
  return found.flatMap(({ l, o }) => {
    // an erased fact is never produced again: the tombstone after it is what compaction must keep
    if (o === undefined || o.erased === true) return []
    if (o.partition === l.record.partition && BigInt(o.offset) > BigInt(l.record.offset)) return []
    return [{ key: l.key, record: l.record, original: o }]
  })
}

/** drops the bad records the topic already follows with a copy of the fact */
async function stillNeeded(deps: Pick<ProcessorDeps, 'dedup'>, wanted: Wanted[], copies: ReadonlyMap<string, bigint>): Promise<Reassertion[]> {
  const inBatch = wanted.filter((w) => !((copies.get(w.key.text) ?? -1n) > BigInt(w.record.offset)))
  if (inBatch.length === 0) return []
  const marks = await deps.dedup.reassertedAfter(inBatch.map((w) => w.key.text))
  return inBatch.flatMap((w, i) => {
    const mark = marks[i]
    if (mark !== undefined && BigInt(mark) >= BigInt(w.record.offset)) return []
    return [{ key: w.key, original: w.original, after: w.record.offset }]
  })
}
