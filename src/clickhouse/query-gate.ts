/**
 * The process-wide cap on analyst queries (`query.maxConcurrentTotal`). The per-tenant limit
 * keeps one tenant from taking every slot; this one keeps all tenants together from taking
 * every core: in embedded mode chDB runs in the service's own process, and ingestion needs a
 * core of its own. A query beyond the cap waits in a queue bounded twice: by length (a full
 * queue refuses at once, so waiting requests cannot pile up without end) and by time (a waiter
 * gives up after `maxWaitMs`). Waiters are served first come, first served. Outcomes are values:
 * the analyst runner turns a refusal into its 429.
 */

export type GateRefusal = 'queue_full' | 'wait_timeout' | 'aborted' | 'closed'

export type GateOutcome = { ok: true; release: () => void } | { ok: false; reason: GateRefusal }

export interface GateLimits {
  /** queries running at once */
  maxActive: number
  /** queries waiting at once; 0: refuse at once when the cap is taken */
  maxQueued: number
  /** how long one query may wait for a place (ms) */
  maxWaitMs: number
}

interface Waiter {
  settle: (o: GateOutcome) => void
}

export class QueryGate {
  #active = 0
  readonly #queue: Waiter[] = []
  #closed = false

  constructor(private readonly limits: GateLimits) {}

  /** queries running and waiting now (metrics, tests) */
  get active(): number { return this.#active }
  get queued(): number { return this.#queue.length }

  /** A place to run, or why there is none; `signal` aborting while it waits gives up its place in the queue. */
  acquire(signal?: AbortSignal): Promise<GateOutcome> {
    if (this.#closed) return Promise.resolve({ ok: false, reason: 'closed' })
    if (signal?.aborted === true) return Promise.resolve({ ok: false, reason: 'aborted' })
    if (this.#active < this.limits.maxActive && this.#queue.length === 0) return Promise.resolve(this.#grant())
    if (this.#queue.length >= this.limits.maxQueued) return Promise.resolve({ ok: false, reason: 'queue_full' })
    return new Promise<GateOutcome>((resolve) => {
      const leave = (reason: GateRefusal): void => {
        const i = this.#queue.indexOf(waiter)
        if (i < 0) return
        this.#queue.splice(i, 1)
        waiter.settle({ ok: false, reason })
      }
      const onAbort = (): void => leave('aborted')
      // not unref'd: a waiting request is work in flight, and close() clears every timer
      const timer = setTimeout(() => leave('wait_timeout'), this.limits.maxWaitMs)
      const waiter: Waiter = {
        settle: (o) => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          resolve(o)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#queue.push(waiter)
    })
  }

  /** refuses every waiter and every later acquire (shutdown); running queries keep their place until released */
  close(): void {
    this.#closed = true
    for (const w of this.#queue.splice(0)) w.settle({ ok: false, reason: 'closed' })
  }

  #grant(): GateOutcome {
    this.#active++
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        this.#active--
        this.#next()
      },
    }
  }

  #next(): void {
    while (this.#active < this.limits.maxActive && this.#queue.length > 0) {
      const w = this.#queue.shift()!
      w.settle(this.#grant())
    }
  }
}
