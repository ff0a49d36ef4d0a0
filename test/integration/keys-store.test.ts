/**
 * `cdp keys create` and the store the services use: it says where it wrote the key, refuses
 * when the service at CDP_URL reports another state store on /readyz (--force overrides), and a
 * key made with the services' configuration works on the API.
 */
import t from 'tap'
import { join } from 'node:path'
import { loadConfig, merge, type Config, type DeepPartial } from '../../src/config/index.js'
import { keysCommand } from '../../src/cli/commands/keys.js'
import { describeStateStore } from '../../src/state/index.js'
import { startApi } from '../helpers/api.js'
import { tempDir } from '../helpers/config.js'

async function cli(cfg: Readonly<Config>, args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = []
  const code = await keysCommand.run(args, { out: (l) => out.push(l), config: () => cfg })
  return { code, out }
}

void t.test('keys create checks the service\'s state store', async (tt) => {
  const api = await startApi(tt)
  await api.app.listen({ host: '127.0.0.1', port: 0 })
  const addr = api.app.server.address()
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`
  const like = (over: DeepPartial<Config>) => loadConfig({ env: {}, overrides: merge(api.config as Config, over) as DeepPartial<Config> })

  const ready = await fetch(`${url}/readyz`).then((r) => r.json() as Promise<{ state: { backend: string; id: string } }>)
  tt.same(ready.state, { backend: 'lmdb', id: describeStateStore(api.config).id }, '/readyz names the backend and an opaque id')
  tt.notMatch(JSON.stringify(ready), api.config.state.lmdbPath, 'not the location itself')

  // the mistake of issue 13: the CLI on another store (here another LMDB; without REDIS_URL it would be the local .data)
  const elsewhere = like({ state: { lmdbPath: join(tempDir(tt), 'state') }, client: { url } })
  const refused = await cli(elsewhere, ['create', '--tenant', 'acme'])
  tt.equal(refused.code, 1)
  tt.match(refused.out.join('\n'), /uses an LMDB state store other than this command's LMDB at .*--force/s)
  tt.notMatch(refused.out.join('\n'), /rfcdp_/, 'no key was made')

  const forced = await cli(elsewhere, ['create', '--tenant', 'acme', '--force'])
  tt.equal(forced.code, 0)
  tt.match(forced.out.join('\n'), `store:       LMDB at ${elsewhere.state.lmdbPath}`)
  const strayKey = forced.out.at(-1)!
  const post = (key: string) => fetch(`${url}/v1/cdp/events`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ source: 'brand.pos', externalEventId: `ks-${key.slice(-6)}`, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z', identity: { email: 'a@example.com' }, properties: { order_id: 'o', amount: 1, currency: 'EUR' } }),
  })
  tt.equal((await post(strayKey)).status, 401, 'the forced key is not in the service\'s store')

  const same = like({ client: { url } })
  const ok = await cli(same, ['create', '--tenant', 'acme'])
  tt.equal(ok.code, 0, ok.out.join('\n'))
  tt.match(ok.out.join('\n'), `store:       LMDB at ${api.config.state.lmdbPath}`)
  tt.equal((await post(ok.out.at(-1)!)).status, 202, 'a key in the service\'s store works')

  // no service at CDP_URL: the key is made, with a note saying where it went
  const alone = like({ client: { url: 'http://127.0.0.1:9' } })
  const noted = await cli(alone, ['create', '--tenant', 'acme'])
  tt.equal(noted.code, 0)
  tt.match(noted.out.join('\n'), /note: no service answered at http:\/\/127\.0\.0\.1:9/)
})

void t.test('describeStateStore: Redis without credentials, prefix in the id', async (tt) => {
  const base = loadConfig({ env: {} })
  const a = describeStateStore({ ...base, state: { ...base.state, backend: 'redis', redisUrl: 'redis://user:secret@cache:6380/2' } })
  tt.equal(a.location, 'Redis at redis://cache:6380/2 (prefix cdp)')
  tt.notMatch(a.location, /secret/)
  const b = describeStateStore({ ...base, state: { ...base.state, backend: 'redis', redisUrl: 'redis://cache:6380/2' }, keys: { prefix: 'other' } })
  tt.not(a.id, b.id)
})
