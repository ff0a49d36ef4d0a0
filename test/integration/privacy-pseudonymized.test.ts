/**
 * Pseudonymized mode (issue 12 item 4) against the real stack: a tenant in
 * privacy.pseudonymizeTenants, its secret in a secrets file. The raw email, phone and pii
 * properties appear nowhere in ClickHouse (dead letters included), two events with the same
 * email (spelled differently) resolve to one profile, the stored value is the documented HMAC,
 * a non-pii property stays readable, another tenant is stored as before, and an erasure by the
 * raw email still finds and removes the person.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLogger } from '../../src/observability/logger.js'
import { createKafka } from '../../src/kafka/client.js'
import { hmacHex } from '../../src/privacy/index.js'
import { buildRecord } from '../../src/producer/index.js'
import { startApi } from '../helpers/api.js'
import { startPipeline } from '../helpers/pipeline.js'
import { tempDir } from '../helpers/config.js'
import { waitFor } from '../helpers/process.js'

const SECRET = 'a-tenant-secret-of-more-than-32-characters'

void t.test('pseudonymized tenant: no raw identity or pii property in ClickHouse; resolution and erasure still work', async (t) => {
  const secrets = join(tempDir(t), 'secrets.json')
  writeFileSync(secrets, JSON.stringify({ acme: SECRET }))
  const api = await startApi(t, { privacy: { pseudonymizeTenants: ['acme'], secretsFile: secrets, erasurePollMs: 100 } })
  const cfg = api.config
  const db = cfg.clickhouse.database
  const p = await startPipeline(t, cfg)
  const acme = { authorization: `Bearer ${await api.key('acme')}` }
  const globex = { authorization: `Bearer ${await api.key('globex')}` }
  const post = (auth: Record<string, string>, payload: object) => api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: auth, payload })

  const profile = {
    source: 'crm', externalEventId: 'pu-1', eventType: 'profile_updated', occurredAt: '2026-05-20T12:45:00Z',
    identity: { email: 'Pia.Pseudo@Example.com', phone: '+1 202-555-0163' },
    properties: { first_name: 'Pialotta', last_name: 'Zwirbelsky', postal_code: '80331', country: 'DE', updated_fields: ['first_name'] },
  }
  t.equal((await post(acme, profile)).statusCode, 202)
  const purchase = {
    source: 'web', externalEventId: 'pc-1', eventType: 'purchase_completed', occurredAt: '2026-05-20T12:46:00Z',
    identity: { email: ' pia.pseudo@example.COM ' }, properties: { order_id: 'o-1', amount: 5, currency: 'EUR' },
  }
  t.equal((await post(acme, purchase)).statusCode, 202)
  t.equal((await post(globex, { ...profile, identity: { email: 'Pia.Pseudo@Example.com' } })).statusCode, 202)
  // a direct record of hers that fails its contract: its dead letter must not keep the raw value
  const log = createLogger({ logLevel: 'silent' })
  const raw = createKafka(cfg, log, '-test-raw').producer({ idempotent: true, maxInFlightRequests: 1 })
  await raw.connect()
  t.teardown(() => raw.disconnect())
  const bad = buildRecord({
    tenant: 'acme', source: 'svc', externalEventId: 'bad-1', eventType: 'purchase_completed', occurredAt: '2026-05-20T12:47:00Z',
    identity: { email: 'pia.pseudo@example.com' }, properties: { amount: 1, currency: 'EUR' },
  }, api.rt.codec)
  await raw.send({ topic: cfg.kafka.topic, acks: -1, messages: [{ key: bad.key, value: bad.value }] })

  await p.until(`SELECT 1 FROM ${db}.events`, (r) => r.length === 3)
  await p.until(`SELECT 1 FROM ${db}.dead_letters`, (r) => r.length === 1)
  const tables = (await p.rows<{ name: string }>(`SHOW TABLES FROM ${db}`)).map((r) => r.name).filter((n) => n !== 'schema_migrations')
  let text = ''
  for (const table of tables) text += await p.rowsText(`SELECT * FROM ${db}.${table}`, 'JSONEachRow')
  const acmeText = text.split('\n').filter((l) => !l.includes('"tenant":"globex"')).join('\n')
  for (const needle of ['pia.pseudo', 'Pia.Pseudo', '+12025550163', '2025550163', 'Pialotta', 'Zwirbelsky', '80331']) {
    t.notOk(acmeText.includes(needle), `ClickHouse holds no ${needle} for the pseudonymized tenant`)
  }
  t.ok(text.includes('"tenant":"globex"') && text.includes('pia.pseudo@example.com'), 'another tenant is stored as before')

  const emailHash = hmacHex(SECRET, 'identity', 'EMAIL', 'pia.pseudo@example.com')
  const rows = await p.rows<{ email: string; profile_id: string; country: string; first: string }>(
    `SELECT email, profile_id, p_country AS country, JSONExtractString(properties, 'first_name') AS first
     FROM ${db}.events_resolved WHERE tenant = 'acme' ORDER BY external_event_id`)
  t.equal(rows.length, 2)
  t.same(rows.map((r) => r.email), [emailHash, emailHash], 'the stored email is HMAC-SHA256(tenant secret, normalized email)')
  t.equal(new Set(rows.map((r) => r.profile_id)).size, 1, 'two events with the same email resolve to one profile')
  t.equal(rows.find((r) => r.first !== '')?.first, hmacHex(SECRET, 'property', JSON.stringify('Pialotta')), 'a pii property is its keyed hash')
  t.same(rows.map((r) => r.country).filter(Boolean), ['DE'], 'a property not flagged pii stays readable')
  const [letter] = await p.rows<{ value_base64: string }>(`SELECT value_base64 FROM ${db}.dead_letters`)
  t.equal(letter?.value_base64, '', 'the dead letter keeps no value')

  const doc = (await api.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }
  t.ok(doc.paths['/v1/cdp/erasures']?.post?.responses['202'], 'OpenAPI describes POST /v1/cdp/erasures')
  t.ok(doc.paths['/v1/cdp/erasures/{erasure_id}']?.get?.responses['200'], 'and GET /v1/cdp/erasures/{erasure_id}')

  // erasure by the raw email finds the hashed person
  const dpo = { authorization: `Bearer ${await api.key('acme', ['privacy:erase'])}` }
  const req = await api.app.inject({ method: 'POST', url: '/v1/cdp/erasures', headers: dpo, payload: { identity: { email: 'PIA.pseudo@example.com' } } })
  t.equal(req.statusCode, 202)
  const id = (req.json() as { erasure_id: string }).erasure_id
  const done = await waitFor('the erasure', async () => {
    const r = (await api.app.inject({ method: 'GET', url: `/v1/cdp/erasures/${id}`, headers: dpo })).json() as { status: string; receipt?: { clickhouse: Record<string, number> } }
    return r.status === 'completed' || r.status === 'failed' ? r : undefined
  }, 60_000, 200)
  t.equal(done.status, 'completed')
  t.equal(done.receipt?.clickhouse.events, 2)
  t.same(await p.rows(`SELECT email FROM ${db}.events WHERE tenant = 'acme'`), [])
  t.equal((await post(acme, { ...purchase, externalEventId: 'pc-2' })).statusCode, 409, 'suppressed, through the same hashes')
  t.same(await p.rows<{ n: string }>(`SELECT count() AS n FROM ${db}.events WHERE tenant = 'globex'`), [{ n: '1' }], 'globex untouched')
})
