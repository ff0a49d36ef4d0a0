/**
 * One scenario's world: its own data dirs, topic, consumer group, key namespace, ClickHouse gateway
 * (chDB served over HTTP, so the service and the ledger read the same tables) and the cdp
 * processes it starts. Everything it starts is stopped by `close()`.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { ClickHouseClient } from '@clickhouse/client'
import { clickhouseReader, Ledger, type LedgerOptions, type Reconciliation } from './ledger.js'
import { brokers, redisUrl, registryUrl, ROOT, spawnCdp, spawnNode, STACK, stopProc, httpOk, waitUntil, writeJson, type Proc } from './stack.js'

let nextPort = STACK.basePort
export const allocPort = () => nextPort++

export interface ServeOptions {
  role?: 'all' | 'api' | 'consumer'
  /** state in Redis (scale-out) instead of LMDB under the process's data dir */
  redis?: boolean
  /** where the consumer writes (default: the gateway) */
  clickhouseUrl?: string
  /** extra config file content, merged over the scenario's */
  config?: Record<string, unknown>
  /** data dir name (default: the process name); role all with LMDB shares one across restarts */
  dataDir?: string
  /** more environment for this process only (LD_PRELOAD, FAKETIME) */
  extraEnv?: Record<string, string>
}

export interface Result {
  name: string
  rec: Reconciliation
  notes: string[]
  seconds: number
  ok: boolean
}

export class Rig {
  readonly dir: string
  readonly id: string
  readonly topic: string
  readonly group: string
  readonly prefix: string
  readonly tenant = 'faults'
  readonly source = 'ledger.client'
  readonly notes: string[] = []
  gateway: Proc | undefined
  readonly gatewayPort = allocPort()
  readonly gatewayUrl = `http://127.0.0.1:${this.gatewayPort}`
  /** the gateway's password for this scenario (CLICKHOUSE_PASSWORD): one token across its restarts */
  readonly gatewayToken = randomBytes(24).toString('base64url')
  private procs: Proc[] = []
  private closers: (() => Promise<void>)[] = []
  private ch: ClickHouseClient | undefined
  private baseConfig: Record<string, unknown>
  private lastConsumer: { name: string; o: ServeOptions } | undefined

  /** `run` numbers repeats of one scenario in a run (their logs go to <name>-<run>/) */
  constructor(readonly name: string, runDir: string, run = 0) {
    this.id = `${name.replace(/[^a-z0-9]/g, '')}${Date.now().toString(36)}`
    this.dir = join(runDir, run === 0 ? name : `${name}-${run + 1}`)
    rmSync(this.dir, { recursive: true, force: true })
    mkdirSync(this.dir, { recursive: true })
    this.topic = `faults.${this.id}.events`
    this.group = `faults-${this.id}`
    this.prefix = `faults_${this.id}`
    this.baseConfig = { keys: { prefix: this.prefix }, kafka: { partitions: 4 }, consumer: { sessionTimeoutMs: 10_000 } }
  }

  readonly failures: string[] = []
  note(s: string) { this.notes.push(s) }
  /** a scenario-specific check failed (besides the ledger's reconciliation) */
  fail(s: string) { this.failures.push(s) }
  onClose(fn: () => Promise<void>) { this.closers.push(fn) }

  private env(name: string, o: ServeOptions, port?: number): Record<string, string> {
    const cfgFile = writeJson(join(this.dir, `config-${name}.json`), merge(this.baseConfig, o.config ?? {}))
    return {
      CDP_CONFIG: cfgFile,
      CDP_DATA_DIR: join(this.dir, 'data', o.dataDir ?? name),
      KAFKA_BROKERS: brokers(),
      SCHEMA_REGISTRY_URL: registryUrl(),
      KAFKA_TOPIC: this.topic,
      KAFKA_DLQ_TOPIC: `${this.topic}.dlq`,
      KAFKA_CONSUMER_GROUP: this.group,
      CLICKHOUSE_URL: o.clickhouseUrl ?? this.gatewayUrl,
      CLICKHOUSE_PASSWORD: this.gatewayToken,
      LOG_LEVEL: 'info',
      ...(port !== undefined ? { CDP_PORT: String(port) } : {}),
      ...(o.redis === true ? { REDIS_URL: redisUrl(), STATE_BACKEND: 'redis' } : { STATE_BACKEND: 'lmdb' }),
      ...o.extraEnv,
    }
  }

  async startGateway(): Promise<void> {
    // the project's gateway with the scenario's token (test/faults/gateway-proc.ts), not `cdp
    // clickhouse-gateway`, which makes a new token at every start
    const g = spawnNode('gateway', ['--import', 'tsx', join(ROOT, 'test/faults/gateway-proc.ts'), String(this.gatewayPort), join(this.dir, 'chdb')],
      { FAULTS_GATEWAY_TOKEN: this.gatewayToken }, this.dir)
    this.gateway = g
    this.procs.push(g)
    await waitUntil('the ClickHouse gateway', () => { if (!g.alive()) throw new Error(g.output()); return httpOk(`${this.gatewayUrl}/ping`) }, 30_000)
  }

