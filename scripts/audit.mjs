#!/usr/bin/env node
// Supply-chain check for CI: `npm audit --omit=dev --json` (run-time dependencies only), then
// one line per high or critical advisory and exit 1 when there is any. When the registry does
// not serve the advisory endpoint (some mirrors answer 405) nothing can be checked: that is
// said plainly and exits 0, so a mirror does not block every change; set AUDIT_REQUIRED=1 to
// make it fail instead.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

// a saved report as argument (tests); otherwise ask the registry
const run = process.argv[2] !== undefined
  ? { stdout: readFileSync(process.argv[2], 'utf8'), stderr: '', status: 0 }
  : spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
let report
try {
  report = JSON.parse(run.stdout)
} catch {
  console.log(`audit: npm audit printed no JSON (exit ${run.status}): ${(run.stderr || '').trim().split('\n').pop()}`)
  process.exit(process.env.AUDIT_REQUIRED === '1' ? 1 : 0)
}
if (report.error !== undefined || report.statusCode !== undefined) {
  const why = report.message ?? report.error?.summary ?? 'unknown error'
  console.log(`audit: NOT CHECKED, the registry's advisory endpoint is unavailable: ${why}`)
  process.exit(process.env.AUDIT_REQUIRED === '1' ? 1 : 0)
}
const serious = Object.values(report.vulnerabilities ?? {}).filter((v) => v.severity === 'high' || v.severity === 'critical')
const counts = report.metadata?.vulnerabilities ?? {}
console.log(`audit: run-time dependencies: ${counts.critical ?? 0} critical, ${counts.high ?? 0} high, ${counts.moderate ?? 0} moderate, ${counts.low ?? 0} low`)
for (const v of serious) {
  const titles = (v.via ?? []).map((x) => (typeof x === 'string' ? `via ${x}` : `${x.title} ${x.url ?? ''}`.trim()))
  const fix = v.fixAvailable === false ? 'no fix available' : v.fixAvailable === true ? 'fix: npm audit fix' : `fix: ${v.fixAvailable.name}@${v.fixAvailable.version}`
  console.log(`  ${v.severity.toUpperCase()} ${v.name} ${v.range}: ${titles.join('; ')} (${fix})`)
}
process.exit(serious.length > 0 ? 1 : 0)
