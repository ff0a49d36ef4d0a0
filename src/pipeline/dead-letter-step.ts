/**
 * Dead-letter step: every dead letter becomes a dead_letters row; live, it also goes to the DLQ
 * topic, and the first facts under the keys of bad records are produced again (see dedup-step.ts).
 * A replay only rebuilds ClickHouse: the DLQ topic got its records when they were first consumed.
 */
import type { ProcessorDeps } from './deps.js'
import type { Reassertion } from './dedup-step.js'
import type { DeadLetter } from './outcome.js'
import { deadLetterRow } from './rows.js'
import type { BatchToken } from './write-step.js'

export function deadLetterStep(deps: Pick<ProcessorDeps, 'writer' | 'publishDeadLetters' | 'reassert' | 'mode'>): (letters: DeadLetter[], reassert: Reassertion[], token: BatchToken) => Promise<void> {
  return async (letters, reassert, token) => {
    if (letters.length > 0) {
      const now = new Date()
      await deps.writer.insertDeadLetters(letters.map((l) => deadLetterRow(l, now)), { dedupToken: token('dead_letters') })
      if (deps.mode === 'live') await deps.publishDeadLetters(letters)
    }
    if (reassert.length > 0 && deps.mode === 'live') {
      // once per key: one copy after the batch's bad records is enough for compaction
      const once = [...new Map(reassert.map((r) => [r.key.text, r])).values()]
      await deps.reassert(once.map((r) => r.original), once.map((r) => r.key.text))
    }
  }
}
