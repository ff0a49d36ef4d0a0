/**
 * Issue 12 end to end, against the real stack: a person sent through the API and a direct
 * producer (two identities merged into one person, one dead letter), erased by email through
 * POST /v1/cdp/erasures. Then: no row of any ClickHouse table or view names them, the identity
 * graph forgets them, a client retry of one of their facts answers duplicate and stores nothing,
 * a new event with their phone is refused (API: 409 suppressed; direct: a value-free dead letter),
 * and `cdp replay` into an empty database brings none of it back. Another person of the tenant
 * and the same email in another tenant are untouched throughout.
 */
import t from 'tap'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { replay } from '../../src/cli/commands/replay.js'
import { suppressions } from '../../src/cli/commands/erase.js'
import { createClickHouse, closeClickHouse } from '../../src/clickhouse/client.js'
import { createIdentityGraph } from '../../src/identity/index.js'
import { buildRecord, createDirectProducer, type DirectEvent } from '../../src/producer/index.js'
import { startApi } from '../helpers/api.js'
import { startPipeline, type TestPipeline } from '../helpers/pipeline.js'
import { waitFor } from '../helpers/process.js'

const EMAIL = 'Ann.Erased@Example.com'
const EMAIL_N = 'ann.erased@example.com'
const PHONE = '+1 202-555-0147'
const PHONE_N = '+12025550147'
const EXT = 'U-ann-7781'

const purchase = (tenant: string, externalEventId: string, identity: DirectEvent['identity'], amount = 10): DirectEvent => ({
  tenant, source: 'svc.orders', externalEventId, eventType: 'purchase_completed', occurredAt: '2026-05-20T12:45:00Z',
  identity, properties: { order_id: `o-${externalEventId}`, amount, currency: 'EUR' },
})
const body = (e: DirectEvent) => { const { tenant: _t, ...rest } = e; return { ...rest, source: 'brand.web' } }

/** every row of every table and view of a database, as text (dead letter values decoded too) */
async function dump(cfg: Readonly<Config>, database: string, read?: TestPipeline): Promise<{ tables: string[]; text: string }> {
  if (read !== undefined) {
    const tables = (await read.rows<{ name: string }>(`SHOW TABLES FROM ${database}`)).map((r) => r.name)
    let text = ''
    // schema_migrations holds versions only; the analyst route does not serve it
    for (const table of tables.filter((n) => n !== 'schema_migrations')) {
      text += `\n## ${table}\n` + await read.rowsText(`SELECT * FROM ${database}.${table}`, 'JSONEachRow')
    }
    return { tables, text: withDecoded(text) }
  }
  const ch = createClickHouse(cfg)
  try {
    const q = async (query: string) => (await ch.query({ query, format: 'JSONEachRow' })).text()
    const tables = (await (await ch.query({ query: `SELECT name FROM system.tables WHERE database = '${database}'`, format: 'JSONEachRow' })).json<{ name: string }>()).map((r) => r.name)
    let text = ''
    for (const table of tables) text += `\n## ${table}\n` + await q(`SELECT * FROM ${database}.${table}`)
    return { tables, text: withDecoded(text) }
  } finally {
    await closeClickHouse(ch)
  }
}

async function dumpGlobex(cfg: Readonly<Config>, database: string): Promise<string> {
  const ch = createClickHouse(cfg)
  try {
    return await (await ch.query({ query: `SELECT * FROM ${database}.events WHERE tenant = 'globex'`, format: 'JSONEachRow' })).text()
  } finally {
    await closeClickHouse(ch)
  }
}

/** acme's rows only (globex holds the same email on purpose), with dead letter values decoded */
function withDecoded(all: string): string {
  const text = all.split('\n').filter((l) => !l.includes('"tenant":"globex"')).join('\n')
  const decoded = [...text.matchAll(/"value_base64":"([^"]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('latin1'))
  return `${text}\n${decoded.join('\n')}`
}

