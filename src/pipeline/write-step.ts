/**
 * Write step: the resolved facts' rows into ClickHouse, idempotently.
 *
 * Identities, merges and aliases go first: an events row never points at a profile the tables do
 * not know. The three side tables do not refer to one another, so their inserts run at once (chDB
 * runs each on its own worker thread; a server takes them on separate connections); the events
 * insert starts only after all three have succeeded. If one of them fails, the others may have
 * landed: the retry sends all three again with the same tokens and ClickHouse drops the repeats.
 * Every insert carries a dedup token from the batch's offset range, so a batch cut again
 * after a crash inserts nothing twice. Once the events are in, the identity graph may forget what
 * it kept for re-deliveries of them.
 */
import { dedupToken } from '../clickhouse/writer.js'
import type { InboundRecord } from '../kafka/consumer.js'
import type { ProcessorDeps } from './deps.js'
import type { Resolved } from './resolve-step.js'
import { eventRow } from './rows.js'

/** `insert_deduplication_token` of one table for one batch */
export type BatchToken = (table: string) => string

/**
 * Tokens from the batch's first and last offsets; the mode keeps a replay's inserts apart from live
 * ones. A batch of several partitions (grouped.ts) names each partition's range, in the order they
 * come; a batch of one partition keeps the token it always had.
 */
export function batchToken(mode: ProcessorDeps['mode'], records: readonly InboundRecord[]): BatchToken {
  const ranges: { topic: string; partition: number; first: string; last: string }[] = []
  for (const r of records) {
    const open = ranges.find((x) => x.partition === r.partition && x.topic === r.topic)
    if (open === undefined) ranges.push({ topic: r.topic, partition: r.partition, first: r.offset, last: r.offset })
    else open.last = r.offset
  }
  return (table) => {
    const [one, ...more] = ranges
    if (one === undefined) throw new Error('batchToken: no records')
    const token = dedupToken(one.topic, one.partition, one.first, one.last, `${mode}:${table}`)
    return more.length === 0 ? token : `${token}+${more.map((x) => `${x.topic === one.topic ? '' : `${x.topic}:`}${x.partition}:${x.first}-${x.last}`).join('+')}`
  }
}

/** returns the number of events rows written */
export function writeStep(deps: Pick<ProcessorDeps, 'writer' | 'identity' | 'segmentable'>): (items: Resolved[], token: BatchToken) => Promise<number> {
  return async (items, token) => {
    const w = deps.writer
    const identities = items.flatMap((x) => x.resolution.identities)
    const merges = items.flatMap((x) => x.resolution.merges)
    const aliases = items.flatMap((x) => x.resolution.aliases)
    const side: Promise<unknown>[] = []
    if (identities.length > 0) side.push(w.insertIdentities(identities, { dedupToken: token('identities') }))
    if (merges.length > 0) side.push(w.insertMerges(merges, { dedupToken: token('profile_merges') }))
    if (aliases.length > 0) side.push(w.insertProfileAliases(aliases, { dedupToken: token('profile_aliases') }))
    // allSettled first: no insert is left running unobserved when another one fails
    const settled = await Promise.allSettled(side)
    for (const s of settled) if (s.status === 'rejected') throw s.reason
    if (items.length === 0) return 0
    await w.insertEvents(items.map((x) => eventRow(x, deps.segmentable)), { dedupToken: token('events') })
    // a re-delivered batch now finds these facts in ClickHouse and never resolves them again
    await deps.identity.forget(items.map((x) => x.event))
    return items.length
  }
}
