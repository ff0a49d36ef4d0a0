/**
 * API throughput benchmark (issue #3, ceilings: issue 10 item 1). Needs the stack (`npm run stack up`).
 * The API runs in a child process (as in production), the echo ceiling in another; autocannon and
 * the produce ceiling run in this one, so the load generator shares no event loop with a server.
 *   npm run bench:api [-- --seconds 5 --rounds 3 --connections 64 --batch 500 --workers 1 --built]
 * Each round, side by side, on one fresh topic:
 *   1. single events: POST /v1/cdp/events, unique externalEventId per request, fixed concurrency;
 *      and the same requests against a Fastify echo route (the HTTP ceiling: parse + reply, nothing else)
 *   2. batches: POST /v1/cdp/events/batch with N items per request; and the same against the echo
 *   3. the produce ceiling: the chosen Kafka client's raw producer (bench/lib/raw-producer.ts)
 *      sending the same Avro records, `batch` per send, one in flight
 * The API/echo order alternates per round. Prints a markdown table (medians over rounds), the API
 * process's peak RSS, and machine-readable lines `ratio single_vs_echo|batch_vs_produce|batch_vs_echo
 * <median of per-round ratios>`, `p99_ms single|batch <median>`, `rss_mb api <peak>`.
 */
import autocannon from 'autocannon'
import { parseArgs } from 'node:util'
import cluster from 'node:cluster'
import { createServer } from 'node:net'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir, cpus, totalmem, loadavg } from 'node:os'
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
import Fastify from 'fastify'
import { openRawProducer } from './lib/raw-producer.js'

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '64' },
  batch: { type: 'string', default: '500' }, 'batch-connections': { type: 'string', default: '4' },
  serve: { type: 'string' }, echo: { type: 'boolean', default: false }, rounds: { type: 'string', default: '3' }, warmup: { type: 'string', default: '3' },
  'lmdb-sync': { type: 'string', default: 'true' },
  workers: { type: 'string', default: '1' },
  // the API child from the compiled build (dist/, `npm run build` first): what production runs,
  // without tsx's compiler in memory (about 100 MB of RSS)
  built: { type: 'boolean', default: false },
  // extra node flags for the API child only, e.g. --node-args=--max-old-space-size=192
  'node-args': { type: 'string', default: '' },
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
  http: { port: 0, rateLimitMax: 1_000_000_000, tenantRateLimitMax: 1_000_000_000, failureLimitMax: 1_000_000_000, batchBodyLimitBytes: 64 * 1024 * 1024, maxBatchItems: Math.max(batchSize, 500) },
  kafka: { topic: `cdp.bench.${run}`, deadLetterTopic: `cdp.bench.${run}.dlq` },
  state: { lmdbPath: join(dir, 'state'), lmdbSync: values['lmdb-sync'] !== 'false' },
  keys: { prefix: `bench_${run}` },
} })

const event = (id: string) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { externalUserId: `L-${id}`, email: 'customer@example.com' },
  properties: { order_id: `order_${id}`, amount: 120.5, currency: 'USD', store_id: 'store_42' },
})

function summarize(name: string, r: autocannon.Result, eventsPerRequest: number, cpuUsed: number) {
  const non2xx = r.non2xx + r.errors + r.timeouts
  return {
    name,
    /** server CPU (user + system) per event answered: robust to the machine's load, unlike events/s */
    cpuUsPerEvent: cpuUsed / Math.max(1, r.requests.total * eventsPerRequest),
    reqPerSec: r.requests.average,
    eventsPerSec: r.requests.average * eventsPerRequest,
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx,
  }
}

/** what a server child reports on request: producer sends, peak RSS, CPU time used so far (µs) */
interface Stats { batches: number; maxRssKb: number; cpuUs: number; mem?: MemSample }

/** what the RSS was made of at its highest sample: anonymous (heap, buffers), file-backed (the
 *  node binary, LMDB's map), shared; and V8's view at that moment */
