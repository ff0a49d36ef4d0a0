/**
 * Per-key request limit, fixed window, per API instance (N instances allow N x the limit; the
 * README says so). In memory on purpose: a shared Redis counter would add a round trip to every
 * request on the hot path for a protection that only needs to be approximate.
 */
export class RateLimiter {
  private windowStart = 0
  private counts = new Map<string, number>()

  constructor(private readonly max: number, private readonly windowMs: number, private readonly now: () => number = Date.now) {}

  /** undefined when allowed; otherwise seconds until the window resets */
  take(key: string, cost = 1): number | undefined {
    const t = this.now()
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t - (t % this.windowMs)
      this.counts.clear()
    }
    const used = (this.counts.get(key) ?? 0) + cost
    this.counts.set(key, used)
    if (used <= this.max) return undefined
    return Math.max(1, Math.ceil((this.windowStart + this.windowMs - t) / 1000))
  }
}
