/**
 * The decision rules of the claim and dedup stores, as pure functions over the current record.
 * LMDB and the in-memory store call these inside their transaction; the Redis Lua scripts in
 * redis.ts are a line-by-line port. The contract suite (test/state/contract.ts) holds all three
 * to the same behaviour.
 */
import type { ClaimOutcome, ClaimRequest, DedupOutcome, FactRef } from './types.js'

export interface ClaimRecord {
  state: 'pending' | 'committed'
  eventId: string
  fingerprint: string
  /** ms since epoch of the claim (or of the latest takeover) */
  claimedAt: number
}

/**
 * Decide one claim request against the current record.
 * `write` is the record to store, when the store must change.
 */
export function decideClaim(
  cur: ClaimRecord | undefined,
  req: ClaimRequest,
  now: number,
  leaseMs: number,
): { outcome: ClaimOutcome; write?: ClaimRecord } {
  if (cur === undefined) {
    return {
      outcome: { outcome: 'claimed', eventId: req.eventId, takeover: false },
      write: { state: 'pending', eventId: req.eventId, fingerprint: req.fingerprint, claimedAt: now },
    }
  }
  // a different payload is a conflict whatever the state: the first fact owns the tuple
  if (cur.fingerprint !== req.fingerprint) return { outcome: { outcome: 'conflict', eventId: cur.eventId } }
  if (cur.state === 'committed') return { outcome: { outcome: 'duplicate', eventId: cur.eventId } }
  // the very request that holds the claim, sent again (event ids are fresh per request): it
  // still owns it. Makes a claim call safe to resend when a connection drops before the reply.
  if (cur.eventId === req.eventId) return { outcome: { outcome: 'claimed', eventId: cur.eventId, takeover: false } }
  if (cur.claimedAt + leaseMs < now) {
    // abandoned by a crashed producer: re-produce under the SAME event id, so the consumer
    // sees at most a duplicate of the same event, never two events for one fact
    return {
      outcome: { outcome: 'claimed', eventId: cur.eventId, takeover: true },
      write: { ...cur, claimedAt: now },
    }
  }
  return { outcome: { outcome: 'in_flight', eventId: cur.eventId } }
}

/** commit: only the claim holding `eventId` changes; committing twice is harmless */
export function decideCommit(cur: ClaimRecord | undefined, eventId: string): ClaimRecord | undefined {
  if (cur === undefined || cur.eventId !== eventId || cur.state === 'committed') return undefined
  return { ...cur, state: 'committed' }
}

/** release: only a pending claim holding `eventId` is forgotten; a committed one is permanent */
export function shouldRelease(cur: ClaimRecord | undefined, eventId: string): boolean {
  return cur !== undefined && cur.state === 'pending' && cur.eventId === eventId
}

/** abandon: a pending claim holding `eventId` keeps its id but its lease is over (claimedAt 0) */
export function decideAbandon(cur: ClaimRecord | undefined, eventId: string): ClaimRecord | undefined {
  if (cur === undefined || cur.state !== 'pending' || cur.eventId !== eventId) return undefined
  return { ...cur, claimedAt: 0 }
}

/** Decide one consumed record against the first fact stored for its tuple. */
export function decideDedup(cur: FactRef | undefined, ref: FactRef): { outcome: DedupOutcome; write?: FactRef } {
  if (cur === undefined) return { outcome: { outcome: 'first', redelivered: false }, write: ref }
  // an erased fact stays erased: the same fact again, a conflicting one, a replayed original
  if (cur.erased === true) return { outcome: { outcome: 'erased', original: cur } }
  // the very record that was first, delivered again after a crash before the offset commit
  if (cur.partition === ref.partition && cur.offset === ref.offset) return { outcome: { outcome: 'first', redelivered: true } }
  if (cur.fingerprint === ref.fingerprint) return { outcome: { outcome: 'repeat', original: cur } }
  return { outcome: { outcome: 'conflict', original: cur } }
}
