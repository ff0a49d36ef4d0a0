import t from 'tap'
import { partitionFor } from '../../../src/avro/partition.js'
import { partitionStep } from '../../../src/pipeline/partition-step.js'
import { event, keyOf, record, wire } from '../../helpers/pipeline-fakes.js'
import { crc32 } from '../../helpers/crc32.js'

const keys = Array.from({ length: 200 }, (_, i) => keyOf(event({ externalEventId: `txn_${i}` })))

void t.test('the partition murmur2 names carries on with the key', async (t) => {
  for (const n of [1, 3, 6, 12]) {
    const step = partitionStep({ partitions: n })
    for (const key of keys) {
      const out = step(record(1, key.bytes, null, partitionFor(key.bytes, n)), key)
      if (out.kind !== 'ok') return t.fail(`${key.text} on its own partition of ${n}: ${out.kind}`)
      t.equal(out.value, key)
    }
  }
})

void t.test('any other partition: wrong_partition under the key, naming the right one and the fix', async (t) => {
  const step = partitionStep({ partitions: 6 })
  const key = keys[0]!
  const right = partitionFor(key.bytes, 6)
  for (let p = 0; p < 6; p++) {
    if (p === right) continue
    const rec = record(9, key.bytes, wire(event()), p)
    const out = step(rec, key)
    t.match(out, {
      kind: 'dead_letter',
      letter: { record: rec, key, tenant: 'acme', reason: 'wrong_partition', message: `record is on partition ${p}, but murmur2 of its key names partition ${right} of 6` },
    })
    if (out.kind === 'dead_letter') t.match(out.letter.message, /murmur2_random/)
  }
})

void t.test('a partition the count does not have (partitions added while running) is wrong too', async (t) => {
  const key = keys[1]!
  t.match(partitionStep({ partitions: 3 })(record(1, key.bytes, null, 5), key), { kind: 'dead_letter', letter: { reason: 'wrong_partition' } })
})

void t.test('librdkafka\'s default partitioner (CRC32) puts most keys where the consumer refuses them', async (t) => {
  const n = 12
  const step = partitionStep({ partitions: n })
  const outcomes = keys.map((key) => ({ key, out: step(record(1, key.bytes, null, crc32(key.bytes) % n), key) }))
  const refused = outcomes.filter((o) => o.out.kind === 'dead_letter')
  // the keys CRC32 happens to place where murmur2 would are accepted; every other one is refused
  t.ok(refused.length > keys.length / 2, `${refused.length} of ${keys.length} refused`)
  for (const { key, out } of outcomes) {
    t.equal(out.kind === 'ok', crc32(key.bytes) % n === partitionFor(key.bytes, n), key.text)
  }
})

void t.test('crc32 here is the standard one (the check value of "123456789")', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926)
})
