/**
 * Bulk import against the real API (Kafka, registry, state store): POST /v1/cdp/events/import
 * (NDJSON, gzip, per-line results, limits) and `cdp import` as a child process (report of
 * rejected lines with their codes; killed mid-import and resumed, every valid line on the topic
 * exactly once).
 */
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { startApi, readTopic } from '../helpers/api.js'
import { tempDir } from '../helpers/config.js'
import { runCdp, waitFor } from '../helpers/process.js'

const event = (id: string, extra: Record<string, unknown> = {}) => ({
  source: 'brand.pos', externalEventId: id, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity: { email: `${id}@example.com` }, properties: { order_id: `o-${id}`, amount: 3.5, currency: 'EUR' }, ...extra,
})

const parse = (body: string) => body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)

void t.test('POST /v1/cdp/events/import: per-line results, dedup, gzip, limits', async (tt) => {
  const api = await startApi(tt, { http: { importMaxLines: 50 } })
  const key = await api.key('acme')
  const post = (payload: string | Buffer, headers: Record<string, string> = {}, url = '/v1/cdp/events/import') => api.app.inject({
    method: 'POST', url, payload, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson', ...headers },
  })

  const body = [
    JSON.stringify(event('imp-1')),
    '',
    '{not json',
    JSON.stringify(event('imp-2', { eventType: 'no_such_type' })),
    JSON.stringify({ ...event('imp-3'), source: undefined }),
    JSON.stringify(event('imp-1')),
  ].join('\n')
  const res = await post(body, {}, '/v1/cdp/events/import?source=brand.crm')
  tt.equal(res.statusCode, 200, res.body)
  tt.match(res.headers['content-type'], /application\/x-ndjson/)
  const lines = parse(res.body)
  tt.match(lines, [
    { line: 1, status: 'accepted' },
    { line: 3, status: 'error', error_code: 'validation_failed', details: [{ code: 'invalid_json' }] },
    { line: 4, status: 'error', error_code: 'validation_failed' },
    { line: 5, status: 'accepted' },
    { line: 6, status: 'duplicate', original_event_id: lines[0]!.event_id },
    { done: true, lines: 5, accepted: 2, duplicate: 1, rejected: 2, last_line: 6 },
  ])

  // the same lines again, gzip-compressed: every earlier acceptance is now a duplicate
  const again = await post(gzipSync(body), { 'content-encoding': 'gzip' }, '/v1/cdp/events/import?source=brand.crm')
  tt.equal(again.statusCode, 200, again.body)
  tt.match(parse(again.body).filter((l) => l.status === 'duplicate').map((l) => l.line), [1, 5, 6])

  const records = await readTopic(api.config, 2)
  tt.equal(records.length, 2, 'two facts on the topic, whatever was sent twice')
  tt.ok(records.some((r) => r.key.includes('brand.crm') && r.key.includes('imp-3')), '--source fills a line without one')

  // more lines than importMaxLines: judged up to the limit, then the import stops with a code
  const many = Array.from({ length: 60 }, (_, i) => JSON.stringify(event(`imp-many-${i}`))).join('\n')
  const over = parse((await post(many)).body)
  tt.equal(over.filter((l) => l.status === 'accepted').length, 50)
  tt.match(over.at(-1), { done: false, error_code: 'validation_failed', lines: 50 })

  tt.equal((await post(JSON.stringify(event('imp-x')), { 'content-type': 'application/json' })).statusCode, 415, 'NDJSON only')
  const noKey = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/import', payload: body, headers: { 'content-type': 'application/x-ndjson' } })
  tt.equal(noKey.statusCode, 401)
  const writeOnly = await api.key('acme', ['events:write'])
  const forbidden = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/import', payload: body, headers: { authorization: `Bearer ${writeOnly}`, 'content-type': 'application/x-ndjson' } })
  tt.equal(forbidden.statusCode, 403, 'events:batch is required')
})

