/**
 * Bytes of state per fact (issue 10 item 5). Needs Redis for the Redis half (`npm run stack up`).
 *   npx tsx bench/state-size.ts [-- --facts 100000]
 * Writes N facts through the real stores, as the API and the consumer do for each new event:
 *   claims  claimMany + commitMany (the API's idempotency record)
 *   dedup   checkMany (the consumer's first-fact record)
 * and measures what they occupy:
 *   LMDB    growth of the environment's data file (allocated blocks, and the file length), fresh dir
 *   Redis   MEMORY USAGE of a sample of the keys written (per key type), and INFO used_memory growth
 *           (noisier: the Redis is shared); the keys are deleted afterwards
 * Prints a table and `bytes_per_fact <backend> <store> <value>` lines.
 */
import { parseArgs } from 'node:util'
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { loadConfig } from '../src/config/index.js'
import { createStateStores, type StateStores } from '../src/state/index.js'
import { encodeKey } from '../src/avro/key.js'
import { fingerprint, newEventId } from '../src/avro/event.js'

const { values } = parseArgs({ options: { facts: { type: 'string', default: '100000' } } })
const N = Number(values.facts)
const run = randomBytes(4).toString('hex')
const CHUNK = 1000

/** a fact as the API sees it: the tuple key, a new event id, the payload's fingerprint */
function fact(i: number) {
  const tuple = { tenant: 'acme', source: 'brand.pos', externalEventId: `order-${run}-${String(i).padStart(9, '0')}` }
  const key = encodeKey(tuple).toString('utf8')
  const fp = fingerprint({ eventType: 'purchase_completed', occurredAt: 1_790_000_000_000 + i, identity: { email: `u${i}@example.com` }, properties: { amount: i } })
  return { key, eventId: newEventId(), fingerprint: fp }
}

async function fill(stores: StateStores, which: 'claims' | 'dedup'): Promise<void> {
  for (let i = 0; i < N; i += CHUNK) {
    const batch = Array.from({ length: Math.min(CHUNK, N - i) }, (_, j) => fact(i + j))
    if (which === 'claims') {
      await stores.claims.claimMany(batch, Date.now(), 30_000)
      await stores.claims.commitMany(batch)
    } else {
      await stores.dedup.checkMany(batch.map((f, j) => ({ key: f.key, ref: { eventId: f.eventId, fingerprint: f.fingerprint, partition: (i + j) % 12, offset: String(1_000_000 + i + j) } })))
    }
  }
}

function dirBytes(path: string): { allocated: number; length: number } {
  let allocated = 0
  let length = 0
  for (const f of readdirSync(path)) {
    const s = statSync(join(path, f))
    allocated += s.blocks * 512
    length += s.size
  }
  return { allocated, length }
}

async function lmdb(which: 'claims' | 'dedup') {
  const dir = mkdtempSync(join(tmpdir(), 'cdp-state-size-'))
  try {
    const config = loadConfig({ overrides: { dataDir: dir, logLevel: 'silent', state: { backend: 'lmdb', lmdbPath: join(dir, 'state'), lmdbSync: false } } })
    const stores = await createStateStores(config)
    const before = dirBytes(config.state.lmdbPath)
    await fill(stores, which)
    await stores.close()
    const after = dirBytes(config.state.lmdbPath)
    return { allocated: (after.allocated - before.allocated) / N, length: (after.length - before.length) / N }
  } finally { rmSync(dir, { recursive: true, force: true }) }
}

async function usedMemory(r: Redis): Promise<number> {
  const info = await r.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0)
}

async function redis(which: 'claims' | 'dedup') {
  const prefix = `statesize_${run}_${which}`
  const config = loadConfig({ overrides: { logLevel: 'silent', state: { backend: 'redis' }, keys: { prefix } } })
  const r = new Redis(config.state.redisUrl)
  try {
    const stores = await createStateStores(config)
    const before = await usedMemory(r)
    await fill(stores, which)
    const after = await usedMemory(r)
    await stores.close()
    const sample: number[] = []
    const kind = which === 'claims' ? 'claim' : 'dedup'
    for (let i = 0; i < N; i += Math.max(1, Math.floor(N / 500))) {
      sample.push(Number(await r.call('MEMORY', 'USAGE', `${prefix}:${kind}:${fact(i).key}`, 'SAMPLES', '0')))
    }
    return { memoryUsage: sample.reduce((a, b) => a + b, 0) / sample.length, usedMemory: (after - before) / N }
  } finally {
    let cursor = '0'
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await r.unlink(...keys)
    } while (cursor !== '0')
    r.disconnect()
  }
}

async function main() {
  const load = loadavg()
  const sampleFact = fact(0)
  console.log(`\n${N} facts; key ${Buffer.byteLength(sampleFact.key)} bytes (${sampleFact.key}), event id ${sampleFact.eventId.length}, fingerprint ${sampleFact.fingerprint.length}; load average ${load.map((x) => x.toFixed(1)).join(' ')}`)
  console.log('| backend | store | bytes per fact | measured as |')
  console.log('|---|---|---:|---|')
  const lines: string[] = []
  for (const which of ['claims', 'dedup'] as const) {
    const l = await lmdb(which)
    console.log(`| LMDB | ${which} | ${l.allocated.toFixed(0)} | data file blocks allocated (file length: ${l.length.toFixed(0)}) |`)
    lines.push(`bytes_per_fact lmdb ${which} ${l.allocated.toFixed(0)}`)
  }
  for (const which of ['claims', 'dedup'] as const) {
    const m = await redis(which)
    console.log(`| Redis | ${which} | ${m.memoryUsage.toFixed(0)} | MEMORY USAGE per key (used_memory growth: ${m.usedMemory.toFixed(0)}) |`)
    lines.push(`bytes_per_fact redis ${which} ${m.memoryUsage.toFixed(0)}`)
  }
  console.log('')
  for (const l of lines) console.log(l)
}

main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1) })
