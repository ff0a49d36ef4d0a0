/**
 * Everything a process opens, with its close path, in the order it was opened. Whoever creates a
 * resource registers its close here at once; closing runs in reverse order, so what was built on
 * top of a resource (the HTTP listener on the producer, the consumer on ClickHouse) goes first.
 */
import type { Logger } from '../observability/logger.js'

export interface Closer { name: string; close: () => Promise<void> }

export class Resources {
  private closers: Closer[] = []
  add(name: string, close: () => Promise<void>): void { this.closers.push({ name, close }) }
  /** closes in reverse order of creation; every closer runs even when one fails */
  async close(log?: Logger): Promise<void> {
    const closers = this.closers.reverse()
    this.closers = []
    const started = Date.now()
    for (const c of closers) {
      try { await c.close() } catch (err) { log?.warn({ err: (err as Error).message, resource: c.name }, 'close failed') }
    }
    // after "draining": what was closed, and how long it took
    if (closers.length > 0) log?.info({ closed: closers.map((c) => c.name), ms: Date.now() - started }, 'closed')
  }
}