void t.test('POST /v1/cdp/events/import: the body limit applies after decompression', async (tt) => {
  const api = await startApi(tt, { http: { importBodyLimitBytes: 64 * 1024 } })
  const key = await api.key('acme')
  const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify(event(`imp-lim-${i}`))).join('\n')
  tt.ok(lines.length > 64 * 1024)
  const plain = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/import', payload: lines, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' } })
  tt.equal(plain.statusCode, 413, 'Content-Length over the limit is refused before reading')
  const zipped = gzipSync(lines)
  tt.ok(zipped.length < 64 * 1024)
  const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/import', payload: zipped, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' } })
  tt.equal(res.statusCode, 200)
  tt.match(parse(res.body).at(-1), { done: false, error_code: 'payload_too_large' })
})

void t.test('cdp import: report of rejected lines; killed and resumed, every valid line stored once', async (tt) => {
  const api = await startApi(tt)
  const key = await api.key('acme')
  // the 6th import request hangs until released, so the CLI is killed mid-import, deterministically
  let requests = 0
  let release: () => void = () => undefined
  const held = new Promise<void>((r) => { release = r })
  tt.teardown(() => release())
  api.app.addHook('preHandler', async (request) => {
    if (request.url.startsWith('/v1/cdp/events/import') && ++requests === 6) await held
  })
  await api.app.listen({ host: '127.0.0.1', port: 0 })
  const addr = api.app.server.address()
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`

  const dir = tempDir(tt)
  const file = join(dir, 'history.ndjson')
  const invalid = new Map<number, string>()
  const valid = new Set<string>()
  const lines = Array.from({ length: 2000 }, (_, i) => {
    const line = i + 1
    if (line % 97 === 0) { invalid.set(line, 'validation_failed'); return '{"source": "brand.pos", ' }
    if (line % 101 === 0) { invalid.set(line, 'validation_failed'); return JSON.stringify(event(`hist-${line}`, { occurredAt: 'yesterday' })) }
    valid.add(`hist-${line}`)
    return JSON.stringify(event(`hist-${line}`))
  })
  writeFileSync(file, `${lines.join('\n')}\n`)
  const report = join(dir, 'rejected.ndjson')
  const checkpoint = `${file}.checkpoint`
  const env = { CDP_URL: url, CDP_API_KEY: key }
  const config = { dataDir: dir, logLevel: 'silent' }

  const first = runCdp(tt, ['import', file, '--report', report, '--chunk', '100'], { dir, config, env })
  await waitFor('the hung request', async () => (requests >= 6 ? true : undefined), 60_000)
  const cp = JSON.parse(readFileSync(checkpoint, 'utf8')) as { line: number }
  tt.equal(cp.line, 500, 'five chunks answered before the hang')
  first.kill('SIGKILL')
  await first.exited
  release()

  const second = runCdp(tt, ['import', file, '--report', report, '--chunk', '100'], { dir, config, env })
  tt.equal(await second.exited, 0, second.output())
  tt.match(second.output(), /resuming after line 500/)
  tt.match(second.output(), /import complete/)
  tt.notOk(existsSync(checkpoint), 'the checkpoint is removed once complete')

  const rejected = parse(readFileSync(report, 'utf8'))
  tt.same(rejected.map((r) => r.line).sort((a, b) => Number(a) - Number(b)), [...invalid.keys()].sort((a, b) => a - b), 'each rejected line once')
  for (const r of rejected) {
    tt.equal(r.error_code, invalid.get(r.line as number))
    tt.ok(Array.isArray(r.details) && (r.details as { code: string }[]).length > 0)
  }
  tt.ok(rejected.some((r) => (r.details as { code: string }[])[0]!.code === 'invalid_json'))
  tt.ok(rejected.some((r) => (r.details as { code: string }[])[0]!.code === 'invalid_timestamp'))

  const records = await readTopic(api.config, valid.size, { timeoutMs: 60_000, settleMs: 2000 })
  const ids = records.map((r) => r.decoded.ok ? (r.decoded.event as { externalEventId: string }).externalEventId : '?')
  tt.equal(records.length, valid.size, 'every valid line once on the topic')
  tt.same(new Set(ids), valid)
})
