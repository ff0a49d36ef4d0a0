/** scripts/audit.mjs: high and critical advisories fail with a list; lower ones and an unavailable endpoint do not. */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../../helpers/config.js'

const script = new URL('../../../scripts/audit.mjs', import.meta.url).pathname

function audit(t: Parameters<typeof tempDir>[0], report: unknown, env: Record<string, string> = {}) {
  const file = join(tempDir(t), 'report.json')
  writeFileSync(file, JSON.stringify(report))
  return spawnSync(process.execPath, [script, file], { encoding: 'utf8', env: { ...process.env, ...env } })
}

void t.test('a high advisory fails the check and is listed with its fix', async (t) => {
  const r = audit(t, {
    vulnerabilities: {
      'bad-pkg': { name: 'bad-pkg', severity: 'high', range: '<1.2.3', via: [{ title: 'Prototype pollution', url: 'https://example.invalid/GHSA-1' }], fixAvailable: { name: 'bad-pkg', version: '1.2.3' } },
      'meh-pkg': { name: 'meh-pkg', severity: 'moderate', range: '*', via: ['x'], fixAvailable: true },
    },
    metadata: { vulnerabilities: { critical: 0, high: 1, moderate: 1, low: 0 } },
  })
  t.equal(r.status, 1)
  t.match(r.stdout, /HIGH bad-pkg <1\.2\.3: Prototype pollution https:\/\/example\.invalid\/GHSA-1 \(fix: bad-pkg@1\.2\.3\)/)
  t.notMatch(r.stdout, /meh-pkg/)
})

void t.test('moderate and low advisories pass', async (t) => {
  const r = audit(t, { vulnerabilities: { m: { name: 'm', severity: 'moderate', range: '*', via: [], fixAvailable: false } }, metadata: { vulnerabilities: { moderate: 1 } } })
  t.equal(r.status, 0)
  t.match(r.stdout, /0 critical, 0 high, 1 moderate/)
})

void t.test('an advisory endpoint that answers an error is reported as not checked; AUDIT_REQUIRED=1 fails', async (t) => {
  const report = { message: '405 Method Not Allowed - POST .../advisories/bulk', statusCode: 405, error: { summary: '' } }
  const r = audit(t, report)
  t.equal(r.status, 0)
  t.match(r.stdout, /NOT CHECKED.*405/)
  t.equal(audit(t, report, { AUDIT_REQUIRED: '1' }).status, 1)
})
