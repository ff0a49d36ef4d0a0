/**
 * HTTP-level fuzz run against the API as `cdp serve` builds it (over the running stack by default),
 * driven by the API's own /openapi.json:
 *
 *   npx tsx test/fuzz/run.ts [--requests 100000] [--concurrency 48] [--seed N] [--backend stack|memory]
 *   npm run fuzz        # 100,000 requests over the stack
 *   npm run fuzz:ci     # 5,000 requests (CI)
 *
 * Requests: events generated from the document (accepted: 202), re-sends (200 duplicate) and
 * conflicting re-sends (409), events breaking one documented constraint (422), batches mixing
 * both, malformed requests (bad or NUL JSON, wrong media type, gzip good and corrupt, unknown
 * Content-Encoding, oversized bodies, missing/unknown/under-privileged keys, a key bound to other
 * sources), analyst queries of every shape, and the ops routes. Every answer is checked:
 *  - its status is declared for the route in /openapi.json (else: undocumented),
 *  - its body matches the schema declared for that status (else: schema mismatch),
 *  - no 5xx (server errors),
 *  - requests built to be accepted or refused got that answer (else: unexpected).
 * Exits 1 when any of these is not 0 or fewer than a third of the requests were accepted events.
 * The per-address failure limit and the rate limits are raised: the run sends far more failing
 * requests from one address than a client would.
 */
import { Agent, request as httpRequest } from 'node:http'
import { gzipSync } from 'node:zlib'
import { parseArgs } from 'node:util'
import { memoryApi, stackApi, type ApiUnderTest } from './harness.js'
import { Generator, Rng, mutate, type OpenApiDoc, type Schema } from './schema-gen.js'
import { DocValidator } from './doc-check.js'
import type { DeepPartial, Config } from '../../src/config/index.js'

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '48' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    backend: { type: 'string', default: 'stack' },
  },
})
const TOTAL = Number(args.requests)
const CONCURRENCY = Number(args.concurrency)
const SEED = Number(args.seed)

interface Req {
  kind: string
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: string
  headers: Record<string, string>
  body?: Buffer
  /** statuses this request was built to get; undefined: any documented status */
  expect?: number[]
  /** for re-sends: remember the event when accepted */
  event?: Record<string, unknown>
}

interface Res { status: number; type: string; body: Buffer }

const overrides: DeepPartial<Config> = {
  http: { failureLimitMax: 100_000_000, rateLimitMax: 100_000_000, tenantRateLimitMax: 100_000_000 },
}

