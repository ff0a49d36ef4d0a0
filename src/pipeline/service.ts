/**
 * Consumer side wiring (topic -> dedup -> identity -> ClickHouse). Filled in by the consumer
 * pipeline work (issue #4); until then `cdp serve` runs the API only.
 */
import type { Config } from '../config/index.js'
import type { ConsumerHooks } from '../server.js'

export const consumerHooks: ConsumerHooks | undefined = undefined

export async function replayCommand(_config: Readonly<Config>, _args: string[], out: (line: string) => void): Promise<number> {
  out('cdp replay: the consumer pipeline is not built yet')
  return 1
}
