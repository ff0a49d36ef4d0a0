/**
 * tools/stack/stack.sh failure modes, on a throw-away STACK_DIR and ports so the shared stack is
 * untouched: a taken port is named, `down` never kills a process it did not start, and
 * `up` of a real service twice is harmless.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../../helpers/config.js'
import { freePort, ROOT } from '../../helpers/process.js'

const stack = (env: Record<string, string>, ...args: string[]) =>
  spawnSync('bash', [join(ROOT, 'tools/stack/stack.sh'), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 })

void t.test('a port held by another process stops `up` with a message naming it', async (t) => {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())))
  const port = (srv.address() as { port: number }).port
  const r = stack({ STACK_DIR: tempDir(t), REDIS_PORT: String(port) }, 'up', 'redis')
  t.not(r.status, 0, 'exit code is not 0')
  t.match(r.stderr, new RegExp(`port 127\\.0\\.0\\.1:${port}.*REDIS_PORT`), r.stderr)
})

void t.test('`down` leaves alone a process whose pid is in a pid file but is not ours', async (t) => {
  const dir = tempDir(t)
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' })
  t.teardown(() => { sleeper.kill('SIGKILL') })
  mkdirSync(join(dir, 'run'), { recursive: true })
  for (const svc of ['redis', 'kafka', 'registry']) writeFileSync(join(dir, 'run', `${svc}.pid`), String(sleeper.pid))
  const r = stack({ STACK_DIR: dir }, 'down')
  t.equal(r.status, 0, r.stdout + r.stderr)
  t.equal(sleeper.exitCode, null, 'the unrelated process still runs')
  t.equal(sleeper.signalCode, null)
  t.doesNotThrow(() => process.kill(sleeper.pid!, 0), 'pid still alive')
})

void t.test('redis: up twice is harmless, down stops exactly it', async (t) => {
  const dir = tempDir(t)
  const env = { STACK_DIR: dir, REDIS_PORT: String(await freePort()) }
  t.teardown(() => { stack(env, 'down', 'redis') })
  const first = stack(env, 'up', 'redis')
  t.equal(first.status, 0, first.stdout + first.stderr)
  const second = stack(env, 'up', 'redis')
  t.equal(second.status, 0, second.stdout + second.stderr)
  t.match(second.stdout, /already|running|up/i)
  const pidsUp = spawnSync('pgrep', ['-f', '--', `--dir ${dir}/redis`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean)
  t.equal(pidsUp.length, 1, 'one redis-server for this STACK_DIR')
  const down = stack(env, 'down', 'redis')
  t.equal(down.status, 0, down.stdout + down.stderr)
  const pidsDown = spawnSync('pgrep', ['-f', '--', `--dir ${dir}/redis`], { encoding: 'utf8' }).stdout.trim()
  t.equal(pidsDown, '', 'no redis-server left for this STACK_DIR')
})
