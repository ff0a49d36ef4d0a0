/**
 * The front door of the HTTP API with fake dependencies (no stack): authentication before the
 * body, slow clients, failing requests per address, the negative key cache, per-item rate
 * limits, the cached readiness probe and answers during the drain.
 */
import t from 'tap'
import { connect, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../../src/http/app.js'
import { loadConfig, type Config, type DeepPartial } from '../../../src/config/index.js'
import { createKey, KeyVerifier, type Permission } from '../../../src/auth/keys.js'
import { createMemoryStateStores } from '../../../src/state/index.js'
import type { KeyStore } from '../../../src/state/types.js'
import type { IngestService } from '../../../src/ingest/service.js'
import { createLogger } from '../../../src/observability/logger.js'
import { MemoryRateLimitStore } from '../../../src/state/rate-limit-store.js'
import { SEED_EVENT } from '../../helpers/seed.js'
import type { TestContext } from '../../helpers/config.js'

interface Harness {
  app: FastifyInstance
  key(permissions?: Permission[], tenant?: string): Promise<string>
  /** items the fake ingest core was given */
  ingested: unknown[]
  /** key-store reads */
  reads: () => number
  /** readiness checks run */
  probes: () => number
  /** while set, the fake ingest waits for it */
  gate: { wait?: Promise<void>; entered?: () => void }
}

async function harness(t: TestContext, http: DeepPartial<Config['http']> = {}): Promise<Harness> {
  const config = loadConfig({ env: {}, overrides: { logLevel: 'silent', http } })
  const stores = createMemoryStateStores()
  let reads = 0
  const counting: KeyStore = { ...stores.keys, getKey: (id) => { reads++; return stores.keys.getKey(id) } }
  const ingested: unknown[] = []
  const gate: Harness['gate'] = {}
  const ingest = {
    ingest: async (_caller: unknown, items: unknown[]) => {
      ingested.push(...items)
      gate.entered?.()
      if (gate.wait !== undefined) await gate.wait
      return items.map((_, i) => ({ status: 'accepted', event_id: `evt_${i}` }))
    },
  } as unknown as IngestService
  let probes = 0
  const readiness = async () => { probes++; return { kafka: true, schemaRegistry: true, stateStore: true } }
  const app = await buildApp(config, {
    ingest, keys: new KeyVerifier(counting), readiness, logger: createLogger({ logLevel: 'silent' }),
    rateLimitStore: new MemoryRateLimitStore(),
  })
  t.teardown(() => app.close())
  return {
    app, ingested, gate, reads: () => reads, probes: () => probes,
    key: async (permissions = ['events:write', 'events:batch'], tenant = 'acme') => (await createKey(stores.keys, { tenant, permissions })).key,
  }
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const addr = app.server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no port')
  return addr.port
}

/** a raw connection collecting what the server sends, resolving `closed` when it closes */
function rawSocket(port: number): { socket: Socket; received: () => string; closed: Promise<void>; firstData: Promise<void> } {
  const socket = connect(port, '127.0.0.1')
  let data = ''
  let onData: () => void = () => {}
  const firstData = new Promise<void>((r) => { onData = r })
  socket.on('data', (b) => { data += b.toString('utf8'); onData() })
  const closed = new Promise<void>((r) => socket.on('close', () => r()))
  socket.on('error', () => {})
  return { socket, received: () => data, closed, firstData }
}

void t.test('an unauthenticated 8 MiB batch is refused from its headers: 401 before the body arrives, never parsed', async (t) => {
  // a server that waited for the body would answer 408 when the request timeout passes
  const h = await harness(t, { requestTimeoutMs: 3000, headersTimeoutMs: 2000 })
  const port = await listen(h.app)
  const c = rawSocket(port)
  // announce 8 MiB, send 1 KiB of it and stop: a server that read the body first would wait
  c.socket.write(`POST /v1/cdp/events/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${8 * 1024 * 1024}\r\n\r\n`)
  c.socket.write('{"items":[' + ' '.repeat(1024))
  await c.firstData
  t.match(c.received(), /^HTTP\/1\.1 401 /)
  t.match(c.received(), /"error_code":"unauthorized"/)
  t.equal(h.ingested.length, 0, 'nothing reached the ingest core')
  c.socket.destroy()

  // the same through inject with a full body: 401, and the handler never ran
  const big = JSON.stringify({ items: Array.from({ length: 500 }, () => ({ ...SEED_EVENT, properties: { ...SEED_EVENT.properties, pad: 'x'.repeat(16_000) } })) })
  t.ok(big.length > 8_000_000)
  const res = await h.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: { 'content-type': 'application/json', authorization: 'Bearer rfcdp_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' }, payload: big })
  t.equal(res.statusCode, 401)
  t.equal(h.ingested.length, 0)
})

void t.test('a client sending its headers slowly is disconnected', async (t) => {
  const h = await harness(t, { headersTimeoutMs: 500, requestTimeoutMs: 1000 })
  const port = await listen(h.app)
  const c = rawSocket(port)
  c.socket.write('POST /v1/cdp/events HTTP/1.1\r\nHost: x\r\n')
  // one header byte every 100 ms: never completes the headers
  const drip = setInterval(() => { if (!c.socket.destroyed) c.socket.write('X') }, 100)
  t.teardown(() => clearInterval(drip))
  await c.closed
  clearInterval(drip)
  t.ok(c.socket.destroyed || c.socket.readableEnded, 'the server closed the connection')
  t.match(c.received(), /^(HTTP\/1\.1 408 |)/, 'at most a 408 before closing')
})

