/**
 * Kafka producer clients side by side (issue 10, item 2). Needs the stack (`npm run stack up`).
 *   npm run bench:kafka [-- --seconds 5 --rounds 3 --batch 500 --value-bytes 250]
 * On one fresh topic, in ONE process, rounds of these phases (the order of the clients alternates
 * every round, so drift in the shared machine's load hits both alike):
 *   raw        the library's idempotent producer, acks=all, `batch`-record sends, one in flight
 *   bp-batch   the BatchingProducer over that library: 4 callers sending `batch` records each
 *   bp-single  the BatchingProducer over that library: 64 callers sending one record each
 * For each: records/s and CPU µs per record of this process (process.cpuUsage, user+system;
 * the broker runs elsewhere). Prints the medians over rounds, the ratios platformatic ÷ kafkajs,
 * and machine-readable lines `ratio <name> <value>` (`platformatic_vs_kafkajs` is raw records/s).
 */
import { parseArgs } from 'node:util'
import { cpus, loadavg, totalmem } from 'node:os'
import { randomBytes } from 'node:crypto'
import { loadConfig, type Config } from '../src/config/index.js'
import { createLogger } from '../src/observability/logger.js'
import { BatchingProducer, createKafka, ensureTopics, producerOptions, type KafkaClient } from '../src/kafka/index.js'
import { openRawProducer } from './lib/raw-producer.js'

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' },
  batch: { type: 'string', default: '500' }, 'value-bytes': { type: 'string', default: '250' },
} })
const seconds = Number(values.seconds)
/** the length of the phase being run (the warm-up is shorter) */
let phaseSeconds = seconds
const rounds = Number(values.rounds)
const batchSize = Number(values.batch)
const valueBytes = Number(values['value-bytes'])

type Client = 'kafkajs' | 'platformatic'
type Phase = 'raw' | 'bp-batch' | 'bp-single'
interface Sample { records: number; seconds: number; cpuUs: number }

// a pool of distinct records (keys like the encoded tuple keys, ~40 bytes), cycled
const pool = Array.from({ length: 20_000 }, () => ({ key: randomBytes(20).toString('hex'), value: randomBytes(valueBytes) }))
  .map((r) => ({ key: Buffer.from(r.key), value: r.value }))
let cursor = 0
const next = (n: number) => {
  const out = new Array<{ key: Buffer; value: Buffer }>(n)
  for (let i = 0; i < n; i++) { out[i] = pool[cursor]!; cursor = (cursor + 1) % pool.length }
  return out
}

/** runs `work` for `seconds`, counting records and this process's CPU time */
async function measure(work: (stop: () => boolean) => Promise<number>): Promise<Sample> {
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const end = Date.now() + phaseSeconds * 1000
  const records = await work(() => Date.now() >= end)
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  return { records, seconds: elapsed, cpuUs: (cpu.user + cpu.system) / Math.max(1, records) }
}

/** the raw producer of `client`, `batch`-record sends, one in flight (bench/lib/raw-producer.ts) */
async function raw(client: Client, kafka: KafkaClient, config: Readonly<Config>, topic: string): Promise<Sample> {
  const producer = await openRawProducer(client, kafka, config)
  try {
    return await measure(async (stop) => {
      let n = 0
      while (!stop()) { await producer.send(topic, next(batchSize)); n += batchSize }
      return n
    })
  } finally { await producer.close() }
}

async function batching(kafka: KafkaClient, config: Readonly<Config>, callers: number, perSend: number): Promise<Sample> {
  const log = createLogger({ logLevel: 'warn' })
  const producer = new BatchingProducer(kafka, producerOptions(config), log)
  await producer.connect()
  try {
    return await measure(async (stop) => {
      let n = 0
      await Promise.all(Array.from({ length: callers }, async () => {
        while (!stop()) { await producer.send(next(perSend)).done; n += perSend }
      }))
      return n
    })
  } finally { await producer.close() }
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }

async function main(): Promise<void> {
  const topicName = `cdp.bench.clients.${Date.now()}`
  const base = loadConfig({ overrides: { logLevel: 'warn', kafka: { topic: topicName, deadLetterTopic: `${topicName}.dlq` } } })
  const configs: Record<Client, Readonly<Config>> = {
    kafkajs: loadConfig({ overrides: { logLevel: 'warn', kafka: { ...base.kafka, client: 'kafkajs' } } }),
    platformatic: loadConfig({ overrides: { logLevel: 'warn', kafka: { ...base.kafka, client: 'platformatic' } } }),
  }
  const log = createLogger({ logLevel: 'warn' })
  const kafka = createKafka(base, log, '-bench')
  const { partitions } = await ensureTopics(kafka, base)

  const phases: Record<Phase, (c: Client) => Promise<Sample>> = {
    raw: (c) => raw(c, kafka, configs[c], topicName),
    'bp-batch': (c) => batching(kafka, configs[c], 4, batchSize),
    'bp-single': (c) => batching(kafka, configs[c], 64, 1),
  }
  const samples = new Map<string, Sample[]>()
  // warm-up: connections, metadata, JIT, for both clients
  phaseSeconds = 1
  for (const c of ['kafkajs', 'platformatic'] as const) { await phases.raw(c); await phases['bp-single'](c) }
  phaseSeconds = seconds
  for (let r = 0; r < rounds; r++) {
    const order: Client[] = r % 2 === 0 ? ['kafkajs', 'platformatic'] : ['platformatic', 'kafkajs']
    for (const phase of Object.keys(phases) as Phase[]) {
      for (const c of order) {
        const s = await phases[phase](c)
        const k = `${phase} ${c}`
        samples.set(k, [...(samples.get(k) ?? []), s])
        process.stderr.write(`round ${r + 1} ${k}: ${(s.records / s.seconds).toFixed(0)} records/s, ${s.cpuUs.toFixed(1)} µs CPU/record\n`)
      }
    }
  }
  await kafka.admin().deleteTopics({ topics: [topicName, `${topicName}.dlq`] }).catch(() => undefined)

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  console.log(`\nmachine: ${machine}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; broker on the same machine; ${partitions} partitions; ${seconds} s per phase; ${rounds} rounds; ${valueBytes}-byte values`)
  console.log('| phase | client | records/s (median) | CPU µs/record (median) | records/s ÷ kafkajs | CPU ÷ kafkajs |')
  console.log('|---|---|---:|---:|---:|---:|')
  const ratios: [string, number][] = []
  for (const phase of Object.keys(phases) as Phase[]) {
    const rate = (c: Client) => median(samples.get(`${phase} ${c}`)!.map((s) => s.records / s.seconds))
    const cpu = (c: Client) => median(samples.get(`${phase} ${c}`)!.map((s) => s.cpuUs))
    for (const c of ['kafkajs', 'platformatic'] as const) {
      console.log(`| ${phase} | ${c} | ${rate(c).toFixed(0)} | ${cpu(c).toFixed(1)} | ${(rate(c) / rate('kafkajs')).toFixed(2)} | ${(cpu(c) / cpu('kafkajs')).toFixed(2)} |`)
    }
    const suffix = phase === 'raw' ? '' : `_${phase.replace('-', '_')}`
    ratios.push([`platformatic_vs_kafkajs${suffix}`, rate('platformatic') / rate('kafkajs')])
    ratios.push([`platformatic_vs_kafkajs${suffix}_cpu`, cpu('platformatic') / cpu('kafkajs')])
  }
  console.log('')
  for (const [name, v] of ratios) console.log(`ratio ${name} ${v.toFixed(3)}`)
}

await main()
process.exit(0)
