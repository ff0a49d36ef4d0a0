/**
 * Suppress step (docs/PRIVACY.md): a record carrying an identity of a person erased for its
 * tenant is not stored. The API refuses such events itself; this step catches the records direct
 * producers write past it, and the records of an erased person still waiting on the topic.
 *
 *   the tuple's fact was erased          -> skip `erased` (the erasure already tombstoned it)
 *   otherwise                            -> dead letter `suppressed`, WITHOUT the value (the value
 *                                           is the person's data): the dead_letters row and the DLQ
 *                                           record keep only the key and the reason
 *   ... and, live, no fact under its key -> a tombstone for the key, so compaction drops the
 *                                           record and a replay never meets it
 * A suppressed record under the key of someone else's stored fact gets no tombstone: the dead
 * letter re-asserts that fact after it (dedup-step.ts), which is what compaction then keeps.
 * Runs before the dedup step, so a suppressed record never becomes a tuple's first fact.
 */
import type { CdpEvent } from '../avro/event.js'
import type { ProcessorDeps } from './deps.js'
import { deadLetter, ok, skip, type DeadLetter, type Outcome } from './outcome.js'
import type { Valid } from './validate-step.js'

export interface SuppressResult {
  outcomes: Outcome<Valid>[]
  /** keys (keyString form) to tombstone once the batch's dead letters are written; live only */
  tombstones: string[]
}

/** a record the validate step refused, with the event it decoded to */
export interface RefusedEvent { letter: DeadLetter; event: CdpEvent }

/**
 * The same rule for records that decoded but failed validation: their dead letter would keep the
 * person's data (the value). A suppressed one becomes a value-free `suppressed` letter, or nothing
 * when its tuple was erased; a replay over records of an erased person not yet compacted away
 * therefore writes nothing of theirs.
 */
export function suppressLettersStep(deps: Pick<ProcessorDeps, 'suppression' | 'dedup' | 'mode'>): (refused: RefusedEvent[]) => Promise<{ letters: DeadLetter[]; tombstones: string[] }> {
  const step = suppressStep(deps)
  return async (refused) => {
    if (deps.suppression === undefined || refused.length === 0) return { letters: refused.map((r) => r.letter), tombstones: [] }
    // the suppress step over the letters' events: ok means not suppressed, keep the letter as it was
    const r = await step(refused.map((x) => ({ record: x.letter.record, key: x.letter.key!, event: x.event, fingerprint: '', properties: undefined })))
    const letters = r.outcomes.flatMap((o, i): DeadLetter[] => (o.kind === 'ok' ? [refused[i]!.letter] : o.kind === 'dead_letter' ? [o.letter] : []))
    return { letters, tombstones: r.tombstones }
  }
}

export function suppressStep(deps: Pick<ProcessorDeps, 'suppression' | 'dedup' | 'mode'>): (items: Valid[]) => Promise<SuppressResult> {
  return async (items) => {
    const check = deps.suppression
    if (check === undefined || items.length === 0) return { outcomes: items.map((x) => ok(x)), tombstones: [] }
    const tombstones: string[] = []
    const outcomes: Outcome<Valid>[] = []
    // one lookup per tenant of the batch (a partition mixes tenants)
    const byTenant = new Map<string, number[]>()
    items.forEach((x, i) => byTenant.set(x.event.tenant, [...(byTenant.get(x.event.tenant) ?? []), i]))
    const hit = new Array<boolean>(items.length).fill(false)
    for (const [tenant, idx] of byTenant) {
      const r = await check.suppressed(tenant, idx.map((i) => items[i]!.event.identity))
      idx.forEach((i, k) => { hit[i] = r[k] === true })
    }
    for (const [i, x] of items.entries()) {
      if (!hit[i]) { outcomes.push(ok(x)); continue }
      const fact = await deps.dedup.get(x.key.text)
      if (fact?.erased === true) { outcomes.push(skip('erased', x.record)); continue }
      if (fact === undefined && deps.mode === 'live' && !tombstones.includes(x.key.text)) tombstones.push(x.key.text)
      outcomes.push(deadLetter({
        record: { ...x.record, value: null }, key: x.key, tenant: x.event.tenant, reason: 'suppressed',
        message: 'the record carries an identity of a person erased for this tenant; not stored, value dropped',
      }))
    }
    return { outcomes, tombstones }
  }
}
