/**
 * Shared LMDB plumbing for the state stores and the identity graph: opening an environment,
 * keys that fit LMDB's key size limit, and a write queue that runs every write made in one
 * event-loop turn as ONE synchronous transaction.
 *
 * Why transactionSync and not lmdb's async `transaction()`: the async one was measured (issue 10,
 * docs/BENCHMARKS.md) and gained only a few percent for batches, and when its commit fails (state
 * volume full: EIO) lmdb-js rejects an internal `commitError` promise that nothing can catch, so
 * the process exits instead of answering 503 (the fault suite's state-full scenario). A
 * synchronous transaction blocks the event loop for the commit, so concurrent callers are
 * coalesced: one commit per turn instead of one per request. Each queued operation still runs in
 * arrival order, so "decided in order" holds across calls too.
 */
import { createHash } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { open, type RootDatabase } from 'lmdb'
import { CdpError, wrapForeign } from '../errors.js'
import { stateStoreErrorCode } from './errors.js'

/** LMDB refuses keys above ~1978 bytes; longer keys are stored under their sha256. */
const MAX_KEY_BYTES = 1000

export function lmdbKey(key: string): string {
  if (key.length * 3 <= MAX_KEY_BYTES || Buffer.byteLength(key) <= MAX_KEY_BYTES) return key
  // plain keys stored here (dedup keys, tenant-prefixed graph keys) never start with NUL and "sha256:"
  return `\u0000sha256:${createHash('sha256').update(key).digest('hex')}`
}

/**
 * `sync` false skips the fsync of each commit (lmdb's noSync): a process crash still loses
 * nothing (the OS holds the pages), an OS crash or power loss can lose the last commits.
 */
export function openEnv(path: string, sync = true): RootDatabase {
  try {
    // 0700: the key store and claims are the service's alone (mode applies to every directory created)
    mkdirSync(path, { recursive: true, mode: 0o700 })
    return open({ path, maxDbs: 16, noSync: !sync })
  } catch (err) {
    throw wrapForeign(err, `lmdb open ${path}`, stateStoreErrorCode)
  }
}

interface QueuedOp {
  fn: () => unknown
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

export class WriteQueue {
  #queue: QueuedOp[] = []
  #scheduled = false
  #closed = false
  #idle: (() => void)[] = []

  constructor(private readonly env: RootDatabase, private readonly what: string) {}

  /** run `fn` inside the next write transaction; its return value resolves the promise */
  run<T>(fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new CdpError('state_store_unavailable', `${this.what}: store is closed`))
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush(): void {
    this.#scheduled = false
    const ops = this.#queue
    this.#queue = []
    const results: unknown[] = []
    try {
      this.env.transactionSync(() => {
        for (const op of ops) results.push(op.fn())
      })
      ops.forEach((op, i) => op.resolve(results[i]))
    } catch {
      // the transaction was aborted as a whole, nothing of this turn was written: run each
      // operation alone so one caller's failure does not fail the others
      for (const op of ops) {
        try {
          op.resolve(this.env.transactionSync(() => op.fn()))
        } catch (err) {
          op.reject(wrapForeign(err, `lmdb ${this.what}`, stateStoreErrorCode))
        }
      }
    }
    this.#settled()
  }

  #settled(): void {
    if (this.#queue.length === 0 && !this.#scheduled) for (const fn of this.#idle.splice(0)) fn()
  }

  /** stop accepting work and wait for queued work to commit */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#queue.length === 0 && !this.#scheduled) return
    await new Promise<void>((resolve) => this.#idle.push(resolve))
  }
}

/** read helper: wrap synchronous lmdb reads so infrastructure errors carry the store code */
export function readOp<T>(what: string, closed: () => boolean, fn: () => T): Promise<T> {
  if (closed()) return Promise.reject(new CdpError('state_store_unavailable', `${what}: store is closed`))
  try {
    return Promise.resolve(fn())
  } catch (err) {
    return Promise.reject(wrapForeign(err, `lmdb ${what}`, stateStoreErrorCode))
  }
}

/**
 * The open/closed life of one LMDB environment and its write queue, shared by the state stores
 * and the identity graph: a ping that never throws, and a close that lets queued writes finish.
 */
export class EnvLifecycle {
  #closed = false

  constructor(private readonly env: RootDatabase, readonly writes: WriteQueue) {}

  get closed(): boolean { return this.#closed }

  /** a cheap read that fails when the environment is closed or broken; never throws */
  ping(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false)
    try {
      this.env.get('\u0000ping')
      return Promise.resolve(true)
    } catch {
      return Promise.resolve(false)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.writes.close()
    await this.env.close()
  }
}
