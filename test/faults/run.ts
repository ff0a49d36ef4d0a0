/**
 * `npm run faults [-- name...]`: every scenario (or the named ones); `npm run faults:ci`: the CI
 * subset (`--ci`); `--repeat=N` runs each chosen scenario N times. Brings up the suite's own stack (test/faults/stack.ts: own ports, own
 * STACK_DIR), runs the scenarios one after another, prints one line per scenario
 * (`scenario <name>: sent N, accepted N, lost N, duplicated N`) and the details under it, writes
 * the results as JSON into the run directory, stops its stack (unless --keep-stack) and exits 1 if
 * any scenario lost, duplicated, mislabelled or invented a fact, or failed its own check.
 *
 * Needs `npm run build` first: the service runs as `node bin/cdp.js` (dist/).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { SCENARIOS } from './scenarios.js'
import { Rig, resultLine, type Result } from './rig.js'
import { ROOT, STACK, stackCmd } from './stack.js'

const args = process.argv.slice(2)
const ci = args.includes('--ci')
const keepStack = args.includes('--keep-stack')
const repeatArg = args.find((a) => a.startsWith('--repeat='))
/** each chosen scenario this many times in a row (timing-dependent faults: broker-sigstop) */
const repeat = repeatArg === undefined ? 1 : Number(repeatArg.slice('--repeat='.length))
if (!Number.isInteger(repeat) || repeat < 1) { console.error('--repeat=N needs a whole number >= 1'); process.exit(2) }
const names = args.filter((a) => !a.startsWith('--'))
const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n))
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`)
  process.exit(2)
}
if (!existsSync(join(ROOT, 'dist/src/cli/main.js'))) {
  console.error('dist/ is missing: run `npm run build` first (the scenarios run node bin/cdp.js)')
  process.exit(2)
}
const chosen = SCENARIOS.filter((s) => (names.length > 0 ? names.includes(s.name) : !ci || s.ci)).flatMap((s) => Array.from({ length: repeat }, () => s))

const runDir = join(STACK.dir, 'runs', new Date().toISOString().replace(/[:.]/g, '-'))
mkdirSync(runDir, { recursive: true })
const t0 = Date.now()
console.log(`faults: ${chosen.length} scenarios; stack ${STACK.dir} (kafka :${STACK.kafkaPort}, registry :${STACK.registryPort}, redis :${STACK.redisPort}); logs in ${runDir}`)
stackCmd('up')
console.log(`faults: stack up in ${((Date.now() - t0) / 1000).toFixed(1)} s`)

const SCENARIO_LIMIT_MS = 8 * 60_000
const results: Result[] = []
let failed = 0
try {
  for (const s of chosen) {
    const st = Date.now()
    const rig = new Rig(s.name, runDir, results.filter((r) => r.name === s.name).length)
    let res: Result
    try {
      await rig.startGateway()
      // a scenario that hangs is a failure, not a stuck CI job
      const ledger = await Promise.race([s.run(rig), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no result within ${SCENARIO_LIMIT_MS / 1000} s`)), SCENARIO_LIMIT_MS).unref())])
      rig.note(`answers: ${[...ledger.statusCounts].map(([k, v]) => `${k} x${v}`).join(', ')}`)
      const rt = Date.now()
      const rec = await ledger.reconcile(rig.clickhouse())
      rig.note(`reconciled ${((Date.now() - rt) / 1000).toFixed(1)} s after the load ended (includes a 1.5 s wait for late duplicates)`)
      if (rec.lost > 0 && await rig.restartConsumer()) {
        const again = await ledger.reconcile(rig.clickhouse())
        rig.note(`RECHECK: ${rec.lost} accepted facts were not in ClickHouse; after stopping the service and starting its consumer again: lost ${again.lost}, duplicated ${again.duplicated}, wrong id ${again.wrongId}, unexpected ${again.unexpected} (the line above counts them as lost: they were not stored while the service ran)`)
      }
      const bad = rec.lost + rec.duplicated + rec.wrongId + rec.unexpected + rec.idMismatch
      res = { name: s.name, rec, notes: rig.notes, seconds: Math.round((Date.now() - st) / 1000), ok: bad === 0 && rig.failures.length === 0 }
      if (rig.failures.length > 0) rig.notes.push(...rig.failures.map((f) => `FAILED: ${f}`))
    } catch (err) {
      rig.notes.push(`FAILED: scenario error: ${(err as Error).stack ?? String(err)}`)
      res = { name: s.name, rec: { sent: 0, accepted: 0, rejected: 0, unresolved: 0, lost: 0, duplicated: 0, wrongId: 0, unexpected: 0, idMismatch: 0, examples: {} }, notes: rig.notes, seconds: Math.round((Date.now() - st) / 1000), ok: false }
    } finally {
      await rig.close()
    }
    if (!res.ok) failed++
    results.push(res)
    const r = res.rec
    console.log(resultLine(s.name, r))
    console.log(`  ${res.ok ? 'ok' : 'NOT OK'} in ${res.seconds} s; rejected ${r.rejected}, unresolved ${r.unresolved}, wrong event id ${r.wrongId}, unexpected ${r.unexpected}, two ids for one fact ${r.idMismatch}`)
    for (const n of res.notes) console.log(`  ${n}`)
    for (const [k, v] of Object.entries(r.examples)) if (v.length > 0) console.log(`  e.g. ${k}: ${v.join('; ')}`)
  }
} finally {
  writeFileSync(join(runDir, 'results.json'), JSON.stringify({
    date: new Date().toISOString(), command: `npm run faults${ci ? ':ci' : ''}${names.length > 0 ? ` -- ${names.join(' ')}` : ''}`,
    machine: `${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GB, node ${process.version}`,
    results,
  }, null, 2))
  if (!keepStack) stackCmd('down')
}
console.log(`faults: ${results.length - failed} ok, ${failed} not ok, in ${((Date.now() - t0) / 1000).toFixed(0)} s (results: ${join(runDir, 'results.json')})`)
process.exit(failed > 0 ? 1 : 0)
