/**
 * Shared LMDB plumbing for the state stores and the identity graph: opening an environment,
 * keys that fit LMDB's key size limit, and a write queue that runs every write made in one
 * event-loop turn as ONE transaction.
 *
 * The transaction is lmdb-js's asynchronous one: our callback runs on the main thread (reads and
 * decisions see the transaction's own writes, so check-and-set stays atomic), while the commit and
 * the fsync run on lmdb's write thread. Until issue 10 this was `transactionSync`, which held the
 * event loop for the commit and its fsync: a quarter of the API's CPU profile under load. With
 * `sync` (the default) a queued write resolves only once its commit is flushed to disk
 * (`env.flushed`), as durable as before; each queued operation still runs in arrival order, so
 * "decided in order" holds across calls too.
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
  #inFlight = 0
  #idle: (() => void)[] = []

  constructor(private readonly env: RootDatabase, private readonly what: string) {}

  /** run `fn` inside the next write transaction; its return value resolves the promise */
  run<T>(fn: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new CdpError('state_store_unavailable', `${this.what}: store is closed`))
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => { void this.#flush() })
      }
    })
  }

  async #flush(): Promise<void> {
    this.#scheduled = false
    const ops = this.#queue
    this.#queue = []
    this.#inFlight++
    // one outcome per operation: each runs in a child transaction of the turn's transaction, so
    // one that throws is rolled back and fails alone, and the later ones see the earlier ones' writes
    const outcomes: { ok: boolean; value: unknown }[] = []
    try {
      await this.env.transaction(() => {
        for (const op of ops) {
          try {
            outcomes.push({ ok: true, value: this.env.childTransaction(op.fn) })
          } catch (err) {
            outcomes.push({ ok: false, value: err })
          }
        }
      })
      // durable before anyone is told: with `sync` this waits for the fsync (on lmdb's thread);
      // without it (noSync) there is nothing to wait for and it resolves at the commit
      await this.env.flushed
      ops.forEach((op, i) => {
        const o = outcomes[i]!
        if (o.ok) op.resolve(o.value)
        else op.reject(wrapForeign(o.value, `lmdb ${this.what}`, stateStoreErrorCode))
      })
    } catch (err) {
      // the commit failed (disk full, environment closed): nothing of this turn was written
      for (const op of ops) op.reject(wrapForeign(err, `lmdb ${this.what}`, stateStoreErrorCode))
    } finally {
      this.#inFlight--
      this.#settled()
    }
  }

  #settled(): void {
    if (this.#queue.length === 0 && !this.#scheduled && this.#inFlight === 0) for (const fn of this.#idle.splice(0)) fn()
  }

  /** stop accepting work and wait for queued work to commit */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#queue.length === 0 && !this.#scheduled && this.#inFlight === 0) return
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