void t.test('failing requests per client address: after N, 429 with Retry-After, even with a good key', async (t) => {
  const h = await harness(t, { failureLimitMax: 5, failureLimitWindowMs: 60_000 })
  const good = await h.key()
  for (let i = 0; i < 5; i++) {
    const r = await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer('rfcdp_aaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'), payload: SEED_EVENT })
    t.equal(r.statusCode, 401)
  }
  const blocked = await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(good), payload: SEED_EVENT })
  t.equal(blocked.statusCode, 429)
  t.match(blocked.json(), { status: 'error', error_code: 'rate_limited', message: /failing requests/ })
  t.ok(Number(blocked.headers['retry-after']) >= 1)
  t.equal(h.ingested.length, 0)
})

void t.test('successful requests do not count against the address', async (t) => {
  const h = await harness(t, { failureLimitMax: 2 })
  const good = await h.key()
  for (let i = 0; i < 5; i++) {
    t.equal((await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(good), payload: SEED_EVENT })).statusCode, 202)
  }
})

void t.test('a flood of one unknown key id reads the key store once (negative cache)', async (t) => {
  const h = await harness(t, { failureLimitMax: 1000 })
  const unknown = 'rfcdp_cccccccccccccccc_dddddddddddddddddddddddddddddddd'
  for (let i = 0; i < 20; i++) {
    t.equal((await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(unknown), payload: SEED_EVENT })).statusCode, 401)
  }
  t.equal(h.reads(), 1)
})

void t.test('rate limits are charged per item: a 500-item batch over a per-key limit of 400 is refused', async (t) => {
  const h = await harness(t, { rateLimitMax: 400, tenantRateLimitMax: 700, rateLimitWindowMs: 60_000 })
  const key = await h.key()
  const batch = (n: number) => ({ items: Array.from({ length: n }, (_, i) => ({ ...SEED_EVENT, externalEventId: `e${i}` })) })
  const big = await h.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key), payload: batch(500) })
  t.equal(big.statusCode, 429)
  t.match(big.json(), { status: 'error', error_code: 'rate_limited', message: /500 events, more than the limit of 400/ })
  t.ok(Number(big.headers['retry-after']) >= 1)
  t.equal(h.ingested.length, 0, 'a refused batch reaches nothing')

  // the refusal cost nothing: 400 fit, the 401st does not
  t.equal((await h.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(key), payload: batch(400) })).statusCode, 200)
  const one = await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(key), payload: SEED_EVENT })
  t.equal(one.statusCode, 429)
  t.match(one.json(), { error_code: 'rate_limited', message: /this API key/ })

  // the tenant's budget (700) is shared by its keys: a second key gets the remaining 300
  const other = await h.key()
  t.equal((await h.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: bearer(other), payload: batch(300) })).statusCode, 200)
  const tenantFull = await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(other), payload: SEED_EVENT })
  t.equal(tenantFull.statusCode, 429)
  t.match(tenantFull.json(), { error_code: 'rate_limited', message: /this tenant/ })
  // another tenant is not affected
  const stranger = await h.key(undefined, 'globex')
  t.equal((await h.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: bearer(stranger), payload: SEED_EVENT })).statusCode, 202)
})

void t.test('/readyz answers from the background probe: a flood runs no checks', async (t) => {
  const h = await harness(t, { readinessIntervalMs: 60_000 })
  await h.app.ready()
  for (let i = 0; i < 50; i++) {
    const r = await h.app.inject({ url: '/readyz' })
    t.equal(r.statusCode, 200)
  }
  t.equal(h.probes(), 1, 'one probe for 50 requests')
})

void t.test('requests during the drain get 503 shutting_down in the API error format with Retry-After', async (t) => {
  const h = await harness(t)
  const key = await h.key()
  const port = await listen(h.app)
  let release: () => void = () => {}
  h.gate.wait = new Promise<void>((r) => { release = r })
  const entered = new Promise<void>((r) => { h.gate.entered = r })
  // a keep-alive connection with one request in flight (held by the gate)
  const c = rawSocket(port)
  const body = JSON.stringify(SEED_EVENT)
  const request = `POST /v1/cdp/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  c.socket.write(request)
  await entered
  const closing = h.app.close()
  // the drain has begun; a second request arrives on the busy connection
  await new Promise((r) => setTimeout(r, 50))
  c.socket.write(request)
  release()
  await closing
  await c.closed
  const answers = c.received().split(/(?=HTTP\/1\.1 )/)
  t.equal(answers.length, 2, c.received())
  t.match(answers[0], /^HTTP\/1\.1 202 /, 'the request in flight finishes')
  t.match(answers[1], /^HTTP\/1\.1 503 /)
  t.match(answers[1], /\r\nretry-after: 1\r\n/i)
  const json = JSON.parse(answers[1]!.slice(answers[1]!.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>
  t.match(json, { status: 'error', error_code: 'shutting_down' })
  t.type(json.message, 'string')
  t.equal(h.ingested.length, 1, 'the second request was not ingested')
})
