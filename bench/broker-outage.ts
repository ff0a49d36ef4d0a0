/**
 * Issue 8 finding 2: how long after the Kafka broker returns does the service work again?
 * Runs `serve` (role all) in this process against the stack named by KAFKA_PORT, REGISTRY_PORT,
 * REDIS_PORT, sends one event every 100 ms (retrying 503s with the same externalEventId, as a
 * client should), stops the broker with tools/stack/stack.sh for OUTAGE_S seconds, starts it
 * again and reports:
 *   apiBackMs     broker answering -> first event accepted again
 *   caughtUpMs    broker answering -> the group has committed every record on the topic, and
 *                 every event accepted after the return (the consumer is current again)
 * and the counts of the log lines that marked the slow recovery (consumer crashes and restarts,
 * producer resets, "coordinator is loading").
 *
 * NEVER against the shared stack: it stops the broker. Start a stack of your own first, e.g.
 *   STACK_DIR=$PWD/.stack-outage KAFKA_PORT=39092 KAFKA_CONTROLLER_PORT=39093 REGISTRY_PORT=38081 \
 *     REDIS_PORT=36379 bash tools/stack/stack.sh up
 * then run with the same variables: npx tsx bench/broker-outage.ts
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { loadConfig } from '../src/config/index.js'
import { createStateStores } from '../src/state/index.js'
import { createKey } from '../src/auth/keys.js'
import { serve } from '../src/app/serve.js'
import { createKafka } from '../src/kafka/client.js'

if (process.env.KAFKA_PORT === undefined || process.env.KAFKA_PORT === '19092') {
  console.error('refusing to run against the shared stack: set KAFKA_PORT (and STACK_DIR etc.) to a stack of your own')
  process.exit(2)
}
const OUTAGE_S = Number(process.env.OUTAGE_S ?? 15)
const ROOT = new URL('../', import.meta.url).pathname
const stack = (...args: string[]) => {
  const r = spawnSync('bash', [join(ROOT, 'tools/stack/stack.sh'), ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`stack ${args.join(' ')} failed: ${r.stdout}${r.stderr}`)
}

const counts = new Map<string, number>()
const PATTERNS: [string, RegExp][] = [
  ['consumer crash', /^Crash: /], ['consumer restart', /Restarting the consumer/], ['producer reset', /producer reset/],
  ['coordinator loading', /coordinator is loading/i], ['retries exceeded', /NumberOfRetriesExceeded/],
]
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    for (const line of chunk.toString().split('\n')) {
      if (line === '') continue
      const text = line
      for (const [name, re] of PATTERNS) {
        const msg = (JSON.parse(text) as { msg?: string; error?: string }).msg ?? ''
        if (re.test(msg) || re.test(text)) counts.set(name, (counts.get(name) ?? 0) + 1)
      }
      if (process.env.VERBOSE === '1') process.stderr.write(`${text}\n`)
    }
    cb()
  },
})

const dir = mkdtempSync(join(tmpdir(), 'cdp-outage-'))
const id = randomBytes(4).toString('hex')
const config = loadConfig({ overrides: {
  dataDir: dir, logLevel: 'info',
  http: { port: 0 },
  kafka: { topic: `cdp.outage.${id}`, deadLetterTopic: `cdp.outage.${id}.dlq`, consumerGroup: `cdp-outage-${id}`, partitions: 3, produceTimeoutMs: 3000 },
  clickhouse: { chdbPath: join(dir, 'chdb'), database: `cdp_outage_${id}` },
  state: { backend: 'lmdb', lmdbPath: join(dir, 'state') },
  keys: { prefix: `outage_${id}` },
} })
const log = pino({ level: 'info' }, sink)

const stores = await createStateStores(config)
const { key } = await createKey(stores.keys, { tenant: 'acme', permissions: ['events:write'] })
await stores.close()
const running = await serve(config, 'all', log)
await running.consumerJoined
const app = running.app!
const admin = createKafka(config, pino({ level: 'silent' }), '-outage-admin').admin()
await admin.connect()

/** accepted events: externalEventId -> when accepted */
const accepted = new Map<string, number>()
let n = 0
let sending = true
const sender = (async () => {
  while (sending) {
    const ext = `e${n++}`
    for (;;) {
      const r = await app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` }, payload: {
        source: 'brand.pos', externalEventId: ext, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
        identity: { externalUserId: `u${n % 50}` }, properties: { order_id: ext, amount: 5, currency: 'USD' } } })
      // 200 duplicate: an earlier attempt whose answer was lost did land (same event id)
      if (r.statusCode === 202 || r.statusCode === 200) { accepted.set(ext, Date.now()); break }
      if (process.env.VERBOSE === '1') process.stderr.write(`${new Date().toISOString()} ${ext} ${r.statusCode} ${r.body}\n`)
      if (!sending) break
      await new Promise((res) => setTimeout(res, 250))
    }
    await new Promise((res) => setTimeout(res, 100))
  }
})()

async function lag(): Promise<number> {
  const high = await admin.fetchTopicOffsets(config.kafka.topic)
  const [group] = await admin.fetchOffsets({ groupId: config.kafka.consumerGroup, topics: [config.kafka.topic] })
  const committed = new Map((group?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
  return high.reduce((s, h) => s + Math.max(0, Number(h.high) - Math.max(0, committed.get(h.partition) ?? 0)), 0)
}

await new Promise((r) => setTimeout(r, 5000))
console.log(`before the outage: accepted ${accepted.size}, lag ${await lag()}`)
counts.clear()
stack('down', 'kafka')
const downAt = Date.now()
await new Promise((r) => setTimeout(r, OUTAGE_S * 1000))
stack('up', 'kafka')
const upAt = Date.now()
console.log(`broker down ${((upAt - downAt) / 1000).toFixed(1)} s (stop + ${OUTAGE_S} s + start)`)

let apiBackMs: number | undefined
let caughtUpMs: number | undefined
const acceptedBefore = [...accepted.values()].filter((at) => at <= upAt).length
while (Date.now() - upAt < 180_000) {
  if (apiBackMs === undefined) {
    const first = [...accepted.values()].find((at) => at > upAt)
    if (first !== undefined) apiBackMs = first - upAt
  }
  if (apiBackMs !== undefined) {
    const l = await lag().catch(() => -1)
    // current again: nothing left on the topic, and events accepted after the return were taken in
    if (l === 0 && accepted.size > acceptedBefore + 5) { caughtUpMs = Date.now() - upAt; break }
  }
  await new Promise((r) => setTimeout(r, 250))
}
sending = false
await sender
console.log(JSON.stringify({ outageS: OUTAGE_S, apiBackMs, caughtUpMs, accepted: accepted.size, logLines: Object.fromEntries(counts) }))
await admin.disconnect()
await running.close()
rmSync(dir, { recursive: true, force: true })
process.exit(0)
