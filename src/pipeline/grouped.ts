/**
 * Partition batches written together (issue 10: fewer, larger ClickHouse inserts).
 *
 * kafkajs hands the consumer one partition's batch at a time, up to `consumer.partitionConcurrency`
 * at once. Processed one by one, every partition batch pays its own ClickHouse insert per table
 * (four or five: each one a part ClickHouse must later merge), its own dedup-store and identity-
 * graph transactions (each an fsync with LMDB) and its own round trips. Under a steady load the
 * batches are small (what arrived since the last fetch), so that fixed cost is most of the work
 * and every few records make a new part. Small batches that wait here while another group is
 * written, or that arrive in the same turn of the event loop (one fetch response carries every
 * partition of a broker), are processed as one: one insert per table, one transaction per store.
 *
 * Large batches (a backlog) are not grouped: they already pay for their inserts, and processed
 * side by side one partition's CPU work (decode, dedup, identity) overlaps another's insert on
 * chDB's thread. Grouping them made the embedded consumer 20% slower (docs/BENCHMARKS.md),
 * because the whole group waited for each step.
 *
 * What stays as it was:
 * - Order per partition: a partition has at most one batch in flight (the runner waits for its
 *   answer), so its records keep their offset order inside the group.
 * - Commits: every partition batch is answered only after the whole group is written, and each
 *   runner commits its own partition's offsets then.
 * - Exactly once: the group's inserts carry a token naming every partition range (write-step.ts
 *   batchToken). A retry after a failure can be grouped differently and so carry another token;
 *   the events it repeats are the re-delivered tuples the existing step already finds in
 *   ClickHouse, as after a batch re-cut by a restart, and a repeated side-table or dead-letter
 *   row is one more version of a ReplacingMergeTree key, which every reader reads with FINAL.
 *   Replays do not group (src/app/consumer.ts): a second replay must write nothing at all.
 * - A neighbour's trouble does not become everyone's: a partition whose last attempt failed is
 *   processed alone until it succeeds, so a batch that keeps failing (a bug met by one record)
 *   blocks only its own partition, as before grouping.
 */
import type { InboundRecord, PartitionBatchHandler } from '../kafka/consumer.js'

interface Waiting {
  records: InboundRecord[]
  resolve: (n: number) => void
  reject: (err: unknown) => void
}

/** what a group is handed to: the processor, which handles every record or throws */
export interface GroupTarget {
  process(records: InboundRecord[]): Promise<number>
}

const partitionOf = (w: Waiting): string => `${w.records[0]?.topic ?? ''}/${w.records[0]?.partition ?? -1}`

export class GroupedBatches implements PartitionBatchHandler {
  private queue: Waiting[] = []
  private draining = false
  /** partitions whose last attempt failed: processed alone until one succeeds */
  private readonly failed = new Set<string>()

  /** `maxRows`: a group holds at most this many records; a larger batch goes alone, at once (0: no grouping) */
  constructor(private readonly target: GroupTarget, private readonly maxRows: number) {}

  process(records: InboundRecord[]): Promise<number> {
    if (records.length === 0) return Promise.resolve(0)
    const w = { records } as Waiting
    const answer = new Promise<number>((resolve, reject) => { w.resolve = resolve; w.reject = reject })
    if (records.length > this.maxRows || this.failed.has(partitionOf(w))) {
      // large enough to pay for its own inserts, or failed last time: as without grouping, next
      // to the other partitions' batches (their CPU work and chDB's inserts overlap)
      void this.run([w])
      return answer
    }
    this.queue.push(w)
    if (!this.draining) {
      this.draining = true
      // one turn of the event loop: the other partitions of the same fetch arrive in it
      setImmediate(() => { void this.drain() })
    }
    return answer
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        let rows = 0
        let n = 0
        while (n < this.queue.length && (n === 0 || rows + this.queue[n]!.records.length <= this.maxRows)) rows += this.queue[n++]!.records.length
        await this.run(this.queue.splice(0, n))
      }
    } finally {
      this.draining = false
    }
  }

  /** one processor call for the group; every member answered with the group's fate */
  private async run(group: Waiting[]): Promise<void> {
    const records = group.length === 1 ? group[0]!.records : group.flatMap((w) => w.records)
    try {
      const done = await this.target.process(records)
      // the processor handles all or throws; anything else would commit records never written
      if (done !== records.length) throw new Error(`group processor handled ${done} of ${records.length} records`)
    } catch (err) {
      for (const w of group) { this.failed.add(partitionOf(w)); w.reject(err) }
      return
    }
    for (const w of group) { this.failed.delete(partitionOf(w)); w.resolve(w.records.length) }
  }
}
