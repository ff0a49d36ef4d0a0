/**
 * The direct-producer examples run against the real stack, as a producer team would run them:
 * examples/direct-producer.ts (kafkajs, through src/producer) and examples/python/produce.py
 * (confluent-kafka with its AvroSerializer, partitioner murmur2_random, in a virtualenv made by
 * scripts/python-env.sh). For each: every fact is stored once, on the partition murmur2 names for
 * its key; the conflicting payload it sends under its first tuple is dead-lettered as
 * tuple_conflict; ClickHouse keeps the first fact.
 */
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { encodeKey } from '../../src/avro/key.js'
import { partitionFor } from '../../src/avro/partition.js'
import { startApi } from '../helpers/api.js'
import { startPipeline, type TestPipeline } from '../helpers/pipeline.js'
import { tempDir, uniq } from '../helpers/config.js'
import { ROOT } from '../helpers/process.js'

const run = promisify(execFile)

interface Summary {
  facts: { externalEventId: string; eventId: string; key: string; partition?: number; murmur2?: number }[]
  conflict: { eventId: string; key: string }
}
interface EventRow { external_event_id: string; event_id: string; kafka_partition: number; properties: string; schema_version: number | null }

/** the JSON summary an example prints as its last line */
function summaryOf(stdout: string): Summary {
  const last = stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(last) as Summary
}

