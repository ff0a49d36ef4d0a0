import t from 'tap'
import { join } from 'node:path'
import { lmdbKey, openEnv, WriteQueue } from '../../src/state/lmdb-env.js'
import { tempDir } from '../helpers/config.js'

void t.test('write queue: calls of one turn share a transaction, in order; one failure fails only its caller', async (t) => {
  const env = openEnv(join(tempDir(t), 'env'))
  t.teardown(() => env.close())
  const db = env.openDB<number, string>({ name: 'n' })
  const q = new WriteQueue(env, 'test')
  const results = await Promise.allSettled([
    q.run(() => { db.putSync('a', 1); return 'first' }),
    q.run(() => { db.putSync('b', 2); throw new Error('boom') }),
    q.run(() => { db.putSync('c', (db.get('a') ?? 0) + 1); return 'third' }),
  ])
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.match(results[1], { reason: { code: 'state_store_unavailable' } })
  t.same([db.get('a'), db.get('b'), db.get('c')], [1, undefined, 2], 'the failed call wrote nothing; the others saw each other')
  await q.close()
  await t.rejects(q.run(() => 1), { code: 'state_store_unavailable' })
})

void t.test('lmdbKey: short keys as they are, long keys hashed, distinct keys stay distinct', async (t) => {
  t.equal(lmdbKey('["a","b","c"]'), '["a","b","c"]')
  const long1 = 'x'.repeat(5000)
  const long2 = `${'x'.repeat(4999)}y`
  t.match(lmdbKey(long1), /^\u0000sha256:[0-9a-f]{64}$/)
  t.not(lmdbKey(long1), lmdbKey(long2))
  t.equal(lmdbKey('é'.repeat(400)), 'é'.repeat(400), '800 bytes fit')
  t.not(lmdbKey('é'.repeat(600)), 'é'.repeat(600), '1200 bytes do not')
})
