import { parseArgs } from 'node:util'
import type { Config } from '../../config/index.js'
import { createStateStores, describeStateStore } from '../../state/index.js'
import { checkKeyPermissions, createKey, isIn, revokeKey, OPERATOR_PERMISSIONS, SHARED_PERMISSIONS, TENANT_PERMISSIONS, type Permission } from '../../auth/keys.js'
import type { Command, Out } from '../command.js'

const USAGE = [
  'usage: cdp keys <command>',
  '  create --tenant T [--permission P]... [--source S]... [--expires 30d|12h|45m|ISO] [--label L] [--force]',
  '                     a key of tenant T; it sees and writes only T\'s data',
  `                     permissions: ${[...TENANT_PERMISSIONS, ...SHARED_PERMISSIONS].join(', ')} (default events:write,events:batch)`,
  '  create --operator --permission P [--permission P]... [--expires ...] [--label L] [--force]',
  '                     an operator key: no tenant, refused on every tenant route (events, batch, status, erasures)',
  `                     permissions: ${[...OPERATOR_PERMISSIONS, ...SHARED_PERMISSIONS].join(', ')} (query:all: analyst SQL across tenants;`,
  '                     dlq:manage: `cdp dlq`); operator permissions on a tenant key and tenant permissions on an',
  '                     operator key are refused (exit 2, with the rule\'s code)',
  '                     both write into the state store of this configuration (CDP_CONFIG, REDIS_URL, ...) and say which;',
  '                     refuse when the service at CDP_URL reports another store on /readyz (--force: write anyway)',
  '  list               every key: id, tenant ((operator) for an operator key), state, permissions, sources;',
  '                     `legacy` marks a tenant key holding an operator permission, refused since operator keys exist',
  '  revoke ID          revoke a key at once',
]

export const keysCommand: Command = {
  name: 'keys',
  summary: 'create, list and revoke API keys',
  usage: USAGE,
  run: (args, { out, config }) => keys(config(), args, out),
}

export function parseExpiry(s: string, now = Date.now()): string {
  const rel = /^(\d+)([dhm])$/.exec(s)
  if (rel !== null) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[rel[2] as 'd' | 'h' | 'm']
    return new Date(now + Number(rel[1]) * unit).toISOString()
  }
  const t = Date.parse(s)
  if (Number.isNaN(t)) throw new Error(`--expires: expected 30d, 12h, 45m or an ISO 8601 time, got ${s}`)
  return new Date(t).toISOString()
}


/**
 * Whether the service at CDP_URL reads the store this CLI would write to. A key written elsewhere
 * is answered 401 by every API, with nothing to say why: so a mismatch refuses, and an
 * unreachable service is only a note (keys are often made before the services start).
 */
async function checkServiceStore(config: Readonly<Config>, out: Out): Promise<'same' | 'other' | 'unknown'> {
  const mine = describeStateStore(config)
  let body: { state?: { backend?: string; id?: string } }
  try {
    const res = await fetch(`${config.client.url}/readyz`, { signal: AbortSignal.timeout(2000) })
    body = await res.json() as typeof body
  } catch {
    out(`note: no service answered at ${config.client.url} (CDP_URL); start the services with this same configuration, or the key will not be found`)
    return 'unknown'
  }
  if (body.state?.id === undefined) { out(`note: the service at ${config.client.url} does not report its state store`); return 'unknown' }
  if (body.state.id === mine.id) return 'same'
  out(`the service at ${config.client.url} uses ${body.state.backend === 'redis' ? 'a Redis' : body.state.backend === 'lmdb' ? 'an LMDB' : 'another'} state store ` +
    `other than this command's ${mine.location}: a key written here would be refused there (401).`)
  out('run `cdp keys` with the services\' configuration (the same CDP_CONFIG file, or REDIS_URL / STATE_BACKEND / CDP_DATA_DIR), or pass --force')
  return 'other'
}

export async function keys(config: Readonly<Config>, args: string[], out: Out): Promise<number> {
  const [sub, ...rest] = args
  if (sub === 'create') {
    const force = rest.includes('--force')
    if ((await checkServiceStore(config, out)) === 'other' && !force) return 1
  }
  const stores = await createStateStores(config)
  try {
    if (sub === 'create') {
      const { values } = parseArgs({ args: rest, options: {
        tenant: { type: 'string' }, operator: { type: 'boolean' }, permission: { type: 'string', multiple: true }, source: { type: 'string', multiple: true },
        expires: { type: 'string' }, label: { type: 'string' }, force: { type: 'boolean' },
      } })
      const operator = values.operator === true
      if (operator && values.tenant !== undefined) { out('keys create: --operator and --tenant exclude each other (an operator key has no tenant)'); return 2 }
      if (!operator && (values.tenant === undefined || values.tenant === '')) { out('keys create: --tenant is required (or --operator for an operator key)'); return 2 }
      if (operator && values.permission === undefined) { out(`keys create: an operator key needs --permission (${[...OPERATOR_PERMISSIONS, ...SHARED_PERMISSIONS].join(', ')})`); return 2 }
      if (operator && values.source !== undefined) { out('keys create: --source is for keys that send events; an operator key sends none'); return 2 }
      const tenant = operator ? null : values.tenant!
      const perms = (values.permission ?? ['events:write', 'events:batch']).flatMap((p) => p.split(','))
      const rule = checkKeyPermissions(tenant, perms)
      if (!rule.ok) { out(`keys create refused (${rule.code}): ${rule.message}`); return 2 }
      const { key, record } = await createKey(stores.keys, {
        tenant, permissions: perms as Permission[], sources: values.source ?? [],
        expiresAt: values.expires === undefined ? null : parseExpiry(values.expires), label: values.label ?? null,
      })
      out(`store:       ${describeStateStore(config).location}`)
      out(`key id:      ${record.id}`)
      out(`tenant:      ${record.tenant ?? '(none: an operator key)'}`)
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
      let legacy = 0
      for (const k of keys) {
        const old = k.tenant !== null && k.permissions.some((p) => isIn(OPERATOR_PERMISSIONS, p))
        const state = k.revokedAt !== null ? 'revoked' : k.expiresAt !== null && Date.parse(k.expiresAt) <= Date.now() ? 'expired' : old ? 'legacy' : 'active'
        if (state === 'legacy') legacy++
        out([k.id.padEnd(16), (k.tenant ?? '(operator)').padEnd(16), state.padEnd(8), k.permissions.join(',').padEnd(34), k.sources.join(',') || '(any)'].join('  '))
      }
      if (legacy > 0) {
        out(`${legacy} key(s) of a tenant hold an operator permission (query:all, dlq:manage): the API refuses them on the operator routes (403);`)
        out('replace each with `cdp keys create --operator --permission P` and `cdp keys revoke ID`')
      }
      return 0
    }
    if (sub === 'revoke') {
      const id = rest[0]
      if (id === undefined) { out('keys revoke: key id required'); return 2 }
      const rec = await revokeKey(stores.keys, id)
      if (rec === undefined) { out(`keys revoke: no key ${id}`); return 1 }
      out(`revoked ${id} (${rec.tenant === null ? 'operator key' : `tenant ${rec.tenant}`}) at ${rec.revokedAt}`)
      return 0
    }
    for (const l of USAGE) out(l)
    return 2
  } finally {
    await stores.close()
  }
}

