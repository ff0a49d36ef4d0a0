/**
 * Contract -> OpenAPI schema: each rule of validate.ts shows up as the schema keyword that says
 * the same thing, and a type with tenant-specific contracts documents every variant.
 */
import t from 'tap'
import { parseContract } from '../../../src/contracts/parse.js'
import { buildRegistry } from '../../../src/contracts/registry.js'
import { propertiesSchema, TIMESTAMP_PATTERN } from '../../../src/contracts/json-schema.js'
import { timestampProblem } from '../../../src/contracts/validate.js'
import { eventSchemas } from '../../../src/http/openapi/events.js'
import { loadConfig } from '../../../src/config/index.js'
import type { Contract } from '../../../src/contracts/types.js'

function contract(raw: Record<string, unknown>): Contract {
  const { contract: c, problems } = parseContract({ version: 1, owner: 'o', description: 'd', unknownProperties: 'reject', ...raw }, 'test.json')
  if (c === undefined) throw new Error(JSON.stringify(problems))
  return c
}

void t.test('property rules become schema keywords', async (t) => {
  const c = contract({
    name: 'x_happened',
    properties: {
      s: { type: 'string', required: true, maxLength: 5000 },
      n: { type: 'integer', minimum: 1 },
      f: { type: 'number' },
      e: { type: 'enum', values: ['a', 'b'] },
      ts: { type: 'timestamp', pii: true },
      tags: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3, segmentable: true },
    },
  })
  const s = propertiesSchema(c, { maxStringLength: 2048 })
  t.same(s.required, ['s'])
  t.equal(s.additionalProperties, false)
  t.equal(s.properties!.s!.maxLength, 2048, 'the service-wide cap wins over a larger own limit')
  t.equal(s.properties!.s!.nullable, undefined, 'required: not nullable')
  t.same([s.properties!.n!.minimum, s.properties!.n!.maximum], [1, Number.MAX_SAFE_INTEGER], 'integers stay safe')
  t.same(s.properties!.e!.enum, ['a', 'b', null], 'optional enum admits null explicitly')
  t.equal(s.properties!.ts!['x-pii'], true)
  t.same(s.properties!.tags, { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 3, nullable: true, 'x-segmentable': true })
  t.equal(propertiesSchema({ ...c, unknownProperties: 'allow' }, { maxStringLength: 2048 }).additionalProperties, true)
})

void t.test('the timestamp pattern admits what validate.ts admits, apart from calendar dates', async (t) => {
  const re = new RegExp(TIMESTAMP_PATTERN)
  for (const v of ['2026-05-20T12:45:00Z', '1900-01-01T00:00:00+01:00', '2299-12-31T23:59:59.999999999-12:00', '2026-05-20t12:45:00z',
    '1899-12-31T23:59:59Z', '2300-01-01T00:00:00Z', '2026-05-20T12:45Z', '2026-05-20T24:00:00Z', '2026-05-20T12:60:00Z', '2026-05-20T12:45:00+24:00', '2026-05-20T12:45:00']) {
    t.equal(re.test(v), timestampProblem(v) === undefined, v)
  }
})

void t.test('an event type with tenant-specific contracts documents each variant', async (t) => {
  const shared = contract({ name: 'x_happened', properties: { a: { type: 'string', required: true } } })
  const own = contract({ name: 'x_happened', tenants: ['acme'], properties: { b: { type: 'integer' } } })
  const { registry, problems } = buildRegistry([{ contract: shared, file: 'x_happened.json' }, { contract: own, file: 'x_happened.acme.json' }])
  t.same(problems, [])
  const doc = eventSchemas(loadConfig({ env: {} }), registry)
  t.same(doc.event.discriminator, { propertyName: 'eventType', mapping: { x_happened: '#/components/schemas/Event_x_happened' } })
  const props = doc.components.Event_x_happened!.properties!.properties!
  t.equal(props.anyOf?.length, 2)
  t.ok(doc.components.Event_x_happened!.required!.includes('properties'), 'a variant requires properties')
  t.ok(doc.components.EventEnvelope, 'the generic envelope is published too')
})