interface MemSample { rssKb: number; anonKb: number; fileKb: number; shmemKb: number; heapTotalMb: number; heapUsedMb: number; externalMb: number }
let memPeak: MemSample | undefined
/** samples /proc/self/status every 100 ms and keeps the sample of the highest RSS */
function sampleMemory(): void {
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0)
  const t = setInterval(() => {
    let text: string
    try { text = readFileSync('/proc/self/status', 'utf8') } catch { clearInterval(t); return }
    const rssKb = kb(text, 'VmRSS')
    if (memPeak !== undefined && rssKb <= memPeak.rssKb) return
    const m = process.memoryUsage()
    memPeak = { rssKb, anonKb: kb(text, 'RssAnon'), fileKb: kb(text, 'RssFile'), shmemKb: kb(text, 'RssShmem'),
      heapTotalMb: m.heapTotal / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20, externalMb: (m.external + m.arrayBuffers) / 2 ** 20 }
  }, 100)
  t.unref()
}
/** user + system CPU of this process: per event, it measures cost without the machine's load in it */
const cpuUs = (): number => { const u = process.cpuUsage(); return u.user + u.system }

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
  if (workers <= 1 || cluster.isWorker) sampleMemory()
  if (workers > 1 && cluster.isWorker) {
    const inst = await startInstance(Number(process.env.BENCH_PORT))
    process.on('message', (m) => { if (m === 'batches') process.send?.({ batches: inst.rt.producer.batches, maxRssKb: process.resourceUsage().maxRSS, cpuUs: cpuUs(), mem: memPeak }) })
    process.send?.('ready')
    return
  }
  let port: number
  let batches: () => Promise<Stats>
  let close: () => Promise<void>
  let stores: Shared['stores']
  if (workers > 1) {
    port = await freePort()
    const forked = Array.from({ length: workers }, () => cluster.fork({ BENCH_PORT: String(port), BENCH_DIR: dir }))
    await Promise.all(forked.map((w) => new Promise((r) => w.once('message', r))))
    stores = await createStateStores(config)
    batches = async () => (await Promise.all(forked.map((w) => new Promise<Stats>((r) => {
      w.once('message', r)
      w.send('batches')
    })))).reduce((a, b) => ({ batches: a.batches + b.batches, maxRssKb: Math.max(a.maxRssKb, b.maxRssKb), cpuUs: a.cpuUs + b.cpuUs, mem: (b.mem?.rssKb ?? 0) > (a.mem?.rssKb ?? 0) ? b.mem : a.mem }), { batches: 0, maxRssKb: 0, cpuUs: 0 } as Stats)
    close = async () => {
      await stores.close()
      await Promise.all(forked.map((w) => new Promise((r) => { w.once('exit', r); w.kill('SIGKILL') })))
    }
  } else {
    const inst = await startInstance(0)
    port = inst.port
    stores = inst.rt.stores
    batches = async () => ({ batches: inst.rt.producer.batches, maxRssKb: process.resourceUsage().maxRSS, cpuUs: cpuUs(), mem: memPeak })
    close = () => inst.res.close()
  }
  const { key } = await createKey(stores.keys, { tenant: 'bench', permissions: ['events:write', 'events:batch'] })
  process.stdout.write(JSON.stringify({ port, key }) + '\n')
  // report producer batch counts on request, exit on stdin close
  const rl = createInterface({ input: process.stdin })
  rl.on('line', () => { void batches().then((b) => process.stdout.write(JSON.stringify(b) + '\n')) })
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

/** child: the echo ceiling, a bare Fastify app taking the same bodies on the same paths */
async function serveEcho() {
  const app = Fastify({ logger: false, bodyLimit: config.http.batchBodyLimitBytes })
  const echo = async (req: { body: unknown }, reply: { code(n: number): unknown }) => { reply.code(202); return req.body }
  app.post('/v1/cdp/events', echo)
  app.post('/v1/cdp/events/batch', echo)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const addr = app.server.address()
  process.stdout.write(JSON.stringify({ port: typeof addr === 'object' && addr !== null ? addr.port : 0, key: 'echo' }) + '\n')
  const rl = createInterface({ input: process.stdin })
  rl.on('line', () => process.stdout.write(JSON.stringify({ batches: 0, maxRssKb: process.resourceUsage().maxRSS, cpuUs: cpuUs() }) + '\n'))
  rl.on('close', () => { void app.close().then(() => process.exit(0)) })
}

type Row = ReturnType<typeof summarize>
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }

