/**
 * Rate-limit counters in a small LMDB environment of their own (<state.lmdbPath>/rate-limit), so
 * every process on one machine that opens it (`serve --workers N`, several `serve --role api` on
 * one state directory) draws from one budget, as Redis gives across machines.
 *
 * - Its own environment, not a named database of the state environment, because fsync is chosen
 *   per environment: these commits skip it (noSync). A crash of the machine may lose the last
 *   charges, which only gives a window back some room; the state stores keep their own setting.
 * - The check and the charge of every bucket of a request happen in one write transaction, and
 *   LMDB's write lock is held across processes, so two workers cannot both take the last room.
 *   Charges of one event-loop turn share one commit (WriteQueue).
 * - Counters whose window has ended are swept a slice at a time (SWEEP_SLICE entries per
 *   transaction), once per window across all processes (the due time is stored in the
 *   environment), so the file holds the buckets of about two windows, not every key ever seen.
 */
import type { Database, RootDatabase } from 'lmdb'
import { EnvLifecycle, lmdbKey, openEnv, WriteQueue } from './lmdb-env.js'
import { chargeWindows, type Bucket, type ChargeResult, type Counter, type RateLimitStore } from './rate-limit-types.js'

/** when the next sweep is due and the key to resume from ('' = the start) */
type SweepState = [number, string]

const SWEEP = 'sweep'
const SWEEP_SLICE = 500

export class LmdbRateLimitStore implements RateLimitStore {
  /** a Counter ([used, resetAt]) is stored as it is: an array is the smallest msgpack record */
  readonly #counters: Database<Counter, string>
  readonly #meta: Database<SweepState, string>
  readonly #life: EnvLifecycle
  /** this process's cached due time of the next sweep; the stored one decides */
  #sweepCheckAt = 0

  constructor(env: RootDatabase, private readonly now: () => number = Date.now) {
    this.#counters = env.openDB<Counter, string>({ name: 'counters' })
    this.#meta = env.openDB<SweepState, string>({ name: 'meta' })
    this.#life = new EnvLifecycle(env, new WriteQueue(env, 'rate limit'))
  }

  charge(buckets: Bucket[], cost: number, windowMs: number): Promise<ChargeResult> {
    const result = this.#life.writes.run((): ChargeResult => {
      const keys = buckets.map((b) => lmdbKey(b.id))
      const r = chargeWindows(buckets, keys.map((k) => this.#counters.get(k)), cost, windowMs, this.now())
      if (!r.ok) return r
      for (const [i, k] of keys.entries()) this.#counters.putSync(k, r.next[i]!)
      return { ok: true }
    })
    if (this.now() >= this.#sweepCheckAt) {
      // its own queued operation: a sweep that fails must not fail the charges of its turn
      this.#sweepCheckAt = Number.POSITIVE_INFINITY
      this.#life.writes.run(() => this.#sweep(windowMs)).then(
        (next) => { this.#sweepCheckAt = next },
        () => { this.#sweepCheckAt = this.now() + windowMs },
      )
    }
    return result
  }

  /** one slice of the sweep when it is due; returns when this process should look again */
  #sweep(windowMs: number): number {
    const t = this.now()
    const [due, from] = this.#meta.get(SWEEP) ?? [0, '']
    if (t < due) return due
    const expired: string[] = []
    let last: string | undefined
    let seen = 0
    for (const { key, value } of this.#counters.getRange({ ...(from === '' ? {} : { start: from }), limit: SWEEP_SLICE })) {
      seen++
      last = key
      if (value[1] <= t) expired.push(key)
    }
    for (const k of expired) this.#counters.removeSync(k)
    // a full slice: more may follow, resume at the last key seen (start is inclusive) next turn
    const next: SweepState = seen === SWEEP_SLICE && last !== undefined ? [t, last] : [t + windowMs, '']
    this.#meta.putSync(SWEEP, next)
    return next[0]
  }

  /** live and expired counters (tests and diagnostics) */
  size(): number { return this.#counters.getCount() }

  close(): Promise<void> { return this.#life.close() }
}

/** the counters' environment at `path`, without fsync per commit (see the header) */
export function openLmdbRateLimitStore(path: string, now?: () => number): LmdbRateLimitStore {
  return new LmdbRateLimitStore(openEnv(path, false), now)
}