void t.test('direct-producer examples against the real stack', async (t) => {
  // the service creates the topic (compacted, 3 partitions here) and registers the value schema
  const api = await startApi(t)
  const cfg = api.config
  const db = cfg.clickhouse.database
  const p = await startPipeline(t, cfg)

  /** the example's facts stored once each, on murmur2's partition; its conflict dead-lettered; the first fact kept */
  async function checkOutcome(t: Test, p: TestPipeline, source: string, s: Summary, firstPoints: number) {
    const ids = s.facts.map((f) => f.externalEventId)
    const list = ids.map((id) => `'${id}'`).join(',')
    const dead = await p.until<{ reason_code: string; key: string }>(
      `SELECT reason_code, key FROM ${db}.dead_letters WHERE key = '${s.conflict.key.replaceAll("'", "''")}'`, (r) => r.length >= 1)
    t.same(dead.map((d) => d.reason_code), ['tuple_conflict'], 'the conflicting payload is dead-lettered once, as tuple_conflict')
    const rows = await p.until<EventRow>(
      `SELECT external_event_id, event_id, kafka_partition, properties, schema_version FROM ${db}.events WHERE source = '${source}' AND external_event_id IN (${list}) ORDER BY external_event_id`,
      (r) => r.length >= ids.length)
    t.equal(rows.length, ids.length, 'every fact stored once')
    for (const f of s.facts) {
      const row = rows.find((r) => r.external_event_id === f.externalEventId)
      t.equal(row?.event_id, f.eventId, `${f.externalEventId}: the first record's event id`)
      const expected = partitionFor(encodeKey({ tenant: 'acme', source, externalEventId: f.externalEventId }), cfg.kafka.partitions)
      t.equal(row?.kafka_partition, expected, `${f.externalEventId}: on the partition murmur2 names`)
      if (f.partition !== undefined) t.equal(f.partition, expected, `${f.externalEventId}: the producer reported that partition`)
    }
    const first = rows.find((r) => r.external_event_id === s.facts[0]!.externalEventId)
    t.equal((JSON.parse(first?.properties ?? '{}') as { points?: number }).points, firstPoints, 'the first fact survives the conflict')
    t.equal(s.conflict.key, s.facts[0]!.key, 'the conflict was sent under the first tuple')
    const all = await p.rows(`SELECT count() AS n FROM ${db}.events WHERE source = '${source}'`)
    t.same(all, [{ n: ids.length }], 'nothing else stored under the source')
  }

  await t.test('kafkajs: examples/direct-producer.ts', async (t) => {
    const runId = uniq('js')
    const { stdout } = await run(join(ROOT, 'node_modules', '.bin', 'tsx'), [join(ROOT, 'examples', 'direct-producer.ts'), runId], {
      cwd: ROOT,
      timeout: 90_000,
      env: {
        ...process.env, CDP_CONFIG: '', LOG_LEVEL: 'warn', CDP_DATA_DIR: tempDir(t),
        KAFKA_BROKERS: cfg.kafka.brokers.join(','), KAFKA_TOPIC: cfg.kafka.topic, KAFKA_DLQ_TOPIC: cfg.kafka.deadLetterTopic,
        KAFKA_PARTITIONS: String(cfg.kafka.partitions), SCHEMA_REGISTRY_URL: cfg.schemaRegistry.url,
      },
    })
    const s = summaryOf(stdout)
    t.equal(s.facts.length, 3)
    t.ok(s.facts.every((f) => f.externalEventId.includes(runId)))
    await checkOutcome(t, p, 'svc.loyalty', s, 10)
  })

  // made here as well as in .ci/run, so `npx tap test/integration/examples.test.ts` works alone
  // (asynchronously: the consumer keeps heartbeating while pip installs)
  const env = await run('bash', [join(ROOT, 'scripts', 'python-env.sh')], { cwd: ROOT, timeout: 180_000 })
    .then(({ stdout }) => ({ python: stdout.trim().split('\n').pop()!, failed: false as const }))
    .catch((err: Error & { stderr?: string }) => ({ python: '', failed: (err.stderr ?? err.message).trim().split('\n').pop() }))
  const noPython = env.failed === false ? false : `no Python virtualenv: bash scripts/python-env.sh failed (${env.failed})`
  await t.test('Python: examples/python/produce.py (confluent-kafka, AvroSerializer, murmur2_random)', { skip: noPython }, async (t) => {
    const python = env.python
    const check = await run(python, [join(ROOT, 'examples', 'python', 'check_vectors.py')], { cwd: ROOT })
    t.match(check.stdout, /(\d+) of \1 key vectors match/, 'the Python key and partition code matches the test vectors')

    const runId = uniq('py')
    const { stdout } = await run(python, [join(ROOT, 'examples', 'python', 'produce.py'),
      '--brokers', cfg.kafka.brokers.join(','), '--topic', cfg.kafka.topic, '--registry', cfg.schemaRegistry.url,
      '--source', 'svc.loyalty.py', '--run', runId, '--count', '10'], { cwd: ROOT, timeout: 90_000 })
    const s = summaryOf(stdout)
    t.equal(s.facts.length, 10)
    await checkOutcome(t, p, 'svc.loyalty.py', s, 10)
    const [row] = await p.rows<EventRow>(`SELECT schema_version FROM ${db}.events WHERE event_id = '${s.facts[0]!.eventId}'`)
    t.equal(row?.schema_version, 1, 'contractVersion as the producer sent it')
  })

  await t.test('Python with librdkafka\'s default partitioner (consistent_random): misplaced facts dead-lettered wrong_partition', { skip: noPython }, async (t) => {
    const source = 'svc.loyalty.crc'
    const { stdout } = await run(env.python, [join(ROOT, 'examples', 'python', 'produce.py'),
      '--brokers', cfg.kafka.brokers.join(','), '--topic', cfg.kafka.topic, '--registry', cfg.schemaRegistry.url,
      '--source', source, '--run', uniq('crc'), '--count', '12', '--partitioner', 'consistent_random'], { cwd: ROOT, timeout: 90_000 })
    const s = summaryOf(stdout)
    const misplaced = s.facts.filter((f) => f.partition !== f.murmur2)
    const placed = s.facts.filter((f) => f.partition === f.murmur2)
    t.ok(misplaced.length > 0, `${misplaced.length} of ${s.facts.length} facts on another partition than murmur2 names`)
    const keys = misplaced.map((f) => `'${f.key.replaceAll("'", "''")}'`).join(',')
    const dead = await p.until<{ key: string; reason_code: string; reason: string }>(
      `SELECT key, reason_code, reason FROM ${db}.dead_letters WHERE key IN (${keys})`, (r) => r.length >= misplaced.length)
    for (const f of misplaced) {
      const rows = dead.filter((d) => d.key === f.key)
      // the conflict under the first tuple sits on the same (wrong) partition: a second wrong_partition
      t.ok(rows.length >= 1 && rows.every((d) => d.reason_code === 'wrong_partition'), `${f.externalEventId}: wrong_partition`)
      t.match(rows[0]?.reason, `names partition ${f.murmur2} of ${cfg.kafka.partitions}`, `${f.externalEventId}: the partition to use`)
    }
    const list = s.facts.map((f) => `'${f.externalEventId}'`).join(',')
    const stored = await p.until<{ external_event_id: string }>(
      `SELECT external_event_id FROM ${db}.events WHERE source = '${source}' AND external_event_id IN (${list})`, (r) => r.length >= placed.length)
    t.same(stored.map((r) => r.external_event_id).sort(), placed.map((f) => f.externalEventId).sort(), 'only the facts on their murmur2 partition are stored')
  })
})
