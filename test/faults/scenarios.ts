/**
 * The fault scenarios. Every scenario has one shape, run by `scenario()`: start what it needs in
 * its own Rig (setup), run the ledger's load, inject its fault while the load runs, check what is
 * special to it once the load is over (after), and return the ledger; the runner (run.ts)
 * reconciles it. A scenario states only what differs. Timings are written into the notes (they are
 * observations, not assertions).
 */
import kafkajs from 'kafkajs'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Ledger, LedgerOptions, LoadOptions } from './ledger.js'
import { startHttpProxy, startProxy } from './proxy.js'
import { allocPort, type Rig, type ServeOptions } from './rig.js'
import { brokers, registryUrl, httpOk, signalService, sleep, STACK, stackCmd, stopProc, waitGone, waitUntil, type Proc } from './stack.js'

export interface Scenario {
  name: string
  ci: boolean
  what: string
  run(rig: Rig): Promise<Ledger>
}

const LOAD: LoadOptions = { total: 2000, rate: 100, batchSize: 50, singleShare: 0.3, concurrency: 8 }
const url = (port: number) => `http://127.0.0.1:${port}`
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** what a setup hands the runner: the API key and the base URLs the ledger sends to */
interface Setup { key: string; targets: string[] }

interface Ctx<S extends Setup> {
  rig: Rig
  s: S
  ledger: Ledger
  /** true once the load is over (every fact final or unresolved) */
  loadDone(): boolean
}

interface ScenarioDef<S extends Setup, F> {
  name: string
  /** in the CI subset (`npm run faults:ci`) */
  ci?: boolean
  what: string
  setup(rig: Rig): Promise<S>
  ledger?: Partial<LedgerOptions>
  /** over the default LOAD */
  load?: Partial<LoadOptions>
  /** the fault starts this long after the load (default 5 s) */
  faultAt?: number
  /** runs while the load runs; what it returns goes to `after` */
  fault?(c: Ctx<S>): Promise<F>
  /** runs once both the load and the fault are over */
  after?(c: Ctx<S>, f: F | undefined): Promise<void>
}

function scenario<S extends Setup, F = void>(d: ScenarioDef<S, F>): Scenario {
  return {
    name: d.name,
    ci: d.ci ?? false,
    what: d.what,
    async run(rig) {
      const s = await d.setup(rig)
      const ledger = rig.ledger(() => s.targets, s.key, d.ledger)
      let done = false
      const load = ledger.run({ ...LOAD, ...d.load }).finally(() => { done = true })
      const c: Ctx<S> = { rig, s, ledger, loadDone: () => done }
      let f: F | undefined
      if (d.fault !== undefined) {
        await sleep(d.faultAt ?? 5000)
        f = await d.fault(c)
      }
      await load
      await d.after?.(c, f)
      return ledger
    },
  }
}

/** role all, LMDB state, the consumer writing into the gateway */
async function single(rig: Rig, o: { clickhouseUrl?: string; config?: Record<string, unknown> } = {}) {
  const port = allocPort()
  const key = rig.createKey({ dataDir: 'svc' })
  const svc = await rig.serve('svc', { dataDir: 'svc', ...o }, port)
  return { port, key, svc, targets: [url(port)] }
}

/** scale-out: consumers and API processes sharing Redis */
async function scaleOut(rig: Rig, apis: number, config?: Record<string, unknown>) {
  const cfg = config === undefined ? {} : { config }
  const key = rig.createKey({ redis: true })
  const consumer = await rig.serve('consumer-a', { role: 'consumer', redis: true, ...cfg })
  const ports: number[] = []
  const procs: Proc[] = []
  for (let i = 0; i < apis; i++) {
    const port = allocPort()
    ports.push(port)
    procs.push(await rig.serve(`api-${i}`, { role: 'api', redis: true, ...cfg }, port))
  }
  return { key, consumer, ports, procs, targets: ports.map(url) }
}

async function measureRestart(rig: Rig, name: string, port: number, restart: () => Promise<Proc>): Promise<Proc> {
  const t0 = Date.now()
  const p = await restart()
  await waitUntil(`${name} /healthz`, () => httpOk(`${url(port)}/healthz`), 180_000, 100)
  const listen = Date.now() - t0
  await waitUntil(`${name} /readyz`, () => httpOk(`${url(port)}/readyz`), 180_000, 100)
  rig.note(`${name}: port closed until /healthz answered ${secs(listen)} after the restart, /readyz ${secs(Date.now() - t0)}`)
  return p
}

