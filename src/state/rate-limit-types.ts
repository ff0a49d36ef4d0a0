/** The rate-limit store's interface and its fixed-window rule, apart so each store's file imports them without a cycle. */

export interface Bucket {
  id: string
  limit: number
}

/** ok, or which bucket refused and how long until its window ends */
export type ChargeResult = { ok: true } | { ok: false; bucket: number; retryAfterMs: number }

export interface RateLimitStore {
  /** atomically: if every bucket has room for `cost`, add it to all of them */
  charge(buckets: Bucket[], cost: number, windowMs: number): Promise<ChargeResult>
  close(): Promise<void>
}

/** one bucket's window: [items used, when the window ends (ms since epoch)] */
export type Counter = [used: number, resetAt: number]

/**
 * The fixed-window rule the process-local stores share (Redis runs the same rule in its script):
 * given each bucket's stored counter, refuse at the first bucket without room for `cost`, else
 * return the counters to store. A counter whose window has ended counts as a fresh one.
 */
export function chargeWindows(
  buckets: readonly Bucket[], stored: readonly (Counter | undefined)[], cost: number, windowMs: number, now: number,
): { ok: false; bucket: number; retryAfterMs: number } | { ok: true; next: Counter[] } {
  const current = stored.map((c): Counter => (c === undefined || c[1] <= now ? [0, now + windowMs] : c))
  for (const [i, b] of buckets.entries()) {
    const [used, resetAt] = current[i]!
    if (used + cost > b.limit) return { ok: false, bucket: i, retryAfterMs: resetAt - now }
  }
  return { ok: true, next: current.map(([used, resetAt]): Counter => [used + cost, resetAt]) }
}
