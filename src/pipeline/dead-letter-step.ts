/**
 * Dead-letter step: every dead letter becomes a dead_letters row; live, it also goes to the DLQ
 * topic, and the first facts under the keys of bad records are produced again (see dedup-step.ts).
 * A replay only rebuilds ClickHouse: the DLQ topic got its records when they were first consumed.
 *
 * Each dead letter and each re-assertion is logged once, with the tenant, the reason code and the
 * record's position: never the key or the value, which hold the producer's identifiers and data
 * (the dead_letters row and the DLQ topic keep them for whoever may read them).
 */
import type { ProcessorDeps } from './deps.js'
import type { Reassertion } from './dedup-step.js'
import type { DeadLetter } from './outcome.js'
import { deadLetterRow } from './rows.js'
import type { BatchToken } from './write-step.js'

export function deadLetterStep(
  deps: Pick<ProcessorDeps, 'writer' | 'publishDeadLetters' | 'reassert' | 'mode' | 'dedup' | 'log'>,
): (letters: DeadLetter[], reassert: Reassertion[], token: BatchToken) => Promise<void> {
  return async (letters, reassert, token) => {
    if (letters.length > 0) {
      const now = new Date()
      await deps.writer.insertDeadLetters(letters.map((l) => deadLetterRow(l, now)), { dedupToken: token('dead_letters') })
      if (deps.mode === 'live') await deps.publishDeadLetters(letters)
      // a replay meets old dead letters again: news only to whoever debugs the replay
      const level = deps.mode === 'live' ? 'warn' : 'debug'
      for (const l of letters) {
        deps.log[level]({ tenant: l.tenant, reason: l.reason, partition: l.record.partition, offset: l.record.offset }, 'record dead-lettered')
      }
    }
    if (reassert.length > 0 && deps.mode === 'live') {
      // once per key, after the key's last bad record of the batch: one copy is enough for compaction
      const last = new Map<string, Reassertion>()
      for (const r of reassert) {
        const cur = last.get(r.key.text)
        if (cur === undefined || BigInt(r.after) > BigInt(cur.after)) last.set(r.key.text, r)
      }
      const once = [...last.values()]
      await deps.reassert(once.map((r) => r.original), once.map((r) => r.key.text))
      // only once the copies are on the topic: a crash before this re-asserts again, never too little
      await deps.dedup.markReasserted(once.map((r) => ({ key: r.key.text, after: r.after })))
      for (const r of once) {
        deps.log.info({ tenant: r.key.tenant, partition: r.original.partition, offset: r.original.offset, after: r.after }, 'first fact re-asserted')
      }
    }
  }
}
