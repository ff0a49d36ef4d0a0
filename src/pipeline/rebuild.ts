/**
 * Recovery of the state store from the compacted events topic (issue 8 item 3, `cdp state
 * rebuild`), for when the LMDB directory or the Redis keys are lost.
 *
 * The topic is read from the beginning through the replay processor, which restores the dedup
 * records (the first record per tuple wins, in offset order per partition: every record of a
 * tuple is on one partition) and writes the facts ClickHouse lacks. This handler then, for the
 * records the processor handled:
 *  - restores the claims of their tuples, committed, under the event id and fingerprint of the
 *    tuple's first fact, so a client's retry of an old fact is answered duplicate with its
 *    original id;
 *  - resolves the identities of each tuple's first fact in offset order, which rebuilds the
 *    identity graph (profile ids derive from the identities, so the graph comes back with the
 *    ids ClickHouse holds; an event resolved before is replayed from the graph, not again).
 * Every step is idempotent, so an interrupted rebuild can simply run again.
 */
import { FactKey } from '../avro/key.js'
import type { SchemaCodec } from '../avro/codec.js'
import type { InboundRecord, PartitionBatchHandler } from '../kafka/index.js'
import type { ClaimStore, DedupStore, FactRef } from '../state/types.js'
import type { CdpEvent } from '../avro/event.js'
import type { Logger } from '../observability/logger.js'
import type { IdentityStep } from './deps.js'

export interface RebuildDeps {
  /** the replay processor (restores dedup records, fills ClickHouse gaps) */
  replay: PartitionBatchHandler
  codec: Pick<SchemaCodec, 'decode'>
  claims: ClaimStore
  dedup: DedupStore
  identity: IdentityStep
  /** lease of pending claims: one younger than this belongs to a request in flight and is left alone */
  claimLeaseMs: number
  log: Logger
  now?: () => number
}

export interface RebuildTotals {
  /** records handled */
  records: number
  /** claims written (committed, original event id) */
  claimsRestored: number
  /** claims already present with the first fact's id */
  claimsPresent: number
  /** claims the store holds under another event id than the topic's first fact (left as they are, logged) */
  claimsDiffering: number
  /** first facts whose identities were resolved */
  identitiesResolved: number
}

export class StateRebuild implements PartitionBatchHandler {
  readonly totals: RebuildTotals = { records: 0, claimsRestored: 0, claimsPresent: 0, claimsDiffering: 0, identitiesResolved: 0 }
  private readonly now: () => number

  constructor(private readonly deps: RebuildDeps) {
    this.now = deps.now ?? Date.now
  }

  async process(records: InboundRecord[]): Promise<number> {
    const done = await this.deps.replay.process(records)
    if (done <= 0) return done
    const handled = records.slice(0, done)
    const byKey = new Map<string, InboundRecord[]>()
    for (const r of handled) {
      const read = FactKey.read(r.key)
      if (!read.ok) continue // dead-lettered by the processor; no state of its own
      const list = byKey.get(read.key.text)
      if (list === undefined) byKey.set(read.key.text, [r])
      else list.push(r)
    }
    const keys = [...byKey.keys()]
    const refs = await Promise.all(keys.map((k) => this.deps.dedup.get(k)))
    const firsts = new Map<string, FactRef>()
    keys.forEach((k, i) => { const ref = refs[i]; if (ref !== undefined) firsts.set(k, ref) })

    await this.restoreClaims(firsts)
    await this.resolveIdentities(handled, firsts)
    this.totals.records += done
    return done
  }

  private async restoreClaims(firsts: Map<string, FactRef>): Promise<void> {
    if (firsts.size === 0) return
    const { claims, claimLeaseMs, log } = this.deps
    const entries = [...firsts]
    const outcomes = await claims.claimMany(entries.map(([key, ref]) => ({ key, eventId: ref.eventId, fingerprint: ref.fingerprint })), this.now(), claimLeaseMs)
    const commit: { key: string; eventId: string }[] = []
    const retake: { key: string; eventId: string }[] = []
    outcomes.forEach((o, i) => {
      const [key, ref] = entries[i]!
      if (o.outcome === 'claimed' && o.eventId === ref.eventId) commit.push({ key, eventId: ref.eventId })
      else if (o.outcome === 'claimed') retake.push({ key, eventId: o.eventId }) // an abandoned claim under another id: the topic decides
      else if (o.outcome === 'duplicate' && o.eventId === ref.eventId) this.totals.claimsPresent++
      else if (o.outcome !== 'in_flight') {
        this.totals.claimsDiffering++
        log.warn({ eventId: o.eventId, firstFact: ref.eventId, partition: ref.partition, offset: ref.offset, outcome: o.outcome },
          'the claim store holds another event for a tuple than the topic\'s first fact; left as it is')
      }
    })
    if (retake.length > 0) {
      // the abandoned claim was never committed, so its produce is not the first fact: replace it
      await claims.releaseMany(retake)
      const again = await claims.claimMany(retake.map((r) => ({ key: r.key, eventId: firsts.get(r.key)!.eventId, fingerprint: firsts.get(r.key)!.fingerprint })), this.now(), claimLeaseMs)
      again.forEach((o, i) => { if (o.outcome === 'claimed' && o.eventId === firsts.get(retake[i]!.key)!.eventId) commit.push({ key: retake[i]!.key, eventId: o.eventId }) })
    }
    await claims.commitMany(commit)
    this.totals.claimsRestored += commit.length
  }

  private async resolveIdentities(handled: InboundRecord[], firsts: Map<string, FactRef>): Promise<void> {
    const events: CdpEvent[] = []
    for (const r of handled) {
      const read = FactKey.read(r.key)
      if (!read.ok) continue
      const ref = firsts.get(read.key.text)
      if (ref === undefined || ref.partition !== r.partition || ref.offset !== r.offset) continue
      const d = await this.deps.codec.decode(r.value)
      if (d.ok) events.push(d.event)
    }
    if (events.length === 0) return
    await this.deps.identity.resolveMany(events)
    this.totals.identitiesResolved += events.length
  }
}