async function main() {
  const load0 = loadavg()
  const rounds = Number(values.rounds)
  // BENCH_CPU_PROF=dir writes a CPU profile of the API process (where the time goes)
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const startChild = async (args: string[], nodeArgs: string[] = [], built = false) => {
    const script = built ? fileURLToPath(new URL('../dist/bench/api.js', import.meta.url)) : fileURLToPath(import.meta.url)
    if (built && !existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`)
    const child = spawn(process.execPath, [...nodeArgs, ...(built ? [] : ['--import', 'tsx']), script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: child.stdout })
    const next = () => new Promise<Record<string, unknown>>((resolve) => lines.once('line', (l) => resolve(JSON.parse(l) as Record<string, unknown>)))
    const first = await next() as { port: number; key: string }
    return { child, next, ...first }
  }
  const nodeArgs = (values['node-args'] ?? '').split(' ').filter((a) => a !== '')
  const api = await startChild(['--serve', run, '--lmdb-sync', values['lmdb-sync'] ?? 'true', '--workers', values.workers ?? '1'], [...prof, ...nodeArgs], values.built)
  const echo = await startChild(['--echo', '--serve', `${run}echo`])
  const statsOf = async (t: typeof api) => { t.child.stdin.write('?\n'); return await t.next() as unknown as Stats }
  const stats = () => statsOf(api)
  const log = createLogger({ logLevel: 'silent' })
  const res = new Resources()
  const rt = await buildShared(config, log, res)
  const headers = (key: string) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' })

  let n = 0
  let b = 0
  let duration = seconds
  const single = (port: number, key: string) => autocannon({
    url: `http://127.0.0.1:${port}`, connections, duration,
    requests: [{ method: 'POST', path: '/v1/cdp/events', headers: headers(key), setupRequest: (req) => ({ ...req, body: JSON.stringify(event(`s-${run}-${n++}`)) }) }],
  })
  const batched = (port: number, key: string) => autocannon({
    url: `http://127.0.0.1:${port}`, connections: batchConnections, duration,
    requests: [{ method: 'POST', path: '/v1/cdp/events/batch', headers: headers(key), setupRequest: (req) => {
      const items = Array.from({ length: batchSize }, () => event(`b-${run}-${b++}`))
      return { ...req, body: JSON.stringify({ items }) }
    } }],
  })
  // the produce ceiling: the same records, encoded the same way, straight to Kafka, one send in flight
  let sent = 0
  const produce = async () => {
    const producer = await openRawProducer(config.kafka.client, rt.kafka, config)
    const t0 = Date.now()
    const from = sent
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
      await producer.send(config.kafka.topic, messages)
    }
    const rate = (sent - from) / ((Date.now() - t0) / 1000)
    await producer.close()
    return rate
  }

  // warm-up (JIT, connections, Kafka metadata, LMDB pages) of both servers, not counted
  duration = Number(values.warmup)
  process.stderr.write(`warm-up: ${duration} s per phase\n`)
  for (const t of [api, echo]) { await single(t.port, t.key); await batched(t.port, t.key) }
  duration = seconds

  const out = { single: [] as Row[], singleEcho: [] as Row[], batch: [] as Row[], batchEcho: [] as Row[], produce: [] as number[], recordsPerSend: [] as number[] }
  for (let r = 0; r < rounds; r++) {
    const apiFirst = r % 2 === 0
    const pair = async (label: string, phase: typeof single, into: Row[], intoEcho: Row[], perRequest: number) => {
      for (const which of apiFirst ? ['api', 'echo'] : ['echo', 'api']) {
        process.stderr.write(`round ${r + 1}: ${label} ${which}\n`)
        const target = which === 'api' ? api : echo
        const cpu0 = (await statsOf(target)).cpuUs
        const answered = await phase(target.port, target.key)
        const result = summarize(`${label} ${which}`, answered, perRequest, (await statsOf(target)).cpuUs - cpu0)
        ;(which === 'api' ? into : intoEcho).push(result)
      }
    }
    await pair('single', single, out.single, out.singleEcho, 1)
    const before = (await stats()).batches
    await pair(`batch of ${batchSize}`, batched, out.batch, out.batchEcho, batchSize)
    const last = out.batch[out.batch.length - 1]!
    out.recordsPerSend.push(last.reqPerSec * seconds * batchSize / Math.max(1, (await stats()).batches - before))
    process.stderr.write(`round ${r + 1}: produce ceiling (${config.kafka.client} raw producer)\n`)
    out.produce.push(await produce())
  }
  const { maxRssKb, mem } = await stats()
  const load1 = loadavg()

  const ratios = {
    single_vs_echo: median(out.single.map((x, i) => x.eventsPerSec / out.singleEcho[i]!.eventsPerSec)),
    batch_vs_produce: median(out.batch.map((x, i) => x.eventsPerSec / out.produce[i]!)),
    batch_vs_echo: median(out.batch.map((x, i) => x.eventsPerSec / out.batchEcho[i]!.eventsPerSec)),
  }
  const med = (rows: Row[], k: keyof Omit<Row, 'name'>) => median(rows.map((x) => x[k]))
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  console.log(`\nmachine: ${machine}; broker on the same machine; load average (1/5/15 min) at start ${load0.map((x) => x.toFixed(1)).join(' ')}, at end ${load1.map((x) => x.toFixed(1)).join(' ')}`)
  console.log(`${rounds} rounds of ${seconds} s per phase, medians; LMDB fsync per commit: ${values['lmdb-sync'] !== 'false'}; API processes: ${values.workers} (${values.built ? 'compiled build' : 'tsx'}${nodeArgs.length > 0 ? `, ${nodeArgs.join(' ')}` : ''}); Kafka client: ${config.kafka.client}`)
  console.log('| workload | connections | events/s | p50 ms | p99 ms | non-2xx (sum) | server CPU µs/event | events/s ÷ ceiling (per-round median) |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|')
  const line = (name: string, c: number, rows: Row[], ratio: string) =>
    console.log(`| ${name} | ${c} | ${med(rows, 'eventsPerSec').toFixed(0)} | ${med(rows, 'p50')} | ${med(rows, 'p99')} | ${rows.reduce((a, x) => a + x.non2xx, 0)} | ${med(rows, 'cpuUsPerEvent').toFixed(1)} | ${ratio} |`)
  line('single event, API', connections, out.single, `${ratios.single_vs_echo.toFixed(2)} of echo`)
  line('single event, Fastify echo (ceiling)', connections, out.singleEcho, '1.00')
  line(`batch of ${batchSize}, API`, batchConnections, out.batch, `${ratios.batch_vs_produce.toFixed(2)} of produce, ${ratios.batch_vs_echo.toFixed(2)} of echo`)
  line(`batch of ${batchSize}, Fastify echo`, batchConnections, out.batchEcho, '—')
  console.log(`| ceiling: ${config.kafka.client} raw producer, ${batchSize} records/send | 1 | ${median(out.produce).toFixed(0)} | — | — | — | — | 1.00 |`)
  console.log(`\nKafka records per send during the API batch phase (median): ${median(out.recordsPerSend).toFixed(0)}; API process peak RSS: ${(maxRssKb / 1024).toFixed(0)} MB`)
  console.log('')
  for (const [k, v] of Object.entries(ratios)) console.log(`ratio ${k} ${v.toFixed(3)}`)
  // CPU per event, API against echo: what single_vs_echo would be if each had a core of its own
  console.log(`ratio single_cpu_echo_vs_api ${(med(out.singleEcho, 'cpuUsPerEvent') / med(out.single, 'cpuUsPerEvent')).toFixed(3)}`)
  for (const [k, rows] of [['single_api', out.single], ['single_echo', out.singleEcho], ['batch_api', out.batch], ['batch_echo', out.batchEcho]] as const) {
    console.log(`cpu_us_per_event ${k} ${med(rows, 'cpuUsPerEvent').toFixed(1)}`)
  }
  console.log(`p99_ms single ${med(out.single, 'p99')}`)
  console.log(`p99_ms batch ${med(out.batch, 'p99')}`)
  console.log(`rss_mb api ${(maxRssKb / 1024).toFixed(0)}`)
  if (mem !== undefined) {
    console.log(`rss_parts_mb api anon ${(mem.anonKb / 1024).toFixed(0)} file ${(mem.fileKb / 1024).toFixed(0)} shmem ${(mem.shmemKb / 1024).toFixed(0)} ` +
      `(at the highest 100-ms sample, ${(mem.rssKb / 1024).toFixed(0)}); v8 heap total ${mem.heapTotalMb.toFixed(0)} used ${mem.heapUsedMb.toFixed(0)}, external+buffers ${mem.externalMb.toFixed(0)}`)
  }
  for (const c of [api.child, echo.child]) {
    c.stdin.end()
    await new Promise((r) => c.once('exit', r))
  }
  await res.close()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

const entry = values.echo === true ? serveEcho : values.serve !== undefined ? serveApi : main
entry().catch((err: unknown) => { console.error(err); process.exit(1) })