void t.test('erasure of a person: every store, a receipt, suppression, and nothing back after a replay', async (t) => {
  const api = await startApi(t, { privacy: { erasurePollMs: 100 } })
  const cfg = api.config
  const db = cfg.clickhouse.database
  const log = createLogger({ logLevel: 'silent' })
  const p = await startPipeline(t, cfg)
  const dp = await createDirectProducer({ brokers: [...cfg.kafka.brokers], topic: cfg.kafka.topic, registryUrl: cfg.schemaRegistry.url, logger: log })
  t.teardown(() => dp.close())
  const acme = { authorization: `Bearer ${await api.key('acme')}` }
  const globex = { authorization: `Bearer ${await api.key('globex')}` }
  const send = (auth: Record<string, string>, e: DirectEvent) => api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload: body(e) })

  // ann: over HTTP by email + external id; directly by phone; then an event linking both (a merge)
  const h1 = await send(acme, purchase('acme', 'ann-h1', { email: EMAIL, externalUserId: EXT }))
  t.equal(h1.statusCode, 202)
  await dp.send(purchase('acme', 'ann-d1', { phone: PHONE }))
  await p.until(`SELECT 1 FROM ${db}.events WHERE external_event_id IN ('ann-h1', 'ann-d1')`, (r) => r.length === 2)
  await dp.send(purchase('acme', 'ann-d2', { email: EMAIL, phone: PHONE }, 11))
  // one dead letter of hers: a direct record missing a required property
  const kafka = createKafka(cfg, log, '-test-raw')
  const raw = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await raw.connect()
  t.teardown(() => raw.disconnect())
  const bad = buildRecord({ ...purchase('acme', 'ann-bad', { email: EMAIL }), properties: { amount: 1, currency: 'EUR' } }, api.rt.codec)
  await raw.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: bad.key, value: bad.value }] })
  // bob, same tenant; ann's email in another tenant
  t.equal((await send(acme, purchase('acme', 'bob-h1', { email: 'bob@example.com', phone: '+12025550188' }))).statusCode, 202)
  t.equal((await send(globex, purchase('globex', 'ann-g1', { email: EMAIL }))).statusCode, 202)
  await p.until(`SELECT 1 FROM ${db}.events WHERE external_event_id IN ('ann-d2', 'bob-h1', 'ann-g1')`, (r) => r.length === 3)
  await p.until(`SELECT 1 FROM ${db}.dead_letters WHERE reason_code = 'contract_violation'`, (r) => r.length === 1)
  const merges = await p.rows<{ n: string }>(`SELECT count() AS n FROM ${db}.profile_merges WHERE tenant = 'acme'`)
  t.equal(Number(merges[0]?.n), 1, 'her two profiles were merged')
  const before = await dump(cfg, db, p)
  t.ok(before.text.includes(EMAIL_N) && before.text.includes(PHONE_N) && before.text.includes(EXT), 'she is there before')

  // a key without privacy:erase may not erase
  const denied = await api.app.inject({ method: 'POST', url: '/v1/cdp/erasures', headers: acme, payload: { identity: { email: EMAIL } } })
  t.equal(denied.statusCode, 403)
  const dpo = { authorization: `Bearer ${await api.key('acme', ['privacy:erase'])}` }
  t.equal((await api.app.inject({ method: 'POST', url: '/v1/cdp/erasures', headers: dpo, payload: { identity: { email: 'x', phone: PHONE } } })).statusCode, 422)
  const req = await api.app.inject({ method: 'POST', url: '/v1/cdp/erasures', headers: dpo, payload: { identity: { email: `  ${EMAIL.toUpperCase()} ` } } })
  t.equal(req.statusCode, 202)
  const { erasure_id: id, status } = req.json() as { erasure_id: string; status: string }
  t.match(id, /^era_[a-z0-9]+$/)
  t.equal(status, 'pending')
  const otherTenant = { authorization: `Bearer ${await api.key('globex', ['privacy:erase'])}` }
  t.equal((await api.app.inject({ method: 'GET', url: `/v1/cdp/erasures/${id}`, headers: otherTenant })).statusCode, 404, "another tenant cannot see it")

  const done = await waitFor('the erasure to finish', async () => {
    const r = (await api.app.inject({ method: 'GET', url: `/v1/cdp/erasures/${id}`, headers: dpo })).json() as { status: string }
    return r.status === 'completed' || r.status === 'failed' ? r : undefined
  }, 60_000, 200) as { status: string; reason?: string; receipt: { profileIds: string[]; clickhouse: Record<string, number>; graph: Record<string, number>; dedupMarkedErased: number; tombstones: number; suppressed: number } }
  t.equal(done.status, 'completed', done.reason ?? '')
  const receipt = done.receipt
  t.equal(receipt.profileIds.length, 2, 'both of her profile ids: the merged one too')
  t.same(receipt.clickhouse, { events: 3, identities: 3, profile_merges: 1, profile_aliases: 2, dead_letters: 1 }, 'aliases: the merge view row and the identity step row')
  t.same(receipt.graph, { identities: 3, profiles: 2, keptResults: 0 })
  t.equal(receipt.dedupMarkedErased, 3)
  t.equal(receipt.tombstones, 4, 'three facts and the dead-lettered record')
  t.equal(receipt.suppressed, 3, 'email, phone, external id')

  // ClickHouse: nothing names her, in any table or view; bob and globex are untouched
  const after = await dump(cfg, db, p)
  t.ok(after.tables.includes('events') && after.tables.includes('events_resolved') && after.tables.includes('dead_letters'))
  for (const needle of [EMAIL_N, PHONE_N, EXT, 'ann-h1', 'ann-d1', 'ann-d2', ...receipt.profileIds]) {
    t.notOk(after.text.includes(needle), `no row names ${needle}`)
  }
  t.ok(after.text.includes('bob@example.com'), 'another person of the tenant stays')
  const g = await p.rows<{ email: string }>(`SELECT email FROM ${db}.events WHERE tenant = 'globex'`)
  t.same(g, [{ email: EMAIL_N }], 'the same email in another tenant stays')

  // the graph forgets her, keeps the others
  const graph = await createIdentityGraph(cfg)
  t.teardown(() => graph.close())
  t.equal(await graph.lookup('acme', { type: 'EMAIL', value: EMAIL_N }), undefined)
  t.equal(await graph.lookup('acme', { type: 'PHONE', value: PHONE_N }), undefined)
  t.ok(await graph.lookup('acme', { type: 'EMAIL', value: 'bob@example.com' }))
  t.ok(await graph.lookup('globex', { type: 'EMAIL', value: EMAIL_N }))

  // a client retry of her fact: duplicate, and nothing stored
  const retry = await send(acme, purchase('acme', 'ann-h1', { email: EMAIL, externalUserId: EXT }))
  t.equal(retry.statusCode, 200)
  t.same(retry.json(), { status: 'duplicate', original_event_id: (h1.json() as { event_id: string }).event_id })
  // a new event with her phone: refused over HTTP, value-free dead letter directly
  const fresh = await send(acme, purchase('acme', 'ann-new', { phone: PHONE }))
  t.equal(fresh.statusCode, 409)
  t.equal((fresh.json() as { error_code: string }).error_code, 'suppressed')
  t.equal((await send(globex, purchase('globex', 'ann-g2', { phone: PHONE }))).statusCode, 202, 'not suppressed in another tenant')
  await dp.send(purchase('acme', 'ann-d3', { phone: PHONE, deviceKey: 'dev-9' }))
  // a direct repeat of an erased fact: skipped (dedup says erased), never re-asserted
  await dp.send(purchase('acme', 'ann-d1', { phone: PHONE }))
  await p.until(`SELECT 1 FROM ${db}.events WHERE external_event_id = 'ann-g2'`, (r) => r.length === 1)
  const letters = await p.until<{ key: string; value_base64: string }>(`SELECT key, value_base64 FROM ${db}.dead_letters WHERE reason_code = 'suppressed'`, (r) => r.length === 1)
  t.same(letters, [{ key: JSON.stringify(['acme', 'svc.orders', 'ann-d3']), value_base64: '' }], 'the suppressed record without its value')
  const still = await dump(cfg, db, p)
  for (const needle of [EMAIL_N, PHONE_N, EXT, 'dev-9', 'ann-new', 'ann-d1\\"']) t.notOk(still.text.includes(needle), `still no row names ${needle}`)

  // the suppression list names nobody, and the CLI lists it
  const listed: string[] = []
  t.equal(await suppressions(cfg, ['list', '--tenant', 'acme'], (l) => listed.push(l)), 0)
  t.equal(listed.at(-1), '3 suppressed identities')
  t.notOk(listed.join('\n').includes(EMAIL_N) || listed.join('\n').includes(PHONE_N), 'hashes only')

  // the live consumer has caught up; replay the whole topic into an empty database
  const admin = kafka.admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  await waitFor('the consumer to catch up', async () => {
    const high = await admin.fetchTopicOffsets(cfg.kafka.topic)
    const [c] = await admin.fetchOffsets({ groupId: cfg.kafka.consumerGroup, topics: [cfg.kafka.topic] })
    return high.every((h) => Number(h.high) === 0 || c?.partitions.find((x) => x.partition === h.partition)?.offset === h.high) ? true : undefined
  })
  // the topic holds a tombstone (null value) for each of her tuples
  const tombstones: string[] = []
  const reader = kafka.consumer({ groupId: `tomb-${Date.now()}` })
  await reader.connect()
  await reader.subscribe({ topic: cfg.kafka.topic, fromBeginning: true })
  await reader.run({ eachMessage: async ({ message }) => { if (message.value === null) tombstones.push(message.key?.toString() ?? '') } })
  await waitFor('tombstones', async () => (tombstones.length >= 5 ? true : undefined), 20_000)
  await reader.disconnect()
  t.same(tombstones.map((k) => (JSON.parse(k) as string[])[2]).sort(), ['ann-bad', 'ann-d1', 'ann-d2', 'ann-d3', 'ann-h1'])
  await p.stop()

  const replayCfg: Readonly<Config> = { ...cfg, clickhouse: { ...cfg.clickhouse, database: `${db}_replay` } }
  t.equal(await replay(replayCfg, [], () => undefined), 0)
  const rebuilt = await dump(cfg, replayCfg.clickhouse.database)
  for (const needle of [EMAIL_N, PHONE_N, EXT, 'dev-9', 'ann-h1', 'ann-d2', ...receipt.profileIds]) {
    t.notOk(rebuilt.text.includes(needle), `after replay, no row names ${needle}`)
  }
  t.ok(rebuilt.text.includes('bob@example.com'), 'bob is rebuilt')
  const globexRows = await dumpGlobex(cfg, replayCfg.clickhouse.database)
  t.ok(globexRows.includes(EMAIL_N), 'the same email in another tenant is rebuilt')
})
