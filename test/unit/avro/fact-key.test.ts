import t from 'tap'
import { FactKey, encodeKey, keyString } from '../../../src/avro/key.js'

const tuple = { tenant: 'acme', source: 'brand.pos', externalEventId: 'txn_987654321' }

void t.test('FactKey.of: the tuple, the canonical text and the pinned bytes', async (t) => {
  const k = FactKey.of(tuple)
  t.same(k.tuple, tuple)
  t.equal(k.text, '["acme","brand.pos","txn_987654321"]')
  t.equal(k.text, keyString(tuple))
  t.ok(k.bytes.equals(encodeKey(tuple)))
  t.ok(Object.isFrozen(k.tuple))
})

void t.test('FactKey.read: canonical bytes make the same key as the tuple', async (t) => {
  const odd = { tenant: 't"1', source: 's,2', externalEventId: 'é\n' }
  const r = FactKey.read(encodeKey(odd))
  t.equal(r.ok, true)
  if (!r.ok) return
  t.same(r.key.tuple, odd)
  t.equal(r.key.text, FactKey.of(odd).text)
  t.ok(r.key.matches(odd))
  t.notOk(r.key.matches({ ...odd, source: 's' }))
})

void t.test('FactKey.read: other bytes for a tuple are not its key; foreign bytes are no tuple', async (t) => {
  t.same(FactKey.read(Buffer.from('[ "acme", "brand.pos", "txn_987654321" ]')), { ok: false, problem: 'not_canonical', tuple })
  t.same(FactKey.read(Buffer.from('["acme","brand.pos","txn_\\u0039"]')), { ok: false, problem: 'not_canonical', tuple: { ...tuple, externalEventId: 'txn_9' } })
  for (const b of [null, undefined, Buffer.from('not json'), Buffer.from('["a","b"]'), Buffer.from('["a","b",""]'), Buffer.from('["a","b",3]')]) {
    t.same(FactKey.read(b), { ok: false, problem: 'not_a_tuple' })
  }
})
