/**
 * `cdp state rebuild`: restore the state store (claims, dedup records, identity graph) from the
 * compacted events topic after the LMDB directory or the Redis keys were lost. The logic is in
 * src/pipeline/rebuild.ts; this command wires it to a fresh consumer group and prints progress.
 */
import { parseArgs } from 'node:util'
import type { Config } from '../../config/index.js'
import { createLogger } from '../../observability/logger.js'
import { ConsumerRunner, KafkaAdmin, consumerOptions } from '../../kafka/index.js'
import { StateRebuild, type RebuildTotals } from '../../pipeline/rebuild.js'
import { Resources } from '../../app/resources.js'
import { buildShared } from '../../app/shared.js'
import { buildConsumer } from '../../app/consumer.js'
import type { Command, Out } from '../command.js'
import { topicRecords, untilCaughtUp } from '../catch-up.js'

export const stateCommand: Command = {
  name: 'state',
  summary: 'recover the state store (claims, dedup, identity graph) from the events topic',
  usage: [
    'usage: cdp state rebuild',
    '  reads the events topic from the beginning with a new consumer group and restores the',
    '  committed claims and dedup records (the first record per tuple wins) and the identity graph;',
    '  facts ClickHouse lacks are written too. Run it with the consumer stopped (embedded chDB has',
    '  one owner), against the state store the service will use (LMDB dir or Redis prefix).',
  ],
  async run(args, { out, config }) {
    const { positionals } = parseArgs({ args, allowPositionals: true, options: {} })
    if (positionals[0] !== 'rebuild' || positionals.length !== 1) { out(this.usage.join('\n')); return 2 }
    return rebuildState(config(), out)
  },
}

const fmt = (t: RebuildTotals) =>
  `claims restored ${t.claimsRestored}, already present ${t.claimsPresent}, differing ${t.claimsDiffering}; identities resolved for ${t.identitiesResolved} facts`

export async function rebuildState(config: Readonly<Config>, out: Out, opts: { progressEveryMs?: number } = {}): Promise<number> {
  const log = createLogger({ logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel })
  const res = new Resources()
  try {
    const shared = await buildShared(config, log, res)
    const groupId = `${config.kafka.consumerGroup}-rebuild-${Date.now()}`
    const consumer = await buildConsumer(shared, 'replay', { groupId })
    const rebuild = new StateRebuild({
      replay: consumer.processor, codec: shared.codec, claims: shared.stores.claims, dedup: shared.stores.dedup,
      identity: consumer.identity, claimLeaseMs: config.state.claimLeaseMs, log,
    })
    const admin = new KafkaAdmin(shared.kafka)
    res.add('rebuild-admin', () => admin.close())
    const offsets = await admin.topicOffsets(config.kafka.topic)
    const total = topicRecords(offsets)
    out(`state rebuild: ${total} records on ${offsets.length} partitions of ${config.kafka.topic} into the ${config.state.backend} state store (group ${groupId})`)
    const runner = new ConsumerRunner(shared.kafka, consumerOptions(config, groupId), rebuild, log)
    res.add('rebuild-consumer', () => runner.stop())
    await runner.start()
    const secs = await untilCaughtUp({
      admin, groupId, topic: config.kafka.topic, offsets, out, handled: () => rebuild.totals.records,
      ...(opts.progressEveryMs === undefined ? {} : { everyMs: opts.progressEveryMs }),
      line: ({ done, total, rate, eta }) => `state rebuild: ${done}/${total} records, ${rate.toFixed(0)} records/s, ETA ${eta}; ${fmt(rebuild.totals)}`,
    })
    out(`state rebuild: done in ${secs.toFixed(1)} s; ${fmt(rebuild.totals)}; ${consumer.processor.totals.written} facts ClickHouse lacked written`)
    await admin.deleteGroup(groupId).catch(() => undefined)
    return 0
  } finally {
    await res.close(log)
  }
}
