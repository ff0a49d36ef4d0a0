/**
 * Reads single records back by (partition, offset). Used rarely (re-asserting a first fact after a
 * conflicting direct write), so a short-lived consumer with its own group is acceptable.
 */
import type { KafkaClient } from './client.js'

export interface FetchedRecord { key: Buffer | null; value: Buffer | null; headers: Record<string, unknown> }

export async function fetchRecords(kafka: KafkaClient, topic: string, refs: { partition: number; offset: string }[], timeoutMs = 20_000): Promise<Map<string, FetchedRecord>> {
  const out = new Map<string, FetchedRecord>()
  if (refs.length === 0) return out
  const wanted = new Set(refs.map((r) => `${r.partition}/${r.offset}`))
  const consumer = kafka.consumer({ groupId: `cdp-fetch-${Date.now()}-${Math.random().toString(36).slice(2)}`, allowAutoTopicCreation: false })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    let resolveDone!: () => void
    const done = new Promise<void>((r) => { resolveDone = r })
    // where each partition must start: the smallest wanted offset in it
    const start = new Map<number, bigint>()
    for (const r of refs) {
      const o = BigInt(r.offset)
      const cur = start.get(r.partition)
      if (cur === undefined || o < cur) start.set(r.partition, o)
    }
    let seeked = false
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (seeked) return
      seeked = true
      for (const [partition, offset] of start) consumer.seek({ topic, partition, offset: offset.toString() })
    })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const id = `${partition}/${message.offset}`
        if (wanted.has(id) && !out.has(id)) {
          out.set(id, { key: message.key ?? null, value: message.value ?? null, headers: message.headers ?? {} })
          if (out.size === wanted.size) resolveDone()
        }
      },
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([done, new Promise<void>((r) => { timer = setTimeout(r, timeoutMs) })])
    clearTimeout(timer)
  } finally {
    await consumer.disconnect()
  }
  return out
}
