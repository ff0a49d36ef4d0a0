/**
 * API throughput benchmark (issue #3). Needs the stack (`npm run stack up`).
 * The API runs in a child process (as in production); autocannon and the ceiling run in this one,
 * so the load generator does not share the server's event loop.
 *   npm run bench:api [-- --seconds 10 --connections 64 --batch 500]
 * In one run, side by side, on a fresh topic:
 *   1. single events: POST /v1/cdp/events, unique externalEventId per request, fixed concurrency
 *   2. batches: POST /v1/cdp/events/batch with N items per request
 *   3. the ceiling: kafkajs producing the same encoded records directly (sendBatch-sized sends, one in flight)
 * Prints a markdown table for docs/BENCHMARKS.md.
 */
import autocannon from 'autocannon'
import { parseArgs } from 'node:util'
import cluster from 'node:cluster'
import { createServer } from 'node:net'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { loadConfig } from '../src/config/index.js'
import { createLogger } from '../src/observability/logger.js'
import { Resources } from '../src/app/resources.js'
import { buildShared, type Shared } from '../src/app/shared.js'
import { buildApi } from '../src/app/api.js'
import { createStateStores } from '../src/state/index.js'
import { createKey } from '../src/auth/keys.js'
import { encodeKey } from '../src/avro/key.js'
import { newEventId, type CdpEvent } from '../src/avro/event.js'

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '64' },
  batch: { type: 'string', default: '500' }, 'batch-connections': { type: 'string', default: '4' },
  serve: { type: 'string' },
  'lmdb-sync': { type: 'string', default: 'true' },
  workers: { type: 'string', default: '1' },
} })
const seconds = Number(values.seconds)
const connections = Number(values.connections)
const batchSize = Number(values.batch)
const batchConnections = Number(values['batch-connections'])

const run = values.serve ?? randomBytes(4).toString('hex')
// cluster workers share the primary's directory (one LMDB environment for all API processes)
const dir = process.env.BENCH_DIR ?? mkdtempSync(join(tmpdir(), 'cdp-bench-'))
const config = loadConfig({ overrides: {
  dataDir: dir, logLevel: 'silent',
  http: { port: 0, rateLimitMax: 1_000_000_000, batchBodyLimitBytes: 64 * 1024 * 1024, maxBatchItems: Math.max(batchSize, 500) },
  kafka: { topic: `cdp.bench.${run}`, deadLetterTopic: `cdp.bench.${run}.dlq` },
  state: { lmdbPath: join(dir, 'state'), lmdbSync: values['lmdb-sync'] !== 'false' },
  keys: { prefix: `bench_${run}` },
} })

const event = (id: string) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `L-${id}`, email: 'customer@example.com' },
  properties: { order_id: `order_${id}`, amount: 120.5, currency: 'USD', store_id: 'store_42' },
})

function summarize(name: string, r: autocannon.Result, eventsPerRequest: number) {
  const non2xx = r.non2xx + r.errors + r.timeouts
  return {
    name,
    reqPerSec: r.requests.average,
    eventsPerSec: r.requests.average * eventsPerRequest,
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx,
  }
}

/** one API instance listening on `port` (0: any); resolves with its runtime */
async function startInstance(port: number) {
  const log = createLogger({ logLevel: 'silent' })
  const res = new Resources()
  const rt = await buildShared(config, log, res)
  const { app } = await buildApi(rt)
  await app.listen({ host: '127.0.0.1', port })
  const addr = app.server.address()
  return { rt, res, port: typeof addr === 'object' && addr !== null ? addr.port : 0 }
}

/**
 * child: the API on its own, printing {port, key} when ready; with --workers N, N processes on
 * one port (node:cluster, as `cdp serve --role api --workers N`) sharing the LMDB state
 */
async function serveApi() {
  const workers = Number(values.workers)
  if (workers > 1 && cluster.isWorker) {
    const inst = await startInstance(Number(process.env.BENCH_PORT))
    process.on('message', (m) => { if (m === 'batches') process.send?.({ batches: inst.rt.producer.batches }) })
    process.send?.('ready')
    return
  }
  let port: number
  let batches: () => Promise<number>
  let close: () => Promise<void>
  let stores: Shared['stores']
  if (workers > 1) {
    port = await freePort()
    const forked = Array.from({ length: workers }, () => cluster.fork({ BENCH_PORT: String(port), BENCH_DIR: dir }))
    await Promise.all(forked.map((w) => new Promise((r) => w.once('message', r))))
    stores = await createStateStores(config)
    batches = async () => (await Promise.all(forked.map((w) => new Promise<number>((r) => {
      w.once('message', (m: { batches: number }) => r(m.batches))
      w.send('batches')
    })))).reduce((a, b) => a + b, 0)
    close = async () => {
      await stores.close()
      await Promise.all(forked.map((w) => new Promise((r) => { w.once('exit', r); w.kill('SIGKILL') })))
    }
  } else {
    const inst = await startInstance(0)
    port = inst.port
    stores = inst.rt.stores
    batches = async () => inst.rt.producer.batches
    close = () => inst.res.close()
  }
  const { key } = await createKey(stores.keys, { tenant: 'bench', permissions: ['events:write', 'events:batch'] })
  process.stdout.write(JSON.stringify({ port, key }) + '\n')
  // report producer batch counts on request, exit on stdin close
  const rl = createInterface({ input: process.stdin })
  rl.on('line', () => { void batches().then((b) => process.stdout.write(JSON.stringify({ batches: b }) + '\n')) })
  rl.on('close', () => { void close().then(() => { rmSync(dir, { recursive: true, force: true }); process.exit(0) }) })
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const a = srv.address()
      srv.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0))
    })
  })
}

