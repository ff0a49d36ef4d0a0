import t from 'tap'
import { decodeKey, encodeKey, keyString } from '../../../src/avro/key.js'

void t.test('key bytes are pinned: changing them re-partitions and breaks compaction', async (t) => {
  const key = encodeKey({ tenant: 'acme', source: 'brand.pos', externalEventId: 'txn_987654321' })
  t.equal(key.toString('hex'), Buffer.from('["acme","brand.pos","txn_987654321"]').toString('hex'))
  t.equal(key.toString('hex'), '5b2261636d65222c226272616e642e706f73222c2274786e5f393837363534333231225d')
  // characters that need escaping keep a single unambiguous form
  const odd = encodeKey({ tenant: 't"1', source: 's,2', externalEventId: 'é\n' })
  t.equal(odd.toString('utf8'), '["t\\"1","s,2","é\\n"]')
})

void t.test('no two tuples share a key, even with separators inside values', async (t) => {
  const a = keyString({ tenant: 'a', source: 'b,c', externalEventId: 'd' })
  const b = keyString({ tenant: 'a', source: 'b', externalEventId: 'c,d' })
  t.not(a, b)
})

void t.test('decodeKey round-trips and rejects foreign keys', async (t) => {
  const tuple = { tenant: 'acme', source: 'brand.crm', externalEventId: 'x-1' }
  t.same(decodeKey(encodeKey(tuple)), tuple)
  t.equal(decodeKey(Buffer.from('not json')), undefined)
  t.equal(decodeKey(Buffer.from('["a","b"]')), undefined)
  t.equal(decodeKey(Buffer.from('["a","b",""]')), undefined)
  t.equal(decodeKey(null), undefined)
})
