/**
 * The fault suite's own stack and processes. It never touches the shared development stack: its
 * Kafka, registry and Redis run on their own ports under their own STACK_DIR (both overridable),
 * started with tools/stack/stack.sh, and every service process is `node bin/cdp.js …` (the built dist/),
 * spawned with an environment the suite writes in full. Faults are signals to pids the suite
 * started or read from its own stack's pid files.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const num = (v: string | undefined, d: number) => (v === undefined || v === '' ? d : Number(v))

export const STACK = {
  dir: process.env.FAULTS_STACK_DIR ?? join(ROOT, '.stack', 'faults'),
  // the jars and Apicurio unpacked by the normal stack, when there is one (read only)
  cache: process.env.FAULTS_STACK_CACHE ?? (existsSync(join(ROOT, '.stack', 'cache')) ? join(ROOT, '.stack', 'cache') : undefined),
  kafkaPort: num(process.env.FAULTS_KAFKA_PORT, 29092),
  controllerPort: num(process.env.FAULTS_KAFKA_CONTROLLER_PORT, 29093),
  registryPort: num(process.env.FAULTS_REGISTRY_PORT, 28081),
  redisPort: num(process.env.FAULTS_REDIS_PORT, 26379),
  /** first port of the range the scenarios give their API processes, gateways and proxies */
  basePort: num(process.env.FAULTS_BASE_PORT, 28100),
}
export const brokers = () => `127.0.0.1:${STACK.kafkaPort}`
export const registryUrl = () => `http://127.0.0.1:${STACK.registryPort}/apis/ccompat/v7`
export const redisUrl = () => `redis://127.0.0.1:${STACK.redisPort}`

export type Service = 'kafka' | 'registry' | 'redis'

function stackEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    STACK_DIR: STACK.dir,
    ...(STACK.cache !== undefined ? { STACK_CACHE: STACK.cache } : {}),
    KAFKA_PORT: String(STACK.kafkaPort), KAFKA_CONTROLLER_PORT: String(STACK.controllerPort),
    REGISTRY_PORT: String(STACK.registryPort), REDIS_PORT: String(STACK.redisPort),
    // a small broker: the machine is shared
    KAFKA_HEAP_OPTS: process.env.FAULTS_KAFKA_HEAP_OPTS ?? '-Xms256m -Xmx768m',
  }
}

export function stackCmd(...args: string[]): void {
  const r = spawnSync('bash', [join(ROOT, 'tools/stack/stack.sh'), ...args], { env: stackEnv(), encoding: 'utf8', timeout: 300_000 })
  if (r.status !== 0) throw new Error(`stack.sh ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`)
}

/** the pid of our own stack's service, from its pid file */
export function servicePid(svc: Service): number {
  const f = join(STACK.dir, 'run', `${svc}.pid`)
  const pid = Number(readFileSync(f, 'utf8').trim())
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  // the same check stack.sh makes: the process names our STACK_DIR
  if (!cmd.includes(STACK.dir)) throw new Error(`${svc}: pid ${pid} is not our stack's (${cmd.slice(0, 120)})`)
  return pid
}

export function signalService(svc: Service, sig: NodeJS.Signals): number {
  const pid = servicePid(svc)
  process.kill(pid, sig)
  return pid
}

export async function waitGone(pid: number, timeoutMs = 30_000): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    try {
      const st = readFileSync(`/proc/${pid}/status`, 'utf8')
      if (/^State:\s+Z/m.test(st)) return true
    } catch { return true }
    await sleep(100)
  }
  return false
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// ------------------------------------------------------------------------------------------
// cdp processes

export interface Proc {
  name: string
  child: ChildProcess
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  alive(): boolean
  kill(sig?: NodeJS.Signals): void
  /** stdout+stderr so far (also written to <dir>/<name>.log) */
  output(): string
}

/** the variables the service reads; a spawned process gets only the scenario's values for them */
const SERVICE_VARS = ['CDP_CONFIG', 'CDP_DATA_DIR', 'CDP_HOST', 'CDP_PORT', 'CDP_URL', 'CDP_API_KEY', 'KAFKA_BROKERS', 'KAFKA_TOPIC', 'KAFKA_DLQ_TOPIC',
  'KAFKA_CONSUMER_GROUP', 'KAFKA_PARTITIONS', 'KAFKA_PORT', 'REGISTRY_PORT', 'REDIS_PORT', 'SCHEMA_REGISTRY_URL', 'CLICKHOUSE_URL', 'CLICKHOUSE_USER',
  'CLICKHOUSE_PASSWORD', 'CLICKHOUSE_DATABASE', 'REDIS_URL', 'STATE_BACKEND', 'LOG_LEVEL', 'FAULTS_GATEWAY_TOKEN', 'CDP_CONSUMER_PORT']

export function spawnCdp(name: string, args: string[], env: Record<string, string>, logDir: string): Proc {
  return spawnNode(name, [join(ROOT, 'bin/cdp.js'), ...args], env, logDir)
}

/** a node process of the suite's (argv after the node binary), with the same environment rules */
export function spawnNode(name: string, argv: string[], env: Record<string, string>, logDir: string): Proc {
  const base: NodeJS.ProcessEnv = { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' }
  for (const v of SERVICE_VARS) delete base[v]
  mkdirSync(logDir, { recursive: true })
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' })
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const take = (d: Buffer) => { if (out.length < 2_000_000) out += d.toString(); log.write(d) }
  child.stdout?.on('data', take)
  child.stderr?.on('data', take)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => { log.end(); resolve({ code, signal }) }))
  return {
    name, child, exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill: (sig = 'SIGTERM') => { if (child.exitCode === null && child.signalCode === null) child.kill(sig) },
    output: () => out,
  }
}

/** SIGTERM, then SIGKILL after `graceMs` */
export async function stopProc(p: Proc, graceMs = 20_000): Promise<void> {
  if (!p.alive()) return
  p.kill('SIGTERM')
  const t = setTimeout(() => p.kill('SIGKILL'), graceMs)
  await p.exited
  clearTimeout(t)
}

export async function waitUntil(what: string, fn: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 250): Promise<number> {
  const t0 = Date.now()
  for (;;) {
    try { if (await fn()) return Date.now() - t0 } catch { /* not yet */ }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

export async function httpOk(url: string): Promise<boolean> {
  try { return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok } catch { return false }
}

export function writeJson(file: string, v: unknown): string { writeFileSync(file, JSON.stringify(v, null, 2)); return file }
