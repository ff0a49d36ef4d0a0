/**
 * BatchingProducer over a fake kafkajs client: records for other topics (dead letters,
 * re-assertions) and headers leave through the same lanes as the events, in one request per
 * batch, each topic's records in the order they were sent.
 */
import t from 'tap'
import { pino } from 'pino'
import { BatchingProducer, wasNotSent, type KafkaClient } from '../../../src/kafka/index.js'

interface SentBatch { acks: number; topicMessages: { topic: string; messages: { key: Buffer | null; value: Buffer | null; headers?: Record<string, string> }[] }[] }

function fakeKafka(opts: { failFirst?: boolean } = {}) {
  const batches: SentBatch[] = []
  let producers = 0
  let fail = opts.failFirst === true
  const kafka = {
    producer: () => {
      producers++
      return {
        connect: async () => undefined,
        disconnect: async () => undefined,
        sendBatch: async (b: SentBatch) => {
          if (fail) { fail = false; throw new Error('broker went away') }
          batches.push(b)
        },
      }
    },
  } as unknown as KafkaClient
  return { kafka, batches, producers: () => producers }
}

const log = pino({ level: 'silent' })
const msg = (k: string, headers?: Record<string, string>) => ({ key: Buffer.from(k), value: Buffer.from(`v-${k}`), ...(headers ? { headers } : {}) })

void t.test('records for several topics travel in one request, per-topic order kept, headers included', async (t) => {
  const f = fakeKafka()
  const p = new BatchingProducer(f.kafka, { topic: 'events', lingerMs: 5, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1 }, log)
  const a = p.send([msg('a1'), msg('a2')])
  const d = p.send('events.dlq', [msg('d1', { 'cdp-reason-code': 'bad_avro' })])
  const b = p.send([msg('b1')])
  await Promise.all([a.done, d.done, b.done])
  t.equal(f.batches.length, 1, 'one request')
  const sent = f.batches[0]!
  t.equal(sent.acks, -1, 'acks=all')
  t.same(sent.topicMessages.map((tm) => [tm.topic, tm.messages.map((m) => m.key?.toString())]), [
    ['events', ['a1', 'a2', 'b1']],
    ['events.dlq', ['d1']],
  ])
  t.same(sent.topicMessages[1]!.messages[0]!.headers, { 'cdp-reason-code': 'bad_avro' })
  await p.close()
})

void t.test('a failed batch rejects every caller in it with kafka_unavailable and resets its producer', async (t) => {
  const f = fakeKafka({ failFirst: true })
  const p = new BatchingProducer(f.kafka, { topic: 'events', lingerMs: 0, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1 }, log)
  await p.connect()
  const err = await p.send('events.dlq', [msg('d1')]).done.then(() => undefined, (e: unknown) => e as { code?: string })
  t.equal(err?.code, 'kafka_unavailable')
  await p.send([msg('a1')]).done
  t.equal(f.producers(), 2, 'a fresh producer after the failure')
  t.same(f.batches.map((b) => b.topicMessages.map((tm) => tm.topic)), [['events']])
  await p.close()
})

void t.test('a rejection says whether the records certainly never reached Kafka (wasNotSent)', async (t) => {
  const f = fakeKafka({ failFirst: true })
  const p = new BatchingProducer(f.kafka, { topic: 'events', lingerMs: 0, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1 }, log)
  await p.connect()
  const sentErr = await p.send([msg('a1')]).done.then(() => undefined, (e: unknown) => e)
  t.notOk(wasNotSent(sentErr), 'a request that failed after it was written: outcome unknown')
  const refusing = new BatchingProducer({ producer: () => ({ connect: async () => { throw new Error('ECONNREFUSED') }, disconnect: async () => undefined }) } as unknown as KafkaClient,
    { topic: 'events', lingerMs: 0, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1 }, log)
  t.ok(wasNotSent(await refusing.send([msg('b1')]).done.then(() => undefined, (e: unknown) => e)), 'no connection: not sent')
  const slow = new BatchingProducer(f.kafka, { topic: 'events', lingerMs: 1000, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1 }, log)
  const ticket = slow.send([msg('c1')])
  t.ok(ticket.cancel())
  t.ok(wasNotSent(await ticket.done.then(() => undefined, (e: unknown) => e)), 'cancelled while queued: not sent')
  await Promise.all([p.close(), refusing.close(), slow.close()])
})
