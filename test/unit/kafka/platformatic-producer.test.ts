/**
 * The @platformatic/kafka lane without a broker: what reaches the library's producer (settings,
 * records, headers as bytes, partitions), SASL/TLS from config, and how a failure is worded.
 */
import t from 'tap'
import fc from 'fast-check'
import { pino } from 'pino'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { MultipleErrors, NetworkError, ProtocolError, TimeoutError, UserError } from '@platformatic/kafka'
import { loadConfig } from '../../../src/config/index.js'
import { BatchingProducer, producerOptions, type KafkaClient } from '../../../src/kafka/index.js'
import { javaCompatiblePartition, platformaticOutcome, platformaticSenderOptions } from '../../../src/kafka/platformatic/producer.js'
import { partitionFor } from '../../../src/avro/partition.js'
import { tempDir } from '../../helpers/config.js'

const log = pino({ level: 'silent' })
const noKafkajs = {} as KafkaClient

function fakeLibrary(opts: { failFirst?: unknown } = {}) {
  const created: Record<string, unknown>[] = []
  const sent: { topic: string; key?: Buffer; value?: Buffer; partition?: number; headers?: Map<Buffer, Buffer> }[][] = []
  let closed = 0
  let fail = opts.failFirst
  const create = (options: object) => {
    created.push(options as Record<string, unknown>)
    return {
      initIdempotentProducer: async () => ({}),
      send: async (o: { messages: (typeof sent)[number] }) => {
        if (fail !== undefined) { const e = fail; fail = undefined; throw e }
        sent.push(o.messages)
        return {}
      },
      close: async () => { closed++ },
    }
  }
  return { create, created, sent, closed: () => closed }
}

void t.test('config kafka.client=platformatic: idempotent, acks=all, bounded retries, our partitioner', async (t) => {
  const cfg = loadConfig({ env: {}, overrides: { kafka: { client: 'platformatic', clientId: 'me', produceTimeoutMs: 4000 } } })
  const f = fakeLibrary()
  const opts = producerOptions(cfg)
  t.ok(opts.platformatic, 'platformatic lanes chosen by config')
  const p = new BatchingProducer(noKafkajs, { ...opts, lingerMs: 0, lanes: 1, platformatic: { ...opts.platformatic!, create: f.create } }, log)
  await p.connect()
  const o = f.created[0]!
  t.match(o, { clientId: 'me', idempotent: true, acks: -1, autocreateTopics: false, retries: 3, timeout: 4000, requestTimeout: 5000 })
  t.equal(o.partitioner, javaCompatiblePartition)
  t.ok(producerOptions(loadConfig({ env: {} })).platformatic, 'platformatic is the default')
  t.equal(producerOptions(loadConfig({ env: { CDP_KAFKA_CLIENT: 'kafkajs' } })).platformatic, undefined, 'kafkajs on request')
  await p.close()
})

void t.test('records of several topics in one send; headers as bytes; partitions and nulls kept', async (t) => {
  const f = fakeLibrary()
  const base = platformaticSenderOptions(loadConfig({ env: {} }))
  const p = new BatchingProducer(noKafkajs, { topic: 'events', lingerMs: 5, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1, platformatic: { ...base, create: f.create } }, log)
  const a = p.send([{ key: Buffer.from('a1'), value: Buffer.from('v1') }, { key: Buffer.from('a2'), value: Buffer.from('v2') }])
  const d = p.send('events.dlq', [{ key: null, value: null, headers: { 'cdp-reason-code': 'bad_avro' } }])
  const r = p.send('events', [{ key: Buffer.from('r'), value: Buffer.from('x'), partition: 4 }])
  await Promise.all([a.done, d.done, r.done])
  t.equal(f.sent.length, 1, 'one send')
  const msgs = f.sent[0]!
  t.same(msgs.map((m) => [m.topic, m.key?.toString() ?? null, m.partition]), [['events', 'a1', undefined], ['events', 'a2', undefined], ['events', 'r', 4], ['events.dlq', null, undefined]])
  t.equal(msgs[3]!.value, undefined, 'a null value is sent as null')
  t.same([...msgs[3]!.headers!].map(([k, v]) => [k.toString(), v.toString()]), [['cdp-reason-code', 'bad_avro']])
  await p.close()
})

