import t from 'tap'
import { createKey, KeyVerifier } from '../../../src/auth/keys.js'
import { createMemoryStateStores } from '../../../src/state/index.js'
import type { KeyStore } from '../../../src/state/types.js'

function counting() {
  const stores = createMemoryStateStores()
  const calls: string[] = []
  const store: KeyStore = { ...stores.keys, getKey: (id) => { calls.push(id); return stores.keys.getKey(id) } }
  return { store, calls, real: stores.keys }
}

void t.test('unknown key ids are remembered for negativeCacheMs, then asked again', async (t) => {
  const { store, calls } = counting()
  let now = 1_000_000
  const v = new KeyVerifier(store, 1000, () => now, 5000)
  const unknown = 'Bearer rfcdp_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
  for (let i = 0; i < 100; i++) t.same(await v.verify(unknown), { ok: false, reason: 'unknown' })
  t.equal(calls.length, 1, 'one store read for 100 attempts')
  // another random id is its own read
  await v.verify('Bearer rfcdp_cccccccccccccccc_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb')
  t.equal(calls.length, 2)
  now += 5001
  await v.verify(unknown)
  t.equal(calls.length, 3, 'asked again after the negative cache expired')
})

void t.test('a known key is not affected, and 0 disables the negative cache', async (t) => {
  const { store, calls, real } = counting()
  const { key } = await createKey(real, { tenant: 'acme', permissions: ['events:write'] })
  const v = new KeyVerifier(store, 1000, Date.now, 0)
  t.match(await v.verify(`Bearer ${key}`), { ok: true })
  const unknown = 'Bearer rfcdp_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
  await v.verify(unknown); await v.verify(unknown)
  t.equal(calls.filter((id) => id === 'aaaaaaaaaaaaaaaa').length, 2)
})