  async stopGateway(): Promise<void> { if (this.gateway !== undefined) await stopProc(this.gateway) }

  clickhouse(): ClickHouseClient {
    this.ch ??= clickhouseReader(this.gatewayUrl, this.gatewayToken)
    return this.ch
  }

  async count(sql: string): Promise<number> {
    const rows = await (await this.clickhouse().query({ query: sql, format: 'JSONEachRow' })).json<{ c: string }>()
    return Number(rows[0]?.c ?? 0)
  }

  /** `cdp keys create` against the store the given process will read */
  createKey(o: ServeOptions & { name?: string } = {}): string {
    const env = { ...process.env, ...this.env(o.name ?? 'keys', o) }
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/cdp.js'), 'keys', 'create', '--tenant', this.tenant], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 })
    const key = /rfcdp_[A-Za-z0-9_]+/.exec(r.stdout)?.[0]
    if (r.status !== 0 || key === undefined) throw new Error(`keys create failed (${r.status}): ${r.stdout}${r.stderr}`)
    return key
  }

  /** runs a `cdp` command to its end with a service process's environment (`cdp state rebuild`) */
  async cdp(name: string, args: string[], o: ServeOptions = {}, timeoutMs = 300_000): Promise<{ code: number | null; output: string }> {
    const p = spawnCdp(name, args, this.env(name, o), this.dir)
    this.procs.push(p)
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs)
    const ex = await p.exited
    clearTimeout(t)
    return { code: ex.code, output: p.output() }
  }

  /** starts `cdp serve`; resolves once the API answers /readyz (or the consumer says it runs) */
  async serve(name: string, o: ServeOptions = {}, port?: number, opts: { wait?: boolean } = {}): Promise<Proc> {
    const role = o.role ?? 'all'
    // a consumer-only process serves /healthz, /readyz and /metrics on consumer.httpPort (default
    // 8081): each gets its own, or a second consumer (or any other program on 8081) stops it
    const healthPort = role === 'consumer' ? allocPort() : port
    const env = { ...this.env(name, o, port), ...(role === 'consumer' ? { CDP_CONSUMER_PORT: String(healthPort) } : {}) }
    const p = spawnCdp(name, ['serve', '--role', role], env, this.dir)
    this.procs.push(p)
    if (role !== 'api') this.lastConsumer = { name, o }
    if (opts.wait !== false) await this.ready(p, role, healthPort)
    return p
  }

  /** role consumer: running and its health port answers; otherwise /readyz answers */
  async ready(p: Proc, role: string, port?: number, timeoutMs = 120_000): Promise<number> {
    return waitUntil(`${p.name} ready`, async () => {
      if (!p.alive()) throw new Error(`${p.name} exited:\n${p.output().slice(-3000)}`)
      return role === 'consumer'
        ? p.output().includes('consumer running') && await httpOk(`http://127.0.0.1:${port}/healthz`)
        : httpOk(`http://127.0.0.1:${port}/readyz`)
    }, timeoutMs)
  }

  ledger(targets: () => string[], key: string, o: Partial<LedgerOptions> = {}): Ledger {
    return new Ledger({ targets, key, tenant: this.tenant, source: this.source, prefix: `f${this.id}`, ...o })
  }

  /**
   * After a reconciliation that found accepted facts missing: stop every service process, start
   * the last consumer-bearing one again (same data dir and state) and let it catch up. Tells
   * "not consumed while that process ran" apart from "gone".
   */
  async restartConsumer(): Promise<boolean> {
    if (this.lastConsumer === undefined) return false
    const gw = this.gateway
    await Promise.all(this.procs.filter((p) => p !== gw).map((p) => stopProc(p)))
    const { name, o } = this.lastConsumer
    const role = o.role ?? 'all'
    await this.serve(`${name}-recheck`, { ...o, role, dataDir: o.dataDir ?? name }, role === 'all' ? allocPort() : undefined)
    return true
  }

  dataPath(name: string): string { return join(this.dir, 'data', name) }

  deadLetters(): Promise<number> { return this.count('SELECT count() AS c FROM cdp.dead_letters') }

  async close(): Promise<void> {
    for (const fn of this.closers.reverse()) await fn().catch(() => undefined)
    await this.ch?.close().catch(() => undefined)
    // consumers and APIs first, the gateway last (they flush into it)
    const gw = this.gateway
    await Promise.all(this.procs.filter((p) => p !== gw).map((p) => stopProc(p)))
    if (gw !== undefined) await stopProc(gw)
  }
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k]
    out[k] = cur !== null && typeof cur === 'object' && !Array.isArray(cur) && v !== null && typeof v === 'object' && !Array.isArray(v)
      ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v
  }
  return out
}

export function resultLine(name: string, r: Reconciliation): string {
  return `scenario ${name}: sent ${r.sent}, accepted ${r.accepted}, lost ${r.lost}, duplicated ${r.duplicated}`
}
