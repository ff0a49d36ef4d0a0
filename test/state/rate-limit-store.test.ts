/**
 * The rate-limit stores (issue 7 item 5): the shared contract on memory, LMDB and Redis; LMDB's
 * sweep of ended windows; and two real processes charging one key on one LMDB path.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryRateLimitStore, RedisRateLimitStore, createRateLimitStore } from '../../src/state/rate-limit-store.js'
import { openLmdbRateLimitStore } from '../../src/state/rate-limit-store-lmdb.js'
import { closeRedisClient, createRedisClient, redisSecurity } from '../../src/state/redis-client.js'
import { testConfig } from '../helpers/config.js'
import { rateLimitContract } from './rate-limit-contract.js'
import { deletePrefix } from './redis-helpers.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdp-rl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

void t.test('memory', async (t) => {
  rateLimitContract(t, () => {
    let now = 1_790_000_000_000
    return { open: () => new MemoryRateLimitStore(() => now), advance: async (ms) => { now += ms }, windowMs: 60_000, shared: false, ns: 'cdp' }
  })
})

void t.test('lmdb', async (t) => {
  rateLimitContract(t, (t) => {
    const path = join(tempDir(t), 'rate-limit')
    let now = 1_790_000_000_000
    return { open: () => openLmdbRateLimitStore(path, () => now), advance: async (ms) => { now += ms }, windowMs: 60_000, shared: true, ns: 'cdp' }
  })
})

void t.test('redis', async (t) => {
  // Redis keeps the window with PTTL on its own clock: the contract waits for it
  rateLimitContract(t, (t) => {
    const config = testConfig(t, { state: { backend: 'redis' } })
    t.teardown(() => deletePrefix(config.state.redisUrl, config.keys.prefix))
    const open = () => {
      const client = createRedisClient(config.state.redisUrl, redisSecurity(config.state))
      return new RedisRateLimitStore(client, () => closeRedisClient(client))
    }
    return { open, advance: (ms) => sleep(ms), windowMs: 600, shared: true, ns: config.keys.prefix }
  })
})

void t.test('lmdb: the state backend lmdb puts the counters under <lmdbPath>/rate-limit, shared by every store opened there', async (t) => {
  const config = testConfig(t)
  const a = createRateLimitStore(config)
  const b = createRateLimitStore(config)
  const buckets = [{ id: 'cdp:rl:{acme}:key:k1', limit: 5 }]
  t.same(await a.charge(buckets, 5, 60_000), { ok: true })
  t.match(await b.charge(buckets, 1, 60_000), { ok: false, bucket: 0 }, 'the second store sees the first one\'s charge')
  await a.close()
  t.match(await b.charge(buckets, 1, 60_000), { ok: false }, 'closing one leaves the other working')
  await b.close()
  const reopened = openLmdbRateLimitStore(join(config.state.lmdbPath, 'rate-limit'))
  t.match(await reopened.charge(buckets, 1, 60_000), { ok: false }, 'the counters are in that directory')
  await reopened.close()
})

void t.test('lmdb: counters of ended windows are swept, so the file holds about two windows of buckets', async (t) => {
  const path = join(tempDir(t), 'rate-limit')
  let now = 1_790_000_000_000
  const store = openLmdbRateLimitStore(path, () => now)
  t.teardown(() => store.close())
  const W = 1000
  // 20 windows, 1,200 new keys each in turns of 100 requests (more than one sweep slice of 500
  // per window): without the sweep 24,000 counters
  for (let w = 0; w < 20; w++) {
    for (let turn = 0; turn < 12; turn++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.charge([{ id: `k-${w}-${turn * 100 + i}`, limit: 10 }], 1, W)))
    }
    t.ok(store.size() <= 2 * 1200 + 500, `window ${w}: ${store.size()} counters`)
    now += W
  }
  // a window later, a few charges finish the sweep: only the new key is left
  now += W
  for (let i = 0; i < 20; i++) await store.charge([{ id: 'last', limit: 10 }], 1, W)
  t.equal(store.size(), 1, 'every ended window swept')
  t.same(await store.charge([{ id: 'last', limit: 10 }], 1, W), { ok: false, bucket: 0, retryAfterMs: W }, 'the live counter kept its 20')
})

/** runs one child charging `tries` times against `limit`; resolves with its accepted count */
function child(t: Test, path: string, go: string, tries: number, limit: number): { ready: Promise<void>; accepted: Promise<number> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/state/rate-limit-child.ts'), path, go, String(tries), String(limit)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGKILL') })
  let out = ''
  let err = ''
  let onReady: () => void = () => {}
  const ready = new Promise<void>((resolve) => { onReady = resolve })
  proc.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready\n')) onReady() })
  proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const accepted = new Promise<number>((resolve, reject) => {
    proc.on('exit', (code) => {
      const m = /accepted (\d+)/.exec(out)
      if (code === 0 && m !== null) resolve(Number(m[1]))
      else reject(new Error(`child exited ${code}: ${out}\n${err}`))
    })
  })
  return { ready, accepted }
}

void t.test('lmdb: two processes charging one key on one path never exceed the limit together', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'rate-limit')
  const go = join(dir, 'go')
  const LIMIT = 300
  const kids = [child(t, path, go, 400, LIMIT), child(t, path, go, 400, LIMIT)]
  await Promise.all(kids.map((k) => k.ready))
  writeFileSync(go, '')
  const accepted = await Promise.all(kids.map((k) => k.accepted))
  t.equal(accepted[0]! + accepted[1]!, LIMIT, `exactly the limit across both (${accepted.join(' + ')})`)
  t.ok(accepted.every((n) => n > 0), 'both processes took part')
  const store = openLmdbRateLimitStore(path)
  t.teardown(() => store.close())
  t.match(await store.charge([{ id: 'cdp:rl:{acme}:key:k1', limit: LIMIT }], 1, 600_000), { ok: false, bucket: 0 }, 'a third process finds the budget spent')
})
