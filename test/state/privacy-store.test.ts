/**
 * The privacy store (src/state/privacy-store.ts) against memory, LMDB and Redis: erasure
 * requests (taken once, taken over from a silent owner), the suppression list (per tenant, hashes
 * only, lifted by hash or by erasure id) and its key (made once, then stable).
 */
import t, { type Test } from 'tap'
import { createMemoryPrivacyStore, createPrivacyStore, memoryPrivacyKv, privacyStoreOver, type ErasureRecord, type PrivacyKv, type PrivacyStore } from '../../src/state/privacy-store.js'
import { testConfig } from '../helpers/config.js'
import { deletePrefix } from './redis-helpers.js'

type Opener = (t: Test) => () => PrivacyStore

const backends: [string, Opener][] = [
  ['memory', () => { const data = new Map<string, string>(); return () => createMemoryPrivacyStore(data) }],
  ['lmdb', (t) => { const config = testConfig(t); return () => createPrivacyStore(config) }],
  ['redis', (t) => {
    const config = testConfig(t, { state: { backend: 'redis' } })
    t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
    return () => createPrivacyStore(config)
  }],
]

const request = (id: string, at: string, over: Partial<ErasureRecord> = {}): ErasureRecord => ({
  id, tenant: 'acme', identity: { type: 'EMAIL', value: 'a@example.com', hash: `h-${id}` }, status: 'pending', requestedBy: 'cli', requestedAt: at, ...over,
})

for (const [name, opener] of backends) {
  void t.test(`${name}: erasure requests are taken once, in order, and taken over from a silent owner`, async (t) => {
    const open = opener(t)
    const a = open()
    const b = open()
    t.teardown(async () => { await a.close(); await b.close() })
    await a.createErasure(request('era_2', '2026-01-01T00:00:02.000Z'))
    await a.createErasure(request('era_1', '2026-01-01T00:00:01.000Z'))
    const [x, y] = await Promise.all([a.takeErasure('one', 1000, 60_000), b.takeErasure('two', 1000, 60_000)])
    t.same([x?.id, y?.id].sort(), ['era_1', 'era_2'], 'two takers, two different requests')
    t.equal((await a.getErasure('era_1'))?.status, 'running')
    t.equal(await a.takeErasure('three', 2000, 60_000), undefined, 'nothing left while the owners are alive')
    const taken = await b.takeErasure('three', 1000 + 60_001, 60_000)
    t.equal(taken?.owner, 'three', 'an owner silent for staleMs is replaced')
    await a.putErasure({ ...taken!, status: 'completed' })
    t.same((await a.listErasures()).map((r) => r.id), ['era_1', 'era_2'])
    t.equal(await a.getErasure('nope'), undefined)
  })

  void t.test(`${name}: suppressions per tenant, lifted by hash or erasure id; the key is made once`, async (t) => {
    const open = opener(t)
    const s = open()
    t.teardown(() => s.close())
    const at = '2026-01-01T00:00:00.000Z'
    await s.suppress([
      { tenant: 'acme', hash: 'h1', type: 'EMAIL', erasureId: 'era_1', at },
      { tenant: 'acme', hash: 'h2', type: 'PHONE', erasureId: 'era_1', at },
      { tenant: 'acme', hash: 'h3', type: 'EMAIL', erasureId: 'era_2', at },
      { tenant: 'globex', hash: 'h1', type: 'EMAIL', erasureId: 'era_9', at },
    ])
    t.same(await s.isSuppressed('acme', ['h1', 'h2', 'hx']), [true, true, false])
    t.same(await s.isSuppressed('other', ['h1']), [false], 'per tenant')
    t.same(await s.isSuppressed('acme', []), [])
    t.equal((await s.listSuppressions('acme')).length, 3)
    t.equal((await s.listSuppressions()).length, 4)
    t.equal(await s.lift('acme', 'era_1'), 2, 'every identity of one erasure')
    t.equal(await s.lift('acme', 'h3'), 1, 'one identity by its hash')
    t.same(await s.isSuppressed('acme', ['h1', 'h2', 'h3']), [false, false, false])
    t.same(await s.isSuppressed('globex', ['h1']), [true], 'another tenant keeps its entry')
    const k1 = await s.suppressionKey()
    const other = open()
    t.teardown(() => other.close())
    t.equal(k1.length, 32)
    t.same(await other.suppressionKey(), k1, 'every process gets the same key')
  })
}

void t.test('a taker that loses the race on an optimistic backend takes nothing it did not write', async (t) => {
  // the Redis backend decides on what it read, writes only if the key still holds it, and
  // otherwise reads and decides again: here the first decision loses to another owner
  const data = new Map<string, string>()
  const kv = memoryPrivacyKv(data)
  const racing: PrivacyKv = {
    ...kv,
    async update(k, fn) {
      const first = fn(data.get(k))
      if (first !== undefined) {
        const other = JSON.parse(data.get(k)!) as ErasureRecord
        data.set(k, JSON.stringify({ ...other, status: 'running', owner: 'other', heartbeatAt: 1000 }))
      }
      return kv.update(k, fn)
    },
  }
  const store = privacyStoreOver(racing)
  await store.createErasure(request('era_1', '2026-01-01T00:00:01.000Z'))
  t.equal(await store.takeErasure('me', 1000, 60_000), undefined, 'the request went to the other owner')
  t.equal((await store.getErasure('era_1'))?.owner, 'other')
})