async function main() {
  // BENCH_CPU_PROF=dir writes a CPU profile of the API process (where the time goes)
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', fileURLToPath(import.meta.url), '--serve', run, '--lmdb-sync', values['lmdb-sync'] ?? 'true', '--workers', values.workers ?? '1'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const next = () => new Promise<Record<string, unknown>>((resolve) => lines.once('line', (l) => resolve(JSON.parse(l) as Record<string, unknown>)))
  const { port, key } = await next() as { port: number; key: string }
  const batchesNow = async () => { child.stdin.write('?\n'); return (await next()).batches as number }
  const log = createLogger({ logLevel: 'silent' })
  const res = new Resources()
  const rt = await buildShared(config, log, res)
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
  const url = `http://127.0.0.1:${port}`

  let n = 0
  process.stderr.write(`single events: ${connections} connections, ${seconds} s\n`)
  const single = await autocannon({
    url, connections, duration: seconds,
    requests: [{ method: 'POST', path: '/v1/cdp/events', headers, setupRequest: (req) => ({ ...req, body: JSON.stringify(event(`s-${run}-${n++}`)) }) }],
  })
  const batchesBefore = await batchesNow()
  process.stderr.write(`batches: ${batchSize} items, ${batchConnections} connections, ${seconds} s\n`)
  let b = 0
  const batch = await autocannon({
    url, connections: batchConnections, duration: seconds,
    requests: [{ method: 'POST', path: '/v1/cdp/events/batch', headers, setupRequest: (req) => {
      const items = Array.from({ length: batchSize }, () => event(`b-${run}-${b++}`))
      return { ...req, body: JSON.stringify({ items }) }
    } }],
  })
  const kafkaBatches = (await batchesNow()) - batchesBefore

  // the ceiling: the same records, encoded the same way, straight to Kafka, one send in flight
  process.stderr.write(`ceiling: kafkajs send of ${batchSize}-record batches, ${seconds} s\n`)
  const producer = rt.kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let sent = 0
  const t0 = Date.now()
  while (Date.now() - t0 < seconds * 1000) {
    const messages = Array.from({ length: batchSize }, () => {
      const id = `c-${run}-${sent++}`
      const e = event(id)
      const rec: CdpEvent = {
        eventId: newEventId(), tenant: 'bench', source: e.source, externalEventId: id, eventType: e.eventType,
        occurredAt: Date.parse(e.occurredAt), occurredAtDefaulted: false, receivedAt: Date.now(),
        identity: { externalUserId: e.identity.externalUserId, email: e.identity.email, phone: null, deviceKey: null },
        properties: JSON.stringify(e.properties), contractVersion: 1,
      }
      return { key: encodeKey(rec), value: rt.codec.encode(rec) }
    })
    await producer.send({ topic: config.kafka.topic, acks: -1, messages })
  }
  const ceiling = sent / ((Date.now() - t0) / 1000)
  await producer.disconnect()

  const rows = [summarize('single event', single, 1), summarize(`batch of ${batchSize}`, batch, batchSize)]
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  console.log(`\nmachine: ${machine}; broker on the same machine; ${seconds} s per phase; LMDB fsync per commit: ${values['lmdb-sync'] !== 'false'}; API processes: ${values.workers}`)
  console.log('| workload | connections | requests/s | events/s | p50 ms | p99 ms | non-2xx | events/s ÷ ceiling |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const [i, r] of rows.entries()) {
    console.log(`| ${r.name} | ${i === 0 ? connections : batchConnections} | ${r.reqPerSec.toFixed(0)} | ${r.eventsPerSec.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${(r.eventsPerSec / ceiling).toFixed(2)} |`)
  }
  console.log(`| ceiling: kafkajs send, ${batchSize} records/send | 1 | — | ${ceiling.toFixed(0)} | — | — | — | 1.00 |`)
  console.log(`\nKafka batches during the batch phase: ${kafkaBatches} (${(batch.requests.total * batchSize / Math.max(1, kafkaBatches)).toFixed(0)} records per send)`)
  child.stdin.end()
  await new Promise((r) => child.once('exit', r))
  await res.close()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

const entry = values.serve !== undefined ? serveApi : main
entry().catch((err: unknown) => { console.error(err); process.exit(1) })
