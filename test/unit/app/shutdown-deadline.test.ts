/**
 * The drain's deadline (issue 8 finding 3): a close that never ends (a native thread, a hung
 * dependency) must not keep the process alive. Past `shutdown.deadlineMs` it logs why and ends
 * at once, without process.exit (which would join chDB's worker threads and block).
 * A drain that ends in time exits 0.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { ROOT } from '../../helpers/process.js'

function runScript(closeBody: string, deadlineMs: number): Promise<{ code: number | null; signal: string | null; out: string }> {
  const script = `
    import { installSignalHandlers } from './src/app/serve.ts'
    import { createLogger } from './src/observability/logger.ts'
    const log = createLogger({ logLevel: 'info' })
    installSignalHandlers(() => ${closeBody}, log, ${deadlineMs})
    setInterval(() => undefined, 1000) // a process that would run forever
    console.log('ready')
  `
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
    if (out.includes('ready') && !child.killed) child.kill('SIGTERM')
  })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })))
}

void t.test('a drain that never ends: the deadline ends the process with a log line, not a hang', async (t) => {
  const r = await runScript('new Promise(() => undefined)', 1000)
  t.match(r.out, /shutdown deadline passed/)
  t.ok(r.code !== 0, `not a success (code ${String(r.code)}, signal ${String(r.signal)})`)
})

void t.test('a drain that ends in time exits 0', async (t) => {
  const r = await runScript('Promise.resolve()', 5000)
  t.equal(r.code, 0, r.out)
  t.match(r.out, /drained/)
  t.notMatch(r.out, /deadline passed/)
})
