/**
 * The `cdp` command.
 *   cdp serve [--role all|api|consumer] [--workers N]   run the service (embedded defaults: all);
 *                                               --workers: N API processes on one port (role api)
 *   cdp stack up|down|status|logs [svc]         the local Kafka, registry and Redis (tools/stack/stack.sh)
 *   cdp keys create --tenant T --permission P... [--source S...] [--expires 30d|ISO] [--label L]
 *   cdp keys list | cdp keys revoke ID
 *   cdp contracts check|release|list
 *   cdp query "<SQL>" [--format table|json|csv|tsv]   through the running service (query:read key)
 *   cdp replay                                    rebuild ClickHouse from the compacted topic
 *   cdp clickhouse-gateway [--port N] [--path DIR] share one embedded chDB over HTTP (dev/test, docs/CLICKHOUSE-GATEWAY.md)
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig, processEnv, type Config } from '../config/index.js'
import { isCdpError } from '../errors.js'
import { createLogger } from '../observability/logger.js'
import { contractsCommand } from '../contracts/cli.js'
import { createStateStores } from '../state/index.js'
import { createKey, revokeKey, PERMISSIONS, type Permission } from '../auth/keys.js'
import { installSignalHandlers, serve, type Role } from '../server.js'
import { isClusterPrimary, superviseWorkers } from '../cluster.js'
import { consumerHooks, replayCommand } from '../pipeline/service.js'

type Out = (line: string) => void

/** the project root, from src/cli (tsx) or dist/src/cli (npm run build) */
const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/src/') ? '../../../' : '../../', import.meta.url))

function usage(out: Out): number {
  out('usage: cdp <serve|stack|keys|contracts|query|replay|clickhouse-gateway> ...  (see README.md)')
  return 2
}

function parseExpiry(s: string, now = Date.now()): string {
  const rel = /^(\d+)([dhm])$/.exec(s)
  if (rel !== null) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[rel[2] as 'd' | 'h' | 'm']
    return new Date(now + Number(rel[1]) * unit).toISOString()
  }
  const t = Date.parse(s)
  if (Number.isNaN(t)) throw new Error(`--expires: expected 30d, 12h, 45m or an ISO 8601 time, got ${s}`)
  return new Date(t).toISOString()
}

async function keysCommand(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  const [sub, ...rest] = args
  const stores = await createStateStores(config)
  try {
    if (sub === 'create') {
      const { values } = parseArgs({ args: rest, options: {
        tenant: { type: 'string' }, permission: { type: 'string', multiple: true }, source: { type: 'string', multiple: true },
        expires: { type: 'string' }, label: { type: 'string' },
      } })
      if (values.tenant === undefined || values.tenant === '') { out('keys create: --tenant is required'); return 2 }
      const perms = (values.permission ?? ['events:write', 'events:batch']).flatMap((p) => p.split(','))
      const bad = perms.filter((p) => !(PERMISSIONS as readonly string[]).includes(p))
      if (bad.length > 0) { out(`keys create: unknown permission ${bad.join(', ')} (known: ${PERMISSIONS.join(', ')})`); return 2 }
      const { key, record } = await createKey(stores.keys, {
        tenant: values.tenant, permissions: perms as Permission[], sources: values.source ?? [],
        expiresAt: values.expires === undefined ? null : parseExpiry(values.expires), label: values.label ?? null,
      })
      out(`key id:      ${record.id}`)
      out(`tenant:      ${record.tenant}`)
      out(`permissions: ${record.permissions.join(', ')}`)
      out(`sources:     ${record.sources.length === 0 ? '(any)' : record.sources.join(', ')}`)
      out(`expires:     ${record.expiresAt ?? 'never'}`)
      out('the secret is shown once; store it now:')
      out(key)
      return 0
    }
    if (sub === 'list') {
      const keys = await stores.keys.listKeys()
      out(['id'.padEnd(16), 'tenant'.padEnd(16), 'state'.padEnd(8), 'permissions'.padEnd(34), 'sources'].join('  '))
      for (const k of keys) {
        const state = k.revokedAt !== null ? 'revoked' : k.expiresAt !== null && Date.parse(k.expiresAt) <= Date.now() ? 'expired' : 'active'
        out([k.id.padEnd(16), k.tenant.padEnd(16), state.padEnd(8), k.permissions.join(',').padEnd(34), k.sources.join(',') || '(any)'].join('  '))
      }
      return 0
    }
    if (sub === 'revoke') {
      const id = rest[0]
      if (id === undefined) { out('keys revoke: key id required'); return 2 }
      const rec = await revokeKey(stores.keys, id)
      if (rec === undefined) { out(`keys revoke: no key ${id}`); return 1 }
      out(`revoked ${id} (tenant ${rec.tenant}) at ${rec.revokedAt}`)
      return 0
    }
    out('usage: cdp keys create|list|revoke')
    return 2
  } finally {
    await stores.close()
  }
}

