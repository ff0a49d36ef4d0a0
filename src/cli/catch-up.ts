/**
 * Progress of a command that reads the whole events topic with a fresh consumer group (replay,
 * state rebuild): a line every interval with records, rate and ETA, until the group has
 * committed every partition's end offset as it was when the command started.
 */
import type { KafkaAdmin } from '../kafka/index.js'
import type { Out } from './command.js'

export interface CatchUpProgress { done: number; total: number; rate: number; left: number; eta: string }

export interface CatchUpOptions {
  admin: KafkaAdmin
  groupId: string
  topic: string
  /** the topic's offsets read before the consumer started */
  offsets: readonly { partition: number; low: bigint; high: bigint }[]
  /** records handled so far */
  handled: () => number
  /** the progress line for one tick */
  line: (p: CatchUpProgress) => string
  out: Out
  everyMs?: number
}

export function topicRecords(offsets: CatchUpOptions['offsets']): number {
  return offsets.reduce((s, p) => s + Number(p.high - p.low), 0)
}

/** resolves with the seconds it took, once the group caught up */
export async function untilCaughtUp(o: CatchUpOptions): Promise<number> {
  const total = topicRecords(o.offsets)
  const t0 = Date.now()
  const caughtUp = async () => {
    const committed = await o.admin.groupOffsets(o.groupId, o.topic)
    return o.offsets.every((p) => p.high === 0n || (committed.get(p.partition) ?? -1n) >= p.high)
  }
  for (;;) {
    await new Promise((r) => setTimeout(r, o.everyMs ?? 1000))
    const done = o.handled()
    const rate = done / Math.max((Date.now() - t0) / 1000, 0.001)
    const left = Math.max(0, total - done)
    o.out(o.line({ done, total, rate, left, eta: rate > 0 ? `${Math.ceil(left / rate)} s` : '?' }))
    if (await caughtUp()) return (Date.now() - t0) / 1000
  }
}
