/**
 * Consumer memory while draining a backlog (issue 13), and how fast it exits. Needs the stack.
 *   npx tsx bench/consumer-memory.ts [--events 200000] [--variants before,after]
 *
 * 1. N facts go straight onto a fresh topic through the direct-producer kit (src/producer).
 * 2. Per variant, a `cdp serve --role consumer` child process (Redis state, ClickHouse through a
 *    gateway in this process, so the child's RSS is the consumer's own, not chDB's) drains the
 *    whole topic with its own group, database and key prefix. Its RSS (/proc/<pid>/status VmRSS)
 *    is sampled every 250 ms; drained = every partition's committed offset at the high watermark.
 * 3. SIGTERM: time until the process exits, and what it logged from "draining" on.
 *
 * Variants: `before` = the settings of issue 13's measurement (kafkajs maxBytes 10 MiB,
 * maxBytesPerPartition 4 MiB), `after` = this build's defaults. Numbers go to docs/BENCHMARKS.md.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig, type DeepPartial, type Config } from '../src/config/index.js'
import { createLogger } from '../src/observability/logger.js'
import { Resources } from '../src/app/resources.js'
import { buildShared } from '../src/app/shared.js'
import { createKafka } from '../src/kafka/client.js'
import { createDirectProducer, type DirectEvent } from '../src/producer/index.js'
import { startClickHouseGateway } from '../tools/clickhouse-gateway/gateway.js'
import { deletePrefix } from '../test/state/redis-helpers.js'

const { values } = parseArgs({ options: {
  events: { type: 'string', default: '200000' }, variants: { type: 'string', default: 'before,after' },
  // run the compiled CLI (npm run build; what production runs) rather than through tsx, whose compiler adds ~100 MB
  built: { type: 'boolean', default: false },
} })
const N = Number(values.events)
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const run = randomBytes(4).toString('hex')
const dir = mkdtempSync(join(tmpdir(), 'cdp-bench-mem-'))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const VARIANTS: Record<string, DeepPartial<Config['consumer']>> = {
  before: { fetchMaxBytes: 10 * 1024 * 1024, fetchMaxBytesPerPartition: 4 * 1024 * 1024 },
  after: {},
  lean: { fetchMaxBytes: 1024 * 1024, fetchMaxBytesPerPartition: 512 * 1024, flushMaxRows: 2000, partitionConcurrency: 2 },
}

const base = loadConfig({ overrides: {
  dataDir: dir, logLevel: 'silent',
  kafka: { topic: `cdp.benchm.${run}`, deadLetterTopic: `cdp.benchm.${run}.dlq`, partitions: 6 },
  state: { backend: 'redis' }, keys: { prefix: `benchm_${run}` },
} })

function fact(i: number): DirectEvent {
  const user = i % 50_000
  return {
    tenant: 'bench', source: 'brand.pos', externalEventId: `m-${run}-${i}`, eventType: 'purchase_completed', occurredAt: Date.now() - 60_000,
    identity: { externalUserId: `L-${user}`, email: `user${user}@example.com`, ...(i % 3 === 0 ? { deviceKey: `dev-${user}` } : {}) },
    properties: { order_id: `order_${i}`, amount: 10 + (i % 100), currency: 'USD', store_id: `store_${i % 40}` },
  }
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? 0 : Number(m[1]) / 1024
  } catch { return 0 }
}

async function main(): Promise<void> {
  const log = createLogger({ logLevel: 'silent' })
  // the topic and the registered value schema, as a running service leaves them
  const res = new Resources()
  await buildShared(base, log, res)
  await res.close()

  const producer = await createDirectProducer({ brokers: base.kafka.brokers, topic: base.kafka.topic, registryUrl: base.schemaRegistry.url, batchMaxMessages: 2000 })
  const t0 = Date.now()
  for (let at = 0; at < N; at += 10_000) {
    await Promise.all(Array.from({ length: 10 }, (_, k) => {
      const from = at + k * 1000
      return from >= N ? Promise.resolve([]) : producer.sendMany(Array.from({ length: Math.min(1000, N - from) }, (_, j) => fact(from + j)))
    }))
  }
  await producer.close()
  process.stderr.write(`${N} facts on ${base.kafka.topic} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)

  const gw = await startClickHouseGateway({ path: join(dir, 'chdb'), port: 0 })
  const kafka = createKafka(base, log, '-bench-admin')
  const admin = kafka.admin()
  await admin.connect()
  const results: string[] = []
  try {
    for (const name of values.variants.split(',')) {
      const over = VARIANTS[name]
      if (over === undefined) throw new Error(`unknown variant ${name}`)
      const group = `benchm-${run}-${name}`
      const prefix = `benchm_${run}_${name}`
      const cfgFile = join(dir, `${name}.json`)
      const cfg = {
        dataDir: join(dir, name), logLevel: 'info',
        kafka: { brokers: base.kafka.brokers, topic: base.kafka.topic, deadLetterTopic: base.kafka.deadLetterTopic, partitions: 6, consumerGroup: group },
        schemaRegistry: { url: base.schemaRegistry.url },
        state: { backend: 'redis', redisUrl: base.state.redisUrl }, keys: { prefix },
        clickhouse: { url: gw.url, database: `benchm_${run}_${name}` },
        query: { piiHashKey: 'bench-memory-pii-hash-key-0123456789' },
        consumer: over,
      }
      writeFileSync(cfgFile, JSON.stringify(cfg))
      const env = { ...process.env, CDP_CONFIG: cfgFile, CLICKHOUSE_PASSWORD: gw.token, REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '', CLICKHOUSE_URL: '', KAFKA_CONSUMER_GROUP: '', KAFKA_TOPIC: '' }
      const entry = values.built ? [join(ROOT, 'bin/cdp.js')] : ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')]
      const child = spawn(process.execPath, [...entry, 'serve', '--role', 'consumer'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let output = ''
      const logFile = join(tmpdir(), `cdp-bench-mem-${run}-${name}.log`)
      process.stderr.write(`  ${name}: consumer log in ${logFile}\n`)
      const onData = (d: Buffer) => { output += d.toString(); appendFileSync(logFile, d) }
      child.stdout.on('data', onData)
      child.stderr.on('data', onData)
      const exited = new Promise<void>((r) => child.on('exit', () => r()))
      let peak = 0
      const sampler = setInterval(() => { peak = Math.max(peak, rssMb(child.pid!)) }, 250)
      const started = Date.now()
      let lastReport = started
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the consumer exited:\n${output}`)
        const high = await admin.fetchTopicOffsets(base.kafka.topic)
        const [g] = await admin.fetchOffsets({ groupId: group, topics: [base.kafka.topic] })
        const committed = new Map((g?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
        if (high.every((h) => committed.get(h.partition) === Number(h.high))) break
        if (Date.now() - lastReport > 10_000) {
          lastReport = Date.now()
          const done = [...committed.values()].reduce((a, b) => a + Math.max(0, b), 0)
          process.stderr.write(`  ${name}: ${done}/${N} committed after ${((Date.now() - started) / 1000).toFixed(0)} s, RSS ${rssMb(child.pid!).toFixed(0)} MB (peak ${peak.toFixed(0)})\n`)
        }
        await sleep(500)
      }
      const drainS = (Date.now() - started) / 1000
      const steady = rssMb(child.pid!)
      clearInterval(sampler)
      const mark = output.length
      const stopAt = Date.now()
      child.kill('SIGTERM')
      await exited
      const exitMs = Date.now() - stopAt
      const after = output.slice(mark).split('\n').filter((l) => l.trim() !== '').map((l) => {
        try { const o = JSON.parse(l) as Record<string, unknown>; delete o.time; delete o.pid; delete o.hostname; return JSON.stringify(o) } catch { return l }
      })
      results.push(`${name}: ${JSON.stringify(over)} peak RSS ${peak.toFixed(0)} MB (at drained ${steady.toFixed(0)} MB), ` +
        `drained ${N} in ${drainS.toFixed(1)} s (${Math.round(N / drainS)}/s incl. start-up), exit ${exitMs} ms`)
      process.stderr.write(`${results.at(-1)}\n  logged on stop:\n    ${after.join('\n    ')}\n`)
      await deletePrefix(base.state.redisUrl, prefix)
    }
  } finally {
    await admin.deleteTopics({ topics: [base.kafka.topic, base.kafka.deadLetterTopic] }).catch(() => undefined)
    await admin.disconnect()
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(`${results.join('\n')}\n`)
}

main().then(() => process.exit(0), (err: unknown) => { process.stderr.write(`${(err as Error).stack ?? String(err)}\n`); process.exit(1) })
