/**
 * ConsumerRunner over a fake kafkajs client: a crash kafkajs will not restart from (CRASH with
 * restart false) must not leave the runner without a consumer. It makes a new consumer instance,
 * which then consumes and commits; `healthy` is false until that one joined. A crash kafkajs
 * restarts itself is left to kafkajs.
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import { pino } from 'pino'
import { ConsumerRunner, type InboundRecord, type KafkaClient } from '../../../src/kafka/index.js'

const EVENTS = { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash' }

const JOINED = { payload: { memberAssignment: { events: [0] } } }

type EachBatch = (p: unknown) => Promise<void>

class FakeConsumer {
  readonly events = EVENTS
  readonly bus = new EventEmitter()
  eachBatch: EachBatch | undefined
  connected = false
  commits: { partition: number; offset: string }[] = []
  constructor(private readonly behaviour: { failConnect?: boolean; crashOnJoin?: boolean }) {}
  on(name: string, fn: (e: unknown) => void) { this.bus.on(name, fn); return () => this.bus.off(name, fn) }
  async connect() { if (this.behaviour.failConnect === true) throw new Error('broker not there'); this.connected = true }
  async subscribe() { /* nothing to check */ }
  async run(o: { eachBatch: EachBatch }) {
    this.eachBatch = o.eachBatch
    // as kafkajs: a join that fails crashes inside run(), which still resolves
    if (this.behaviour.crashOnJoin === true) this.crash(false)
    else this.bus.emit(EVENTS.GROUP_JOIN, JOINED)
  }
  async disconnect() { this.connected = false }
  async commitOffsets(o: { partition: number; offset: string }[]) { this.commits.push(...o) }
  crash(restart: boolean) {
    this.bus.emit(EVENTS.CRASH, { payload: { error: new Error('The coordinator is not aware of this member'), groupId: 'g', restart } })
  }
  /** one batch of `n` records on partition 0 from offset `from` */
  async feed(from: number, n: number) {
    const messages = Array.from({ length: n }, (_, i) => ({ offset: String(from + i), key: Buffer.from('k'), value: Buffer.from('v'), timestamp: '0' }))
    await this.eachBatch!({
      batch: { topic: 'events', partition: 0, messages },
      heartbeat: async () => undefined, isRunning: () => true, isStale: () => false, resolveOffset: () => undefined,
    })
  }
}

function rig(plan: { failConnect?: boolean; crashOnJoin?: boolean }[] = []) {
  const consumers: FakeConsumer[] = []
  const kafka = { consumer: () => { const c = new FakeConsumer(plan[consumers.length] ?? {}); consumers.push(c); return c } } as unknown as KafkaClient
  const seen: string[] = []
  const handler = { process: async (rs: InboundRecord[]) => { seen.push(...rs.map((r) => r.offset)); return rs.length } }
  const runner = new ConsumerRunner(kafka, { topic: 'events', groupId: 'g', fromBeginning: true, maxBatchRecords: 100, rejoinFirstMs: 5 }, handler, pino({ level: 'silent' }))
  return { runner, consumers, seen }
}

async function until(what: string, fn: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !fn(); i++) await new Promise((r) => setTimeout(r, 5))
  if (!fn()) throw new Error(`never happened: ${what}`)
}

void t.test('a crash kafkajs will not restart from: a new consumer joins, consumes and commits', async (t) => {
  const { runner, consumers, seen } = rig()
  t.equal(runner.healthy, false, 'not healthy before the join')
  await runner.start()
  t.equal(runner.healthy, true)
  await consumers[0]!.feed(0, 3)
  consumers[0]!.crash(false)
  t.equal(runner.healthy, false, 'not healthy while no consumer is in the group')
  await until('a second consumer joined', () => runner.rejoins === 1)
  t.equal(consumers.length, 2)
  t.equal(consumers[0]!.connected, false, 'the dead consumer is disconnected')
  t.equal(runner.healthy, true)
  await consumers[1]!.feed(3, 2)
  t.same(seen, ['0', '1', '2', '3', '4'])
  t.same(consumers[1]!.commits, [{ topic: 'events', partition: 0, offset: '5' }], 'the new consumer commits its batch')
  await runner.stop()
  t.equal(runner.healthy, false, 'not healthy once stopping')
})

void t.test('a crash kafkajs restarts itself: no new consumer, unhealthy until it joins again', async (t) => {
  const { runner, consumers } = rig()
  await runner.start()
  consumers[0]!.crash(true)
  t.equal(runner.healthy, false)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(consumers.length, 1, 'kafkajs restarts it: the runner makes no second consumer')
  consumers[0]!.bus.emit(EVENTS.GROUP_JOIN, JOINED)
  t.equal(runner.healthy, true)
  await runner.stop()
})

void t.test('rejoin keeps trying: a consumer that cannot connect, then one whose join crashes, then one that joins', async (t) => {
  const { runner, consumers, seen } = rig([{}, { failConnect: true }, { crashOnJoin: true }, {}])
  await runner.start()
  consumers[0]!.crash(false)
  await until('a consumer joined', () => runner.rejoins === 1)
  t.equal(consumers.length, 4)
  t.equal(runner.healthy, true)
  await consumers[3]!.feed(0, 1)
  t.same(seen, ['0'])
  await runner.stop()
})

void t.test('stop during the rejoin wait: no new consumer afterwards', async (t) => {
  const { runner, consumers } = rig()
  await runner.start()
  consumers[0]!.crash(false)
  await runner.stop()
  await new Promise((r) => setTimeout(r, 50))
  t.equal(consumers.length, 1)
  t.equal(runner.healthy, false)
})
