/**
 * Follows topics from their current end (`cdp tail`): a throwaway consumer group that reads the
 * end offsets first and seeks there once it joins, so every record produced after `tailTopics`
 * resolves is seen, whenever the join completes. The group is deleted on stop.
 */
import type { KafkaClient } from './client.js'
import type { InboundRecord } from './consumer.js'

export interface TailedRecord extends InboundRecord {
  /** record headers as UTF-8 text */
  headers: Record<string, string>
}

export interface Tailing {
  stop(): Promise<void>
}

export async function tailTopics(
  kafka: KafkaClient, topics: readonly string[], onRecord: (r: TailedRecord) => Promise<void> | void, groupId: string,
): Promise<Tailing> {
  const admin = kafka.admin()
  await admin.connect()
  const ends: { topic: string; partition: number; offset: string }[] = []
  try {
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) ends.push({ topic, partition: p.partition, offset: p.high })
    }
  } catch (err) {
    await admin.disconnect()
    throw err
  }
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false })
  let seeked = false
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (seeked) return
    seeked = true
    for (const e of ends) consumer.seek({ topic: e.topic, partition: e.partition, offset: e.offset })
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [...topics], fromBeginning: false })
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(message.headers ?? {})) {
        const one = Array.isArray(v) ? v[0] : v
        if (one !== undefined) headers[k] = Buffer.isBuffer(one) ? one.toString('utf8') : String(one)
      }
      await onRecord({ topic, partition, offset: message.offset, key: message.key ?? null, value: message.value ?? null, timestamp: message.timestamp, headers })
    },
  })
  let stopped: Promise<void> | undefined
  return {
    stop: () => (stopped ??= (async () => {
      await consumer.disconnect()
      await admin.deleteGroups([groupId]).catch(() => undefined)
      await admin.disconnect()
    })()),
  }
}
