/**
 * Topic configuration is part of correctness: the events topic must be compacted (the key is
 * the dedup tuple, replays rebuild ClickHouse from it) and must not compact records before the
 * consumers have read them. Start-up creates the topic when missing and refuses one whose
 * settings would break those guarantees, naming the setting.
 */
import kafkajs, { type Admin } from 'kafkajs'

// kafkajs is CommonJS: Node's ESM loader exposes its runtime values on the default export only
const { ConfigResourceTypes } = kafkajs
import type { Config } from '../config/index.js'
import { CdpError } from '../errors.js'
import type { KafkaClient } from './client.js'
import { kafkaError } from './errors.js'

export interface TopicProblem { setting: string; expected: string; actual: string }

export function eventsTopicConfig(config: Readonly<Config>): Record<string, string> {
  return {
    'cleanup.policy': 'compact',
    'min.compaction.lag.ms': String(config.kafka.minCompactionLagMs),
    'min.insync.replicas': String(config.kafka.minInsyncReplicas),
  }
}

/** Compare an existing topic with what the service needs; every problem is listed. */
export function checkEventsTopic(
  config: Readonly<Config>,
  actual: { partitions: number; replicationFactor: number; configs: Record<string, string | undefined> },
): TopicProblem[] {
  const k = config.kafka
  const problems: TopicProblem[] = []
  const policy = (actual.configs['cleanup.policy'] ?? '').split(',').map((s) => s.trim()).sort().join(',')
  // "compact,delete" would let retention delete facts that replays need
  if (policy !== 'compact') problems.push({ setting: 'cleanup.policy', expected: 'compact', actual: policy || '(unset)' })
  const lag = Number(actual.configs['min.compaction.lag.ms'] ?? '0')
  if (!(lag >= k.minCompactionLagMs)) {
    problems.push({ setting: 'min.compaction.lag.ms', expected: `>= ${k.minCompactionLagMs}`, actual: String(actual.configs['min.compaction.lag.ms']) })
  }
  const isr = Number(actual.configs['min.insync.replicas'] ?? '1')
  if (!(isr >= k.minInsyncReplicas)) {
    problems.push({ setting: 'min.insync.replicas', expected: `>= ${k.minInsyncReplicas}`, actual: String(isr) })
  }
  // a different partition count moves keys to other partitions: ordering per tuple would break
  if (actual.partitions !== k.partitions) {
    problems.push({ setting: 'partitions', expected: String(k.partitions), actual: String(actual.partitions) })
  }
  if (actual.replicationFactor < k.replicationFactor) {
    problems.push({ setting: 'replication.factor', expected: `>= ${k.replicationFactor}`, actual: String(actual.replicationFactor) })
  }
  return problems
}

async function describeTopic(admin: Admin, topic: string) {
  const meta = await admin.fetchTopicMetadata({ topics: [topic] })
  const t = meta.topics[0]
  if (t === undefined) throw new Error(`no metadata for topic ${topic}`)
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
  })
  const configs: Record<string, string | undefined> = {}
  for (const entry of described.resources[0]?.configEntries ?? []) configs[entry.configName] = entry.configValue
  return {
    partitions: t.partitions.length,
    replicationFactor: Math.min(...t.partitions.map((p) => p.replicas.length)),
    configs,
  }
}

/**
 * Create the events and dead-letter topics when missing; verify the events topic. Returns its
 * partition count as read from the broker (equal to config.kafka.partitions, or this throws): the
 * consumer places keys with it (src/pipeline/partition-step.ts).
 */
