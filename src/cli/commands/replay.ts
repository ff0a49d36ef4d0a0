/**
 * `cdp replay`: rebuild ClickHouse from the compacted events topic with a fresh consumer group,
 * printing progress (done/total, rate, lag, ETA) once a second until the group caught up.
 */
import type { Config } from '../../config/index.js'
import { createLogger } from '../../observability/logger.js'
import { KafkaAdmin } from '../../kafka/index.js'
import { Resources } from '../../app/resources.js'
import { buildShared } from '../../app/shared.js'
import { buildConsumer } from '../../app/consumer.js'
import type { Command, Out } from '../command.js'

export const replayCommand: Command = {
  name: 'replay',
  summary: 'rebuild ClickHouse from the compacted events topic',
  usage: [
    'usage: cdp replay',
    '  reads the events topic from the beginning with a new consumer group and writes every fact',
    '  ClickHouse lacks (stop the consumer first when ClickHouse is embedded chDB)',
  ],
  run: (args, { out, config }) => replay(config(), args, out),
}

export async function replay(config: Readonly<Config>, _args: string[], out: Out): Promise<number> {
  const log = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel })
  const res = new Resources()
  try {
    const shared = await buildShared(config, log, res)
    const groupId = `${config.kafka.consumerGroup}-replay-${Date.now()}`
    const consumer = await buildConsumer(shared, 'replay', { groupId })
    const admin = new KafkaAdmin(shared.kafka)
    res.add('replay-admin', () => admin.close())
    const offsets = await admin.topicOffsets(config.kafka.topic)
    const total = offsets.reduce((s, p) => s + Number(p.high - p.low), 0)
    out(`replay: ${total} records on ${offsets.length} partitions of ${config.kafka.topic} into ${config.clickhouse.database} (group ${groupId})`)
    const t0 = Date.now()
    await consumer.start()
    const caughtUp = async () => {
      const committed = await admin.groupOffsets(groupId, config.kafka.topic)
      return offsets.every((p) => p.high === 0n || (committed.get(p.partition) ?? -1n) >= p.high)
    }
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000))
      const secs = (Date.now() - t0) / 1000
      const done = consumer.runner.handled
      const rate = done / Math.max(secs, 0.001)
      const lag = Math.max(0, total - done)
      const eta = rate > 0 ? `${Math.ceil(lag / rate)} s` : '?'
      const tt = consumer.processor.totals
      out(`replay: ${done}/${total} records, ${rate.toFixed(0)} records/s, lag ${lag}, ETA ${eta}; written ${tt.written}, already present or repeats ${done - tt.written - tt.deadLetters}, dead letters ${tt.deadLetters}`)
      if (await caughtUp()) break
    }
    out(`replay: done in ${((Date.now() - t0) / 1000).toFixed(1)} s; ${consumer.processor.totals.written} facts written`)
    await admin.deleteGroup(groupId).catch(() => undefined)
    return 0
  } finally {
    await res.close(log)
  }
}
