/** The rate-limit store's interface, apart so each store's file imports it without a cycle. */

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