/** requests fanned out to two APIs: no fact may be answered `accepted` by both */
async function acceptedOnce(rig: Rig, ledger: Ledger): Promise<void> {
  let bothAccepted = 0
  for (const f of ledger.facts.values()) if (f.acceptedCount > 1) bothAccepted++
  rig.note(`facts answered accepted by both APIs: ${bothAccepted}; records on the topic: ${await topicRecords(rig)} for ${ledger.facts.size} facts`)
  if (bothAccepted > 0) rig.fail(`${bothAccepted} facts were answered accepted twice`)
}

/** compaction: how hard the topic is made to compact; partitions of every scenario's topic (rig.ts) */
const COMPACT = { segmentMs: 1000, dirtyRatio: 0.01 }
const PARTITIONS = 4

export const SCENARIOS: Scenario[] = [
  scenario({
    name: 'response-lost',
    ci: true,
    what: 'the ledger talks to the API through the TCP proxy, which resets 25% of connections when the answer comes back (the produce was acknowledged, the client hears a reset); every retry must be answered duplicate with the original event id',
    async setup(rig) {
      const s = await single(rig)
      const proxy = await startProxy({ port: s.port })
      rig.onClose(() => proxy.close())
      return { ...s, proxy, targets: [proxy.url] }
    },
    faultAt: 2000,
    async fault({ s }) {
      s.proxy.set({ kind: 'drop', p: 0.25 })
      await sleep(12_000)
      s.proxy.set({ kind: 'pass' })
    },
    async after({ rig, s }) {
      rig.note(`proxy: ${s.proxy.stats.dropped} answers dropped over ${s.proxy.stats.connections} connections`)
    },
  }),
  scenario({
    name: 'two-apis',
    what: 'two API processes (role api) and a consumer share Redis; every request (single and batch) is sent to both APIs at the same moment; each fact must get one event id from both, and be stored once',
    setup: (rig) => scaleOut(rig, 2),
    ledger: { fanout: true },
    load: { total: 1500 },
    after: async ({ rig, ledger }) => acceptedOnce(rig, ledger),
  }),
  scenario({
    name: 'broker-sigstop',
    ci: true,
    what: 'the Kafka broker is frozen with SIGSTOP for 15 s under load, then SIGCONT',
    setup: (rig) => single(rig),
    async fault() {
      signalService('kafka', 'SIGSTOP')
      try { await sleep(15_000) } finally { signalService('kafka', 'SIGCONT') }
      return Date.now()
    },
    async after({ rig }, back) { rig.note(`load finished ${secs(Date.now() - (back ?? 0))} after SIGCONT`) },
  }),
  scenario({
    name: 'broker-sigkill',
    what: 'the Kafka broker is SIGKILLed under load and restarted 5 s later (stack.sh up kafka)',
    setup: (rig) => single(rig),
    async fault({ rig }) {
      const pid = signalService('kafka', 'SIGKILL')
      await waitGone(pid)
      await sleep(5000)
      const t0 = Date.now()
      stackCmd('up', 'kafka')
      rig.note(`broker restarted in ${secs(Date.now() - t0)}`)
      return Date.now()
    },
    async after({ rig }, back) { rig.note(`load finished ${secs(Date.now() - (back ?? 0))} after the broker answered again`) },
  }),
  scenario({
    name: 'api-sigkill',
    what: 'the service (role all, default 30 s session timeout) is SIGKILLed under load and started again at once on the same data dir',
    setup: (rig) => single(rig, { config: { consumer: { sessionTimeoutMs: 30_000 } } }),
    async fault({ rig, s }) {
      s.svc.kill('SIGKILL')
      await s.svc.exited
      const cfg = { consumer: { sessionTimeoutMs: 30_000 } }
      await measureRestart(rig, 'service after SIGKILL', s.port, () => rig.serve('svc-2', { dataDir: 'svc', config: cfg }, s.port, { wait: false }))
    },
  }),
  scenario({
    name: 'consumer-sigkill',
    ci: true,
    what: 'scale-out (API and consumer processes, Redis state): the consumer is SIGKILLed twice under load (mid-batch: between its ClickHouse insert and its offset commit whenever the kill lands there) and restarted at once',
    setup: (rig) => scaleOut(rig, 1),
    async fault({ rig, s }) {
      let c = s.consumer
      for (let k = 0; k < 2; k++) {
        if (k > 0) await sleep(5000)
        c.kill('SIGKILL')
        await c.exited
        const t0 = Date.now()
        c = await rig.serve(`consumer-${k + 2}`, { role: 'consumer', redis: true })
        rig.note(`consumer restart ${k + 1}: running after ${secs(Date.now() - t0)}`)
      }
    },
  }),
  scenario({
    name: 'sigterm',
    ci: true,
    what: 'the service (role all) gets SIGTERM under load; it must drain and exit; it is started again on the same data dir',
    setup: (rig) => single(rig),
    async fault({ rig, s }) {
      const t0 = Date.now()
      s.svc.kill('SIGTERM')
      const ex = await s.svc.exited
      rig.note(`SIGTERM: exited after ${secs(Date.now() - t0)} with ${ex.code ?? ex.signal}`)
      if (ex.code !== 0) rig.fail(`SIGTERM exit ${ex.code ?? ex.signal}`)
      await measureRestart(rig, 'service after SIGTERM', s.port, () => rig.serve('svc-2', { dataDir: 'svc' }, s.port, { wait: false }))
    },
  }),
  scenario({
    name: 'rebalance-storm',
    what: 'scale-out: besides one steady consumer, two more join and leave every 4 s (alternately SIGTERM and SIGKILL) for the whole load',
    setup: (rig) => scaleOut(rig, 1),
    faultAt: 0,
    async fault({ rig, loadDone }) {
      let n = 0
      const churn: Proc[] = []
      while (!loadDone() && n < 12) {
        const p = await rig.serve(`storm-${n}`, { role: 'consumer', redis: true }, undefined, { wait: false })
        churn.push(p)
        await sleep(4000)
        const old = churn.shift()
        if (old !== undefined && n > 0) { old.kill(n % 2 === 0 ? 'SIGKILL' : 'SIGTERM'); await old.exited }
        n++
      }
      return { n, churn }
    },
    async after({ rig }, storm) {
      for (const p of storm?.churn ?? []) await stopProc(p)
      rig.note(`${storm?.n ?? 0} consumers joined and left`)
    },
  }),
  scenario({
    name: 'clickhouse-down',
    what: 'the ClickHouse gateway is stopped for 60 s under load, then started again on the same data',
    setup: (rig) => single(rig),
    async fault({ rig }) {
      await rig.stopGateway()
      await sleep(60_000)
      const t0 = Date.now()
      await rig.startGateway()
      rig.note(`gateway back after ${secs(Date.now() - t0)}`)
    },
  }),
  scenario({
    name: 'clickhouse-flaky',
    ci: true,
    what: 'the consumer reaches ClickHouse through the proxy: 300 ms delay per chunk for 8 s, then 30% of answers reset after the insert executed for 10 s',
    async setup(rig) {
      // HTTP-aware: the gateway refuses a Host header naming another port than its own
      const proxy = await startHttpProxy({ port: rig.gatewayPort })
      rig.onClose(() => proxy.close())
      return { ...await single(rig, { clickhouseUrl: proxy.url }), proxy }
    },
    faultAt: 3000,
    async fault({ s }) {
      s.proxy.set({ kind: 'delay', ms: 300 })
      await sleep(8000)
      s.proxy.set({ kind: 'drop', p: 0.3 })
      await sleep(10_000)
      s.proxy.set({ kind: 'pass' })
    },
    async after({ rig, s }) { rig.note(`proxy: ${s.proxy.stats.dropped} ClickHouse answers reset after the work was done`) },
  }),
  scenario({
    name: 'redis-down',
    what: 'scale-out with two APIs: Redis is stopped for 10 s under load (stack.sh down redis), then started again (AOF keeps its data)',
    setup: (rig) => scaleOut(rig, 2),
    async fault() {
      stackCmd('down', 'redis')
      await sleep(10_000)
      stackCmd('up', 'redis')
    },
  }),
  scenario({
    name: 'registry-down',
    what: 'the schema registry is stopped for 25 s under load; the consumer must go on with the schemas it has; then it is started again',
    setup: (rig) => single(rig),
    faultAt: 4000,
    async fault({ rig }) {
      stackCmd('down', 'registry')
      const before = await rig.count('SELECT count() AS c FROM cdp.events')
      await sleep(25_000)
      const during = await rig.count('SELECT count() AS c FROM cdp.events')
      rig.note(`while the registry was down the consumer stored ${during - before} events`)
      const t0 = Date.now()
      stackCmd('up', 'registry')
      rig.note(`registry back in ${secs(Date.now() - t0)}`)
    },
  }),
  scenario({
    name: 'poison',
    ci: true,
    what: 'a direct producer writes poison records into the topic under load: not Avro, Avro framing with an unknown schema id, an oversized (900 KB) value; the consumer must dead-letter them and go on',
    setup: (rig) => single(rig),
    faultAt: 3000,
    async fault({ rig }) {
      const kafka = new kafkajs.Kafka({ clientId: 'faults-poison', brokers: [brokers()], logLevel: kafkajs.logLevel.NOTHING })
      const producer = kafka.producer()
      await producer.connect()
      const unknownId = Buffer.alloc(5); unknownId.writeUInt32BE(987_654, 1)
      const poison = [
        { key: JSON.stringify([rig.tenant, 'poison', 'not-avro']), value: Buffer.from('{"this":"is json, not avro"}') },
        { key: JSON.stringify([rig.tenant, 'poison', 'unknown-schema']), value: Buffer.concat([unknownId, Buffer.from([2, 4, 6, 8])]) },
        { key: JSON.stringify([rig.tenant, 'poison', 'oversized']), value: Buffer.concat([Buffer.from([0, 0, 0, 0, 1]), Buffer.alloc(900 * 1024, 7)]) },
        { key: 'not a tuple key', value: Buffer.from([0]) },
      ]
      for (const m of poison) await producer.send({ topic: rig.topic, messages: [m] })
      await producer.disconnect()
      return poison.length
    },
    async after({ rig }, sent = 0) {
      const dl = await waitUntil(`${sent} dead letters`, async () => (await rig.deadLetters()) >= sent, 60_000, 1000).then(() => true, () => false)
      const n = await rig.deadLetters()
      rig.note(`dead letters in ClickHouse: ${n} (${sent} poison records sent)`)
      if (!dl) rig.fail(`only ${n} of ${sent} poison records dead-lettered`)
      const stray = await rig.count(`SELECT count() AS c FROM cdp.events WHERE source = 'poison'`)
      if (stray > 0) rig.fail(`${stray} poison records stored as events`)
    },
  }),
  scenario({
    name: 'direct-conflicts',
    what: 'under API load, two direct producers write 300 facts each with conflicting payloads (same tuple, other amount) across all partitions at once; each tuple must be stored once, the loser dead-lettered',
    setup: (rig) => single(rig),
    faultAt: 3000,
    async fault({ rig }) {
      // the project's documented helper for direct producers (docs/DIRECT-PRODUCERS.md)
      const { createDirectProducer } = await import('../../src/producer/index.js')
      const reg = registryUrl()
      const a = await createDirectProducer({ brokers: [brokers()], topic: rig.topic, registryUrl: reg })
      const b = await createDirectProducer({ brokers: [brokers()], topic: rig.topic, registryUrl: reg })
      const ids = new Map<string, Set<string>>()
      const fact = (i: number, amount: number) => ({
        tenant: rig.tenant, source: 'direct.svc', externalEventId: `direct-${i}`, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
        identity: { email: `direct${i}@example.com` }, properties: { order_id: `d-${i}`, amount, currency: 'EUR' },
      })
      await Promise.all([a, b].map(async (p, k) => {
        const sends = Array.from({ length: DIRECT_N }, (_, i) => p.send(fact(i, k === 0 ? 10 : 20)).then((s) => {
          const set = ids.get(`direct-${i}`) ?? new Set<string>(); set.add(s.eventId); ids.set(`direct-${i}`, set)
        }))
        await Promise.all(sends)
      }))
      await a.close(); await b.close()
      return ids
    },
    async after({ rig }, ids = new Map()) {
      const N = DIRECT_N
      type Row = { id: string; c: string; eid: string }
      const settled = await waitUntil('direct facts stored', async () => (await rig.count(`SELECT uniqExact(external_event_id) AS c FROM cdp.events WHERE source = 'direct.svc'`)) >= N, 90_000, 1000).then(() => true, () => false)
      const rows = await (await rig.clickhouse().query({ query: `SELECT external_event_id AS id, count() AS c, any(event_id) AS eid FROM cdp.events WHERE source = 'direct.svc' GROUP BY tenant, source, external_event_id`, format: 'JSONEachRow' })).json<Row>()
      const dup = rows.filter((r) => Number(r.c) > 1).length
      const foreign = rows.filter((r) => !(ids.get(r.id)?.has(r.eid) ?? false)).length
      await sleep(3000)
      const dl = await rig.deadLetters()
      rig.note(`direct: ${rows.length}/${N} tuples stored, ${dup} more than once, ${foreign} under an id no producer sent; ${dl} dead letters (${N} conflicting records sent)`)
      if (!settled || dup > 0 || foreign > 0 || rows.length !== N) rig.fail('direct conflicts: not every tuple stored exactly once')
      if (dl !== N) rig.fail(`direct conflicts: ${dl} dead letters for ${N} losers`)
    },
  }),
  scenario({
    name: 'clock-skew',
    what: 'scale-out, two APIs sharing Redis, one of them running 2 minutes ahead (libfaketime, FAKETIME=+2m); every request goes to both at once, as in two-apis',
    async setup(rig) {
      ensureFaketime()
      const key = rig.createKey({ redis: true })
      await rig.serve('consumer-a', { role: 'consumer', redis: true })
      const p0 = allocPort(); const p1 = allocPort()
      await rig.serve('api-true', { role: 'api', redis: true }, p0)
      // monotonic clocks stay true so timers in the skewed process still fire on time
      await rig.serve('api-ahead', { role: 'api', redis: true, extraEnv: { LD_PRELOAD: FAKETIME_LIB, FAKETIME: '+2m', FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' } }, p1)
      const skew = await fetch(`${url(p1)}/healthz`).then((r) => Date.parse(r.headers.get('date') ?? '') - Date.now())
      rig.note(`the skewed API's Date header is ${secs(skew)} ahead`)
      return { key, targets: [url(p0), url(p1)] }
    },
    ledger: { fanout: true },
    load: { total: 1500 },
    after: async ({ rig, ledger }) => acceptedOnce(rig, ledger),
  }),
  scenario({
    name: 'state-full',
    what: 'the service (role all, LMDB) keeps its data dir on a 1 MB tmpfs that fills up under load; it must refuse (5xx) what it cannot record, never accept and lose; facts still refused after 20 s are left unresolved; then the tmpfs grows to 64 MB, the client sends the unresolved facts again, and everything accepted must reach ClickHouse once, under the event id the client was given',
    async setup(rig) {
      const dir = rig.dataPath('svc')
      mkdirSync(dir, { recursive: true })
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir])
      rig.onClose(async () => { execFileSync('umount', ['-l', dir]) })
      return { ...await single(rig), dir }
    },
    // batches only, few in flight: every unit may retry until its deadline while the disk is full
    ledger: { factDeadlineMs: 20_000 },
    load: { total: 2500, rate: 150, batchSize: 50, singleShare: 0, concurrency: 8 },
    async after({ rig, s, ledger }) {
      const { svc, dir } = s
      rig.note(`after the load: service ${svc.alive() ? 'running' : `exited (${svc.child.exitCode ?? svc.child.signalCode})`}, ${ledger.acceptedSoFar()} facts accepted; df: ${execFileSync('df', ['-h', dir]).toString().split('\n')[1]?.replace(/\s+/g, ' ')}`)
      // room again: what was accepted must now reach ClickHouse
      execFileSync('mount', ['-o', 'remount,size=64m', dir])
      const again = await ledger.retryUnresolved()
      rig.note(`after the tmpfs grew: ${again} unresolved facts sent again; ${ledger.acceptedSoFar()} accepted now`)
    },
  }),
  scenario({
    name: 'compaction',
    what: `scale-out (API, consumer, Redis) on a topic that compacts as soon as Kafka can (set on the suite's topic with the admin client: segment.ms ${COMPACT.segmentMs}, min.cleanable.dirty.ratio ${COMPACT.dirtyRatio}, min.compaction.lag.ms 0; the service configured to accept lag 0); the consumer is stopped 3 s into the load; 4 s and 8 s later a direct producer sends every fact accepted so far once more (same tuple, payload and event id: a producer retrying as docs/DIRECT-PRODUCERS.md asks), so the first records of facts the consumer has not read are compacted away under it; when the load is over and the log cleaner has run past the repeats on every partition, the consumer starts again and catches up over the compacted log`,
    async setup(rig) {
      const s = await scaleOut(rig, 1, { kafka: { minCompactionLagMs: 0 } })
      rig.note(`topic configs: ${await compactHard(rig.topic)}`)
      return s
    },
    faultAt: 3000,
    async fault({ rig, s, ledger, loadDone }) {
      await stopProc(s.consumer)
      rig.note(`consumer stopped (SIGTERM) with ${ledger.acceptedSoFar()} facts accepted`)
      const { createDirectProducer } = await import('../../src/producer/index.js')
      const p = await createDirectProducer({ brokers: [brokers()], topic: rig.topic, registryUrl: registryUrl() })
      let repeats = 0
      const facts = new Set<string>()
      try {
        // two rounds, each of every fact accepted so far; the load goes on after them, and its
        // appends roll the segments holding the repeats (only closed segments are cleaned)
        for (let round = 0; round < 2; round++) {
          await sleep(4000)
          const accepted = [...ledger.facts.values()].filter((f) => f.state === 'accepted')
          for (let i = 0; i < accepted.length; i += 100) {
            await Promise.all(accepted.slice(i, i + 100).map(async (f) => {
              await p.send({ tenant: rig.tenant, ...f.payload } as unknown as Parameters<typeof p.send>[0], { eventId: [...f.eventIds][0] as string })
              facts.add(f.id)
              repeats++
            }))
          }
        }
      } finally { await p.close() }
      const repeated = await partitionHighs(rig.topic)
      if (loadDone()) rig.fail('the load was over before the repeats: nothing rolled their segments')
      await waitUntil('the load', loadDone, 300_000, 200)
      const high = await topicRecords(rig)
      rig.note(`direct producer: ${repeats} repeats of ${facts.size} accepted facts sent in two rounds while the load ran; ${high} records on the topic (sum of high watermarks)`)
      // the proof that compaction ran over the repeats: the cleaner's checkpoint of every
      // partition reached the offset after the last repeat, and fewer records are readable than written
      const t0 = Date.now()
      const past = () => { const cp = cleanerCheckpoints(rig.topic); return [...repeated].filter(([p, h]) => (cp.get(p) ?? 0) >= h).length }
      const cleaned = await waitUntil('the log cleaner over the repeats on every partition', () => past() >= repeated.size, 180_000, 1000).then(() => true, () => false)
      const readable = await readAll(rig.topic)
      const cp = cleanerCheckpoints(rig.topic)
      rig.note(`log cleaner: ${past()}/${repeated.size} partitions cleaned past the last repeat ${secs(Date.now() - t0)} after the load (partition:end of the repeats -> cleaned up to: ${[...repeated].sort().map(([k, v]) => `${k}:${v}->${cp.get(k) ?? '-'}`).join(', ')}); ${readable} of ${high} records still readable, ${high - readable} compacted away`)
      if (!cleaned || readable >= high) rig.fail(`compaction did not run over the repeats (partitions cleaned past them ${past()}/${repeated.size}, readable ${readable} of ${high})`)
      const t1 = Date.now()
      await rig.serve('consumer-b', { role: 'consumer', redis: true, config: { kafka: { minCompactionLagMs: 0 } } })
      rig.note(`consumer running again ${secs(Date.now() - t1)} after its start`)
    },
  }),
  stateLost({
    name: 'state-lost',
    what: 'the service (role all, LMDB) takes 1500 facts, is stopped and loses its LMDB directory (claims, dedup records, identity graph, API keys); a new key is made, `cdp state rebuild` restores the store from the topic, the service starts again, and the client sends every accepted fact again (retries) while 500 new ones arrive: each old fact must be answered duplicate with its original event id, nothing stored twice, nothing lost',
    setup: (rig) => single(rig),
    store: { dataDir: 'svc' },
    async lose(rig, s) {
      await stopProc(s.svc)
      const stateDir = join(rig.dataPath('svc'), 'state')
      if (!existsSync(stateDir)) rig.fail(`no LMDB directory at ${stateDir}`)
      rmSync(stateDir, { recursive: true, force: true })
      return `${stateDir.slice(rig.dir.length + 1)} deleted`
    },
    async restart(rig, s) { await rig.serve('svc-2', { dataDir: 'svc' }, s.port) },
  }),
  stateLost({
    name: 'state-lost-redis',
    ci: true,
    what: 'as state-lost in scale-out (an API and a consumer process sharing Redis): both are stopped and every key under the scenario\'s Redis prefix is deleted (claims, dedup records, identity graph, API keys), then the same rebuild, restart and retries',
    setup: (rig) => scaleOut(rig, 1),
    store: { redis: true },
    async lose(rig, s) {
      await Promise.all([s.consumer, ...s.procs].map((p) => stopProc(p)))
      const n = flushPrefix(rig.prefix)
      if (n === 0) rig.fail(`no Redis keys under ${rig.prefix}:`)
      return `${n} Redis keys under ${rig.prefix}: deleted`
    },
    async restart(rig, s) {
      await rig.serve('consumer-b', { role: 'consumer', redis: true })
      await rig.serve('api-0b', { role: 'api', redis: true }, s.ports[0])
    },
  }),
]

/** state-lost: how one deployment shape loses its state store and comes back */
interface StoreLoss<S extends Setup> {
  name: string
  ci?: boolean
  what: string
  setup(rig: Rig): Promise<S>
  /** the store `keys create` and `cdp state rebuild` write into: the one the service reads */
  store: ServeOptions
  /** stops the service's processes and loses the store; says what went */
  lose(rig: Rig, s: S): Promise<string>
  /** starts the service again on the rebuilt store */
  restart(rig: Rig, s: S): Promise<void>
}

function stateLost<S extends Setup>(l: StoreLoss<S>): Scenario {
  return scenario({
    name: l.name,
    ci: l.ci ?? false,
    what: l.what,
    setup: l.setup,
    load: { total: 1500 },
    async after({ rig, s, ledger }) {
      const t0 = Date.now()
      const lost = await l.lose(rig, s)
      rig.note(`service stopped and ${lost} in ${secs(Date.now() - t0)}`)
      // the keys lived in the lost store too: an operator makes a new one
      ledger.useKey(rig.createKey(l.store))
      const r = await rig.cdp('state-rebuild', ['state', 'rebuild'], l.store)
      const lines = r.output.split('\n').filter((x) => x.startsWith('state rebuild:'))
      for (const x of lines.length > 6 ? [...lines.slice(0, 3), `… ${lines.length - 6} more progress lines`, ...lines.slice(-3)] : lines) rig.note(x)
      if (r.code !== 0) rig.fail(`cdp state rebuild exited ${r.code}: ${r.output.slice(-1500)}`)
      await l.restart(rig, s)
      const old = [...ledger.facts.values()].filter((f) => f.state === 'accepted')
      const original = new Map(old.map((f) => [f.id, { eventId: [...f.eventIds][0], answers: f.answers.length }]))
      await Promise.all([
        ledger.resend(old, { rate: 150, batchSize: 50, singleShare: 0.3, concurrency: 6 }),
        ledger.run({ ...LOAD, total: 500 }),
      ])
      let dupSameId = 0; let acceptedAgain = 0; let otherId = 0; let notFinal = 0
      for (const f of old) {
        const o = original.get(f.id)!
        const last = f.answers.slice(o.answers).findLast((a) => a.result !== undefined)
        if (last === undefined) notFinal++
        else if (last.eventId !== o.eventId) otherId++
        else if (last.result === 'accepted') acceptedAgain++
        else dupSameId++
      }
      rig.note(`old facts sent again: ${old.length}; answered duplicate with the original event id ${dupSameId}, accepted again ${acceptedAgain}, another event id ${otherId}, no final answer ${notFinal}`)
      if (dupSameId !== old.length) rig.fail(`${old.length - dupSameId} of ${old.length} retries of old facts not answered duplicate with their original event id`)
    },
  })
}

/** deletes every key under `<prefix>:` in the suite's own Redis; returns how many */
function flushPrefix(prefix: string): number {
  const cli = (...a: string[]) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(STACK.redisPort), ...a], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 })
  const keys = cli('--scan', '--pattern', `${prefix}:*`).split('\n').filter((k) => k !== '')
  for (let i = 0; i < keys.length; i += 500) cli('DEL', ...keys.slice(i, i + 500))
  return keys.length
}

