/**
 * The consumer's health beyond "the process runs": lag per partition (the broker's end offset
 * minus the group's committed offset, read through src/kafka every `consumer.lagIntervalMs`) and
 * whether it makes progress. A partition of this member is stalled when it has lag and its
 * committed offset has not moved for `consumer.stallAfterMs` (ClickHouse paused, a batch retried
 * forever): /readyz then answers 503, so an orchestrator can restart or page, and
 * `cdp_consumer_stalled` turns 1. Only partitions the group assigned to this member count, so
 * a member never reports another's trouble.
 */
export interface GroupOffsets {
  /** next offset to be written, per partition */
  end: ReadonlyMap<number, bigint>
  /** first offset still on the topic, per partition (the lag of a partition never committed) */
  start: ReadonlyMap<number, bigint>
  /** the group's committed offset, per partition that has one */
  committed: ReadonlyMap<number, bigint>
}

export interface ConsumerHealthDeps {
  offsets(): Promise<GroupOffsets>
  /** partitions the group currently gives this member */
  assignment(): ReadonlySet<number>
  setLag(lag: ReadonlyMap<number, bigint>): void
  setStalled(stalled: boolean): void
  stallAfterMs: number
  intervalMs: number
  now?: () => number
  onError?: (err: unknown) => void
}

export class ConsumerHealth {
  private readonly now: () => number
  /** per partition: the committed offset last seen and when it last moved (or was first seen) */
  private readonly moved = new Map<number, { committed: bigint; at: number }>()
  private lag = new Map<number, bigint>()
  private assigned: ReadonlySet<number> = new Set()
  private assignedAt: number
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  constructor(private readonly deps: ConsumerHealthDeps) {
    this.now = deps.now ?? Date.now
    this.assignedAt = this.now()
  }

  /** the runner committed `nextOffset` on `partition` (progress known before the next refresh) */
  committed(partition: number, nextOffset: string): void {
    this.moved.set(partition, { committed: BigInt(nextOffset), at: this.now() })
  }

  /** reads the offsets once; one read at a time */
  refresh(): Promise<void> {
    this.running ??= this.read().finally(() => { this.running = undefined })
    return this.running
  }

  private async read(): Promise<void> {
    const now = this.now()
    const assignment = this.deps.assignment()
    if (!sameSet(assignment, this.assigned)) { this.assigned = new Set(assignment); this.assignedAt = now }
    let o: GroupOffsets
    try { o = await this.deps.offsets() } catch (err) { this.deps.onError?.(err); return }
    const lag = new Map<number, bigint>()
    for (const [p, end] of o.end) {
      const committed = o.committed.get(p)
      const base = committed ?? o.start.get(p) ?? 0n
      lag.set(p, end > base ? end - base : 0n)
      const seen = this.moved.get(p)
      if (committed !== undefined && (seen === undefined || seen.committed !== committed)) this.moved.set(p, { committed, at: now })
    }
    this.lag = lag
    this.deps.setLag(lag)
    this.deps.setStalled(this.stalledPartitions().length > 0)
  }

  /** partitions of this member with lag and no movement for stallAfterMs */
  stalledPartitions(): number[] {
    const now = this.now()
    const out: number[] = []
    for (const p of this.assigned) {
      if ((this.lag.get(p) ?? 0n) <= 0n) continue
      const since = Math.max(this.moved.get(p)?.at ?? 0, this.assignedAt)
      if (now - since > this.deps.stallAfterMs) out.push(p)
    }
    return out
  }

  /** lag of every partition at the last refresh */
  currentLag(): ReadonlyMap<number, bigint> { return this.lag }

  start(): void {
    if (this.timer !== undefined) return
    void this.refresh()
    this.timer = setInterval(() => { void this.refresh() }, this.deps.intervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running
  }
}

function sameSet(a: ReadonlySet<number>, b: ReadonlySet<number>): boolean {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}
