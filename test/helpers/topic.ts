/**
 * Watches topics from the beginning for the whole test: every record seen so far, and a poll
 * with a deadline for the one a test waits for.
 */
import type { Config } from '../../src/config/index.js'
import { createKafka } from '../../src/kafka/client.js'
import { createLogger } from '../../src/observability/logger.js'
import { uniq, type TestContext } from './config.js'
import { waitFor } from './process.js'

export interface RawRecord { topic: string; partition: number; offset: string; key: Buffer | null; value: Buffer | null; headers: Record<string, string> }

export async function tapTopics<R = RawRecord>(t: TestContext, cfg: Readonly<Config>, topics: string[], shape: (r: RawRecord) => R = (r) => r as R) {
  const kafka = createKafka(cfg, createLogger({ logLevel: 'silent' }), '-test-tap')
  const consumer = kafka.consumer({ groupId: uniq('tap') })
  const seen: R[] = []
  await consumer.connect()
  t.teardown(() => consumer.disconnect())
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(Array.isArray(v) ? v[0] : v)
      seen.push(shape({ topic, partition, offset: message.offset, key: message.key ?? null, value: message.value ?? null, headers }))
    },
  })
  return { until: <T>(what: string, pick: (all: R[]) => T | undefined) => waitFor(what, async () => pick(seen), 30_000, 100) }
}
