/**
 * The OpenAPI document and the validator agree: events generated from the document's schemas
 * (one per registered type, under the discriminator) are accepted by the real app, and an event
 * breaking one documented constraint is refused with 422. The routes validate bodies themselves,
 * so without this check the document could drift from what the API does.
 */
import t from 'tap'
import { memoryApi } from '../../fuzz/harness.js'
import { Generator, Rng, mutate, type OpenApiDoc, type Schema } from '../../fuzz/schema-gen.js'
import { DocValidator } from '../../fuzz/doc-check.js'
import type { TestContext } from '../../helpers/config.js'

const SEED = Number(process.env.OPENAPI_TEST_SEED ?? 20260520)

async function setup(t: TestContext) {
  const api = await memoryApi({ http: { failureLimitMax: 1_000_000 } })
  t.teardown(() => api.close())
  const doc = api.app.swagger() as unknown as OpenApiDoc
  const key = await api.key('acme', ['events:write', 'events:batch'])
  const single = doc.paths['/v1/cdp/events']!.post!.requestBody!.content['application/json']!.schema
  const batch = doc.paths['/v1/cdp/events/batch']!.post!.requestBody!.content['application/json']!.schema
  return { api, doc, key, single, batch, check: new DocValidator(doc) }
}

/** a generated event under the size limit with an externalEventId not used before */
function freshEvent(gen: Generator, schema: Schema, seen: Set<string>, maxBytes: number): Record<string, unknown> {
  for (;;) {
    const e = gen.valid(schema) as Record<string, unknown>
    if (seen.has(String(e.externalEventId)) || Buffer.byteLength(JSON.stringify(e)) > maxBytes) continue
    seen.add(String(e.externalEventId))
    return e
  }
}

void t.test('the document describes every registered event type under a discriminator on eventType', async (t) => {
  const { doc, single, batch } = await setup(t)
  const mapping = single.discriminator?.mapping ?? {}
  t.equal(single.discriminator?.propertyName, 'eventType')
  t.ok(Object.keys(mapping).includes('purchase_completed'))
  t.equal(single.oneOf?.length, Object.keys(mapping).length)
  for (const [type, ref] of Object.entries(mapping)) {
    const s = doc.components!.schemas![ref.replace('#/components/schemas/', '')]!
    t.same(s.properties!.eventType!.enum, [type], `${type}: eventType fixed`)
  }
  const purchase = doc.components!.schemas!.Event_purchase_completed!.properties!.properties!
  t.same(purchase.required, ['order_id', 'amount', 'currency'])
  t.equal(purchase.additionalProperties, false, 'unknownProperties reject')
  t.equal(purchase.properties!.order_id!.maxLength, 128)
  t.ok((purchase.properties!.currency!.enum ?? []).includes('EUR'))
  t.equal(purchase.properties!.coupon_code!.nullable, true, 'optional: null counts as absent')
  t.same(batch.properties!.items!.items!.oneOf, single.oneOf, 'batch items: the same schemas')
})

void t.test('events generated from the document are accepted (202), single and in batches', async (t) => {
  const { api, key, single, check } = await setup(t)
  const gen = new Generator(api.app.swagger() as unknown as OpenApiDoc, new Rng(SEED))
  const seen = new Set<string>()
  const byType = new Map<string, number>()
  let accepted = 0
  for (let i = 0; i < 600; i++) {
    const e = freshEvent(gen, single, seen, api.config.http.maxEventBytes)
    const wrong = check.check(single, e)
    if (wrong !== undefined) { t.fail(`generator made an event the document refuses: ${wrong}`, { e }); continue }
    const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}` }, payload: e })
    if (res.statusCode === 202) accepted++
    else t.fail(`documented-valid event answered ${res.statusCode}`, { event: e, body: res.json() })
    byType.set(String(e.eventType), (byType.get(String(e.eventType)) ?? 0) + 1)
  }
  t.equal(accepted, 600)
  t.equal(byType.size, 11, 'every event type was generated')

  const items = Array.from({ length: 50 }, () => freshEvent(gen, single, seen, api.config.http.maxEventBytes))
  const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events/batch', headers: { authorization: `Bearer ${key}` }, payload: { items } })
  t.equal(res.statusCode, 200)
  t.same((res.json() as { results: { status: string }[] }).results.map((r) => r.status), items.map(() => 'accepted'))
})

void t.test('an event breaking one documented constraint is refused (422) and the document refuses it too', async (t) => {
  const { api, key, single, check } = await setup(t)
  const gen = new Generator(api.app.swagger() as unknown as OpenApiDoc, new Rng(SEED + 1))
  const seen = new Set<string>()
  const keywords = new Map<string, number>()
  let refused = 0
  let tried = 0
  for (let i = 0; i < 800; i++) {
    const valid = freshEvent(gen, single, seen, api.config.http.maxEventBytes)
    const m = mutate(gen, single, valid)
    if (m === undefined) continue
    const body = JSON.stringify(m.value)
    // a broken limit can make the body exceed the route's limit: that is 413, tested elsewhere
    if (Buffer.byteLength(body) > api.config.http.singleBodyLimitBytes) continue
    tried++
    keywords.set(m.keyword, (keywords.get(m.keyword) ?? 0) + 1)
    t.not(check.check(single, m.value), undefined, `the document refuses ${m.keyword} at ${m.pointer}`)
    const res = await api.app.inject({ method: 'POST', url: '/v1/cdp/events', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, payload: body })
    if (res.statusCode === 422) refused++
    else t.fail(`broken ${m.keyword} at ${m.pointer} answered ${res.statusCode}`, { value: m.value, body: res.body })
  }
  t.equal(refused, tried)
  for (const k of ['required', 'additionalProperties', 'type', 'maxLength', 'enum', 'pattern', 'minimum', 'nullable']) {
    t.ok((keywords.get(k) ?? 0) > 0, `mutations broke ${k}`)
  }
})