function kafkaAdmin() {
  return new kafkajs.Kafka({ clientId: 'faults-admin', brokers: [brokers()], logLevel: kafkajs.logLevel.NOTHING }).admin()
}

/**
 * Makes the topic compact as soon as Kafka can. kafkajs has only the non-incremental AlterConfigs,
 * which replaces the topic's whole set: what the service set (cleanup.policy, min.insync.replicas)
 * is written again with it. Returns the configs as the broker then describes them.
 */
async function compactHard(topic: string): Promise<string> {
  const admin = kafkaAdmin()
  await admin.connect()
  try {
    const want: Record<string, string> = {
      'cleanup.policy': 'compact', 'min.insync.replicas': '1', 'min.compaction.lag.ms': '0',
      'segment.ms': String(COMPACT.segmentMs), 'min.cleanable.dirty.ratio': String(COMPACT.dirtyRatio),
    }
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configEntries: Object.entries(want).map(([name, value]) => ({ name, value })) }] })
    const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: Object.keys(want) }] })
    const got = Object.fromEntries((d.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]))
    const wrong = Object.entries(want).filter(([k, v]) => got[k] !== v)
    if (wrong.length > 0) throw new Error(`topic ${topic}: configs not applied: ${wrong.map(([k, v]) => `${k} ${String(got[k])} (wanted ${v})`).join(', ')}`)
    return Object.entries(got).map(([k, v]) => `${k}=${String(v)}`).join(', ')
  } finally { await admin.disconnect() }
}

