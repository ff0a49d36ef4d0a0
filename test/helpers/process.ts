/**
 * Runs `cdp` as a real child process (through tsx, no build needed) with a config file of its own,
 * and stops it with the test.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'node:net'
import type { TestContext } from './config.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

export interface CdpProcess {
  child: ChildProcess
  output: () => string
  /** resolves with the exit code */
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): void
}

export function runCdp(t: TestContext, args: string[], opts: { dir: string; config: object; env?: Record<string, string> }): CdpProcess {
  const configFile = join(opts.dir, `cdp-config-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(configFile, JSON.stringify(opts.config))
  // a consumer role listens for health and metrics: any free port, so several can run side by side
  const env = { ...process.env, CDP_CONFIG: configFile, CDP_CONSUMER_PORT: '0', ...opts.env }
  // the child must not inherit the parent's REDIS_URL etc. unless the test says so
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  })
  return { child, output: () => out, exited, kill: (s = 'SIGTERM') => { child.kill(s) } }
}

/** polls `fn` until it returns a value other than undefined, or throws at the deadline */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastErr: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) { lastErr = err }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
