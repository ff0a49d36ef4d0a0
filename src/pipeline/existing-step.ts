/**
 * Existing step: facts ClickHouse already holds (a crash between insert and commit, or a replay)
 * are not written twice. Only a record flagged `maybeWritten` can have been written before: a
 * tuple the dedup store has just seen for the first time cannot be in ClickHouse yet, so a batch
 * of new facts skips the query.
 */
import type { Unique } from './dedup-step.js'
import type { ProcessorDeps } from './deps.js'
import { ok, skip, type Outcome } from './outcome.js'

export function existingStep(deps: Pick<ProcessorDeps, 'existingFacts'>): (items: Unique[]) => Promise<Outcome<Unique>[]> {
  return async (items) => {
    const check = items.filter((x) => x.maybeWritten)
    const existing = check.length === 0 ? new Set<string>() : await deps.existingFacts(check.map((x) => x.key.tuple))
    // once per tuple: in a replay the first fact and later copies of it (a repeat, a re-assertion)
    // can share a batch; the lowest offset comes first and is the one the table would keep
    const inBatch = new Set<string>()
    return items.map((x) => {
      if (existing.has(x.key.text)) return skip('already_written', x.record)
      if (inBatch.has(x.key.text)) return skip('again_in_batch', x.record)
      inBatch.add(x.key.text)
      return ok(x)
    })
  }
}