void t.test('a failed batch: kafka_unavailable, the message says whether it may have been written, a fresh producer follows', async (t) => {
  const f = fakeLibrary({ failFirst: new MultipleErrors('produce failed 2 times.', [new NetworkError('Connection closed'), new TimeoutError('Request timed out')]) })
  const base = platformaticSenderOptions(loadConfig({ env: {} }))
  const p = new BatchingProducer(noKafkajs, { topic: 'events', lingerMs: 0, batchMaxMessages: 100, timeoutMs: 1000, lanes: 1, platformatic: { ...base, create: f.create } }, log)
  await p.connect()
  const err = await p.send([{ key: Buffer.from('a'), value: Buffer.from('v') }]).done.then(() => undefined, (e: unknown) => e as { code?: string; message: string })
  t.equal(err?.code, 'kafka_unavailable')
  t.match(err?.message, /may have been written/)
  await p.send([{ key: Buffer.from('b'), value: Buffer.from('v') }]).done
  t.equal(f.created.length, 2, 'a new producer (new producer id) after the failure')
  t.equal(f.closed(), 1, 'the failed one closed')
  await p.close()
})

void t.test('outcome of a failure: unknown once a request may have reached the log', async (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
  t.equal(platformaticOutcome(new NetworkError('Connection to 127.0.0.1:1 failed.', { cause: refused })), 'not_written')
  t.equal(platformaticOutcome(new MultipleErrors('x', [new NetworkError('Connection to a failed.', { cause: refused }), new NetworkError('Connection to a failed.', { cause: refused })])), 'not_written')
  t.equal(platformaticOutcome(new ProtocolError('NOT_ENOUGH_REPLICAS')), 'not_written', 'refused before the append')
  t.equal(platformaticOutcome(new UserError('bad input')), 'not_written')
  t.equal(platformaticOutcome(new NetworkError('Client is closed.', { closed: true })), 'not_written')
  t.equal(platformaticOutcome(new ProtocolError('NOT_ENOUGH_REPLICAS_AFTER_APPEND')), 'unknown')
  t.equal(platformaticOutcome(new ProtocolError('REQUEST_TIMED_OUT')), 'unknown')
  t.equal(platformaticOutcome(new TimeoutError('Request timed out')), 'unknown')
  t.equal(platformaticOutcome(new NetworkError('Connection error', { cause: reset })), 'unknown')
  t.equal(platformaticOutcome(new MultipleErrors('x', [new NetworkError('Connection to a failed.', { cause: refused }), new TimeoutError('t')])), 'unknown', 'one uncertain try is enough')
  t.equal(platformaticOutcome(new Error('something else')), 'unknown')
})

void t.test('partitions: the same as partitionFor for every key and partition count', async () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.integer({ min: 1, max: 1000 }), (bytes, n) => {
    const key = Buffer.from(bytes)
    return javaCompatiblePartition({}, key) % n === partitionFor(key, n)
  }), { numRuns: 2000 })
})

void t.test('SASL and TLS from config reach the library options', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'ca.pem'), 'PEM ca')
  const cfg = loadConfig({ env: { KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'cdp', KAFKA_SASL_PASSWORD: 's3cret', KAFKA_TLS: 'true', KAFKA_TLS_CA_FILE: join(dir, 'ca.pem') } })
  const o = platformaticSenderOptions(cfg)
  t.same(o.sasl, { mechanism: 'SCRAM-SHA-512', username: 'cdp', password: 's3cret' })
  t.same(o.tls, { rejectUnauthorized: true, ca: 'PEM ca' })
  const none = platformaticSenderOptions(loadConfig({ env: {} }))
  t.equal(none.sasl, undefined)
  t.equal(none.tls, undefined)
})