async function main(): Promise<void> {
  const api: ApiUnderTest = args.backend === 'memory' ? await memoryApi(overrides) : await stackApi(overrides)
  await api.app.listen({ host: '127.0.0.1', port: 0 })
  const addr = api.app.server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no port')
  const port = addr.port
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })

  const send = (r: Req): Promise<Res> => new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...r.headers }
    if (r.body !== undefined) headers['content-length'] = String(r.body.length)
    const req = httpRequest({ host: '127.0.0.1', port, method: r.method, path: r.path, headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(r.body)
  })

  const docRes = await send({ kind: 'doc', method: 'GET', path: '/openapi.json', headers: {} })
  const doc = JSON.parse(docRes.body.toString('utf8')) as OpenApiDoc
  const check = new DocValidator(doc)
  const rng = new Rng(SEED)
  const gen = new Generator(doc, rng)
  const single = doc.paths['/v1/cdp/events']!.post!.requestBody!.content['application/json']!.schema
  const maxEventBytes = api.config.http.maxEventBytes
  const singleLimit = api.config.http.singleBodyLimitBytes

  const writer = await api.key('fuzz', ['events:write', 'events:batch'])
  const posOnly = await api.key('fuzz', ['events:write', 'events:batch'], ['brand.pos'])
  const reader = await api.key('fuzz', ['query:read'])
  const auth = (k: string) => ({ authorization: `Bearer ${k}` })
  const json = { 'content-type': 'application/json' }

  let eventSeq = 0
  const freshEvent = (): Record<string, unknown> => {
    for (;;) {
      const e = gen.valid(single) as Record<string, unknown>
      // unique per run: the generator's ids may repeat, and the run's topic may be reused
      e.externalEventId = `${String(e.externalEventId).slice(0, 200)}~${SEED}.${eventSeq++}`
      if (Buffer.byteLength(JSON.stringify(e)) <= maxEventBytes) return e
    }
  }
  const accepted: Record<string, unknown>[] = []

  const build = (): Req => {
    const p = rng.next()
    const post = (path: string, body: unknown, headers: Record<string, string>, expect?: number[], kind = path): Req =>
      ({ kind, method: 'POST', path, headers: { ...json, ...headers }, body: Buffer.from(JSON.stringify(body)), ...(expect ? { expect } : {}) })
    if (p < 0.42) {
      const e = freshEvent()
      return { ...post('/v1/cdp/events', e, auth(writer), [202], 'event.valid'), event: e }
    }
    if (p < 0.47 && accepted.length > 0) {
      const e = rng.pick(accepted)
      if (rng.chance(0.5)) return post('/v1/cdp/events', e, auth(writer), [200], 'event.resend')
      const changed = { ...e, identity: { deviceKey: `other-${rng.int(0, 1e9)}` } }
      return post('/v1/cdp/events', changed, auth(writer), [409], 'event.conflict')
    }
    if (p < 0.67) {
      const m = mutate(gen, single, freshEvent())
      if (m !== undefined) {
        const body = Buffer.from(JSON.stringify(m.value))
        return { kind: `event.broken.${m.keyword}`, method: 'POST', path: '/v1/cdp/events', headers: { ...json, ...auth(writer) }, body, expect: body.length > singleLimit ? [413] : [422] }
      }
    }
    if (p < 0.75) {
      const items = Array.from({ length: rng.int(1, 20) }, () => {
        const e = freshEvent()
        return rng.chance(0.8) ? e : (mutate(gen, single, e)?.value ?? e)
      })
      return post('/v1/cdp/events/batch', { items }, auth(writer), [200], 'batch')
    }
    if (p < 0.87) return malformed()
    if (p < 0.95) return query()
    if (p < 0.99) return { kind: 'ops', method: 'GET', path: rng.pick(['/healthz', '/readyz', '/healthz', '/readyz', '/openapi.json']), headers: rng.chance(0.2) ? { 'content-encoding': 'br' } : {} }
    return { kind: 'unrouted', method: rng.pick(['GET', 'PUT', 'DELETE'] as const), path: rng.pick(['/v1/cdp/events', '/v1/cdp/nope', '/docs/../etc', '/v1/cdp/events/batch']), headers: {}, expect: [404] }
  }

  const malformed = (): Req => {
    const path = rng.pick(['/v1/cdp/events', '/v1/cdp/events', '/v1/cdp/events/batch'])
    const good = Buffer.from(JSON.stringify(path.endsWith('batch') ? { items: [freshEvent()] } : freshEvent()))
    const base = { ...json, ...auth(writer) }
    switch (rng.int(0, 14)) {
      case 0: return { kind: 'raw.nul', method: 'POST', path, headers: base, body: Buffer.from([0]), expect: [400] }
      case 1: return { kind: 'raw.bad-json', method: 'POST', path, headers: base, body: good.subarray(0, rng.int(1, good.length - 1)), expect: [400] }
      case 2: return { kind: 'raw.empty', method: 'POST', path, headers: base, body: Buffer.alloc(0), expect: [400] }
      case 3: return { kind: 'raw.text-plain', method: 'POST', path, headers: { ...base, 'content-type': 'text/plain' }, body: good, expect: [415] }
      case 4: return { kind: 'raw.no-content-type', method: 'POST', path, headers: auth(writer), body: good, expect: [415] }
      case 5: return { kind: 'raw.gzip', method: 'POST', path, headers: { ...base, 'content-encoding': 'gzip' }, body: gzipSync(good), expect: [200, 202] }
      case 6: return { kind: 'raw.gzip-corrupt', method: 'POST', path, headers: { ...base, 'content-encoding': 'gzip' }, body: Buffer.concat([gzipSync(good).subarray(0, 12), Buffer.from('garbage')]), expect: [400] }
      case 7: return { kind: 'raw.encoding-br', method: 'POST', path, headers: { ...base, 'content-encoding': rng.pick(['br', 'deflate', 'x-unknown']) }, body: good, expect: [415] }
      case 8: return { kind: 'raw.too-large', method: 'POST', path: '/v1/cdp/events', headers: base, body: Buffer.from(JSON.stringify({ ...freshEvent(), pad: 'x'.repeat(singleLimit) })), expect: [413] }
      case 9: return { kind: 'auth.missing', method: 'POST', path, headers: json, body: good, expect: [401] }
      case 10: return { kind: 'auth.unknown', method: 'POST', path, headers: { ...json, authorization: `Bearer rfcdp_${'a'.repeat(16)}_${'b'.repeat(32)}` }, body: good, expect: [401] }
      case 11: return { kind: 'auth.garbage', method: 'POST', path, headers: { ...json, authorization: rng.pick(['Basic eDp5', 'Bearer', 'Bearer x y', `Bearer ${'\u00e9'}`]) }, body: good, expect: [401] }
      case 12: return { kind: 'auth.no-permission', method: 'POST', path, headers: { ...json, ...auth(reader) }, body: good, expect: [403] }
      case 13: {
        const e = freshEvent()
        e.source = rng.pick(['brand.crm', 'other.app'])
        return { kind: 'auth.other-source', method: 'POST', path: '/v1/cdp/events', headers: { ...json, ...auth(posOnly) }, body: Buffer.from(JSON.stringify(e)), expect: [403] }
      }
      default: return { kind: 'raw.array', method: 'POST', path, headers: base, body: Buffer.from(rng.pick(['[]', '"x"', '1', 'null', '{"items":{}}', '{"__proto__":{"a":1}}'])) }
    }
  }

  const query = (): Req => {
    const q = (body: unknown, expect?: number[], headers: Record<string, string> = auth(reader), kind = 'query'): Req =>
      ({ kind, method: 'POST', path: '/v1/cdp/query', headers: { ...json, ...headers }, body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), ...(expect ? { expect } : {}) })
    switch (rng.int(0, 9)) {
      case 0: return q({ sql: 'SELECT 1' }, [200], undefined, 'query.ok')
      case 1: return q({ sql: 'SELECT 1', format: rng.pick(['JSONEachRow', 'CSV', 'TabSeparated']) }, undefined, undefined, 'query.format')
      case 2: return q({ sql: gen.valid({ type: 'string', maxLength: 200 }) }, [400, 422], undefined, 'query.refused')
      case 3: return q({ sql: 'SELECT 1', extra: true }, [422], undefined, 'query.unknown-field')
      case 4: return q({ sql: 'SELECT 1', format: rng.pick([null, 'XML', 3]) }, [422], undefined, 'query.bad-format')
      case 5: return q(rng.pick([{}, { sql: '' }, { sql: '   ' }, { sql: 5 }, [], 'null']), [422], undefined, 'query.no-sql')
      case 6: return q({ sql: `SELECT '${'x'.repeat(singleLimit)}'` }, [413], undefined, 'query.too-large')
      case 7: return q({ sql: 'SELECT 1' }, [401], {}, 'query.no-key')
      case 8: return q({ sql: 'SELECT 1' }, [403], auth(writer), 'query.no-permission')
      default: return q('\u0000', [400], undefined, 'query.nul')
    }
  }

  const byStatus = new Map<number, number>()
  const byKind = new Map<string, { n: number; unexpected: number; ms: number }>()
  const problems = { serverErrors: 0, undocumented: 0, schemaMismatch: 0, unexpected: 0, transport: 0 }
  const samples: string[] = []
  let acceptedEvents = 0
  let done = 0
  const sample = (what: string) => { if (samples.length < 25) samples.push(what) }

  const judge = (r: Req, res: Res): void => {
    byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1)
    const k = byKind.get(r.kind) ?? { n: 0, unexpected: 0, ms: 0 }
    k.n++
    byKind.set(r.kind, k)
    if (res.status >= 500) { problems.serverErrors++; sample(`${r.kind}: ${res.status} ${res.body.toString('utf8').slice(0, 200)}`) }
    const op = doc.paths[r.path]?.[r.method.toLowerCase()]
    if (op === undefined) {
      // not an operation of the API: it must be the API's 404 error body
      const body = parse(res)
      if (res.status !== 404 || check.check(errorBodySchema, body) !== undefined) { problems.undocumented++; sample(`${r.kind} ${r.method} ${r.path}: ${res.status}`) }
    } else {
      const declared = op.responses[String(res.status)]
      if (declared === undefined) { problems.undocumented++; sample(`${r.kind} ${r.method} ${r.path}: undocumented ${res.status} ${res.body.toString('utf8').slice(0, 200)}`) }
      else {
        const media = res.type.split(';')[0]!.trim()
        const schema = declared.content?.[media]?.schema
        if (declared.content !== undefined && schema === undefined) { problems.schemaMismatch++; sample(`${r.kind}: ${res.status} with undeclared media type ${res.type}`) }
        else if (schema !== undefined) {
          const value = media === 'application/json' ? parse(res) : res.body.toString('utf8')
          const wrong = check.check(schema, value)
          if (wrong !== undefined) { problems.schemaMismatch++; sample(`${r.kind}: ${res.status} body does not match: ${wrong}: ${res.body.toString('utf8').slice(0, 200)}`) }
        }
      }
    }
    if (r.expect !== undefined && r.expect.length > 0 && !r.expect.includes(res.status)) {
      problems.unexpected++
      k.unexpected++
      sample(`${r.kind}: expected ${r.expect.join('/')} got ${res.status} ${res.body.toString('utf8').slice(0, 300)}`)
    }
    if (res.status === 202) { acceptedEvents++; if (r.event !== undefined && accepted.length < 5000) accepted.push(r.event) }
    if (r.path === '/v1/cdp/events/batch' && res.status === 200) {
      for (const item of (parse(res) as { results?: { status: string }[] }).results ?? []) if (item.status === 'accepted') acceptedEvents++
    }
  }
  const errorBodySchema = doc.paths['/v1/cdp/events']!.post!.responses['422']!.content!['application/json']!.schema as Schema
  const parse = (res: Res): unknown => { try { return JSON.parse(res.body.toString('utf8')) } catch { return undefined } }

  const t0 = Date.now()
  let nextReport = 10_000
  const worker = async (): Promise<void> => {
    while (done < TOTAL) {
      done++
      const r = build()
      try {
        const started = performance.now()
        const res = await send(r)
        judge(r, res)
        byKind.get(r.kind)!.ms += performance.now() - started
      } catch (err) {
        problems.transport++
        sample(`${r.kind}: transport ${(err as Error).message}`)
      }
      if (done >= nextReport) { nextReport += 10_000; console.error(`fuzz: ${done} requests, ${Math.round(done / ((Date.now() - t0) / 1000))}/s`) }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const seconds = (Date.now() - t0) / 1000
  agent.destroy()
  await api.close()

  const statuses = [...byStatus.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(', ')
  console.log(`fuzz: seed ${SEED}, backend ${args.backend}, concurrency ${CONCURRENCY}, ${seconds.toFixed(1)} s (${Math.round(done / seconds)} requests/s)`)
  console.log(`fuzz: requests ${done}; by status ${statuses}`)
  console.log(`fuzz: accepted events ${acceptedEvents} (single 202: ${byStatus.get(202) ?? 0})`)
  console.log(`fuzz: server errors ${problems.serverErrors}, undocumented ${problems.undocumented}, schema mismatches ${problems.schemaMismatch}, unexpected ${problems.unexpected}, transport errors ${problems.transport}`)
  console.log(`fuzz: kinds ${[...byKind.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v.n}${process.env.FUZZ_TIMES === '1' ? ` ${(v.ms / v.n).toFixed(1)}ms` : ''}${v.unexpected > 0 ? ` (${v.unexpected} unexpected)` : ''}`).join(', ')}`)
  for (const s of samples) console.log(`  ${s}`)
  const failed = Object.values(problems).some((n) => n > 0) || acceptedEvents < done / 3
  console.log(failed ? 'fuzz: FAILED' : 'fuzz: ok')
  process.exit(failed ? 1 : 0)
}

await main()