async function queryCommand(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { format: { type: 'string', default: 'table' } } })
  const sql = positionals.join(' ')
  if (sql.trim() === '') { out('usage: cdp query "<SQL>" [--format table|json|csv|tsv]'); return 2 }
  const formats: Record<string, string> = { table: 'PrettyCompactMonoBlock', json: 'JSONEachRow', jsoneachrow: 'JSONEachRow', csv: 'CSVWithNames', tsv: 'TabSeparatedWithNames' }
  const format = formats[(values.format ?? 'table').toLowerCase()]
  if (format === undefined) { out(`--format must be one of ${Object.keys(formats).join(', ')}`); return 2 }
  if (config.client.apiKey === undefined) { out('cdp query needs CDP_API_KEY: a key with the query:read permission (cdp keys create --permission query:read)'); return 2 }
  let res: Response
  try {
    res = await fetch(`${config.client.url}/v1/cdp/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${config.client.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sql, format }),
    })
  } catch (err) {
    out(`cannot reach the service at ${config.client.url} (is \`cdp serve\` running?): ${(err as Error).message}`)
    return 1
  }
  const text = await res.text()
  if (!res.ok) {
    out(`query failed (HTTP ${res.status}): ${text}`)
    return 1
  }
  process.stdout.write(text.endsWith('\n') || text === '' ? text : text + '\n')
  return 0
}

function stackCommand(args: string[]): number {
  const r = spawnSync('bash', [`${ROOT}tools/stack/stack.sh`, ...args], { stdio: 'inherit', env: processEnv() })
  return r.status ?? 1
}

export async function main(argv: string[]): Promise<number> {
  const out: Out = (line) => process.stdout.write(line + '\n')
  const [cmd, ...args] = argv
  if (cmd === 'stack') return stackCommand(args)
  const config = loadConfig()
  switch (cmd) {
    case 'serve': {
      const { values } = parseArgs({ args, options: { role: { type: 'string', default: 'all' }, workers: { type: 'string', default: '1' } } })
      const role = values.role as Role
      if (!['all', 'api', 'consumer'].includes(role)) { out('--role must be all, api or consumer'); return 2 }
      const workers = Number(values.workers)
      if (!Number.isInteger(workers) || workers < 1 || workers > 64) { out('--workers must be a whole number from 1 to 64'); return 2 }
      if (workers > 1 && role !== 'api') { out('--workers applies to --role api (the consumer scales by group members; embedded chDB has one owner)'); return 2 }
      const log = createLogger(config)
      if (workers > 1 && isClusterPrimary()) return superviseWorkers(workers, log)
      const running = await serve(config, role, consumerHooks)
      installSignalHandlers(running.close, log)
      return new Promise<number>(() => undefined) // runs until a signal
    }
    case 'keys': return keysCommand(config, args, out)
    case 'contracts': return contractsCommand(args, out, { dir: config.contracts.dir, releasedFile: config.contracts.releasedFile })
    case 'query': return queryCommand(config, args, out)
    case 'replay': return replayCommand(config, args, out)
    case 'clickhouse-gateway': return (await import('../../tools/clickhouse-gateway/command.js')).clickhouseGatewayCommand(config, args, out)
    default: return usage(out)
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code },
  (err: unknown) => {
    process.stderr.write(`cdp: ${isCdpError(err) ? `[${err.code}] ` : ''}${(err as Error).message ?? String(err)}\n`)
    process.exitCode = 1
  },
)
