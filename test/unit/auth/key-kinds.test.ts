/**
 * The two kinds of key (src/auth/keys.ts): a key of a tenant carries tenant permissions, an
 * operator key (no tenant) operator permissions, pii:read goes with either. Made by the CLI's own
 * command function (`keys create`), checked again by createKey, and enforced by requireKey on
 * every route (an operator key is 403 on tenant routes, a legacy tenant key with an operator
 * permission is 403 on operator routes).
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { checkKeyPermissions, createKey, grants, KeyVerifier, OPERATOR_PERMISSIONS, PERMISSIONS, SHARED_PERMISSIONS, TENANT_PERMISSIONS, type Permission } from '../../../src/auth/keys.js'
import { createMemoryStateStores } from '../../../src/state/index.js'
import { loadConfig } from '../../../src/config/index.js'
import { keys as keysCommand } from '../../../src/cli/commands/keys.js'
import { requireKey } from '../../../src/http/auth.js'
import { installErrorHandling } from '../../../src/http/errors.js'

void t.test('every permission belongs to exactly one kind, or to both (pii:read)', async (t) => {
  const all = [...TENANT_PERMISSIONS, ...OPERATOR_PERMISSIONS, ...SHARED_PERMISSIONS].sort()
  t.same(all, [...PERMISSIONS].sort(), 'the three lists partition PERMISSIONS')
  t.same([...OPERATOR_PERMISSIONS].sort(), ['dlq:manage', 'query:all'])
  t.same([...SHARED_PERMISSIONS], ['pii:read'])
})

void t.test('checkKeyPermissions: each kind refuses the other kind\'s permissions, with a stable code', async (t) => {
  for (const p of OPERATOR_PERMISSIONS) {
    t.match(checkKeyPermissions('acme', ['query:read', p]), { ok: false, code: 'operator_permission_on_tenant_key' }, `tenant key + ${p}`)
    t.same(checkKeyPermissions(null, [p]), { ok: true }, `operator key + ${p}`)
    t.same(checkKeyPermissions(null, [p, 'pii:read']), { ok: true }, `operator key + ${p} + pii:read`)
  }
  for (const p of TENANT_PERMISSIONS) {
    t.match(checkKeyPermissions(null, ['query:all', p]), { ok: false, code: 'tenant_permission_on_operator_key' }, `operator key + ${p}`)
    t.same(checkKeyPermissions('acme', [p]), { ok: true }, `tenant key + ${p}`)
  }
  t.same(checkKeyPermissions('acme', ['query:read', 'pii:read']), { ok: true })
  t.match(checkKeyPermissions(null, ['pii:read']), { ok: false, code: 'operator_key_without_operator_permission' })
  t.match(checkKeyPermissions(null, []), { ok: false, code: 'no_permission' })
  t.match(checkKeyPermissions('acme', ['query:write']), { ok: false, code: 'unknown_permission' })
})

void t.test('createKey refuses a key whose permissions do not fit its kind; nothing is stored', async (t) => {
  const stores = createMemoryStateStores()
  await t.rejects(createKey(stores.keys, { tenant: 'acme', permissions: ['query:read', 'query:all'] }),
    { code: 'bad_request', details: [{ code: 'operator_permission_on_tenant_key' }] })
  await t.rejects(createKey(stores.keys, { tenant: null, permissions: ['query:all', 'events:write'] }),
    { code: 'bad_request', details: [{ code: 'tenant_permission_on_operator_key' }] })
  t.same(await stores.keys.listKeys(), [])
  const { record } = await createKey(stores.keys, { tenant: null, permissions: ['query:all'] })
  t.equal(record.tenant, null)
  t.equal((await stores.keys.getKey(record.id))?.tenant, null)
})

void t.test('grants: a permission counts only on its kind of key; legacy tenant keys with operator permissions are marked', async (t) => {
  const op = { tenant: null, permissions: ['query:all', 'dlq:manage', 'pii:read'] }
  const ten = { tenant: 'acme', permissions: ['events:write', 'query:read', 'pii:read'] }
  const legacy = { tenant: 'ops', permissions: ['query:read', 'query:all', 'dlq:manage'] }
  t.equal(grants(op, 'query:all'), 'yes')
  t.equal(grants(op, 'pii:read'), 'yes')
  t.equal(grants(op, 'events:write'), 'no')
  // stored by hand (not through createKey): a tenant permission on an operator key still counts for nothing
  t.equal(grants({ tenant: null, permissions: ['query:all', 'events:write'] }, 'events:write'), 'no')
  t.equal(grants(ten, 'events:write'), 'yes')
  t.equal(grants(ten, 'query:all'), 'no')
  t.equal(grants(legacy, 'query:all'), 'legacy')
  t.equal(grants(legacy, 'dlq:manage'), 'legacy')
  t.equal(grants(legacy, 'query:read'), 'yes')
})

void t.test('requireKey: an operator key is 403 on tenant routes; a legacy key is 403 on operator routes, with the remedy', async (t) => {
  const stores = createMemoryStateStores()
  const verifier = new KeyVerifier(stores.keys)
  const app = Fastify()
  installErrorHandling(app)
  const route = (url: string, perm: Permission | Permission[]) => app.get(url, { onRequest: requireKey(verifier, perm) }, async (req) => ({ tenant: req.apiKey!.tenant }))
  route('/events', 'events:write')
  route('/status', 'events:read')
  route('/erasures', 'privacy:erase')
  route('/query', ['query:read', 'query:all'])
  route('/dlq', 'dlq:manage')
  t.teardown(() => app.close())
  const call = async (url: string, key: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } })
  const operator = (await createKey(stores.keys, { tenant: null, permissions: ['query:all', 'dlq:manage', 'pii:read'] })).key
  // as a key stored before operator keys existed: written straight to the store
  const made = await createKey(stores.keys, { tenant: 'ops', permissions: ['query:read'] })
  await stores.keys.putKey({ ...made.record, permissions: ['query:read', 'query:all', 'dlq:manage', 'events:write'] })
  const legacy = made.key
  const reader = (await createKey(stores.keys, { tenant: 'acme', permissions: ['query:read'] })).key

  for (const url of ['/events', '/status', '/erasures']) {
    const r = await call(url, operator)
    t.equal(r.statusCode, 403, `operator key on ${url}`)
    t.match(r.json(), { error_code: 'forbidden', message: /operator key/ })
  }
  t.same((await call('/query', operator)).json(), { tenant: null }, 'operator key on the query route')
  t.same((await call('/dlq', operator)).json(), { tenant: null }, 'operator key on the dlq route')
  t.same((await call('/query', reader)).json(), { tenant: 'acme' }, 'tenant key with query:read on the query route')
  t.equal((await call('/dlq', reader)).statusCode, 403, 'tenant key without dlq:manage')

  for (const url of ['/query', '/dlq']) {
    const r = await call(url, legacy)
    t.equal(r.statusCode, 403, `legacy key on ${url}`)
    t.match(r.json(), { error_code: 'forbidden', message: /cdp keys create --operator --permission/ })
  }
  t.equal((await call('/events', legacy)).statusCode, 200, 'its tenant permissions keep working')
})

void t.test('cdp keys create: --operator makes a key with no tenant; each kind refuses the other\'s permissions', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cdp-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // CDP_URL: nothing listens there, so no service is asked about its store
  const config = loadConfig({ env: { CDP_URL: 'http://127.0.0.1:9' }, overrides: { dataDir: dir, state: { backend: 'lmdb', lmdbPath: join(dir, 'state') } } })
  const run = async (...args: string[]): Promise<{ code: number; text: string }> => {
    const lines: string[] = []
    const code = await keysCommand(config, args, (l) => lines.push(l))
    return { code, text: lines.join('\n') }
  }
  const refusedOp = await run('create', '--tenant', 'acme', '--permission', 'query:read', '--permission', 'query:all')
  t.equal(refusedOp.code, 2)
  t.match(refusedOp.text, /keys create refused \(operator_permission_on_tenant_key\)/)
  const refusedTenant = await run('create', '--operator', '--permission', 'query:all,events:write')
  t.equal(refusedTenant.code, 2)
  t.match(refusedTenant.text, /keys create refused \(tenant_permission_on_operator_key\)/)
  t.equal((await run('create', '--operator', '--tenant', 'acme', '--permission', 'query:all')).code, 2, '--operator with --tenant')
  t.equal((await run('create', '--operator')).code, 2, '--operator needs a permission')
  const made = await run('create', '--operator', '--permission', 'query:all', '--permission', 'pii:read')
  t.equal(made.code, 0, made.text)
  t.match(made.text, /tenant: +\(none: an operator key\)/)
  const listed = await run('list')
  t.match(listed.text, /\(operator\) +active +query:all,pii:read/)
  t.equal(listed.text.split('\n').length, 2, 'the header and the one key: nothing of the refused ones was stored')
})