export async function ensureTopics(kafka: KafkaClient, config: Readonly<Config>): Promise<{ created: string[]; partitions: number }> {
  const admin = kafka.admin()
  try {
    await admin.connect()
    const existing = new Set(await admin.listTopics())
    const created: string[] = []
    const wanted = [
      { topic: config.kafka.topic, configEntries: eventsTopicConfig(config) },
      // dead letters are evidence, not state: time-based retention, not compaction
      { topic: config.kafka.deadLetterTopic, configEntries: { 'cleanup.policy': 'delete', 'retention.ms': String(30 * 24 * 3600_000) } },
    ].filter((w) => !existing.has(w.topic))
    if (wanted.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: wanted.map((w) => ({
          topic: w.topic,
          numPartitions: config.kafka.partitions,
          replicationFactor: config.kafka.replicationFactor,
          configEntries: Object.entries(w.configEntries).map(([name, value]) => ({ name, value })),
        })),
      })
      created.push(...wanted.map((w) => w.topic))
    }
    const described = await describeTopic(admin, config.kafka.topic)
    const problems = checkEventsTopic(config, described)
    if (problems.length > 0) {
      throw new CdpError('topic_misconfigured',
        `topic ${config.kafka.topic} is misconfigured: ` +
        problems.map((p) => `${p.setting} is ${p.actual}, expected ${p.expected}`).join('; '),
        { details: problems.map((p) => ({ pointer: `/${p.setting}`, code: 'topic_setting', message: `expected ${p.expected}, got ${p.actual}` })) })
    }
    return { created, partitions: described.partitions }
  } catch (err) {
    throw kafkaError(err, `cannot verify topics on ${config.kafka.brokers.join(',')}`)
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

export async function readTopicSettings(kafka: KafkaClient, topic: string) {
  const admin = kafka.admin()
  await admin.connect()
  try { return await describeTopic(admin, topic) } finally { await admin.disconnect() }
}

export interface PartitionOffsets { partition: number; low: bigint; high: bigint }

/**
 * The admin operations the service needs, on one lazily connected admin client: a readiness
 * probe, offsets for replay progress, and cleaning up a replay's consumer group. Close it where it
 * was created.
 */
export class KafkaAdmin {
  private admin: Admin | undefined
  private closed = false

  constructor(private readonly kafka: KafkaClient) {}

  private connecting: Promise<Admin> | undefined

  /** one connection even when calls overlap (two concurrent first calls once opened two, leaking one) */
  private connected(): Promise<Admin> {
    // a probe or a lag read still running when the process closes must not open a new connection
    if (this.closed) return Promise.reject(new Error('the Kafka admin client is closed'))
    if (this.admin !== undefined) return Promise.resolve(this.admin)
    this.connecting ??= (async () => {
      const admin = this.kafka.admin()
      try { await admin.connect() } finally { this.connecting = undefined }
      if (this.closed) { await admin.disconnect().catch(() => undefined); throw new Error('the Kafka admin client is closed') }
      this.admin = admin
      return admin
    })()
    return this.connecting
  }

  /** true when the cluster answers metadata for `topic`; a failure drops the connection for the next try */
  async probe(topic: string): Promise<boolean> {
    try {
      await (await this.connected()).fetchTopicMetadata({ topics: [topic] })
      return true
    } catch {
      await this.drop()
      return false
    }
  }

  /** first and next offset of every partition of `topic` */
  async topicOffsets(topic: string): Promise<PartitionOffsets[]> {
    try {
      const admin = await this.connected()
      const high = await admin.fetchTopicOffsets(topic)
      const low = await admin.fetchTopicOffsetsByTimestamp(topic, 0)
      return high.map((h) => ({
        partition: h.partition,
        low: BigInt(low.find((l) => l.partition === h.partition)?.offset ?? '0'),
        high: BigInt(h.high),
      }))
    } catch (err) { throw kafkaError(err, `reading the offsets of ${topic}`) }
  }

  /** the group's committed offsets on `topic` by partition (partitions without a commit are absent) */
  async groupOffsets(groupId: string, topic: string): Promise<Map<number, bigint>> {
    try {
      const [t] = await (await this.connected()).fetchOffsets({ groupId, topics: [topic] })
      const out = new Map<number, bigint>()
      for (const p of t?.partitions ?? []) if (Number(p.offset) >= 0) out.set(p.partition, BigInt(p.offset))
      return out
    } catch (err) { throw kafkaError(err, `reading the offsets of group ${groupId}`) }
  }

  async deleteGroup(groupId: string): Promise<void> {
    try { await (await this.connected()).deleteGroups([groupId]) } catch (err) { throw kafkaError(err, `deleting group ${groupId}`) }
  }

  async close(): Promise<void> {
    this.closed = true
    await this.drop()
  }

  /** forgets the connection; the next call opens another */
  private async drop(): Promise<void> {
    const admin = this.admin
    this.admin = undefined
    await admin?.disconnect().catch(() => undefined)
  }
}
