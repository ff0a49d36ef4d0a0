/**
 * Cost of one rate-limit charge (issue 7 item 5): the LMDB store that `serve --workers N` shares
 * across processes, against the in-memory store it replaced for the embedded mode.
 *   npx tsx bench/rate-limit.ts [-- --charges 50000 --keys 100]
 * Each charge is what the API makes per request: two buckets (the key and its tenant), cost 1,
 * limits high enough that nothing is refused. Two ways:
 *   sequential  one charge awaited at a time: one write transaction (one commit) per charge, the
 *               worst case (a lone client)
 *   concurrent  64 charges in flight: the charges of one event-loop turn share a commit, as under load
 * Prints `us_per_charge <store> <mode> <wall µs> cpu <user+system µs>` lines (medians of 5 rounds).
 */
import { parseArgs } from 'node:util'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, loadavg } from 'node:os'
import { join } from 'node:path'
import { MemoryRateLimitStore, type RateLimitStore } from '../src/state/rate-limit-store.js'
import { openLmdbRateLimitStore } from '../src/state/rate-limit-store-lmdb.js'

const { values } = parseArgs({ options: { charges: { type: 'string', default: '50000' }, keys: { type: 'string', default: '100' } } })
const N = Number(values.charges)
const KEYS = Number(values.keys)
const ROUNDS = 5
const WINDOW = 60_000

function buckets(i: number) {
  const tenant = `t${i % 10}`
  return [{ id: `cdp:rl:{${tenant}}:key:k${i % KEYS}`, limit: 1e12 }, { id: `cdp:rl:{${tenant}}:tenant`, limit: 1e12 }]
}

interface Cost { wall: number; cpu: number }

/** wall and CPU (user + system) microseconds per charge */
async function measure(fn: () => Promise<void>): Promise<Cost> {
  const start = process.hrtime.bigint()
  const cpu0 = process.cpuUsage()
  await fn()
  const cpu = process.cpuUsage(cpu0)
  return { wall: Number(process.hrtime.bigint() - start) / 1000 / N, cpu: (cpu.user + cpu.system) / N }
}

function sequential(store: RateLimitStore): Promise<Cost> {
  return measure(async () => { for (let i = 0; i < N; i++) await store.charge(buckets(i), 1, WINDOW) })
}

function concurrent(store: RateLimitStore): Promise<Cost> {
  let next = 0
  const lane = async () => { while (next < N) await store.charge(buckets(next++), 1, WINDOW) }
  return measure(async () => { await Promise.all(Array.from({ length: 64 }, lane)) })
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const dir = mkdtempSync(join(tmpdir(), 'cdp-bench-rl-'))
const stores: [string, () => RateLimitStore][] = [
  ['memory', () => new MemoryRateLimitStore()],
  ['lmdb', () => openLmdbRateLimitStore(join(dir, 'rate-limit'))],
]
console.log(`charges ${N} per round, ${ROUNDS} rounds, ${KEYS} keys over 10 tenants, load average ${loadavg()[0]!.toFixed(1)}`)
try {
  for (const [name, open] of stores) {
    const store = open()
    await sequential(store) // warm-up: the pages and the JIT
    for (const [mode, run] of [['sequential', sequential], ['concurrent', concurrent]] as const) {
      const costs: Cost[] = []
      for (let r = 0; r < ROUNDS; r++) costs.push(await run(store))
      const wall = costs.map((c) => c.wall)
      console.log(`us_per_charge ${name} ${mode} ${median(wall).toFixed(2)}  cpu ${median(costs.map((c) => c.cpu)).toFixed(2)}  (wall rounds ${wall.map((u) => u.toFixed(2)).join(' ')})`)
    }
    await store.close()
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