/**
 * The broker's log cleaner records, per partition it has cleaned, the offset it cleaned up to in
 * `cleaner-offset-checkpoint` under the log dir (lines `topic partition offset` after a version
 * and a count line). The suite's own stack only (STACK.dir).
 */
function cleanerCheckpoints(topic: string): Map<number, number> {
  const out = new Map<number, number>()
  let text = ''
  try { text = readFileSync(join(STACK.dir, 'kafka', 'data', 'cleaner-offset-checkpoint'), 'utf8') } catch { return out }
  for (const line of text.split('\n').slice(2)) {
    const [t, p, o] = line.trim().split(/\s+/)
    if (t === topic && p !== undefined && o !== undefined && Number(o) > 0) out.set(Number(p), Number(o))
  }
  return out
}

/** high watermark per partition */
async function partitionHighs(topic: string): Promise<Map<number, number>> {
  const admin = kafkaAdmin()
  await admin.connect()
  try { return new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)])) } finally { await admin.disconnect() }
}

/** how many records a reader from the beginning sees on the topic now (a fresh group, deleted after) */
async function readAll(topic: string): Promise<number> {
  const kafka = new kafkajs.Kafka({ clientId: 'faults-reader', brokers: [brokers()], logLevel: kafkajs.logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const groupId = `faults-reader-${Date.now()}`
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000 })
  try {
    const offsets = await admin.fetchTopicOffsets(topic)
    // the last offset of each partition is in the active segment, which is never cleaned
    const end = new Map(offsets.filter((o) => Number(o.high) > 0).map((o) => [o.partition, Number(o.high) - 1]))
    const seen = new Map<number, number>()
    let n = 0
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({ autoCommit: false, eachMessage: async ({ partition, message }) => { n++; seen.set(partition, Number(message.offset)) } })
    await waitUntil('reading the topic to its end', () => [...end].every(([p, last]) => (seen.get(p) ?? -1) >= last), 120_000, 200)
    return n
  } finally {
    await consumer.disconnect().catch(() => undefined)
    await admin.deleteGroups([groupId]).catch(() => undefined)
    await admin.disconnect()
  }
}

/** direct-conflicts: tuples each direct producer writes */
const DIRECT_N = 300

/** records on the scenario's topic (sum of the partitions' high watermarks) */
async function topicRecords(rig: Rig): Promise<number> {
  const admin = new kafkajs.Kafka({ clientId: 'faults-admin', brokers: [brokers()], logLevel: kafkajs.logLevel.NOTHING }).admin()
  await admin.connect()
  try { return (await admin.fetchTopicOffsets(rig.topic)).reduce((n, p) => n + Number(p.high), 0) } finally { await admin.disconnect() }
}

const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'

/** clock-skew needs Debian's libfaketime: installed here when missing and the suite runs as root */
function ensureFaketime(): void {
  if (existsSync(FAKETIME_LIB)) return
  if (process.getuid?.() === 0) {
    const apt = (...a: string[]) => spawnSync('apt-get', a, { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 }).status === 0
    if (!apt('install', '-y', '--no-install-recommends', 'libfaketime')) { apt('update'); apt('install', '-y', '--no-install-recommends', 'libfaketime') }
  }
  if (!existsSync(FAKETIME_LIB)) throw new Error(`libfaketime is not installed (${FAKETIME_LIB}; Debian package libfaketime; the suite installs it when it runs as root)`)
}
