/**
 * Every status the API answers is declared for its route in /openapi.json, with the body the
 * document says (issue 8 finding 6: a NUL body's 400, the query route's 401/413/422/400, 413 for
 * a `sql` the schema allowed, Content-Encoding's 415 were answered but not declared). The fuzz
 * run (test/fuzz/run.ts) covers the same at volume; these are the cases found before.
 */
import t from 'tap'
import { gzipSync } from 'node:zlib'
import { memoryApi } from '../../fuzz/harness.js'
import { DocValidator } from '../../fuzz/doc-check.js'
import type { OpenApiDoc } from '../../fuzz/schema-gen.js'
import { SEED_EVENT } from '../../helpers/seed.js'

void t.test('statuses found undocumented before are answered and declared, bodies as declared', async (t) => {
  const api = await memoryApi({ http: { failureLimitMax: 1_000_000 } })
  t.teardown(() => api.close())
  const res0 = await api.app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(res0.statusCode, 200)
  const doc = res0.json() as OpenApiDoc
  t.ok(doc.paths['/openapi.json']?.get, 'the document describes itself')
  const check = new DocValidator(doc)
  const writer = await api.key('acme', ['events:write', 'events:batch'])
  const reader = await api.key('acme', ['query:read'])
  const json = { 'content-type': 'application/json' }
  const limit = api.config.http.singleBodyLimitBytes

  const cases: { name: string; url: string; headers: Record<string, string>; payload: string | Buffer; status: number }[] = [
    { name: 'NUL body on events', url: '/v1/cdp/events', headers: { ...json, authorization: `Bearer ${writer}` }, payload: '\u0000', status: 400 },
    { name: 'NUL body on batch', url: '/v1/cdp/events/batch', headers: { ...json, authorization: `Bearer ${writer}` }, payload: '\u0000', status: 400 },
    { name: 'Content-Encoding br', url: '/v1/cdp/events', headers: { ...json, authorization: `Bearer ${writer}`, 'content-encoding': 'br' }, payload: JSON.stringify(SEED_EVENT), status: 415 },
    { name: 'corrupt gzip', url: '/v1/cdp/events', headers: { ...json, authorization: `Bearer ${writer}`, 'content-encoding': 'gzip' }, payload: Buffer.concat([gzipSync('{"a":1}').subarray(0, 10), Buffer.from('xx')]), status: 400 },
    { name: 'query without a key', url: '/v1/cdp/query', headers: json, payload: '{"sql":"SELECT 1"}', status: 401 },
    { name: 'query with an events key', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${writer}` }, payload: '{"sql":"SELECT 1"}', status: 403 },
    { name: 'query NUL body', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${reader}` }, payload: '\u0000', status: 400 },
    { name: 'query refused by the guard', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${reader}` }, payload: '{"sql":"DROP TABLE x"}', status: 400 },
    { name: 'query unknown field', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${reader}` }, payload: '{"sql":"SELECT 1","x":1}', status: 422 },
    { name: 'query null format', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${reader}` }, payload: '{"sql":"SELECT 1","format":null}', status: 422 },
    { name: 'query sql within maxLength but over the body limit', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${reader}` }, payload: JSON.stringify({ sql: `SELECT '${'x'.repeat(limit)}'` }), status: 413 },
    { name: 'query ok', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${reader}` }, payload: '{"sql":"SELECT 1"}', status: 200 },
  ]
  for (const c of cases) {
    const res = await api.app.inject({ method: 'POST', url: c.url, headers: c.headers, payload: c.payload })
    t.equal(res.statusCode, c.status, `${c.name}: answered ${c.status}`)
    const declared = doc.paths[c.url]!.post!.responses[String(res.statusCode)]
    t.ok(declared, `${c.name}: ${res.statusCode} is declared for POST ${c.url}`)
    const media = String(res.headers['content-type']).split(';')[0]!
    const schema = declared?.content?.[media]?.schema
    t.ok(schema, `${c.name}: ${media} declared`)
    if (schema !== undefined) t.equal(check.check(schema, media === 'application/json' ? res.json() : res.body), undefined, `${c.name}: body as declared`)
  }
  // the query route's sql limit is counted in characters (code points), as the schema's maxLength
  const roomy = await memoryApi({ http: { singleBodyLimitBytes: 1024 * 1024 } })
  t.teardown(() => roomy.close())
  const roomyReader = await roomy.key('acme', ['query:read'])
  const astral = await roomy.app.inject({ method: 'POST', url: '/v1/cdp/query', headers: { ...json, authorization: `Bearer ${roomyReader}` }, payload: JSON.stringify({ sql: `SELECT '${'😀'.repeat(60_000)}'` }) })
  t.equal(astral.statusCode, 400, '60,000 emoji are 120,000 UTF-16 units but 60,009 characters: within maxLength, so the runner judges it')
})

void t.test('every route declares the front door statuses (drain, failure limit, encoding, parsing)', async (t) => {
  const api = await memoryApi()
  t.teardown(() => api.close())
  const doc = api.app.swagger() as unknown as OpenApiDoc
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const s of ['400', '408', '415', '429', '500', '503']) t.ok(op.responses[s], `${method.toUpperCase()} ${path} declares ${s}`)
      if (path.startsWith('/v1/')) for (const s of ['401', '403', '413', '422']) t.ok(op.responses[s], `${method.toUpperCase()} ${path} declares ${s}`)
    }
  }
})
