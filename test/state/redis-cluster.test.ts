/**
 * The Redis stores on a real Redis Cluster (issue 10 item 6): three masters started here on
 * ports 27401-27403 (their cluster bus on +10000), joined with `redis-cli --cluster create`, and
 * the whole state contract run through an ioredis Cluster client. A script whose keys span slots
 * fails there with CROSSSLOT, so the contract passing is the proof that every script call's
 * keys share one slot. Skipped when redis-server is not installed or the ports are taken.
 */
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import { createRedisStateStores, factSlot } from '../../src/state/redis.js'
import { uniq } from '../helpers/config.js'
import { stateContract } from './contract.js'

const PORTS = [27401, 27402, 27403]

function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port })
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

function cli(args: string[]): string {
  const r = spawnSync('redis-cli', args, { encoding: 'utf8', input: 'yes\n' })
  return `${r.stdout}${r.stderr}`
}

async function startCluster(): Promise<{ stop: () => void } | string> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed'
  for (const p of PORTS) if (await portTaken(p) || await portTaken(p + 10_000)) return `port ${p} or ${p + 10_000} is taken`
  const dir = mkdtempSync(join(tmpdir(), 'cdp-redis-cluster-'))
  const servers: ChildProcess[] = PORTS.map((port) => spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
    '--save', '', '--appendonly', 'no', '--dir', dir,
  ], { stdio: 'ignore' }))
  const stop = (): void => {
    for (const s of servers) s.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const p of PORTS) {
      const until = Date.now() + 10_000
      while (!cli(['-p', String(p), 'ping']).includes('PONG')) {
        if (Date.now() > until) throw new Error(`redis-server on ${p} did not start`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const created = cli(['--cluster', 'create', ...PORTS.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'])
    if (!created.includes('All 16384 slots covered')) throw new Error(`cluster create: ${created}`)
    const until = Date.now() + 15_000
    while (!PORTS.every((p) => cli(['-p', String(p), 'cluster', 'info']).includes('cluster_state:ok'))) {
      if (Date.now() > until) throw new Error('the cluster did not become ok')
      await new Promise((r) => setTimeout(r, 100))
    }
    return { stop }
  } catch (err) {
    stop()
    throw err
  }
}

const started = await startCluster()
if (typeof started === 'string') {
  t.plan(0, `no test Redis Cluster: ${started}`)
} else {
  t.teardown(started.stop)
  const cluster = (t: { teardown: (fn: () => unknown) => void }): Cluster => {
    const c = new Cluster(PORTS.map((port) => ({ host: '127.0.0.1', port })), { enableAutoPipelining: true })
    t.teardown(() => c.disconnect())
    return c
  }

  stateContract(t, (t) => {
    const prefix = uniq('cluster')
    // each open its own client, closed with the stores (as a store opened from a URL would be)
    return async () => {
      const c = cluster(t)
      const stores = createRedisStateStores({ url: 'redis://unused', prefix, client: c, claimClock: 'caller' })
      return { ...stores, close: async () => { await stores.close(); c.disconnect() } }
    }
  })

  void t.test('cluster: a fact\'s claim and dedup buckets share a slot; a batch spreads over the masters', async (t) => {
    const c = cluster(t)
    const prefix = uniq('cluster')
    const keys = Array.from({ length: 500 }, (_, i) => `["acme","pos","slot-${i}"]`)
    const slots = new Set<number>()
    for (const k of keys.slice(0, 50)) {
      const s = factSlot(k)
      const [a, b] = await Promise.all([c.cluster('KEYSLOT', `${prefix}:c${s.suffix}`), c.cluster('KEYSLOT', `${prefix}:d${s.suffix}`)])
      t.equal(a, b, `one slot for ${k}`)
      slots.add(Number(a))
    }
    t.ok(slots.size > 30, `50 facts over ${slots.size} slots`)
    // one batch across every master: each tag group is its own script, outcomes in input order
    const stores = createRedisStateStores({ url: 'redis://unused', prefix, client: c, claimClock: 'caller' })
    const claimed = await stores.claims.claimMany(keys.map((k, i) => ({ key: k, eventId: `evt_${i}`, fingerprint: 'f' })), 1000, 30_000)
    t.same(claimed.map((o) => o.eventId), keys.map((_, i) => `evt_${i}`))
    await stores.claims.commitMany(keys.map((k, i) => ({ key: k, eventId: `evt_${i}` })))
    const again = await stores.claims.claimMany(keys.map((k, i) => ({ key: k, eventId: `evt_new_${i}`, fingerprint: 'f' })), 2000, 30_000)
    t.ok(again.every((o, i) => o.outcome === 'duplicate' && o.eventId === `evt_${i}`), 'every fact a duplicate of its own id')
    const perNode = await Promise.all(c.nodes('master').map(async (n) => Number(await n.dbsize())))
    t.ok(perNode.every((x) => x > 0), `keys on every master (${perNode.join(', ')})`)
  })
}
