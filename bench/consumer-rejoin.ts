/**
 * How long the group stalls when one of two consumers is SIGKILLed (issue 13). Needs the stack.
 *   npx tsx bench/consumer-rejoin.ts [--session 10000,30000] [--rate 400]
 *
 * Per session timeout: two `cdp serve --role consumer` children (Redis state, ClickHouse through a
 * gateway in this process) share a 6-partition topic fed at a steady rate by the direct-producer
 * kit. Once both hold partitions and commit, one is SIGKILLed. For each partition the stall is
 * the time from the kill until its committed offset moves again; the victim's partitions wait
 * for the session timeout, the survivor's for the rebalance that hands them out again. Then the
 * survivor gets SIGTERM and we time until the group is empty (LeaveGroup: no wait).
 * Numbers go to docs/SCALING.md.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config/index.js'
import { createLogger } from '../src/observability/logger.js'
import { Resources } from '../src/app/resources.js'
import { buildShared } from '../src/app/shared.js'
import { createKafka } from '../src/kafka/client.js'
import { createDirectProducer } from '../src/producer/index.js'
import { startClickHouseGateway } from '../tools/clickhouse-gateway/gateway.js'
import { deletePrefix } from '../test/state/redis-helpers.js'

const { values } = parseArgs({ options: { session: { type: 'string', default: '10000,30000' }, rate: { type: 'string', default: '400' } } })
const RATE = Number(values.rate)
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const run = randomBytes(4).toString('hex')
const dir = mkdtempSync(join(tmpdir(), 'cdp-bench-rejoin-'))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const base = loadConfig({ overrides: {
  dataDir: dir, logLevel: 'silent',
  kafka: { topic: `cdp.benchr.${run}`, deadLetterTopic: `cdp.benchr.${run}.dlq`, partitions: 6 },
  state: { backend: 'redis' }, keys: { prefix: `benchr_${run}` },
} })

async function main(): Promise<void> {
  const log = createLogger({ logLevel: 'silent' })
  const res = new Resources()
  await buildShared(base, log, res)
  await res.close()
  const gw = await startClickHouseGateway({ path: join(dir, 'chdb'), port: 0 })
  const admin = createKafka(base, log, '-bench-admin').admin()
  await admin.connect()
  const producer = await createDirectProducer({ brokers: base.kafka.brokers, topic: base.kafka.topic, registryUrl: base.schemaRegistry.url })
  let n = 0
  let feeding = true
  const feed = (async () => {
    while (feeding) {
      const batch = Array.from({ length: Math.max(1, Math.round(RATE / 10)) }, () => {
        const i = n++
        return { tenant: 'bench', source: 'brand.pos', externalEventId: `r-${run}-${i}`, eventType: 'purchase_completed', identity: { email: `u${i % 5000}@example.com` }, properties: { order_id: `o${i}`, amount: 1, currency: 'EUR' } }
      })
      await producer.sendMany(batch)
      await sleep(100)
    }
  })()
  const lines: string[] = []
  const children: ChildProcess[] = []
  try {
    for (const session of values.session.split(',').map(Number)) {
      const group = `benchr-${run}-${session}`
      const prefix = `benchr_${run}_${session}`
      const start = (name: string): ChildProcess => {
        const cfgFile = join(dir, `${session}-${name}.json`)
        writeFileSync(cfgFile, JSON.stringify({
          dataDir: join(dir, `${session}-${name}`), logLevel: 'warn',
          kafka: { brokers: base.kafka.brokers, topic: base.kafka.topic, deadLetterTopic: base.kafka.deadLetterTopic, partitions: 6, consumerGroup: group, clientId: `cdp-${name}` },
          schemaRegistry: { url: base.schemaRegistry.url },
          state: { backend: 'redis', redisUrl: base.state.redisUrl }, keys: { prefix },
          clickhouse: { url: gw.url, database: `benchr_${run}_${session}` },
          query: { piiHashKey: 'bench-rejoin-pii-hash-key-0123456789' },
          consumer: { sessionTimeoutMs: session },
        }))
        const env = { ...process.env, CDP_CONFIG: cfgFile, CLICKHOUSE_PASSWORD: gw.token, REDIS_URL: '', STATE_BACKEND: '', LOG_LEVEL: '', CLICKHOUSE_URL: '', KAFKA_CONSUMER_GROUP: '', KAFKA_TOPIC: '' }
        const c = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'serve', '--role', 'consumer'], { cwd: ROOT, env, stdio: 'ignore' })
        children.push(c)
        return c
      }
      const committed = async (): Promise<Map<number, number>> => {
        const [g] = await admin.fetchOffsets({ groupId: group, topics: [base.kafka.topic] })
        return new Map((g?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
      }
      const victim = start('victim')
      const survivor = start('survivor')
      // both members hold partitions and every partition has committed lately
      for (;;) {
        const { groups } = await admin.describeGroups([group])
        const c1 = await committed()
        await sleep(1500)
        const c2 = await committed()
        const moving = [...Array(6).keys()].every((p) => (c2.get(p) ?? -1) > (c1.get(p) ?? -1))
        if (groups[0]?.state === 'Stable' && groups[0].members.length === 2 && moving) break
      }
      // per partition, the longest time its committed offset stood still, from the kill until
      // every partition has moved again after the group settled (the feed keeps all of them busy)
      const last = await committed()
      const killedAt = Date.now()
      victim.kill('SIGKILL')
      const movedAt = new Map<number, number>([...Array(6).keys()].map((p) => [p, killedAt]))
      const gap = new Map<number, number>()
      const window = session + 25_000
      while (Date.now() - killedAt < window) {
        const now = await committed()
        const t = Date.now()
        for (const [p, o] of now) {
          if (o > (last.get(p) ?? -1)) {
            gap.set(p, Math.max(gap.get(p) ?? 0, t - movedAt.get(p)!))
            movedAt.set(p, t)
            last.set(p, o)
          }
        }
        await sleep(200)
      }
      for (const [p, at] of movedAt) gap.set(p, Math.max(gap.get(p) ?? 0, Date.now() - at))
      const resumed = gap
      const stalls = [...resumed].sort(([a], [b]) => a - b).map(([p, ms]) => `p${p} ${(ms / 1000).toFixed(1)} s`)
      const stopAt = Date.now()
      survivor.kill('SIGTERM')
      await new Promise((r) => survivor.once('exit', r))
      const exitMs = Date.now() - stopAt
      let emptyMs = -1
      while (Date.now() - stopAt < 60_000) {
        const { groups } = await admin.describeGroups([group])
        if (groups[0]?.state === 'Empty' || groups[0]?.members.length === 0) { emptyMs = Date.now() - stopAt; break }
        await sleep(100)
      }
      lines.push(`session ${session / 1000} s: longest commit gap per partition after SIGKILL of one of two consumers: ` +
        `${stalls.join(', ')} (max ${(Math.max(...resumed.values()) / 1000).toFixed(1)} s); survivor SIGTERM: exit ${exitMs} ms, group empty after ${emptyMs} ms`)
      process.stderr.write(`${lines.at(-1)}\n`)
      await deletePrefix(base.state.redisUrl, prefix)
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    feeding = false
    await feed.catch(() => undefined)
    await producer.close()
    await admin.deleteTopics({ topics: [base.kafka.topic, base.kafka.deadLetterTopic] }).catch(() => undefined)
    await admin.disconnect()
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(`${lines.join('\n')}\n`)
}

main().then(() => process.exit(0), (err: unknown) => { process.stderr.write(`${(err as Error).stack ?? String(err)}\n`); process.exit(1) })
