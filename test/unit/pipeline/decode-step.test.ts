import t from 'tap'
import { partitionFor } from '../../../src/avro/partition.js'
import { CdpError } from '../../../src/errors.js'
import { decodeStep } from '../../../src/pipeline/decode-step.js'
import type { ProcessorDeps } from '../../../src/pipeline/deps.js'
import { event, fakeCodec, keyOf, record, UNKNOWN_SCHEMA, wire } from '../../helpers/pipeline-fakes.js'

const e = event()

/** the fake codec, counting its calls */
function codec(): ProcessorDeps['codec'] & { calls: number } {
  const c = { calls: 0, decode: async (b: Buffer | null) => { c.calls++; return fakeCodec.decode(b) } }
  return c
}

void t.test('a key that is not a JSON array of three non-empty strings: bad_key, no tenant, value left alone', async (t) => {
  for (const key of [null, Buffer.from('not json'), Buffer.from('["acme","brand.pos"]'), Buffer.from('["acme","brand.pos",""]')]) {
    const c = codec()
    const out = await decodeStep({ partitions: 1, codec: c })(record(1, key, wire(e)))
    t.equal(out.kind, 'dead_letter')
    if (out.kind !== 'dead_letter') continue
    t.match(out.letter, { reason: 'bad_key', tenant: null })
    t.equal(out.letter.key, undefined)
    t.equal(c.calls, 0)
  }
})

void t.test('a tuple in other bytes than the canonical ones: bad_key with the tenant, no key', async (t) => {
  const c = codec()
  const out = await decodeStep({ partitions: 1, codec: c })(record(1, Buffer.from('[ "acme", "brand.pos", "txn_1" ]'), wire(e)))
  t.equal(out.kind, 'dead_letter')
  if (out.kind !== 'dead_letter') return
  t.match(out.letter, { reason: 'bad_key', tenant: 'acme', message: /canonical/ })
  t.equal(out.letter.key, undefined, 'those bytes are another Kafka key, not the fact\'s')
  t.equal(c.calls, 0)
})

void t.test('a value that is not Avro wire format: not_avro under the fact\'s key', async (t) => {
  const out = await decodeStep({ partitions: 1, codec: fakeCodec })(record(1, keyOf(e).bytes, Buffer.from('{"json":true}')))
  t.equal(out.kind, 'dead_letter')
  if (out.kind !== 'dead_letter') return
  t.match(out.letter, { reason: 'not_avro', tenant: 'acme' })
  t.equal(out.letter.key?.text, '["acme","brand.pos","txn_1"]')
})

void t.test('a null value (an erasure tombstone) is skipped: never dead-lettered, so never followed by a re-assertion', async (t) => {
  const out = await decodeStep({ partitions: 1, codec: fakeCodec })(record(1, keyOf(e).bytes, null))
  t.match(out, { kind: 'skip', why: 'tombstone' })
})

void t.test('a schema id the registry does not know: unknown_schema with the codec\'s message', async (t) => {
  const out = await decodeStep({ partitions: 1, codec: fakeCodec })(record(1, keyOf(e).bytes, UNKNOWN_SCHEMA))
  t.match(out, { kind: 'dead_letter', letter: { reason: 'unknown_schema', tenant: 'acme', message: 'schema id 9 is not registered' } })
})

void t.test('ok: the event and the key, whose bytes are the record\'s', async (t) => {
  const rec = record(4, keyOf(e).bytes, wire(e), partitionFor(keyOf(e).bytes, 12))
  const out = await decodeStep({ partitions: 12, codec: fakeCodec })(rec)
  t.equal(out.kind, 'ok')
  if (out.kind !== 'ok') return
  t.same(out.value.event, e)
  t.equal(out.value.record, rec)
  t.same(out.value.key.tuple, { tenant: 'acme', source: 'brand.pos', externalEventId: 'txn_1' })
  t.ok(out.value.key.bytes.equals(rec.key!))
})

void t.test('on another partition than murmur2 of the key names: wrong_partition before the value is read', async (t) => {
  const right = partitionFor(keyOf(e).bytes, 12)
  const c = codec()
  const out = await decodeStep({ partitions: 12, codec: c })(record(4, keyOf(e).bytes, Buffer.from('not even avro'), (right + 1) % 12))
  t.match(out, { kind: 'dead_letter', letter: { reason: 'wrong_partition', tenant: 'acme', message: new RegExp(`names partition ${right} of 12`) } })
  t.equal(c.calls, 0, 'the value is not judged on a partition that does not own the key')
})

void t.test('a registry outage is not a verdict on the record: the step throws', async (t) => {
  const down: ProcessorDeps['codec'] = { decode: async () => { throw new CdpError('schema_registry_unavailable', 'down') } }
  await t.rejects(decodeStep({ partitions: 1, codec: down })(record(1, keyOf(e).bytes, wire(e))), { code: 'schema_registry_unavailable' })
})
