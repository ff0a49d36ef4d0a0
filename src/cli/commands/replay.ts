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
import { topicRecords, untilCaughtUp } from '../catch-up.js'

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
    const total = topicRecords(offsets)
    out(`replay: ${total} records on ${offsets.length} partitions of ${config.kafka.topic} into ${config.clickhouse.database} (group ${groupId})`)
    await consumer.start()
    const secs = await untilCaughtUp({
      admin, groupId, topic: config.kafka.topic, offsets, out, handled: () => consumer.runner.handled,
      line: ({ done, total, rate, left, eta }) => {
        const tt = consumer.processor.totals
        return `replay: ${done}/${total} records, ${rate.toFixed(0)} records/s, lag ${left}, ETA ${eta}; written ${tt.written}, already present or repeats ${done - tt.written - tt.deadLetters}, dead letters ${tt.deadLetters}`
      },
    })
    out(`replay: done in ${secs.toFixed(1)} s; ${consumer.processor.totals.written} facts written`)
    await admin.deleteGroup(groupId).catch(() => undefined)
    return 0
  } finally {
    await res.close(log)
  }
}
